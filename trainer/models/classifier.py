"""A small LeNet-style classifier (LeCun et al. 1998): the project's evaluator network.

Its penultimate ``features`` (B, feature_dim) are the feature space of the FID-classifier,
precision/recall and memorisation metrics (trainer/evaluate.py), and its predictions colour a GAN's
latent map in the explorer. Not a generative model: it has no latent space and no ``decode``.
Input range [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.blocks import ModelConfig


@dataclass
class ClassifierConfig(ModelConfig):
    latent_dim: int = 128  # here: the width of the penultimate feature layer
    num_classes: int = 10
    width: int = 32
    dropout: float = 0.25

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {self.num_classes!r}")


class Classifier(nn.Module):
    kind = "classifier"
    value_range = (0.0, 1.0)

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        config.validate()
        self.config = config
        c, w = config.channels, config.width
        self.conv = nn.Sequential(  # two conv-conv-pool stages, then a fixed 4x4 grid
            nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(2 * w * 16, config.latent_dim),
                                nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.latent_dim, config.num_classes))

    @property
    def feature_dim(self) -> int:
        return self.config.latent_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, feature_dim) penultimate activations."""
        return self.fc(self.conv(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None):
        return self.loss(x, labels, generator)

    def loss(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None):
        logits = self.logits(x)
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        return loss, {"acc": acc.detach()}
