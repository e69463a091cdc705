"""Directions in latent space: principal directions (GANSpace, Härkönen et al. 2020), class directions,
per-dimension ranges and the VAE's per-dimension KL.

Every slider in the explorer is an *absolute coordinate* of the current latent along one direction, so
switching between slider groups never jumps: a PCA slider shows where the latent is along that principal
direction (in σ units of the data), and moving it changes only that coordinate, keeping the rest of the
latent (including the part outside the top components) fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

COLLAPSED_KL = 0.05  # nats: a VAE dimension whose average KL is below this carries (almost) no information


@dataclass(frozen=True)
class PCABasis:
    """Top-k principal directions of a set of latents.

    ``components`` (k, D) orthonormal rows; ``sigma`` (k,) the data's standard deviation along each;
    ``lo``/``hi`` (k,) the range of the data's coordinates in σ units; ``explained`` (k,) variance ratios.
    """

    mean: torch.Tensor
    components: torch.Tensor
    sigma: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    explained: torch.Tensor

    @property
    def k(self) -> int:
        return int(self.components.shape[0])


def fit_pca(z: np.ndarray | torch.Tensor, k: int) -> PCABasis:
    """PCA of latents ``z`` (N, D) keeping ``min(k, D)`` directions. Signs are fixed (largest loading
    positive) so the same data always gives the same sliders."""
    z = torch.as_tensor(z, dtype=torch.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"PCA needs at least 2 latents of shape (N, D), got {tuple(z.shape)}")
    k = max(1, min(k, z.shape[1]))
    mean = z.mean(0)
    centered = z - mean
    _, s, vh = torch.linalg.svd(centered, full_matrices=False)
    comps = vh[:k]
    flip = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True))).squeeze(1)
    comps = comps * flip[:, None]
    var = s.pow(2) / (z.shape[0] - 1)
    sigma = var[:k].sqrt().clamp_min(1e-8)
    scores = centered @ comps.T / sigma
    total = var.sum().clamp_min(1e-12)
    return PCABasis(
        mean=mean.float(), components=comps.float(), sigma=sigma.float(),
        lo=scores.min(0).values.float(), hi=scores.max(0).values.float(), explained=(var[:k] / total).float(),
    )


def fit_ganspace(z: np.ndarray | torch.Tensor, features: np.ndarray | torch.Tensor, k: int) -> PCABasis:
    """Principal directions of what a latent *does*, for latents whose own distribution has none to find
    (a GAN's isotropic prior): PCA of ``features`` (N, F) computed from the latents (e.g. the decoded
    pixels), then each feature component's latent direction by least-squares regression of z on the
    component scores (GANSpace, Härkönen et al. 2020, sec. 3.2). The directions are orthonormalised in
    order (QR), so the sliders stay absolute coordinates; ``explained`` is the feature variance ratio."""
    z = torch.as_tensor(z, dtype=torch.float64)
    f = torch.as_tensor(features, dtype=torch.float64).flatten(1)
    if z.shape[0] != f.shape[0] or z.shape[0] < 2:
        raise ValueError(f"need matching rows of latents and features, got {tuple(z.shape)} and {tuple(f.shape)}")
    k = max(1, min(k, z.shape[1], f.shape[1], z.shape[0] - 1))
    fc = f - f.mean(0)
    _, s, vh = torch.linalg.svd(fc, full_matrices=False)
    scores = fc @ vh[:k].T  # (N, k)
    mean = z.mean(0)
    dirs = torch.linalg.lstsq(scores, z - mean).solution  # (k, D): z-change per unit of each score
    q, _ = torch.linalg.qr(dirs.T)  # (D, k) orthonormal, spanning the directions in order
    comps = q.T * torch.sign((q.T * dirs).sum(1, keepdim=True))  # keep each direction's sign
    proj = (z - mean) @ comps.T
    sigma = proj.std(0).clamp_min(1e-8)
    var = s.pow(2)
    return PCABasis(
        mean=mean.float(), components=comps.float(), sigma=sigma.float(), lo=(proj / sigma).min(0).values.float(),
        hi=(proj / sigma).max(0).values.float(), explained=(var[:k] / var.sum().clamp_min(1e-12)).float(),
    )


def pca_coords(basis: PCABasis, z: torch.Tensor) -> torch.Tensor:
    """Coordinates of z (D,) or (B, D) along the principal directions, in σ units: (k,) or (B, k)."""
    return ((z.float() - basis.mean) @ basis.components.T) / basis.sigma


def set_pca_coords(basis: PCABasis, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """z (D,) moved so its principal coordinates are ``coords`` (k,) σ units; the part of z outside the
    top-k directions is kept. ``pca_coords(set_pca_coords(b, z, c)) == c``."""
    coords = torch.as_tensor(coords, dtype=torch.float32)
    if coords.shape != (basis.k,):
        raise ValueError(f"expected {basis.k} principal coordinates, got {tuple(coords.shape)}")
    delta = (coords - pca_coords(basis, z)) * basis.sigma
    return z.float() + delta @ basis.components


def pca_point(basis: PCABasis, x: float, y: float) -> torch.Tensor:
    """The latent at (x, y) on the PCA map (first two coordinates, σ units), zero along the others."""
    coords = torch.zeros(basis.k)
    coords[0] = x
    if basis.k > 1:
        coords[1] = y
    return basis.mean + (coords * basis.sigma) @ basis.components


@dataclass(frozen=True)
class ClassDirections:
    """Unit directions from the mean of all latents towards the mean of each class.

    ``classes`` (C,) label ids with at least one example; ``names`` their display names; ``dirs`` (C, D);
    ``sigma`` (C,) the data's spread along each direction; ``lo``/``hi`` (C,) data range in σ units.
    """

    mean: torch.Tensor
    classes: tuple[int, ...]
    names: tuple[str, ...]
    dirs: torch.Tensor
    sigma: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor

    def index(self, label: int) -> int:
        try:
            return self.classes.index(int(label))
        except ValueError:
            raise ValueError(f"no class direction for label {label}; known: {list(self.classes)}") from None


def fit_class_directions(z: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                         names: list[str] | None = None) -> ClassDirections | None:
    """Directions "towards class c" = normalised (mean of class c − mean of all), from labelled latents.
    None when fewer than two classes are labelled."""
    z = torch.as_tensor(z, dtype=torch.float64)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    keep = labels >= 0
    z, labels = z[keep], labels[keep]
    classes = sorted(int(c) for c in torch.unique(labels).tolist())
    if len(classes) < 2:
        return None
    mean = z.mean(0)
    dirs, sig, lo, hi = [], [], [], []
    for c in classes:
        d = z[labels == c].mean(0) - mean
        d = d / d.norm().clamp_min(1e-12)
        proj = (z - mean) @ d
        s = proj.std().clamp_min(1e-8)
        dirs.append(d)
        sig.append(s)
        lo.append((proj / s).min())
        hi.append((proj / s).max())
    names = names or []
    shown = tuple(names[c] if c < len(names) else str(c) for c in classes)
    return ClassDirections(mean.float(), tuple(classes), shown, torch.stack(dirs).float(),
                           torch.stack(sig).float(), torch.stack(lo).float(), torch.stack(hi).float())


def class_coord(cd: ClassDirections, i: int, z: torch.Tensor) -> float:
    """Where z (D,) lies along class direction ``i`` (an index into ``cd.classes``), in σ units."""
    return float(((z.float() - cd.mean) @ cd.dirs[i]) / cd.sigma[i])


def set_class_coord(cd: ClassDirections, i: int, z: torch.Tensor, value: float) -> torch.Tensor:
    """z moved along class direction ``i`` until its coordinate there is ``value`` σ."""
    return z.float() + (value - class_coord(cd, i, z)) * cd.sigma[i] * cd.dirs[i]


def kl_per_dim(mu: np.ndarray | torch.Tensor, logvar: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Average KL(q(z_d|x) || N(0, 1)) per dimension over the data, (D,), in nats:
    KL_d = mean_x 0.5 (μ² + σ² − 1 − log σ²)  (Kingma & Welling 2014, appendix B)."""
    mu = torch.as_tensor(mu, dtype=torch.float64)
    logvar = torch.as_tensor(logvar, dtype=torch.float64)
    return (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).mean(0).float()


