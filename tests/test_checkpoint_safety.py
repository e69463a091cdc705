"""Checkpoints from strangers: every broken, lying or unsafe directory gives a CheckpointError that says
what is wrong, and nothing in it is ever executed.

Each test copies a real checkpoint written by the trainer (``tiny_runs``) and damages the copy.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from trainer.checkpoint import (
    CONFIG_NAME,
    LATENTS_NAME,
    STATE_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    load_checkpoint,
    load_training_state,
    read_meta,
    resolve_run,
)


class _Payload:
    """Unpickling this creates ``path``: proof that something ran."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def run(tiny_runs, tmp_path) -> Path:
    """A private copy of the tiny VAE checkpoint (with its resume state), safe to damage."""
    dst = tmp_path / "checkpoints" / "victim"
    shutil.copytree(tiny_runs["vae"], dst)
    return dst


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a pickle payload was executed"


def _refused(run_dir: Path, *words: str) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(run_dir)
    msg = str(info.value)
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in {msg!r}"
    return msg


def _rewrite_weights(run_dir: Path, change) -> None:
    state = load_file(str(run_dir / WEIGHTS_NAME))
    change(state)
    save_file(state, str(run_dir / WEIGHTS_NAME))


def _edit_config(run_dir: Path, change) -> None:
    cfg = json.loads((run_dir / CONFIG_NAME).read_text())
    change(cfg)
    (run_dir / CONFIG_NAME).write_text(json.dumps(cfg))


@pytest.mark.parametrize("kind", ["ae", "vae", "gan"])
def test_real_checkpoints_load(tiny_runs, kind):
    ck = load_checkpoint(tiny_runs[kind])
    assert ck.kind == kind and ck.latents["z"].shape[1] == ck.model.latent_dim


# ---- pickles: refused, never run ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["model.pt", "evil.pkl", "weights.bin", "x.ckpt", "a.pth", "p.pickle",
                                  "no_suffix", "samples/hidden.pth", "samples/deep/plain.dat",
                                  WEIGHTS_NAME])
def test_pickle_payload_is_refused_without_running(run, marker, name):
    target = run / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(pickle.dumps(_Payload(marker), protocol=4))
    _refused(run, "pickle")
    # The payload is real: unpickling it is exactly what must never happen.
    pickle.loads(target.read_bytes()).close()
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("name", ["model.ckpt", "archive", "latents.dat"])
def test_torch_save_zip_is_refused_without_running(run, marker, name):
    torch.save({"model": _Payload(marker)}, run / name)
    _refused(run, "pickle")


def test_torch_zip_disguised_as_latents(run, marker):
    torch.save({"z": _Payload(marker)}, run / LATENTS_NAME)  # a zip, like an .npz, holding data.pkl
    _refused(run, LATENTS_NAME)


def test_object_array_in_latents(run, marker):
    np.savez(run / LATENTS_NAME, z=np.array([_Payload(marker)], dtype=object))
    _refused(run, LATENTS_NAME)


def test_pickle_as_training_state(run, marker):
    (run / STATE_NAME).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match="pickle|training state"):
        load_checkpoint(run)
    with pytest.raises(CheckpointError, match="training state"):
        load_training_state(run)


# ---- broken or lying weights ----------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [0, 5, 8, 100, 0.5, 0.999])
def test_truncated_safetensors(run, keep):
    data = (run / WEIGHTS_NAME).read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    (run / WEIGHTS_NAME).write_bytes(data[:n])
    _refused(run, "safetensors")


def test_safetensors_header_claims_huge_length(run):
    (run / WEIGHTS_NAME).write_bytes(struct.pack("<Q", 2**62) + b"{}")
    _refused(run, "safetensors")


def test_safetensors_header_not_json(run):
    (run / WEIGHTS_NAME).write_bytes(struct.pack("<Q", 8) + b"not json" + b"\x00" * 64)
    _refused(run, "safetensors")


def test_misshaped_tensor(run):
    def change(state):
        k = next(k for k, v in state.items() if v.ndim == 2)
        state[k] = state[k].t().contiguous()

    _rewrite_weights(run, change)
    _refused(run, "shape")


def test_missing_and_extra_tensors(run):
    _rewrite_weights(run, lambda s: s.pop(next(iter(s))))
    _refused(run, "missing")
    _rewrite_weights(run, lambda s: s.update(extra=torch.zeros(3)))
    _refused(run, "unexpected")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.int32, torch.bfloat16])
