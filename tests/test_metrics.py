"""Metric sanity on known cases, the shipped evaluator's accuracy, and the evaluate command end to end."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from trainer import metrics as M
from trainer.evaluate import (
    DEFAULT_EVALUATOR,
    ROOT,
    classifier_accuracy,
    dataset_of,
    evaluate_real,
    heldout_subset,
    load_evaluator,
)
from trainer.evaluate import main as evaluate_main

EVALUATOR = ROOT / DEFAULT_EVALUATOR
needs_evaluator = pytest.mark.skipif(not (EVALUATOR / "model.safetensors").is_file(),
                                     reason="the shipped evaluator checkpoints/classifier-mnist5k is missing")


@pytest.fixture(scope="module")
def evaluator():
    return load_evaluator(EVALUATOR)


@pytest.fixture(scope="module")
def data(evaluator):
    return dataset_of(evaluator.meta)  # the split the evaluator was trained with


@pytest.fixture(scope="module")
def heldout(data):
    return data.batch(heldout_subset(data, 500, seed=0))  # (500, 1, 28, 28) in [0, 1], classes mixed


# ---- pure functions on known cases --------------------------------------------------------------------

def test_frechet_distance_matches_closed_form_for_gaussians():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 4, generator=g, dtype=torch.float64)
    b = 2.0 * torch.randn(4000, 4, generator=g, dtype=torch.float64) + 1.0
    # N(0, I) vs N(1, 4I) in 4-d: |Δμ|² = 4, Tr(I + 4I - 2·2I) = 4
    assert M.frechet_distance(a, b) == pytest.approx(8.0, rel=0.1)
    assert M.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_inception_score_bounds():
    confident = torch.eye(10).repeat(20, 1) * 50.0  # every class, each predicted with certainty
    assert M.inception_score(confident)[0] == pytest.approx(10.0, rel=1e-3)
    assert M.inception_score(torch.zeros(200, 10))[0] == pytest.approx(1.0)
    one_class = torch.zeros(200, 10)
    one_class[:, 3] = 50.0
    assert M.inception_score(one_class)[0] == pytest.approx(1.0, abs=1e-3)


def test_ssim_of_an_image_with_itself_is_one(heldout):
    x = heldout[:64]
    assert M.ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    rec = M.reconstruction_metrics(x, x)
    assert rec["ssim"] == pytest.approx(1.0, abs=1e-6) and rec["mse"] == 0.0
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    worse = M.reconstruction_metrics(x, noisy)
    assert worse["ssim"] < 0.9 and worse["mse"] > 0 and worse["psnr"] < rec["psnr"]


def test_precision_recall_of_identical_and_disjoint_sets():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 8, generator=g)
    assert M.precision_recall(a, a) == (1.0, 1.0)
    assert M.precision_recall(a, a + 100.0) == (0.0, 0.0)
    assert M.density_coverage(a, a)[1] == 1.0
    assert M.density_coverage(a, a + 100.0) == (0.0, 0.0)
    collapsed = a[:1].repeat(300, 1)  # one point repeated: inside a few real balls, its neighbours' and its own
    assert M.precision_recall(a, collapsed)[0] == 1.0 and M.density_coverage(a, collapsed)[1] < 0.05


def test_memorisation_flags_copies_of_training_images(data, heldout):
    train = data.batch(data.train_idx[:1000])
    copies = M.memorisation(train[:200], train, heldout)
    assert copies["ratio"] == pytest.approx(0.0, abs=1e-3) and copies["frac_closer_than_p5"] == 1.0
    fresh = M.memorisation(heldout[:250], train, heldout[250:])
    assert 0.8 < fresh["ratio"] < 1.25


# ---- in the evaluator's feature space ------------------------------------------------------------------

@needs_evaluator
def test_frechet_distance_is_zero_to_itself_and_grows_with_noise_and_blur(evaluator, heldout):
    x = heldout[:256]
    feats, _ = evaluator.outputs(x)
    assert M.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    fid_noise = [M.frechet_distance(feats, evaluator.outputs((x + s * noise).clamp(0, 1))[0]) for s in (0.1, 0.4)]
    fid_blur = [M.frechet_distance(feats, evaluator.outputs(gaussian_blur(x, [7, 7], [s, s]))[0]) for s in (0.8, 2.0)]
    assert 0 < fid_noise[0] < fid_noise[1], fid_noise
    assert 0 < fid_blur[0] < fid_blur[1], fid_blur


@needs_evaluator
def test_precision_recall_of_real_vs_real_heldout_is_high(evaluator, heldout, data):
    feats, _ = evaluator.outputs(heldout)
    precision, recall = M.precision_recall(feats[:250], feats[250:])  # two halves of the held-out split
    assert precision > 0.8 and recall > 0.8, (precision, recall)
    density, coverage = M.density_coverage(feats[:250], feats[250:])
    assert 0.7 < density < 1.3 and coverage > 0.8, (density, coverage)
    real = evaluate_real(data, evaluator, n_samples=300, seed=0)  # training images against held-out ones
    assert real["precision"] > 0.8 and real["recall"] > 0.8, real


@needs_evaluator
def test_shipped_evaluator_reaches_its_stated_accuracy(evaluator, data):
    stated = (evaluator.meta.get("metrics") or {}).get("accuracy")
    assert stated is not None, "run: python -m trainer evaluate checkpoints/classifier-mnist5k"
    assert stated >= 0.97
    acc = classifier_accuracy(evaluator.model, data)
    # same weights, same 500 held-out images; allow one image to flip on another CPU's arithmetic
    assert acc >= stated - 1 / data.test_idx.numel() - 1e-9, (acc, stated)


# ---- the command ---------------------------------------------------------------------------------------

@needs_evaluator
@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_evaluate_cli_writes_metrics_into_config(tiny_runs, tmp_path, kind, capsys):
    run = tmp_path / f"{kind}-copy"
    shutil.copytree(tiny_runs[kind], run)
    assert evaluate_main([str(run), "--samples", "100", "--iw-k", "4"]) == 0
    out = capsys.readouterr().out
    assert "FID-clf" in out and run.name in out
    metrics = json.loads((run / "config.json").read_text())["metrics"]
    assert metrics["n_samples"] == 100 and metrics["evaluator"]["path"] == DEFAULT_EVALUATOR
    assert "date" in metrics and metrics["fid_classifier"] > 0
    assert 0 <= metrics["precision"] <= 1 and 0 <= metrics["recall"] <= 1
    if kind == "vae":
        assert metrics["recon_ssim"] <= 1 and metrics["log_likelihood_iw"] >= metrics["elbo"] - 5.0


@needs_evaluator
def test_evaluate_is_reproducible_with_a_fixed_seed(tiny_runs, tmp_path):
    from trainer.evaluate import evaluate_run

    a = evaluate_run(tiny_runs["ae"], EVALUATOR, n_samples=100, seed=3, write=False)
    b = evaluate_run(tiny_runs["ae"], EVALUATOR, n_samples=100, seed=3, write=False)
    keys = ("fid_classifier", "precision", "recall", "recon_mse", "recon_ssim", "memorisation_ratio")
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}


@needs_evaluator
def test_evaluate_errors_are_clear(tiny_runs, tmp_path, capsys):
    assert evaluate_main([str(tmp_path / "nope"), "--samples", "100"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert evaluate_main([str(tiny_runs["gan"]), "--evaluator", str(tiny_runs["ae"])]) == 2
    assert "must be a classifier" in capsys.readouterr().err
    other = tmp_path / "gan-32px"
    shutil.copytree(tiny_runs["gan"], other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["dataset"]["image_shape"] = [1, 32, 32]
    (other / "config.json").write_text(json.dumps(cfg))
    assert evaluate_main([str(other)]) == 2
    err = capsys.readouterr().err
    assert "1x32x32" in err and "1x28x28" in err and "--evaluator" in err
