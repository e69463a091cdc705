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
A directory holding anything pickle-like is refused unopened, the model is first built on the ``meta``
device (no memory) and its shapes and dtypes compared with the safetensors header before a byte of
weights is read, so a config that lies cannot allocate a giant model. ``resolve_run`` turns a run name
from a user into a path that cannot leave the checkpoints directory.
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
_MAX_FILES = 10_000  # a checkpoint holds a handful of files plus sample grids


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
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
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
    """config.json of a checkpoint, validated (format version, kind). Cheap: no weights are read.
    Like ``load_checkpoint``, reads the set-aside previous version if a save died mid-swap."""
    return _read_config(_live_or_old(Path(run_dir)))


def _live_or_old(run_dir: Path) -> Path:
    if not run_dir.exists() and (_old_dir(run_dir) / CONFIG_NAME).exists():
        return _old_dir(run_dir)  # a save was interrupted mid-swap; the previous version is intact
    return run_dir


def _looks_pickled(path: Path) -> bool:
    """Pickle protocol 2+ starts with 0x80 <protocol>; torch.save's zip format holds a data.pkl."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if head.startswith(b"PK\x03\x04") and path.suffix.lower() != ".npz":
        return True  # a zip that is not numpy's: the shape of a torch.save file
    return False


def _check_no_pickles(run_dir: Path) -> None:
    """Refuse ``run_dir`` if anything in it (at any depth) is, or claims to be, a pickle, or if a file in
    it is a symlink that leads outside it. Only names and the first bytes are read; nothing is unpickled."""
    root = run_dir.resolve()
    seen = 0
    for dirpath, dirnames, filenames in os.walk(run_dir):  # does not follow directory symlinks
        seen += len(filenames) + len(dirnames)
        if seen > _MAX_FILES:
            raise CheckpointError(f"{run_dir} holds more than {_MAX_FILES} files; that is not a checkpoint")
        for name in [*filenames, *dirnames]:
            p = Path(dirpath) / name
            if p.is_symlink():
                try:
                    target = p.resolve(strict=False)
                except (OSError, RuntimeError):  # RuntimeError: a symlink loop
                    target = None
                if target is None or (target != root and root not in target.parents):
                    raise CheckpointError(
                        f"{run_dir} contains {p.relative_to(run_dir)}, a symlink that leads outside the"
                        " checkpoint; copy the file in instead of linking it"
                    )
            if name in dirnames:
                continue
            lower = name.lower()
            if p.suffix.lower() in _PICKLE_SUFFIXES or lower.endswith(".safetensors.pt") or (
                not p.is_symlink() and _looks_pickled(p)
            ):
                raise CheckpointError(
                    f"{run_dir} contains {p.relative_to(run_dir)}, a pickle-format file that could run code"
                    " when opened; checkpoints hold only config.json, safetensors and npz files."
                    " Remove the file to load this run."
                )


def resolve_run(checkpoints_dir: str | Path, name: str, *, must_exist: bool = True) -> Path:
    """The directory of run ``name`` inside ``checkpoints_dir``; ``name`` comes from a user or URL.

    Refuses (CheckpointError) anything that could leave ``checkpoints_dir``: empty names, path separators,
    ``.``/``..``, absolute paths, hidden names (``.NAME.old`` and ``.NAME.partial`` are the save's
    scratch space), NUL bytes, and runs that are symlinks resolving outside ``checkpoints_dir``.
    With ``must_exist`` the run (or its set-aside previous version) must be there.
    """
    if not isinstance(name, str):
        raise CheckpointError(f"a run name must be a string, got {type(name).__name__}")
    shown = name if len(name) <= 80 else name[:77] + "..."
    if (not name or name != name.strip() or name in (".", "..") or name.startswith(".")
            or any(c in name for c in ("/", "\\", "\x00")) or os.path.isabs(name)
            or any(ord(c) < 32 for c in name)):
        raise CheckpointError(
            f"{shown!r} is not a run name: use the name of a directory directly inside the checkpoints"
            " directory (no '/', '..' or leading '.')"
        )
    root = Path(checkpoints_dir).resolve()
    run = root / name
    target = run.resolve(strict=False) if run.exists() or run.is_symlink() else run
    if root not in target.parents:
        raise CheckpointError(f"run {shown!r} is a link that leads outside {root}; refusing to open it")
    if must_exist and not run.is_dir() and not (_old_dir(run) / CONFIG_NAME).is_file():
        raise CheckpointError(f"no run named {shown!r} in {root}")
    return run


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
    run_dir = _live_or_old(Path(run_dir))
    if not run_dir.is_dir():
        raise CheckpointError(f"no checkpoint directory at {run_dir}")
    _check_no_pickles(run_dir)
    meta = _read_config(run_dir)
    # Build on the meta device first: shapes without memory, so a config that lies about sizes
    # (width 10**6) costs nothing before it is compared with the weights.
    try:
        with torch.device("meta"):
            expected = {k: (tuple(v.shape), v.dtype)
                        for k, v in build_model(meta["kind"], meta["model_config"]).state_dict().items()}
    except Exception as e:  # noqa: BLE001 - any field value can reach any constructor; all mean "bad config"
        raise CheckpointError(f"{run_dir}: model_config cannot build a {meta['kind']}: {e}") from e
    weights = run_dir / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{run_dir} has no {WEIGHTS_NAME}")
    _check_header(weights, expected)  # names, shapes and dtypes from the header; no tensor data read yet
    try:
        model = build_model(meta["kind"], meta["model_config"])
    except Exception as e:  # noqa: BLE001 - as above
        raise CheckpointError(f"{run_dir}: model_config cannot build a {meta['kind']}: {e}") from e
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{weights} is not a valid safetensors file ({e}); the checkpoint is corrupt") from e
    for k, v in state.items():
        shape, dtype = expected[k]
        if tuple(v.shape) != shape or v.dtype != dtype:  # the header said otherwise: the file changed
            raise CheckpointError(f"{weights}: tensor {k} is {v.dtype} {tuple(v.shape)}, expected {dtype} {shape}")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{weights}: tensor {k} contains NaN/Inf; the checkpoint is unusable")
    model.load_state_dict(state)
    model.to(device).eval()
    latents: dict[str, np.ndarray] = {}
    if with_latents and (run_dir / LATENTS_NAME).is_file():
        latents = load_latents(run_dir, model.latent_dim)
    return Checkpoint(path=run_dir, model=model, meta=meta, latents=latents)


_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _check_header(weights: Path, expected: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> None:
    """Compare the safetensors header (names, shapes, dtypes) with what the config builds."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            header = {}
            for k in f.keys():
                sl = f.get_slice(k)
                header[k] = (tuple(sl.get_shape()), str(sl.get_dtype()))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{weights} is not a valid safetensors file ({e}); the checkpoint is corrupt") from e
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for k, (shape, dtype_name) in header.items():
        ref_shape, ref_dtype = expected[k]
        if shape != ref_shape:
            raise CheckpointError(
                f"{weights}: tensor {k} has shape {shape} but the config needs {ref_shape}"
            )
        if _ST_DTYPES.get(dtype_name) != ref_dtype:
            raise CheckpointError(f"{weights}: tensor {k} has dtype {dtype_name}, expected {ref_dtype}")