def test_wrong_dtype(run, dtype):
    def change(state):
        k = next(k for k, v in state.items() if v.is_floating_point())
        state[k] = state[k].to(dtype)

    _rewrite_weights(run, change)
    _refused(run, "dtype")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights(run, bad):
    def change(state):
        k = next(k for k, v in state.items() if v.is_floating_point())
        state[k] = state[k].clone()
        state[k].view(-1)[0] = bad

    _rewrite_weights(run, change)
    _refused(run, "NaN/Inf")


# ---- broken or lying config.json --------------------------------------------------------------------------

@pytest.mark.parametrize("version", [0, 2, 99, "1", None, 1.5, [1]])
def test_unknown_format_version(run, version):
    _edit_config(run, lambda c: c.update(format_version=version))
    _refused(run, "format_version")


def test_missing_format_version(run):
    _edit_config(run, lambda c: c.pop("format_version"))
    _refused(run, "format_version")


@pytest.mark.parametrize("field, value, words", [
    ("latent_dim", 12, ["shape"]),                 # a different but valid model
    ("width", 10**6, ["shape"]),                   # would need terabytes if it were built for real
    ("arch", "mlp", ["missing"]),
    ("image_size", 7 * 2**12, ["does not match"]),
    ("latent_dim", -3, ["model_config"]),
    ("latent_dim", "16", ["model_config"]),
    ("latent_dim", 10**30, ["model_config"]),
    ("image_size", 27, ["model_config"]),
    ("channels", 2, ["model_config"]),
    ("arch", "transformer", ["model_config"]),
    ("__class__", "os.system", ["model_config"]),  # unknown field names are refused, not set
])
def test_config_lies_about_the_model(run, field, value, words):
    _edit_config(run, lambda c: c["model_config"].update({field: value}))
    _refused(run, *words)


@pytest.mark.parametrize("kind", ["evil", None, 3, "Vae"])
def test_unknown_kind(run, kind):
    _edit_config(run, lambda c: c.update(kind=kind))
    _refused(run, "kind")


def test_model_config_not_an_object(run):
    _edit_config(run, lambda c: c.update(model_config=[1, 2]))
    _refused(run, "model_config")


@pytest.mark.parametrize("text, words", [
    (b"", "JSON"),
    (b"{\"format_version\": 1,", "JSON"),
    (b"\xff\xfe\x00garbage", "JSON"),
    (b"[1, 2, 3]", "object"),
    (b"null", "object"),
    (b"[" * 100_000 + b"]" * 100_000, "JSON"),     # nesting deeper than the parser's recursion limit
    (b'{"a": "' + b"x" * (5 * 2**20) + b'"}', "larger"),
])
def test_garbage_config_json(run, text, words):
    (run / CONFIG_NAME).write_bytes(text)
    _refused(run, words)
    with pytest.raises(CheckpointError):
        read_meta(run)


def test_missing_files(run):
    (run / WEIGHTS_NAME).unlink()
    _refused(run, WEIGHTS_NAME)
    (run / CONFIG_NAME).unlink()
    _refused(run, CONFIG_NAME)
    _refused(run.parent / "nothing-here", "no checkpoint")


def test_config_json_is_a_directory(run):
    (run / CONFIG_NAME).unlink()
    (run / CONFIG_NAME).mkdir()
    _refused(run, CONFIG_NAME)


# ---- latents and resume state -----------------------------------------------------------------------------

@pytest.mark.parametrize("latents, words", [
    ({"z": np.zeros((5, 3), np.float32)}, "shape"),
    ({"z": np.full((5, 8), np.nan, np.float32)}, "NaN"),
    ({"z": np.zeros((5, 8), np.float32), "labels": np.zeros(4)}, "rows"),
    ({"labels": np.zeros(4)}, "'z'"),
    ({"z": np.array(["a"] * 8)}, "numeric"),
])
def test_bad_latents(run, latents, words):
    (run / LATENTS_NAME).unlink()
    np.savez(run / LATENTS_NAME, **latents)
    _refused(run, words)
    assert load_checkpoint(run, with_latents=False).latents == {}


def test_latents_not_a_zip(run):
    (run / LATENTS_NAME).write_bytes(b"\x93NUMPY garbage")
    _refused(run, LATENTS_NAME)


