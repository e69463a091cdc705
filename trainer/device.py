"""Device choice shared by the trainer and the explorer."""

from __future__ import annotations

import torch


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda, then mps, then cpu. An explicit device that is not available is an error."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA GPU is visible; use --device auto or cpu")
    if name == "mps" and not has_mps:
        raise ValueError("--device mps was asked for but MPS is not available; use --device auto or cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    return torch.device(name)
