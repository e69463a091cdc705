"""2-D maps of a run's latents: PCA (linear, invertible) and t-SNE (van der Maaten & Hinton 2008).

t-SNE is scikit-learn's Barnes-Hut t-SNE (750 iterations, 250 of them early exaggeration): on this
project's reference machine (2 CPU cores) it was the fastest of scikit-learn and openTSNE at 1k, 5k and
10k points (bench/maps.py measures both side by side), so openTSNE is only a benchmark reference. Maps are computed on the first ``n`` rows of latents.npz
(held-out encodings come first, and rows are in the trainer's shuffled order), so a smaller map is a
subset of a bigger one. Results are cached per run and settings in the process-wide store.

New points (the current latent, an uploaded image) are placed on an existing t-SNE map without refitting:
at the distance-weighted mean of the map positions of their nearest neighbours in latent space, which is
also how openTSNE initialises the points it adds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from explorer.directions import PCABasis, fit_ganspace, fit_pca, pca_coords
from explorer.store import Run

METHODS = ("PCA", "t-SNE")
TSNE_BACKEND = "scikit-learn"  # see the module docstring for why not openTSNE
MIN_POINTS = 10


@dataclass(frozen=True)
class MapData:
    """A computed map: ``xy`` (n, 2) positions of rows 0..n-1 of the run's latents."""

    method: str
    n: int
    xy: np.ndarray
    seconds: float  # how long the first computation took
    backend: str  # "pca", "openTSNE" or "scikit-learn"
    perplexity: float | None = None


def _threads() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def check_settings(method: str, n: int, n_available: int, perplexity: float) -> tuple[str, int, float]:
    if method not in METHODS:
        raise ValueError(f"map method must be one of {METHODS}, got {method!r}")
    if n is None or not float(n).is_integer():
        raise ValueError(f"the sample size must be a whole number, got {n}")
    n = int(n)
    if not MIN_POINTS <= n <= n_available:
        raise ValueError(f"the sample size must be between {MIN_POINTS} and {n_available} (the latents this run"
                         f" has), got {n}")
    perplexity = float(perplexity)
    if method == "t-SNE" and not 2 <= perplexity <= min(100, (n - 1) / 3):
        raise ValueError(f"perplexity must be between 2 and {min(100, (n - 1) // 3)} for {n} points, got {perplexity:g}")
    return method, n, perplexity


GANSPACE_SAMPLES = 2000


def pca_basis(run: Run, k: int = 10) -> PCABasis:
    """The run's principal directions (cached): the PCA sliders and the PCA map share them.

    AE/VAE: PCA of the stored encodings. GAN: its latents are isotropic prior draws, whose PCA is
    arbitrary, so the directions are GANSpace's: PCA of the decoded images, regressed back to latents.
    """
    if run.kind != "gan":
        return run.cached(("pca", k), lambda: fit_pca(run.z, k))

    def ganspace() -> PCABasis:
        from explorer.render import render

        z = torch.from_numpy(run.z[:GANSPACE_SAMPLES])
        pixels = render(run.model, z)  # (N, H, W, C) uint8
        return fit_ganspace(z, pixels.reshape(len(z), -1).astype(np.float32) / 255.0, k)

    return run.cached(("ganspace", k), ganspace)


def compute_map(run: Run, method: str, n: int, perplexity: float = 30.0,
                progress: Callable[[float, str], None] | None = None) -> MapData:
    """The map of the first ``n`` latents of ``run`` (cached per run and settings)."""
    method, n, perplexity = check_settings(method, n, len(run.z), perplexity)
    if method == "PCA":
        return run.cached(("map", "PCA", n), lambda: _pca_map(run, n))
    return run.cached(("map", "t-SNE", n, perplexity), lambda: _tsne_map(run, n, perplexity, progress))


def cached_map(run: Run, method: str, n: int, perplexity: float = 30.0) -> MapData | None:
    key = ("map", "PCA", int(n)) if method == "PCA" else ("map", "t-SNE", int(n), float(perplexity))
    return run.peek(key)


