"""GAN: a DCGAN-style (Radford et al. 2016) or MLP generator/discriminator pair.

Losses: "ns", the non-saturating loss of Goodfellow et al. 2014 (G maximises log D(G(z))), or
"wgan-gp", the Wasserstein loss with gradient penalty (Gulrajani et al. 2017; the critic then has
no batch norm). ``decode`` uses an exponential moving average of the generator weights when
``ema > 0`` (Karras et al. 2018), which gives visibly cleaner samples at no training cost.
Output range [-1, 1] (tanh).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.blocks import ConvDecoder, ConvEncoder, ModelConfig, gaussian_sample, mlp


@dataclass
class GANConfig(ModelConfig):
    latent_dim: int = 64
    width: int = 32  # conv: channels of the last generator / first critic layer
    hidden: tuple[int, ...] = (256, 512)  # mlp: generator hidden sizes (the discriminator mirrors them)
    loss: str = "ns"  # "ns" | "wgan-gp"
    gp_weight: float = 10.0
    ema: float = 0.999  # 0 disables the EMA generator

    def validate(self) -> None:
        super().validate()
        if self.loss not in ("ns", "wgan-gp"):
            raise ValueError(f"loss must be 'ns' or 'wgan-gp', got {self.loss!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema!r}")


class GAN(nn.Module):
    kind = "gan"
    value_range = (-1.0, 1.0)

    def __init__(self, config: GANConfig):
        super().__init__()
        config.validate()
        self.config = config
        c, s, d = config.channels, config.image_size, config.latent_dim
        critic_norm = config.loss == "ns"  # batch norm breaks the per-sample gradient penalty
        if config.arch == "conv":
            self.generator = ConvDecoder(d, c, s, config.width)
            self.discriminator = ConvEncoder(c, s, 1, config.width, norm=critic_norm)
        else:
            self.generator = nn.Sequential(mlp([d, *config.hidden, c * s * s]), nn.Unflatten(1, (c, s, s)))
            self.discriminator = nn.Sequential(
                nn.Flatten(), mlp([c * s * s, *reversed(config.hidden), 1], leak=0.2)
            )
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False) if config.ema > 0 else None

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, C, H, W) in [-1, 1], from the EMA generator when there is one."""
        g = self.generator_ema if self.generator_ema is not None else self.generator
        return torch.tanh(g(z))

    def sample_latent(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return gaussian_sample(n, self.latent_dim, generator, device or next(self.parameters()).device)

    def generate(self, z: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """Images from the training generator (not the EMA copy), or from ``net`` (e.g. its DDP wrapper)."""
        return torch.tanh((net or self.generator)(z))

    # -- losses; x in [-1, 1]. ``critic`` overrides the discriminator (e.g. its DDP wrapper) ----------
    def d_loss(self, x_real: torch.Tensor, x_fake: torch.Tensor, generator: torch.Generator | None = None,
               critic: nn.Module | None = None):
        critic = critic or self.discriminator
        d_real = critic(x_real)
        d_fake = critic(x_fake.detach())
        if self.config.loss == "ns":
            loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()  # BCE with targets 1 / 0
            return loss, {"d": loss.detach()}
        wdist = d_real.mean() - d_fake.mean()
        gp = self._gradient_penalty(critic, x_real, x_fake.detach(), generator)
        return -wdist + self.config.gp_weight * gp, {"d": -wdist.detach(), "gp": gp.detach()}

    def g_loss(self, x_fake: torch.Tensor, critic: nn.Module | None = None):
        d_fake = (critic or self.discriminator)(x_fake)
        loss = F.softplus(-d_fake).mean() if self.config.loss == "ns" else -d_fake.mean()
        return loss, {"g": loss.detach()}

    @staticmethod
    def _gradient_penalty(critic, x_real, x_fake, generator):
        alpha = torch.rand(x_real.shape[0], 1, 1, 1, generator=generator, device=x_real.device)
        x_hat = (alpha * x_real + (1 - alpha) * x_fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.generator_ema is None:
            return
        decay = self.config.ema
        for p_ema, p in zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True):
            p_ema.lerp_(p, 1.0 - decay)
        for b_ema, b in zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True):
            b_ema.copy_(b)
