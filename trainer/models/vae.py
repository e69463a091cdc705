"""Variational autoencoder (Kingma & Welling 2014) with a β weight on the KL term (Higgins et al. 2017).

loss = E_q[-log p(x|z)] + β · KL(q(z|x) || N(0, I)), per image, averaged over the batch.
``encode`` returns the posterior mean; ``encode_posterior`` returns (mean, log-variance). Output range [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from trainer.models.ae import AEConfig, build_decoder, build_encoder, reconstruction_loss
from trainer.models.blocks import gaussian_sample


@dataclass
class VAEConfig(AEConfig):
    beta: float = 1.0

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.beta, (int, float)) or not self.beta >= 0:
            raise ValueError(f"beta must be a number >= 0, got {self.beta!r}")


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent dimension, (B, D), in nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


class VAE(nn.Module):
    kind = "vae"
    value_range = (0.0, 1.0)

    def __init__(self, config: VAEConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = build_encoder(config, 2 * config.latent_dim)  # -> [mu, logvar]
        self.decoder = build_decoder(config)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode_posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) in [0, 1] -> mean, log-variance, each (B, latent_dim)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_posterior(x)[0]

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def sample_latent(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return gaussian_sample(n, self.latent_dim, generator, device or next(self.parameters()).device)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """Training loss on a batch x in [0, 1]: (scalar, dict of its parts). ``forward`` so DDP can wrap it."""
        return self.loss(x, generator)

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        mu, logvar = self.encode_posterior(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * (0.5 * logvar).exp()  # reparameterisation trick
        recon = reconstruction_loss(self.decode_logits(z), x, self.config.recon_loss)
        kl = kl_per_dim(mu, logvar).sum(1).mean()
        return recon + self.config.beta * kl, {"recon": recon.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int = 64, generator: torch.Generator | None = None) -> torch.Tensor:
        """Importance-weighted estimate of log p(x) per image (Burda et al. 2016), (B,), in nats.
        Needs recon_loss='bce' (a Bernoulli likelihood)."""
        mu, logvar = self.encode_posterior(x)
        std = (0.5 * logvar).exp()
        log_w = []
        for _ in range(k):
            eps = torch.randn(mu.shape, generator=generator, device=mu.device)
            z = mu + eps * std
            logits = self.decode_logits(z)
            log_px_z = -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
            log_pz = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(1)
            log_qz = (-0.5 * eps.pow(2) - 0.5 * math.log(2 * math.pi) - 0.5 * logvar).sum(1)
            log_w.append(log_px_z + log_pz - log_qz)
        return torch.logsumexp(torch.stack(log_w), 0) - math.log(k)
