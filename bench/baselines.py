"""The textbook models that tutorials teach, trained the way tutorials train them: the reference our
shipped checkpoints must beat (bench/quality.py).

- MLP GAN (Goodfellow et al. 2014, as in the classic PyTorch/TensorFlow tutorials): generator
  100→128→128→784 with ReLU and a sigmoid output, discriminator 784→128→128→1 with LeakyReLU(0.2) and a
  sigmoid, BCE loss (non-saturating generator loss), Adam lr 2e-4, β1 0.5.
- MLP autoencoder (the Keras-blog "deep autoencoder"): 784→64→32→16 and back with ReLU, sigmoid output,
  per-pixel BCE, Adam lr 1e-3.

Deliberately self-contained: a DataLoader over a TensorDataset and the zero_grad/backward/step loop,
nothing from trainer/ except the dataset (same images, same held-out split). The trained modules keep
the model contract (``value_range``, ``latent_dim``, ``sample_latent``, ``decode``; the AE adds
``encode``), so trainer/evaluate.py scores them with exactly the code that scores our checkpoints.

    python bench/baselines.py --epochs 2      # a quick look: trains both, prints the final losses
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainer.data import ImageData, load_dataset  # noqa: E402


class TextbookGAN(nn.Module):
    kind = "gan"
    value_range = (0.0, 1.0)
    latent_dim = 100

    def __init__(self):
        super().__init__()
        self.generator = nn.Sequential(
            nn.Linear(100, 128), nn.ReLU(),
            nn.Linear(128, 128), nn.ReLU(),
            nn.Linear(128, 784), nn.Sigmoid(),
        )
        self.discriminator = nn.Sequential(
            nn.Linear(784, 128), nn.LeakyReLU(0.2),
            nn.Linear(128, 128), nn.LeakyReLU(0.2),
            nn.Linear(128, 1), nn.Sigmoid(),
        )

    def sample_latent(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return torch.randn(n, 100, generator=generator).to(device or "cpu")

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z).view(-1, 1, 28, 28)


class TextbookAE(nn.Module):
    kind = "ae"
    value_range = (0.0, 1.0)
    latent_dim = 16

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 64), nn.ReLU(),
            nn.Linear(64, 32), nn.ReLU(),
            nn.Linear(32, 16), nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.Linear(16, 32), nn.ReLU(),
            nn.Linear(32, 64), nn.ReLU(),
            nn.Linear(64, 784), nn.Sigmoid(),
        )
        # The tutorial AE has no prior; for sampling metrics we fit a diagonal Gaussian to its training
        # encodings, as our AE does (trainer/models/ae.py).
        self.register_buffer("latent_mean", torch.zeros(16))
        self.register_buffer("latent_std", torch.ones(16))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, 1, 28, 28)

    def sample_latent(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        eps = torch.randn(n, 16, generator=generator)
        return (self.latent_mean + eps * self.latent_std).to(device or "cpu")


def _loader(data: ImageData, batch_size: int, seed: int) -> DataLoader:
    if data.image_shape != (1, 28, 28):
        raise ValueError(f"the textbook models are for 1x28x28 images, got {data.image_shape}")
    x = data.images[data.train_idx].float().div(255.0).view(-1, 784)
    return DataLoader(TensorDataset(x), batch_size=batch_size, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(seed))


def train_gan(data: ImageData, epochs: int, batch_size: int, seed: int = 0, log=print) -> TextbookGAN:
    torch.manual_seed(seed)
    model = TextbookGAN()
    G, D = model.generator, model.discriminator
    criterion = nn.BCELoss()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    for epoch in range(epochs):
        for (real,) in _loader(data, batch_size, seed + epoch):
            b = real.shape[0]
            ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)
            # (1) update D: maximise log D(x) + log(1 - D(G(z)))
            fake = G(torch.randn(b, 100))
            loss_d = criterion(D(real), ones) + criterion(D(fake.detach()), zeros)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            # (2) update G: maximise log D(G(z))
            loss_g = criterion(D(fake), ones)
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
        log(f"textbook gan | epoch {epoch + 1}/{epochs} | d {loss_d.item():.4f} | g {loss_g.item():.4f}")
    return model.eval()


def train_ae(data: ImageData, epochs: int, batch_size: int, seed: int = 0, log=print) -> TextbookAE:
    torch.manual_seed(seed)
    model = TextbookAE()
    criterion = nn.BCELoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        for (x,) in _loader(data, batch_size, seed + epoch):
            loss = criterion(model.decoder(model.encoder(x)), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        log(f"textbook ae | epoch {epoch + 1}/{epochs} | bce {loss.item():.4f}")
    with torch.no_grad():
        z = model.encoder(data.images[data.train_idx].float().div(255.0).view(-1, 784))
        model.latent_mean.copy_(z.mean(0))
        model.latent_std.copy_(z.std(0).clamp_min(1e-6))
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    data = load_dataset("mnist5k")
    for name, fn, batch in (("gan", train_gan, 64), ("ae", train_ae, 128)):
        t = time.perf_counter()
        fn(data, args.epochs, batch, args.seed)
        print(f"textbook {name}: {args.epochs} epochs in {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
