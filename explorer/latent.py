"""Latent vectors: seeds, validation of user input, truncation, linear and spherical interpolation.

Pure torch on small vectors; ``z`` is (latent_dim,) or (B, latent_dim).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import torch

MAX_SEED = 2**31 - 1
METHODS = ("slerp", "lerp")


def as_latent(values: torch.Tensor | Sequence[float], latent_dim: int) -> torch.Tensor:
    """``values`` as a float32 (latent_dim,) tensor. Raises ValueError for a wrong size or a non-finite value."""
    try:
        z = torch.as_tensor(values, dtype=torch.float32).detach().cpu().flatten()
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"a latent must be a list of {latent_dim} numbers ({e})") from None
    if z.numel() != latent_dim:
        raise ValueError(f"latent must have {latent_dim} values, got {z.numel()}")
    if not torch.isfinite(z).all():
        raise ValueError("latent values must be finite numbers (no NaN or infinity)")
    return z


def parse_latent(text: str, latent_dim: int) -> torch.Tensor:
    """A latent typed or pasted by a user: a JSON list ``[0.1, -2, ...]`` or comma/space separated numbers."""
    text = (text or "").strip()
    if not text:
        raise ValueError(f"the latent is empty; give {latent_dim} numbers as a JSON list like [0.1, -0.4, ...]")
    try:
        values = json.loads(text) if text.startswith("[") else [float(t) for t in text.replace(",", " ").split()]
    except (ValueError, json.JSONDecodeError):
        raise ValueError(f"cannot read the latent {text[:40]!r}: give {latent_dim} numbers as a JSON list") from None
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in values):
        raise ValueError(f"the latent must be a flat list of {latent_dim} numbers")
    return as_latent(values, latent_dim)


def format_latent(z: torch.Tensor | Sequence[float], digits: int = 4) -> str:
    """A latent as a compact JSON list, the inverse of ``parse_latent``."""
    return json.dumps([round(float(v), digits) for v in torch.as_tensor(z).flatten().tolist()])


def check_seed(seed: float | int | None) -> int:
    if seed is None:
        raise ValueError("enter a seed (a whole number from 0 to 2147483647)")
    if isinstance(seed, float) and not seed.is_integer():
        raise ValueError(f"a seed must be a whole number, got {seed}")
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"a seed must be between 0 and {MAX_SEED}, got {seed}")
    return seed


def seed_latent(model: torch.nn.Module, seed: int, truncation: float = 1.0,
                center: torch.Tensor | None = None) -> torch.Tensor:
    """The latent the model's prior draws for ``seed``, (latent_dim,) on the CPU. The same seed always gives
    the same latent. ``truncation`` ψ < 1 pulls it towards ``center`` (the truncation trick)."""
    gen = torch.Generator(device="cpu").manual_seed(check_seed(seed))
    z = model.sample_latent(1, generator=gen, device="cpu")[0].detach().float().cpu()
    return truncate(z, truncation, center) if truncation != 1.0 else z


def truncate(z: torch.Tensor, psi: float, center: torch.Tensor | None = None) -> torch.Tensor:
    """z pulled towards ``center`` (default 0, the prior mean): center + ψ (z − center)."""
    if not (math.isfinite(psi) and psi >= 0):
        raise ValueError(f"truncation must be a number >= 0, got {psi}")
    c = torch.zeros_like(z) if center is None else center.to(z)
    return c + psi * (z - c)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Linear interpolation; t (T,) gives (T, D), a scalar gives (D,)."""
    t = torch.as_tensor(t, dtype=a.dtype)
    return a + t[..., None] * (b - a) if t.ndim else a + t * (b - a)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985), the path that stays at a typical norm for Gaussian latents
    (White 2016, "Sampling Generative Networks"). Norms are interpolated linearly, directions along the
    great circle; falls back to lerp for (anti)parallel or zero vectors."""
    t = torch.as_tensor(t, dtype=a.dtype)
    scalar = t.ndim == 0
    t = t.reshape(-1, 1)
    na, nb = a.norm(), b.norm()
    if na < eps or nb < eps:
        out = lerp(a, b, t.flatten())
        return out[0] if scalar else out
    ua, ub = a / na, b / nb
    omega = torch.arccos((ua * ub).sum().clamp(-1.0, 1.0))
    so = torch.sin(omega)
    if so.abs() < 1e-6:
        out = lerp(a, b, t.flatten())
        return out[0] if scalar else out
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so
    out = direction * (na + t * (nb - na))
    return out[0] if scalar else out


def interpolate(a: torch.Tensor, b: torch.Tensor, steps: int, method: str = "slerp") -> torch.Tensor:
    """``steps`` latents from a to b inclusive, (steps, D)."""
    if method not in METHODS:
        raise ValueError(f"interpolation method must be one of {METHODS}, got {method!r}")
    if isinstance(steps, float) and steps.is_integer():
        steps = int(steps)
    if not isinstance(steps, int) or not 2 <= steps <= 64:
        raise ValueError(f"steps must be a whole number from 2 to 64, got {steps}")
    if a.shape != b.shape:
        raise ValueError(f"both ends must have the same size, got {tuple(a.shape)} and {tuple(b.shape)}")
    t = torch.linspace(0, 1, steps, dtype=a.dtype)
    out = slerp(a, b, t) if method == "slerp" else lerp(a, b, t)
    out[0], out[-1] = a, b  # exact endpoints, whatever the rounding
    return out
