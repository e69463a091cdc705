"""The one save and the one load of a training run.

A checkpoint is a directory::

    run/
      config.json          format version, model kind + config, training config, dataset facts,
                           per-epoch history, metrics, package versions, creation time
      model.safetensors    weights only (never a pickle)
      latents.npz          encodings of a dataset sample (AE/VAE) or prior samples (GAN), with labels
      training_state.safetensors  optional: optimizer + RNG state for --resume (tensors in safetensors,
                           the rest as JSON in its metadata; no pickle anywhere)
      samples/             sample grids written during training (not part of the atomic swap)

``save_checkpoint`` writes a complete new directory aside and swaps it in with two renames, so a
crash at any moment leaves either the old or the new checkpoint, never half of one. ``load_checkpoint``
reads only ``config.json``, ``model.safetensors`` and ``latents.npz``; nothing it opens is unpickled.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from trainer.models import MODEL_FAMILIES, build_model

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
LATENTS_NAME = "latents.npz"
STATE_NAME = "training_state.safetensors"
SAMPLES_DIR = "samples"
# Files whose presence marks a directory as something we refuse to open (pickle payloads).
_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")
_MAX_CONFIG_BYTES = 4 * 1024 * 1024


class CheckpointError(ValueError):
    """A checkpoint directory is missing, corrupt, unsafe or incompatible. The message says which."""


@dataclass
class Checkpoint:
    """Everything a checkpoint holds, as loaded. ``model`` is in eval mode on ``device``."""

    path: Path
    model: torch.nn.Module
    meta: dict[str, Any]
    latents: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def name(self) -> str:
        return self.path.name


def _partial_dir(run_dir: Path) -> Path:
    return run_dir.parent / f".{run_dir.name}.partial"


def _old_dir(run_dir: Path) -> Path:
    return run_dir.parent / f".{run_dir.name}.old"


def recover(run_dir: str | Path) -> Path:
    """Finish an interrupted swap: if ``run_dir`` is missing but its previous version was set aside,
    put it back. Returns ``run_dir``. Safe to call at any time."""
    run_dir = Path(run_dir)
    old = _old_dir(run_dir)
    if not run_dir.exists() and (old / CONFIG_NAME).exists():
        os.rename(old, run_dir)
    elif run_dir.exists() and old.exists():
        shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(_partial_dir(run_dir), ignore_errors=True)
    return run_dir


def package_versions() -> dict[str, str]:
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
    }


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json(path: Path, obj: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(
    run_dir: str | Path,
    model: torch.nn.Module,
    meta: dict[str, Any],
    *,
    latents: dict[str, np.ndarray] | None = None,
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` + ``meta`` as the checkpoint ``run_dir``, atomically.

    ``meta`` holds everything for config.json except ``format_version``, ``kind``, ``model_config``,
    ``versions`` and ``created``, which are filled in here. Latents from the previous version are
    kept when ``latents`` is None. Raises CheckpointError (and writes nothing) if any weight is NaN/Inf.
    """
    run_dir = recover(run_dir)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"refusing to save {run_dir}: weights contain NaN/Inf in {', '.join(bad[:5])}"
            " (training diverged; lower --lr or resume from the last good checkpoint)"
        )
    config = {
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "model_config": model.config.to_dict(),
        **meta,
        "versions": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    partial = _partial_dir(run_dir)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file(state, str(partial / WEIGHTS_NAME), metadata={"format": "pt", "kind": model.kind})
    if latents is not None:
        np.savez_compressed(partial / LATENTS_NAME, **latents)
    elif (run_dir / LATENTS_NAME).exists():
        shutil.copy2(run_dir / LATENTS_NAME, partial / LATENTS_NAME)
    if training_state is not None:
        tensors: dict[str, torch.Tensor] = {}
        tree = _encode_tree(training_state, tensors)
        save_file(tensors, str(partial / STATE_NAME), metadata={"tree": json.dumps(tree)})
    if (run_dir / SAMPLES_DIR).is_dir():
        shutil.copytree(run_dir / SAMPLES_DIR, partial / SAMPLES_DIR, copy_function=os.link)
    _write_json(partial / CONFIG_NAME, config)
    _fsync_dir(partial)
    # The swap: after the first rename the old version waits in .old until the new one is in place;
    # recover() puts it back if we die between the two renames.
    old = _old_dir(run_dir)
    if run_dir.exists():
        os.rename(run_dir, old)
    os.rename(partial, run_dir)
    _fsync_dir(run_dir.parent)
    shutil.rmtree(old, ignore_errors=True)
    return run_dir


def _read_config(run_dir: Path) -> dict[str, Any]:
    cfg_path = run_dir / CONFIG_NAME
    if not cfg_path.is_file():
        raise CheckpointError(f"{run_dir} is not a checkpoint: it has no {CONFIG_NAME}")
    if cfg_path.stat().st_size > _MAX_CONFIG_BYTES:
        raise CheckpointError(f"{cfg_path} is larger than {_MAX_CONFIG_BYTES // 2**20} MB; not a checkpoint config")
    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cfg_path} is not valid JSON ({e}); the checkpoint is corrupt") from e
    if not isinstance(meta, dict):
        raise CheckpointError(f"{cfg_path} must hold a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{run_dir}: unsupported checkpoint format_version {version!r} (this version reads {FORMAT_VERSION});"
            " retrain it or upgrade latent-explorer"
        )
    kind = meta.get("kind")
    if kind not in MODEL_FAMILIES:
        raise CheckpointError(f"{run_dir}: unknown model kind {kind!r}; expected one of {sorted(MODEL_FAMILIES)}")
    if not isinstance(meta.get("model_config"), dict):
        raise CheckpointError(f"{run_dir}: config.json has no model_config object")
    return meta