def test_training_state_round_trip_and_damage(run):
    state = load_training_state(run)
    assert state is not None and state["epoch"] == 1
    data = (run / STATE_NAME).read_bytes()
    (run / STATE_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="training state"):
        load_training_state(run)
    save_file({"s.x": torch.zeros(2)}, str(run / STATE_NAME), metadata={"tree": '{"__tensor__": "nope"}'})
    with pytest.raises(CheckpointError, match="training state|state tree"):
        load_training_state(run)
    save_file({"s.x": torch.zeros(2)}, str(run / STATE_NAME), metadata={"tree": '{"__dict__": 5}'})
    with pytest.raises(CheckpointError, match="state tree"):
        load_training_state(run)
    save_file({"s.x": torch.zeros(2)}, str(run / STATE_NAME))  # no tree at all
    with pytest.raises(CheckpointError, match="training state"):
        load_training_state(run)


# ---- names that try to leave the checkpoints directory --------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".", "../victim", "victim/..", "/etc", "/etc/passwd", "a/b", "",
                                  " victim", "victim\x00", ".victim.old", ".victim.partial", "..\\victim",
                                  "victim\n", "~", "~root"])
def test_resolve_run_refuses_escapes(run, name):
    with pytest.raises(CheckpointError):
        resolve_run(run.parent, name)


def test_resolve_run_accepts_real_runs_and_follows_only_inner_links(run, tmp_path):
    root = run.parent
    assert resolve_run(root, "victim") == root.resolve() / "victim"
    assert load_checkpoint(resolve_run(root, "victim")).kind == "vae"
    (root / "alias").symlink_to(root / "victim", target_is_directory=True)  # inside: fine
    assert load_checkpoint(resolve_run(root, "alias")).kind == "vae"
    outside = tmp_path / "outside"
    shutil.copytree(run, outside)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(CheckpointError, match="outside"):
        resolve_run(root, "escape")
    (root / "relative-escape").symlink_to(Path("..") / "outside", target_is_directory=True)
    with pytest.raises(CheckpointError, match="outside"):
        resolve_run(root, "relative-escape")
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(CheckpointError):
        resolve_run(root, "dangling")
    with pytest.raises(CheckpointError, match="no run named"):
        resolve_run(root, "missing")
    with pytest.raises(CheckpointError):
        resolve_run(root, 3)  # type: ignore[arg-type]
    # A run whose save was interrupted mid-swap still resolves (load_checkpoint finds the .old copy).
    os.rename(run, root / ".victim.old")
    assert load_checkpoint(resolve_run(root, "victim")).kind == "vae"


def test_symlinked_file_leading_outside_is_refused(run, tmp_path):
    secret = tmp_path / "secret.safetensors"
    shutil.copy(run / WEIGHTS_NAME, secret)
    (run / WEIGHTS_NAME).unlink()
    (run / WEIGHTS_NAME).symlink_to(secret)
    _refused(run, "symlink")
    (run / WEIGHTS_NAME).unlink()
    (run / WEIGHTS_NAME).symlink_to(run / "loop")
    (run / "loop").symlink_to(run / WEIGHTS_NAME)
    with pytest.raises(CheckpointError):
        load_checkpoint(run)


# ---- random damage ----------------------------------------------------------------------------------------

def test_random_damage_gives_a_checkpoint_or_a_checkpoint_error(run):
    """Byte flips and truncations of every file, 300 times: each load either succeeds (the damage hit
    weights and left them finite) or raises CheckpointError. Nothing else escapes."""
    import random

    pristine = {name: (run / name).read_bytes() for name in (CONFIG_NAME, WEIGHTS_NAME, LATENTS_NAME, STATE_NAME)}
    rng = random.Random(6)
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(300):
        for name, data in pristine.items():
            (run / name).write_bytes(data)
        name = rng.choice(list(pristine))
        data = bytearray(pristine[name])
        # Most damage lands in the first bytes: headers, where parsers are most exposed.
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(min(len(data), 512) if rng.random() < 0.7 else len(data))
            data[pos] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[: rng.randrange(len(data))]
        (run / name).write_bytes(bytes(data))
        try:
            load_checkpoint(run)
            load_training_state(run)
            outcomes["loaded"] += 1
        except CheckpointError as e:
            assert str(e)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0