@dataclass(frozen=True)
class DimInfo:
    """Per-dimension slider facts: display ``order`` (most used first for a VAE), data ``lo``/``hi``,
    and for a VAE the KL of each dimension and which are collapsed."""

    order: tuple[int, ...]
    lo: torch.Tensor
    hi: torch.Tensor
    kl: torch.Tensor | None = None
    collapsed: tuple[bool, ...] | None = None


def dim_info(z: np.ndarray | torch.Tensor, logvar: np.ndarray | torch.Tensor | None = None,
             pad: float = 0.1) -> DimInfo:
    """Slider ranges per dimension from the data (min..max, widened by ``pad`` of the span on each side),
    ordered by KL (largest first) when the VAE log-variances are given."""
    z = torch.as_tensor(z, dtype=torch.float32)
    lo, hi = z.min(0).values, z.max(0).values
    span = (hi - lo).clamp_min(1e-3)
    lo, hi = lo - pad * span, hi + pad * span
    if logvar is None:
        return DimInfo(tuple(range(z.shape[1])), lo, hi)
    kl = kl_per_dim(z, logvar)
    order = tuple(int(i) for i in torch.argsort(kl, descending=True, stable=True).tolist())
    return DimInfo(order, lo, hi, kl, tuple(bool(v < COLLAPSED_KL) for v in kl.tolist()))
