"""The trainer end to end on real data: model shapes, the checkpoint round trip, resume, CLI errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHIPPED, train_tiny
from safetensors.torch import load_file

from trainer import checkpoint as ckpt
from trainer.cli import build_parser, main
from trainer.data import DatasetError, load_dataset
from trainer.models import GENERATIVE_KINDS, build_model, has_encoder

SHAPES = [(28, 1, "conv"), (32, 1, "conv"), (64, 3, "conv"), (28, 1, "mlp"), (64, 3, "mlp")]


@pytest.mark.parametrize("kind", GENERATIVE_KINDS)
@pytest.mark.parametrize("size,channels,arch", SHAPES)
def test_model_shapes_and_value_range(kind, size, channels, arch):
    model = build_model(kind, {"image_size": size, "channels": channels, "arch": arch, "latent_dim": 7}).eval()
    g = torch.Generator().manual_seed(0)
    z = model.sample_latent(3, g)
    assert z.shape == (3, 7)
    with torch.no_grad():
        x = model.decode(z)
    assert x.shape == (3, channels, size, size)
    lo, hi = model.value_range
    assert x.min() >= lo and x.max() <= hi
    if has_encoder(model):
        assert model.encode(torch.rand(2, channels, size, size)).shape == (2, 7)
    # the sampler is reproducible from its generator
    assert torch.equal(model.sample_latent(3, torch.Generator().manual_seed(0)), z)


@pytest.mark.parametrize("latent_dim", [2, 512])
def test_latent_dim_extremes(latent_dim):
    model = build_model("vae", {"latent_dim": latent_dim}).eval()
    mu, logvar = model.encode_posterior(torch.rand(2, 1, 28, 28))
    assert mu.shape == logvar.shape == (2, latent_dim)


def test_bad_model_configs_are_clear():
    with pytest.raises(ValueError, match="latent_dim must be between 2 and 512"):
        build_model("vae", {"latent_dim": 1})
    with pytest.raises(ValueError, match="image_size 30 is not supported"):
        build_model("ae", {"image_size": 30})
    with pytest.raises(ValueError, match="unknown VAEConfig fields"):
        build_model("vae", {"bogus": 1})


@pytest.mark.parametrize("kind", GENERATIVE_KINDS)
def test_dry_run_checkpoint_round_trip(tiny_runs, kind):
    run = tiny_runs[kind]
    meta = json.loads((run / "config.json").read_text())
    assert meta["format_version"] == ckpt.FORMAT_VERSION and meta["kind"] == kind
    assert meta["dataset"]["name"] == "mnist5k" and meta["dataset"]["image_shape"] == [1, 28, 28]
    assert meta["dataset"]["label_names"] == [str(i) for i in range(10)]
    assert meta["history"] and "img_per_s" in meta["history"][0]
    assert {"torch", "python"} <= set(meta["versions"])
    assert (run / "samples" / "epoch_001.png").is_file()
    loaded = ckpt.load_checkpoint(run)
    assert loaded.latents["z"].shape[1] == 8
    assert len(loaded.latents["labels"]) == len(loaded.latents["z"])
    # save -> load -> identical outputs, through the one save and the one load
    z = loaded.model.sample_latent(4, torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = loaded.model.decode(z)
    again = ckpt.load_checkpoint(ckpt.save_checkpoint(run.parent / f"copy-{kind}", loaded.model,
                                                      {k: meta[k] for k in ("dataset", "history")}))
    with torch.no_grad():
        assert torch.equal(again.model.decode(z), before)


def test_vae_latents_hold_posterior_and_pixels(tiny_runs):
    lat = ckpt.load_checkpoint(tiny_runs["vae"]).latents
    assert lat["logvar"].shape == lat["z"].shape
    assert lat["images"].dtype == np.uint8 and lat["images"].shape[1:] == (1, 28, 28)
    assert set(np.unique(lat["split"])) <= {0, 1}


def _train(out: Path, *args: str) -> None:
    assert main(["--model", "vae", "--arch", "mlp", "--dataset", "digits", "--batch-size", "256",
                 "--latents-sample", "100", "--device", "cpu", "--out", str(out), *args]) == 0


def test_resume_equals_uninterrupted_run(tmp_path):
    _train(tmp_path / "straight", "--epochs", "2")
    _train(tmp_path / "resumed", "--epochs", "1")
    assert main(["--resume", "--epochs", "2", "--out", str(tmp_path / "resumed")]) == 0  # flags come from the run
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ha = ckpt.read_meta(tmp_path / "straight")["history"]
    hb = ckpt.read_meta(tmp_path / "resumed")["history"]
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]


def test_training_state_is_not_a_pickle(tiny_runs):
    state = ckpt.load_training_state(tiny_runs["gan"])
    assert set(state["optimizers"]) == {"g", "d"}
    assert isinstance(next(iter(state["optimizers"]["g"]["state"])), int)  # int keys survive the JSON trip
    assert not list(tiny_runs["gan"].glob("*.pt"))


def test_nan_weights_are_never_saved(tmp_path, tiny_runs):
    model = ckpt.load_checkpoint(tiny_runs["ae"]).model
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(ckpt.CheckpointError, match="NaN/Inf"):
        ckpt.save_checkpoint(tmp_path / "bad", model, {})
    assert not (tmp_path / "bad").exists()


def test_diverging_run_stops_with_a_clear_message(tmp_path, capsys):
    rc = main(["--model", "ae", "--arch", "mlp", "--dataset", "digits", "--lr", "1e30", "--epochs", "3",
               "--max-bad-steps", "2", "--device", "cpu", "--out", str(tmp_path / "div")])
    err = capsys.readouterr().err
    assert rc == 2 and "training diverged" in err and "--lr" in err


@pytest.mark.parametrize("kind", ["vae", "ae", "gan"])
def test_shipped_checkpoint_loads_and_decodes(kind):
    run = SHIPPED / f"{kind}-mnist5k"
    loaded = ckpt.load_checkpoint(run)
    assert loaded.meta["dataset"]["name"] == "mnist5k"
    z = loaded.model.sample_latent(8, torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = loaded.model.decode(z)
    assert x.shape == (8, 1, 28, 28) and torch.isfinite(x).all()
    assert x.std() > 0.05  # not a blank or constant image
    assert loaded.latents["z"].shape[0] >= 1000
    assert (run / "model.safetensors").stat().st_size < 8_000_000


# ---- data ----------------------------------------------------------------------------------------

def test_mnist5k_and_digits_are_real_and_labelled():
    d = load_dataset("mnist5k")
    assert d.images.shape == (5000, 1, 28, 28) and d.images.dtype == torch.uint8
    assert sorted(d.labels.unique().tolist()) == list(range(10))
    assert len(set(d.train_idx.tolist()) & set(d.test_idx.tolist())) == 0
    assert d.test_idx.numel() == 500
    dg = load_dataset("digits", image_size=32, channels=3)
    assert dg.images.shape[1:] == (3, 32, 32)


def _save_png(path: Path, size=(40, 30), color=(200, 10, 10)):
    from PIL import Image

    Image.new("RGB", size, color).save(path)


def test_folder_dataset_with_class_subfolders(tmp_path):
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            _save_png(tmp_path / cls / f"{i}.png")
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"not really a jpeg")
    d = load_dataset(f"folder:{tmp_path}", image_size=32, channels=3)
    assert d.images.shape == (6, 3, 32, 32) and d.label_names == ["cats", "dogs"]
    assert sorted(d.labels.tolist()) == [0, 0, 0, 1, 1, 1]


def test_folder_dataset_trains(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(20):
        _save_png(imgs / f"{i}.png", color=(i * 10, 100, 200 - i * 5))
    train_tiny(tmp_path / "run", "ae", "--dataset", f"folder:{imgs}", "--image-size", "32")
    assert ckpt.read_meta(tmp_path / "run")["dataset"]["image_shape"] == [3, 32, 32]


@pytest.mark.parametrize("setup,message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "no images found"),
    (lambda p: (p.mkdir(), (p / "a.txt").write_text("x"), (p / "b.png").write_bytes(b"junk")), "could be read"),
])
def test_folder_errors_are_clear(tmp_path, capsys, setup, message):
    folder = tmp_path / "images"
    setup(folder)
    rc = main(["--model", "vae", "--dataset", f"folder:{folder}", "--dry-run", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_offline_torchvision_dataset_names_the_alternatives(tmp_path, monkeypatch):
    def no_internet(*args, **kwargs):  # this machine may be offline; make sure it is
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", no_internet)
    with pytest.raises(DatasetError, match="mnist5k, digits, folder:PATH"):
        load_dataset("fashion-mnist", root=tmp_path)


@pytest.mark.parametrize("argv,message", [
    (["--model", "diffusion"], "invalid choice"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--latent-dim", "1000"], "--latent-dim must be between 2 and 512"),
    (["--hidden", "a,b"], "comma-separated integers"),
    (["--batch-size", "many"], "invalid int value"),
])
def test_bad_flags_are_clear(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_dataset_is_clear(capsys, tmp_path):
    assert main(["--dataset", "imagenet", "--dry-run", "--out", str(tmp_path / "x")]) == 2
    assert "unknown dataset 'imagenet'" in capsys.readouterr().err


def test_help_documents_every_flag_with_examples():
    text = build_parser().format_help()
    for flag in ("--model", "--dataset", "--resume", "--dry-run", "--seed", "--device", "--amp"):
        assert flag in text
    assert "examples:" in text and "python -m trainer --model vae" in text
