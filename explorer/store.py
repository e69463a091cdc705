"""Runs in a checkpoints directory, and the one process-wide cache of everything loaded from them.

``list_runs`` only reads each run's config.json (cheap, safe to call per page view). ``Store.get``
loads a run once per process (model on the chosen device, latents as arrays) and keeps it; anything
derived from a run (PCA basis, KL ranking, map embeddings, classifier predictions) is computed once
through ``Run.cached`` and shared by every user. Per-user state in the UI holds only names and small
vectors, never anything from here.

A run is reloaded when its config.json changes on disk (a retrain or ``trainer evaluate``), so a
long-running app never serves a stale model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from trainer.checkpoint import (
    CONFIG_NAME,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    read_meta,
    resolve_run,
)
from trainer.device import pick_device  # noqa: F401 - re-exported: app.py and the UI pick devices here
from trainer.models import GENERATIVE_KINDS

T = TypeVar("T")


@dataclass(frozen=True)
class RunInfo:
    """What the model picker shows about a run, from its config.json alone."""

    name: str
    path: Path
    kind: str
    dataset: str
    latent_dim: int | None
    image_shape: tuple[int, ...]
    label_names: tuple[str, ...]
    epochs: int
    metrics: dict[str, Any]
    error: str | None = None  # why the run cannot be opened, if it cannot

    @property
    def explorable(self) -> bool:
        """A generative model (AE, VAE, GAN) whose config reads cleanly. Classifiers are tools, not models to explore."""
        return self.error is None and self.kind in GENERATIVE_KINDS


def _info_from_meta(name: str, path: Path, meta: dict[str, Any]) -> RunInfo:
    ds = meta.get("dataset") if isinstance(meta.get("dataset"), dict) else {}
    mc = meta["model_config"]
    history = meta.get("history") if isinstance(meta.get("history"), list) else []
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    shape = ds.get("image_shape") or [mc.get("channels", 1), mc.get("image_size", 0), mc.get("image_size", 0)]
    return RunInfo(
        name=name,
        path=path,
        kind=str(meta["kind"]),
        dataset=str(ds.get("name", "?")),
        latent_dim=mc.get("latent_dim") if meta["kind"] in GENERATIVE_KINDS else None,
        image_shape=tuple(int(s) for s in shape),
        label_names=tuple(str(s) for s in (ds.get("label_names") or [])),
        epochs=len(history),
        metrics=metrics,
    )


def list_runs(checkpoints_dir: str | Path) -> list[RunInfo]:
    """Every run directly inside ``checkpoints_dir``, sorted by name. Runs whose config.json is broken are
    listed with ``error`` set (the picker says why) instead of being hidden or crashing the listing."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return []
    out: list[RunInfo] = []
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not path.is_dir():
            continue
        if not (path / CONFIG_NAME).exists():
            continue  # not a run (e.g. an unrelated folder); nothing to say about it
        try:
            resolve_run(root, path.name)  # a symlink out of the directory is refused before its config is read
            meta = read_meta(path)
            out.append(_info_from_meta(path.name, path, meta))
        except (CheckpointError, KeyError, TypeError, ValueError) as e:
            out.append(RunInfo(path.name, path, "?", "?", None, (), (), 0, {}, error=str(e)))
    return out


