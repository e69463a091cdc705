"""Shared fixtures: tiny real checkpoints made by the real trainer (a --dry-run of each kind)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints"


def train_tiny(out: Path, model: str, *extra: str) -> Path:
    """Run the real trainer CLI in-process for a few steps; returns the checkpoint directory."""
    from trainer.cli import main

    rc = main(["--model", model, "--dry-run", "--device", "cpu", "--out", str(out), "--latents-sample", "300", *extra])
    assert rc == 0, f"trainer exited with {rc}"
    return out


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny AE, VAE and GAN checkpoint (conv, mnist5k, latent 8) in a shared checkpoints dir."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        kind: train_tiny(root / f"{kind}-tiny", kind, "--latent-dim", "8")
        for kind in ("ae", "vae", "gan")
    }


@pytest.fixture(scope="session")
def tiny_checkpoints_dir(tiny_runs) -> Path:
    return next(iter(tiny_runs.values())).parent