def _pca_map(run: Run, n: int) -> MapData:
    t0 = time.perf_counter()
    basis = pca_basis(run)
    coords = pca_coords(basis, torch.from_numpy(run.z[:n]))
    xy = np.zeros((n, 2), np.float32)
    xy[:, : min(2, basis.k)] = coords[:, :2].numpy()
    return MapData("PCA", n, xy, time.perf_counter() - t0, "pca")


def _tsne_map(run: Run, n: int, perplexity: float,
              progress: Callable[[float, str], None] | None) -> MapData:
    t0 = time.perf_counter()
    z = np.ascontiguousarray(run.z[:n], dtype=np.float64)
    xy = _sklearn_tsne(z, perplexity, progress)
    return MapData("t-SNE", n, xy.astype(np.float32), time.perf_counter() - t0, TSNE_BACKEND, perplexity)


TSNE_ITERATIONS = 750  # 250 early-exaggeration + 500, openTSNE's schedule; scikit-learn's default is 1000
_SECONDS_PER_POINT = [0.008]  # updated by each map: the progress bar's estimate of the next one


def _sklearn_tsne(z: np.ndarray, perplexity: float, progress: Callable[[float, str], None] | None) -> np.ndarray:
    """Barnes-Hut t-SNE in a worker thread; scikit-learn has no progress callback, so progress is the
    elapsed time against an estimate from the previous map's speed."""
    from sklearn.manifold import TSNE

    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0, n_jobs=_threads(),
                max_iter=TSNE_ITERATIONS)
    if progress is None:
        return tsne.fit_transform(z)
    result: dict = {}

    def work():
        try:
            result["xy"] = tsne.fit_transform(z)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = e

    t0 = time.perf_counter()
    expected = max(1.0, _SECONDS_PER_POINT[0] * len(z))
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    while worker.is_alive():
        elapsed = time.perf_counter() - t0
        progress(min(0.95, elapsed / expected), f"t-SNE of {len(z)} points: {elapsed:.0f} s (about {expected:.0f} s)")
        worker.join(0.5)
    if "error" in result:
        raise result["error"]
    _SECONDS_PER_POINT[0] = (time.perf_counter() - t0) / len(z)
    return result["xy"]


def place(run: Run, m: MapData, z: torch.Tensor, k: int = 10) -> tuple[float, float]:
    """Where latent z (D,) goes on map ``m``: exact for PCA; for t-SNE the mean of the positions of its
    k nearest map points, weighted by inverse squared latent distance. Milliseconds, no refit."""
    z = torch.as_tensor(z, dtype=torch.float32)
    if m.method == "PCA":
        c = pca_coords(pca_basis(run), z)
        return float(c[0]), float(c[1]) if c.numel() > 1 else 0.0
    ref = run.cached(("map-ref", m.n), lambda: torch.from_numpy(np.ascontiguousarray(run.z[: m.n], np.float32)))
    d2 = (ref - z).pow(2).sum(1)
    d2, idx = torch.topk(d2, min(k, len(d2)), largest=False)
    w = 1.0 / (d2 + 1e-9)  # inverse squared distance: a stored point lands on itself
    w = w / w.sum()
    xy = (torch.from_numpy(m.xy[idx.numpy()]) * w[:, None]).sum(0)
    return float(xy[0]), float(xy[1])


@torch.inference_mode()
def predicted_labels(run: Run, classifier: torch.nn.Module, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Labels a classifier predicts for the decoded images of all the run's latents, and their probability
    (cached per run): how a GAN's map is coloured."""

    def compute():
        from explorer.render import to_model_input, to_pixels

        device = next(classifier.parameters()).device
        labels, probs = [], []
        for chunk in torch.from_numpy(run.z).split(batch_size):
            pixels = to_pixels(run.model.decode(chunk.to(run.device)), run.value_range).transpose(0, 3, 1, 2)
            x = to_model_input(pixels, tuple(classifier.value_range), device)
            p = classifier.logits(x).softmax(1)
            conf, lab = p.max(1)
            labels.append(lab.cpu())
            probs.append(conf.cpu())
        return torch.cat(labels).numpy().astype(np.int64), torch.cat(probs).numpy()

    return run.cached(("predicted-labels", id(classifier)), compute)