@dataclass
class Run:
    """A loaded run: the model on its device, its latents, and a cache of what is derived from them."""

    info: RunInfo
    checkpoint: Checkpoint
    device: torch.device
    stamp: int  # config.json mtime when loaded
    _derived: dict[Any, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _key_locks: dict[Any, threading.Lock] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def model(self) -> torch.nn.Module:
        return self.checkpoint.model

    @property
    def latent_dim(self) -> int:
        return int(self.model.latent_dim)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.info.image_shape
        return c, h, w

    @property
    def value_range(self) -> tuple[float, float]:
        lo, hi = self.model.value_range
        return float(lo), float(hi)

    @property
    def has_encoder(self) -> bool:
        return callable(getattr(self.model, "encode", None))

    @property
    def z(self) -> np.ndarray:
        """(N, latent_dim) float32: encodings of a dataset sample (AE/VAE) or prior draws (GAN)."""
        z = self.checkpoint.latents.get("z")
        if z is None:
            return np.zeros((0, self.latent_dim), np.float32)
        return z

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 dataset labels of ``z``, -1 where unknown (every GAN draw)."""
        labels = self.checkpoint.latents.get("labels")
        return labels if labels is not None else np.full(len(self.z), -1, np.int64)

    @property
    def images(self) -> np.ndarray | None:
        """(M, C, H, W) uint8 pixels of the first M rows of ``z`` (AE/VAE only), or None."""
        return self.checkpoint.latents.get("images")

    @property
    def label_names(self) -> list[str]:
        return list(self.info.label_names)

    def cached(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()`` once per key for this run, shared by all users and threads. Two users asking for
        the same slow thing (a t-SNE map) wait for one computation instead of running two."""
        if key in self._derived:
            return self._derived[key]
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            if key not in self._derived:
                self._derived[key] = compute()
            return self._derived[key]

    def peek(self, key: Any) -> Any | None:
        """A cached value if it has been computed, else None (never computes)."""
        return self._derived.get(key)


class Store:
    """The process-wide cache of loaded runs of one checkpoints directory on one device."""

    def __init__(self, checkpoints_dir: str | Path, device: str | torch.device = "auto"):
        self.root = Path(checkpoints_dir)
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}
        self._classifiers: dict[Any, torch.nn.Module | None] = {}

    def list(self) -> list[RunInfo]:
        return list_runs(self.root)

    def explorable(self) -> list[RunInfo]:
        return [r for r in self.list() if r.explorable]

    def get(self, name: str) -> Run:
        """The loaded run ``name`` (loading it on first use). Raises CheckpointError with a clear message for
        an unknown, broken or non-generative run."""
        if not name:
            raise CheckpointError("no model is selected; pick one in the Models tab")
        path = resolve_run(self.root, name)
        cfg = path / CONFIG_NAME
        stamp = cfg.stat().st_mtime_ns if cfg.exists() else 0
        run = self._runs.get(name)
        if run is not None and run.stamp == stamp:
            return run
        with self._lock:
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        with load_lock:
            run = self._runs.get(name)
            if run is not None and run.stamp == stamp:
                return run
            meta = read_meta(path)
            if meta["kind"] not in GENERATIVE_KINDS:
                raise CheckpointError(
                    f"{name} is a {meta['kind']}, not a generative model; pick an AE, VAE or GAN run"
                )
            ckpt = load_checkpoint(path, self.device)
            info = _info_from_meta(name, path, ckpt.meta)
            if ckpt.latents.get("z") is None:
                raise CheckpointError(
                    f"{name} has no latents.npz, which the explorer needs for its sliders and maps;"
                    " re-save the run with the current trainer"
                )
            run = Run(info=info, checkpoint=ckpt, device=self.device, stamp=stamp)
            self._runs[name] = run
            return run

    def loaded(self) -> list[str]:
        return sorted(self._runs)

    def classifier_for(self, run: Run) -> torch.nn.Module | None:
        """A trained classifier (the evaluator network) in the same checkpoints dir whose dataset and image
        shape match ``run``'s, on the store's device; None if there is none. Used to label GAN samples."""
        key = ("classifier", run.info.dataset, run.image_shape)
        with self._lock:
            if key in self._classifiers:
                return self._classifiers[key]
        model = None
        for info in self.list():
            if info.error is None and info.kind == "classifier" and info.dataset == run.info.dataset \
                    and tuple(info.image_shape) == tuple(run.image_shape):
                try:
                    model = load_checkpoint(info.path, self.device, with_latents=False).model
                    break
                except CheckpointError:
                    continue
        with self._lock:
            self._classifiers[key] = model
        return model


_STORES: dict[tuple[str, str], Store] = {}
_STORES_LOCK = threading.Lock()


def get_store(checkpoints_dir: str | Path, device: str = "auto") -> Store:
    """The one Store per (checkpoints dir, device) in this process."""
    key = (str(Path(checkpoints_dir).resolve()), str(device))
    with _STORES_LOCK:
        if key not in _STORES:
            _STORES[key] = Store(checkpoints_dir, device)
        return _STORES[key]
