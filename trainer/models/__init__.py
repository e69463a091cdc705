"""Model families and the contract every model keeps.

Every model is an ``nn.Module`` with:

- ``kind``: "ae" | "vae" | "gan" | "classifier"; ``config``: its dataclass (JSON round trip via
  ``to_dict`` / ``from_dict``); ``latent_dim``; ``value_range``: (lo, hi) of its images.
- ``decode(z)``: (B, latent_dim) -> (B, C, H, W) in ``value_range``.
- ``sample_latent(n, generator=None, device=None)``: (n, latent_dim) draws from its prior.
- ``encode(x)`` where it has an encoder (AE, VAE: the posterior mean; VAE adds ``encode_posterior``).

Callers ask ``hasattr(model, "encode")`` rather than checking names.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from trainer.models.ae import AE, AEConfig
from trainer.models.classifier import Classifier, ClassifierConfig
from trainer.models.gan import GAN, GANConfig
from trainer.models.vae import VAE, VAEConfig

# kind -> (config class, model class)
MODEL_FAMILIES: dict[str, tuple[type, type[nn.Module]]] = {
    "ae": (AEConfig, AE),
    "vae": (VAEConfig, VAE),
    "gan": (GANConfig, GAN),
    "classifier": (ClassifierConfig, Classifier),
}
GENERATIVE_KINDS = ("ae", "vae", "gan")


def build_model(kind: str, config: dict[str, Any] | Any) -> nn.Module:
    """Build a fresh model of ``kind`` from a config dataclass or its dict form."""
    if kind not in MODEL_FAMILIES:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {sorted(MODEL_FAMILIES)}")
    config_cls, model_cls = MODEL_FAMILIES[kind]
    if isinstance(config, dict):
        config = config_cls.from_dict(config)
    return model_cls(config)


def has_encoder(model: nn.Module) -> bool:
    return callable(getattr(model, "encode", None))


def has_decoder(model: nn.Module) -> bool:
    return callable(getattr(model, "decode", None))