def read_meta(run_dir: str | Path) -> dict[str, Any]:
    """config.json of a checkpoint, validated (format version, kind). Cheap: no weights are read."""
    return _read_config(Path(run_dir))


def _check_no_pickles(run_dir: Path) -> None:
    for p in run_dir.iterdir():
        if p.suffix.lower() in _PICKLE_SUFFIXES:
            raise CheckpointError(
                f"{run_dir} contains {p.name}, a pickle-format file that could run code when opened;"
                " checkpoints hold only config.json, safetensors and npz files. Remove the file to load this run."
            )


def load_checkpoint(
    run_dir: str | Path,
    device: str | torch.device = "cpu",
    *,
    with_latents: bool = True,
) -> Checkpoint:
    """Rebuild the model of ``run_dir`` from its config.json and safetensors weights.

    Needs only the path. Raises CheckpointError with a message that says what is wrong for a missing,
    corrupt, unsafe (a directory holding pickle files is refused unopened) or incompatible checkpoint.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists() and (_old_dir(run_dir) / CONFIG_NAME).exists():
        run_dir = _old_dir(run_dir)  # a save was interrupted mid-swap; the previous version is intact
    if not run_dir.is_dir():
        raise CheckpointError(f"no checkpoint directory at {run_dir}")
    _check_no_pickles(run_dir)
    meta = _read_config(run_dir)
    try:
        model = build_model(meta["kind"], meta["model_config"])
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{run_dir}: model_config cannot build a {meta['kind']}: {e}") from e
    weights = run_dir / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{run_dir} has no {WEIGHTS_NAME}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights} is not a valid safetensors file ({e}); the checkpoint is corrupt") from e
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for k, v in state.items():
        ref = expected[k]
        if v.shape != ref.shape:
            raise CheckpointError(
                f"{weights}: tensor {k} has shape {tuple(v.shape)} but the config needs {tuple(ref.shape)}"
            )
        if v.dtype != ref.dtype:
            raise CheckpointError(f"{weights}: tensor {k} has dtype {v.dtype}, expected {ref.dtype}")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{weights}: tensor {k} contains NaN/Inf; the checkpoint is unusable")
    model.load_state_dict(state)
    model.to(device).eval()
    latents: dict[str, np.ndarray] = {}
    if with_latents and (run_dir / LATENTS_NAME).is_file():
        latents = load_latents(run_dir, model.latent_dim)
    return Checkpoint(path=run_dir, model=model, meta=meta, latents=latents)


def load_latents(run_dir: str | Path, latent_dim: int) -> dict[str, np.ndarray]:
    """latents.npz as plain arrays (``allow_pickle=False``), with its shapes checked."""
    path = Path(run_dir) / LATENTS_NAME
    try:
        with np.load(path, allow_pickle=False) as f:
            out = {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError) as e:
        raise CheckpointError(f"{path} is not a valid latents file ({e})") from e
    z = out.get("z")
    if z is None or z.ndim != 2 or z.shape[1] != latent_dim:
        shape = None if z is None else z.shape
        raise CheckpointError(f"{path}: 'z' must have shape (N, {latent_dim}), got {shape}")
    if not np.isfinite(z).all():
        raise CheckpointError(f"{path}: 'z' contains NaN/Inf")
    for k, v in out.items():
        if k not in ("images",) and v.shape[:1] != z.shape[:1]:
            raise CheckpointError(f"{path}: '{k}' has {v.shape[0]} rows but 'z' has {z.shape[0]}")
    return out


def load_training_state(run_dir: str | Path) -> dict[str, Any] | None:
    """The resume state (optimizer, RNG, epoch) of ``run_dir``, or None. Read from safetensors + JSON."""
    path = Path(run_dir) / STATE_NAME
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            tree = json.loads((f.metadata() or {})["tree"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path} is not a valid training state ({e}); resume from scratch or another run") from e
    return _decode_tree(tree, tensors)


def _encode_tree(obj: Any, tensors: dict[str, torch.Tensor], path: str = "s") -> Any:
    """Nested dicts/lists/tuples of tensors and JSON scalars -> JSON tree, tensors moved to ``tensors``.
    Dict keys keep their type (optimizer state is keyed by int)."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().to("cpu").contiguous()
        return {"__tensor__": path}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _encode_tree(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_encode_tree(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a training state")


def _decode_tree(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode_tree(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode_tree(v, tensors) for v in obj["__tuple__"])
        return {k: _decode_tree(v, tensors) for k, v in obj["__dict__"]}
    return obj


def update_meta(run_dir: str | Path, **fields: Any) -> None:
    """Merge ``fields`` into config.json (e.g. evaluation metrics), atomically (write aside, rename)."""
    run_dir = Path(run_dir)
    meta = _read_config(run_dir)
    meta.update(fields)
    tmp = run_dir / (CONFIG_NAME + ".tmp")
    _write_json(tmp, meta)
    os.replace(tmp, run_dir / CONFIG_NAME)


def finite_or_none(x: float) -> float | None:
    """JSON has no NaN: store non-finite numbers as null."""
    return x if math.isfinite(x) else None
