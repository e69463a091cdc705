"""Deterministic autoencoder: x -> z -> x̂, trained on per-pixel binary cross-entropy (or MSE).

An AE has no prior, so ``sample_latent`` draws from a diagonal Gaussian fitted to the training
encodings (``fit_prior``; stored as buffers in the checkpoint). Output range [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.blocks import ConvDecoder, ConvEncoder, ModelConfig, gaussian_sample, mlp


@dataclass
class AEConfig(ModelConfig):
    width: int = 32  # conv: channels of the first encoder layer, doubling per stride-2 step
    hidden: tuple[int, ...] = (512, 256)  # mlp: hidden sizes of the encoder (mirrored in the decoder)
    recon_loss: str = "bce"  # "bce" | "mse"

    def validate(self) -> None:
        super().validate()
        if self.recon_loss not in ("bce", "mse"):
            raise ValueError(f"recon_loss must be 'bce' or 'mse', got {self.recon_loss!r}")
        if not isinstance(self.width, int) or self.width < 1:
            raise ValueError(f"width must be a positive integer, got {self.width!r}")


def build_encoder(cfg: AEConfig, out_features: int) -> nn.Module:
    c, s = cfg.channels, cfg.image_size
    if cfg.arch == "conv":
        return ConvEncoder(c, s, out_features, cfg.width)
    return nn.Sequential(nn.Flatten(), mlp([c * s * s, *cfg.hidden, out_features]))


def build_decoder(cfg: AEConfig) -> nn.Module:
    c, s = cfg.channels, cfg.image_size
    if cfg.arch == "conv":
        return ConvDecoder(cfg.latent_dim, c, s, cfg.width)
    return nn.Sequential(mlp([cfg.latent_dim, *reversed(cfg.hidden), c * s * s]), nn.Unflatten(1, (c, s, s)))


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-image reconstruction loss summed over pixels, averaged over the batch. x in [0, 1]."""
    if kind == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        per_pixel = F.mse_loss(torch.sigmoid(logits), x, reduction="none")
    return per_pixel.flatten(1).sum(1).mean()


class AE(nn.Module):
    kind = "ae"
    value_range = (0.0, 1.0)

    def __init__(self, config: AEConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = build_encoder(config, config.latent_dim)
        self.decoder = build_decoder(config)
        # Diagonal Gaussian fitted to the training encodings; what sample_latent draws from.
        self.register_buffer("latent_mean", torch.zeros(config.latent_dim))
        self.register_buffer("latent_std", torch.ones(config.latent_dim))

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, latent_dim)."""
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    def sample_latent(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        eps = gaussian_sample(n, self.latent_dim, generator, device or self.latent_mean.device)
        return self.latent_mean.to(eps.device) + eps * self.latent_std.to(eps.device)

    @torch.no_grad()
    def fit_prior(self, z: torch.Tensor) -> None:
        """Set the sampling Gaussian from encodings ``z`` (N, latent_dim)."""
        self.latent_mean.copy_(z.mean(0))
        self.latent_std.copy_(z.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """Training loss on a batch x in [0, 1]: (scalar, dict of its parts). ``forward`` so DDP can wrap it."""
        return self.loss(x, generator)

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        recon = reconstruction_loss(self.decode_logits(self.encode(x)), x, self.config.recon_loss)
        return recon, {"recon": recon.detach()}
