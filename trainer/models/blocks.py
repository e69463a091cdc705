"""Conv and MLP stacks shared by the model families.

Spatial plan: an image of side ``s0 * 2**k`` (s0 = 7 for 28x28, 4 for 32/64/...) is reached from an
``s0 x s0`` feature map by ``k`` stride-2 (transposed) convolutions, doubling/halving channels each step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn


@dataclass
class ModelConfig:
    """Base for each family's config: image shape and latent size, JSON round trip with checks."""

    latent_dim: int = 16
    image_size: int = 28
    channels: int = 1
    arch: str = "conv"  # "conv" | "mlp"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists, so a config equals its own JSON round trip."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        names = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}")
        kwargs = {}
        for k, v in d.items():
            default = getattr(cls, k, None) if k in cls.__dataclass_fields__ else None
            if isinstance(default, tuple) and isinstance(v, list):
                v = tuple(v)
            kwargs[k] = v
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        for name in ("latent_dim", "image_size", "channels"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"{name} must be an integer, got {v!r}")
        if not 2 <= self.latent_dim <= 512:
            raise ValueError(f"latent_dim must be between 2 and 512, got {self.latent_dim}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if self.arch not in ("conv", "mlp"):
            raise ValueError(f"arch must be 'conv' or 'mlp', got {self.arch!r}")
        spatial_plan(self.image_size)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)


def spatial_plan(image_size: int) -> tuple[int, int]:
    """(s0, k) with image_size == s0 * 2**k, s0 in (7, 4), k >= 1. Raises ValueError otherwise."""
    for s0 in (7, 4):
        k, s = 0, image_size
        while s > s0 and s % 2 == 0:
            s //= 2
            k += 1
        if s == s0 and k >= 1:
            return s0, k
    raise ValueError(
        f"image_size {image_size} is not supported: use 14, 28, 56 (7*2^k) or 8, 16, 32, 64, 128 (4*2^k)"
    )


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, out_features). Used by AE/VAE encoders and GAN discriminators."""

    def __init__(self, channels: int, image_size: int, out_features: int, width: int, norm: bool = True,
                 leak: float = 0.2):
        super().__init__()
        s0, k = spatial_plan(image_size)
        layers: list[nn.Module] = []
        c_in, c_out = channels, width
        for i in range(k):
            layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not (norm and i > 0)))
            if norm and i > 0:  # no norm on the first layer (DCGAN)
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(leak, inplace=True))
            c_in, c_out = c_out, c_out * 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * s0 * s0, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """(B, latent_dim) -> (B, C, H, W) pre-activation. Used by AE/VAE decoders and GAN generators."""

    def __init__(self, latent_dim: int, channels: int, image_size: int, width: int, norm: bool = True):
        super().__init__()
        s0, k = spatial_plan(image_size)
        c = width * 2 ** (k - 1)  # channels at s0 x s0
        self.s0, self.c0 = s0, c
        self.fc = nn.Sequential(nn.Linear(latent_dim, c * s0 * s0, bias=not norm))
        self.fc_norm = nn.BatchNorm2d(c) if norm else nn.Identity()
        layers: list[nn.Module] = []
        for i in range(k):
            last = i == k - 1
            c_out = channels if last else c // 2
            layers.append(nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1, bias=last or not norm))
            if not last:
                if norm:
                    layers.append(nn.BatchNorm2d(c_out))
                layers.append(nn.ReLU(inplace=True))
            c = c_out
        self.up = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, self.c0, self.s0, self.s0)  # (B, c0, s0, s0)
        return self.up(torch.relu(self.fc_norm(h)))


def mlp(sizes: list[int], act: nn.Module | None = None, leak: float | None = None) -> nn.Sequential:
    """Linear layers of the given sizes with an activation between (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(leak, inplace=True) if leak is not None else nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def gaussian_sample(n: int, latent_dim: int, generator: torch.Generator | None, device) -> torch.Tensor:
    """(n, latent_dim) standard normal draws from ``generator`` (on its device)."""
    if generator is not None:
        z = torch.randn(n, latent_dim, generator=generator, device=generator.device)
        return z.to(device) if device is not None else z
    return torch.randn(n, latent_dim, device=device)
