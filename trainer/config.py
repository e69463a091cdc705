"""The training configuration. Its fields are the command-line flags (see trainer/cli.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from trainer.data import DATASETS

MODEL_KINDS = ("vae", "ae", "gan", "classifier")


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    model: str = _f("vae", "model family (classifier: the evaluator network for metrics)", choices=MODEL_KINDS)
    arch: str = _f("conv", "network type: convolutional or fully connected", choices=("conv", "mlp"))
    dataset: str = _f("mnist5k", f"{', '.join(DATASETS)} or folder:PATH (your own images)")
    data_root: str = _f("data", "where torchvision datasets are downloaded to")
    image_size: int | None = _f(None, "image side in pixels (default: the dataset's, e.g. 28 for MNIST)")
    channels: int | None = _f(None, "1 (grayscale) or 3 (RGB) (default: the dataset's)")
    latent_dim: int | None = _f(None, "latent size, 2-512 (default: 16 for AE/VAE, 64 for GAN)")
    width: int | None = _f(None, "conv width: channels of the outermost conv layer (default 32)")
    hidden: str | None = _f(None, "mlp hidden sizes, comma separated (default 512,256 for AE/VAE, 256,512 for GAN)")
    beta: float = _f(1.0, "VAE: weight of the KL term (beta-VAE)")
    recon_loss: str = _f("bce", "AE/VAE reconstruction loss", choices=("bce", "mse"))
    gan_loss: str = _f("ns", "GAN loss: non-saturating or WGAN-GP", choices=("ns", "wgan-gp"))
    critic_steps: int | None = _f(None, "GAN: discriminator steps per generator step (default 1, or 5 for wgan-gp)")
    ema: float = _f(0.999, "GAN: decay of the generator's weight average used for sampling (0 = off)")
    epochs: int = _f(30, "passes over the training split")
    batch_size: int = _f(128, "images per step per process (global batch = batch_size x processes)")
    lr: float | None = _f(None, "Adam learning rate (default 1e-3 for AE/VAE, 2e-4 for GAN, 1e-4 for wgan-gp)")
    seed: int = _f(0, "seed for initialisation, shuffling and noise")
    device: str = _f("auto", "auto picks cuda, then mps, then cpu", choices=("auto", "cpu", "cuda", "mps"))
    amp: bool = _f(True, "mixed precision (bf16/fp16 autocast) on CUDA; no effect elsewhere")
    holdout: float = _f(0.1, "fraction held out for evaluation (datasets with a test split use it)")
    latents_sample: int = _f(5000, "how many images to encode into latents.npz at the end (GAN: 2000 prior draws)")
    out: str | None = _f(None, "checkpoint directory (default checkpoints/MODEL-DATASET)")
    resume: bool = _f(False, "continue the run in --out from its last checkpoint")
    dry_run: bool = _f(False, "a quick check: 1 epoch of 3 batches on 256 images")
    max_bad_steps: int = _f(20, "stop after this many consecutive non-finite losses")

    def to_dict(self) -> dict:
        return asdict(self)

    def resolved_out(self) -> str:
        return self.out or f"checkpoints/{self.model}-{self.dataset.replace(':', '-').replace('/', '-')}"

    def resolved_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        if self.model == "gan":
            return 1e-4 if self.gan_loss == "wgan-gp" else 2e-4
        return 1e-3

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if self.latent_dim is not None and not 2 <= self.latent_dim <= 512:
            raise ValueError(f"--latent-dim must be between 2 and 512, got {self.latent_dim}")
        if self.channels is not None and self.channels not in (1, 3):
            raise ValueError(f"--channels must be 1 or 3, got {self.channels}")
        if self.model == "classifier" and self.dataset == "celeba":
            raise ValueError("--model classifier needs a labelled dataset; celeba has no class labels here")
        if self.latents_sample < 1:
            raise ValueError(f"--latents-sample must be at least 1, got {self.latents_sample}")
        if self.hidden is not None:
            try:
                sizes = [int(s) for s in self.hidden.split(",")]
            except ValueError:
                raise ValueError(f"--hidden must be comma-separated integers like 512,256, got {self.hidden!r}") from None
            if not sizes or min(sizes) < 1:
                raise ValueError(f"--hidden sizes must be positive, got {self.hidden!r}")