def load_latents(run_dir: str | Path, latent_dim: int) -> dict[str, np.ndarray]:
    """latents.npz as plain arrays (``allow_pickle=False``), with its shapes checked."""
    path = Path(run_dir) / LATENTS_NAME
    try:
        with np.load(path, allow_pickle=False) as f:
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            out = {k: f[k] for k in f.files}
    except Exception as e:  # noqa: BLE001 - zipfile, zlib and numpy's parsers raise many types on damage
        raise CheckpointError(f"{path} is not a valid latents file ({type(e).__name__}: {e})") from e
    for k, v in out.items():
        if not isinstance(v, np.ndarray) or v.dtype.kind not in "biuf" or v.ndim == 0:
            raise CheckpointError(f"{path}: '{k}' is not a numeric array; the latents file is corrupt")
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
            tree = json.loads((f.metadata() or {})["tree"])  # JSON only: nothing here can run code
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError, RecursionError) as e:
        raise CheckpointError(f"{path} is not a valid training state ({e}); resume from scratch or another run") from e
    try:
        return _decode_tree(tree, tensors)
    except (KeyError, TypeError, ValueError, IndexError, RecursionError) as e:
        raise CheckpointError(f"{path} has a malformed state tree ({e!r}); resume from scratch or another run") from e


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
