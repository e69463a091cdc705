"""Explorer core on real tiny checkpoints: latent maths, directions, the store and its cache, rendering,
uploads in every colour mode, maps. No gradio here (the core never imports it)."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from explorer import core, maps
from explorer.directions import (
    class_coord,
    dim_info,
    fit_class_directions,
    fit_ganspace,
    fit_pca,
    kl_per_dim,
    pca_coords,
    pca_point,
    set_class_coord,
    set_pca_coords,
)
from explorer.images import ImageInputError
from explorer.inversion import prepare_upload, project, reconstruction_error
from explorer.latent import as_latent, format_latent, interpolate, lerp, parse_latent, seed_latent, slerp
from explorer.render import data_uri, gif_bytes, grid, pixels_from_data_uri, render, to_model_input, to_pixels
from explorer.store import Store, list_runs
from trainer.checkpoint import CheckpointError

vectors = st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=2, max_size=16)


# ---- latent maths ---------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(vectors, st.data())
def test_lerp_and_slerp_hit_both_endpoints(a, data):
    b = data.draw(st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=len(a), max_size=len(a)))
    a, b = torch.tensor(a), torch.tensor(b)
    for f in (lerp, slerp):
        assert torch.allclose(f(a, b, 0.0), a, atol=1e-4)
        assert torch.allclose(f(a, b, 1.0), b, atol=1e-4)
    for method in ("lerp", "slerp"):
        path = interpolate(a, b, 7, method)
        assert path.shape == (7, len(a))
        assert torch.equal(path[0], a) and torch.equal(path[-1], b)
        assert torch.isfinite(path).all()


def test_slerp_stays_on_the_sphere_and_lerp_cuts_through_it():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, generator=gen), torch.randn(64, generator=gen)
    b = b / b.norm() * a.norm()
    mid_s, mid_l = slerp(a, b, 0.5), lerp(a, b, 0.5)
    assert mid_s.norm() == pytest.approx(a.norm().item(), rel=1e-4)
    assert mid_l.norm() < 0.9 * a.norm()
    # Parallel and zero vectors fall back to a straight line instead of dividing by zero.
    assert torch.allclose(slerp(a, 2 * a, 0.5), 1.5 * a, atol=1e-5)
    assert torch.allclose(slerp(torch.zeros(4), torch.ones(4), 0.25), torch.full((4,), 0.25))


def test_interpolate_rejects_bad_settings():
    a = torch.zeros(4)
    with pytest.raises(ValueError, match="steps must be"):
        interpolate(a, a, 1)
    with pytest.raises(ValueError, match="steps must be"):
        interpolate(a, a, 65)
    with pytest.raises(ValueError, match="method"):
        interpolate(a, a, 4, "cubic")
    with pytest.raises(ValueError, match="same size"):
        interpolate(a, torch.zeros(5), 4)


def test_latent_parsing_says_what_is_wrong():
    assert parse_latent("[1, 2.5, -3]", 3).tolist() == [1.0, 2.5, -3.0]
    assert parse_latent("1, 2 3", 3).tolist() == [1.0, 2.0, 3.0]
    assert parse_latent(format_latent([0.25, -1.5]), 2).tolist() == [0.25, -1.5]
    with pytest.raises(ValueError, match="latent must have 16 values, got 12"):
        as_latent([0.0] * 12, 16)
    with pytest.raises(ValueError, match="finite"):
        as_latent([0.0, float("nan")], 2)
    for bad in ("", "[1, [2]]", "hello", '{"a": 1}', "[true, 1]"):
        with pytest.raises(ValueError):
            parse_latent(bad, 2)


# ---- directions ------------------------------------------------------------------------------------------

def _toy_latents(n=400, d=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    scales = torch.tensor([3.0, 2.0, 1.0, 0.5, 0.2, 0.1])[:d]
    return (torch.randn(n, d, generator=gen) * scales + 1.0).numpy()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=4, max_size=4),
       st.integers(0, 399))
def test_pca_offsets_round_trip(coords, row):
    z = _toy_latents()
    basis = fit_pca(z, 4)
    start = torch.from_numpy(z[row])
    moved = set_pca_coords(basis, start, torch.tensor(coords))
    assert torch.allclose(pca_coords(basis, moved), torch.tensor(coords), atol=1e-3)
    # The part outside the top-4 directions is untouched.
    resid = lambda v: (v - basis.mean) - ((v - basis.mean) @ basis.components.T) @ basis.components  # noqa: E731
    assert torch.allclose(resid(moved), resid(start), atol=1e-3)


def test_pca_basis_is_ordered_orthonormal_and_deterministic():
    z = _toy_latents()
    basis = fit_pca(z, 10)
    assert basis.k == 6
    assert torch.allclose(basis.components @ basis.components.T, torch.eye(6), atol=1e-5)
    assert (basis.sigma[:-1] >= basis.sigma[1:]).all()
    assert basis.sigma[0] == pytest.approx(3.0, rel=0.15)
    assert (basis.lo < 0).all() and (basis.hi > 0).all()
    again = fit_pca(z, 10)
    assert torch.equal(basis.components, again.components)
    p = pca_point(basis, 1.5, -0.5)
    assert torch.allclose(pca_coords(basis, p)[:2], torch.tensor([1.5, -0.5]), atol=1e-4)


def test_class_directions_point_towards_the_class():
    gen = torch.Generator().manual_seed(1)
    labels = torch.arange(300) % 3
    centers = torch.tensor([[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0]])
    z = (centers[labels] + 0.3 * torch.randn(300, 3, generator=gen)).numpy()
    cd = fit_class_directions(z, labels.numpy(), ["a", "b", "c"])
    assert cd.names == ("a", "b", "c")
    i = cd.index(1)
    start = torch.from_numpy(z[0])  # a class-0 point
    moved = set_class_coord(cd, i, start, cd.hi[i].item())
    assert class_coord(cd, i, moved) == pytest.approx(cd.hi[i].item(), abs=1e-4)
    dist = lambda v, c: (v - centers[c]).norm()  # noqa: E731
    assert dist(moved, 1) < dist(start, 1)
    assert fit_class_directions(z, np.full(300, -1), None) is None


def test_kl_per_dim_and_collapsed_dimensions_rank_last():
    gen = torch.Generator().manual_seed(2)
    mu = torch.randn(500, 4, generator=gen) * torch.tensor([2.0, 0.0, 1.0, 0.0])
    logvar = torch.zeros(500, 4)
    logvar[:, 0] = -3
    kl = kl_per_dim(mu, logvar)
    manual = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).mean(0)
    assert torch.allclose(kl, manual, atol=1e-5)
    info = dim_info(mu.numpy(), logvar.numpy())
    assert info.order[:2] == (0, 2)
    assert info.collapsed == (False, True, False, True)


# ---- the store and its cache -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs_dir(tiny_runs, tmp_path_factory) -> Path:
    """The tiny AE/VAE/GAN runs, a tiny classifier (labels GAN samples) and a broken run, in one dir."""
    from trainer.cli import main

    root = tmp_path_factory.mktemp("explorer-core")
    for path in tiny_runs.values():
        shutil.copytree(path, root / path.name)
    rc = main(["--model", "classifier", "--dry-run", "--device", "cpu", "--out", str(root / "classifier-tiny")])
    assert rc == 0
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("{not json")
    (root / "notes").mkdir()  # not a run at all: ignored
    return root


@pytest.fixture(scope="module")
def store(runs_dir) -> Store:
    return Store(runs_dir, "cpu")


def test_list_runs_shows_every_run_and_why_a_broken_one_cannot_open(runs_dir):
    runs = {r.name: r for r in list_runs(runs_dir)}
    assert set(runs) == {"ae-tiny", "vae-tiny", "gan-tiny", "classifier-tiny", "broken"}
    assert runs["vae-tiny"].explorable and runs["vae-tiny"].latent_dim == 8
    assert runs["vae-tiny"].image_shape == (1, 28, 28)
    assert not runs["classifier-tiny"].explorable
    assert not runs["broken"].explorable and "JSON" in runs["broken"].error
    assert list_runs(runs_dir / "missing") == []


def test_store_loads_once_and_caches_derived_data(store):
    run = store.get("vae-tiny")
    assert store.get("vae-tiny") is run
    calls = []
    assert run.cached("k", lambda: calls.append(1) or 42) == 42
    assert run.cached("k", lambda: calls.append(1) or 43) == 42
    assert calls == [1]
    assert maps.pca_basis(run) is maps.pca_basis(run)
    with pytest.raises(CheckpointError, match="classifier"):
        store.get("classifier-tiny")
    with pytest.raises(CheckpointError):
        store.get("broken")
    with pytest.raises(CheckpointError, match="not a run name"):
        store.get("../etc")
    with pytest.raises(CheckpointError, match="no run named"):
        store.get("nope")


def test_store_reloads_a_run_whose_config_changed(store, runs_dir):
    run = store.get("ae-tiny")
    cfg = runs_dir / "ae-tiny" / "config.json"
    meta = json.loads(cfg.read_text())
    meta["metrics"] = {"fid": 1.5}
    cfg.write_text(json.dumps(meta))
    os.utime(cfg, ns=(run.stamp + 10**9, run.stamp + 10**9))
    fresh = store.get("ae-tiny")
    assert fresh is not run and fresh.info.metrics == {"fid": 1.5}


# ---- rendering -----------------------------------------------------------------------------------------------

def test_pixels_round_trip_through_the_model_range():
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (2, 3, 5, 5), generator=gen, dtype=torch.uint8).numpy()
    for vr in ((0.0, 1.0), (-1.0, 1.0)):
        x = to_model_input(pixels, vr)
        assert x.min() >= vr[0] and x.max() <= vr[1]
        back = to_pixels(x, vr)  # (B, H, W, C)
        assert np.array_equal(back.transpose(0, 3, 1, 2), pixels)
    img = pixels[0].transpose(1, 2, 0)
    assert np.array_equal(pixels_from_data_uri(data_uri(img)), img)


def test_render_decodes_the_same_latent_to_the_same_pixels(store):
    for name in ("ae-tiny", "vae-tiny", "gan-tiny"):
        run = store.get(name)
        z = seed_latent(run.model, 3)
        assert torch.equal(z, seed_latent(run.model, 3))
        one = render(run.model, z)
        assert one.shape == (28, 28, 1) and one.dtype == np.uint8
        batch = render(run.model, torch.stack([z, z]))
        assert np.array_equal(batch[0], one)
        uri = core.image_uri(run, z.tolist())
        assert np.array_equal(pixels_from_data_uri(uri), one)


def test_interpolation_writes_an_animated_gif(store, tmp_path):
    run = store.get("vae-tiny")
    a, b = core.seed_latent(run, 0), core.seed_latent(run, 1)
    strip, path = core.interpolation(run, a, b, 5, "slerp", str(tmp_path / "x.gif"))
    assert strip.ndim == 2 and strip.shape[1] > strip.shape[0]
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 8  # 5 forwards + 3 back (boomerang)
    frames = np.zeros((3, 4, 4, 3), np.uint8)
    assert gif_bytes(frames, scale=1)[:6] in (b"GIF89a", b"GIF87a")
    assert grid(frames, columns=2).shape == (2 * 5 + 1, 2 * 5 + 1, 3)


# ---- the slider model ----------------------------------------------------------------------------------------

def test_slider_values_round_trip_for_every_group(store):
    for name in ("ae-tiny", "vae-tiny", "gan-tiny"):
        run = store.get(name)
        z = core.seed_latent(run, 5)
        ctl = core.controls(store, run)
        assert sum(s.visible for s in ctl.dims) == run.latent_dim
        back = core.latent_from_dims(run, core.dim_values(run, z))
        assert np.allclose(back, z, atol=1e-3)
        pcs = core.pc_values(run, z)
        pcs[0] += 1.0
        moved = core.latent_from_pcs(run, z, pcs)
        assert np.allclose(core.pc_values(run, moved), pcs, atol=1e-3)
    vae = store.get("vae-tiny")
    ctl = core.controls(store, vae)
    assert "KL" in ctl.dims[0].label and ctl.label_source == "dataset"
    assert ctl.classes and ctl.truncation is False
    cls = ctl.classes[0]
    z = core.seed_latent(vae, 1)
    moved = core.latent_from_class(store, vae, z, cls, 2.0)
    assert core.class_value(store, vae, moved, cls) == pytest.approx(2.0, abs=1e-3)
    with pytest.raises(ValueError, match="expected 8 slider values"):
        core.latent_from_dims(vae, [0.0] * 3)


def test_gan_samples_are_labelled_by_the_classifier(store):
    gan = store.get("gan-tiny")
    labels, names, source = core.labels(store, gan)
    assert source == "classifier"
    assert labels.shape == (len(gan.z),) and labels.min() >= 0
    ctl = core.controls(store, gan)
    assert ctl.truncation and ctl.label_source == "classifier"
    # A class direction needs two predicted classes; an untrained classifier may predict only one.
    assert bool(ctl.classes) == (len(np.unique(labels)) >= 2)
    z, what = core.dataset_sample(store, gan, names[int(labels[0])], 0)
    assert len(z) == gan.latent_dim and "classified as" in what


def test_dataset_sample_of_a_class_has_that_label(store):
    vae = store.get("vae-tiny")
    lab, names, _ = core.labels(store, vae)
    name = names[int(lab[lab >= 0][0])]
    z, what = core.dataset_sample(store, vae, name, 2)
    rows = np.flatnonzero(lab == names.index(name))
    assert np.allclose(z, vae.z[rows[2]])
    assert f"label {name}" in what
    with pytest.raises(ValueError, match="unknown class"):
        core.dataset_sample(store, vae, "not-a-class", 0)


# ---- uploads ----------------------------------------------------------------------------------------------------

def _digit(mode: str) -> bytes:
    """A light '1' stroke on a dark background, saved in colour mode ``mode``."""
    a = np.zeros((40, 30), np.uint8)
    a[6:34, 13:17] = 255
    img = Image.fromarray(a, "L")
    if mode == "I;16":
        img = Image.fromarray(a.astype(np.uint16) * 257)  # mode I;16
    elif mode == "LA":
        img = Image.merge("LA", (img, Image.new("L", img.size, 255)))
    elif mode != "L":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="TIFF" if mode in ("CMYK", "I;16") else "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "1", "I;16", "CMYK"])
def test_uploads_in_every_colour_mode_encode_and_decode(store, mode):
    run = store.get("vae-tiny")
    up = core.upload(store, run, _digit(mode))
    assert up.pixels.shape == (1, 28, 28) and up.pixels.dtype == np.uint8
    assert up.pixels[0, 14, 14] > 200 and up.pixels[0, 2, 2] < 30  # the stroke survived, centred
    assert up.recon.shape == (1, 28, 28)
    assert len(up.z) == 8 and all(math.isfinite(v) for v in up.z)
    assert up.mse == pytest.approx(reconstruction_error(up.pixels, up.recon)[0])
    assert up.method == "encoder"


def test_upload_inversion_is_explicit_and_reported():
    light = np.full((28, 28, 3), 255, np.uint8)
    light[5:23, 12:16] = 0  # dark ink on white paper
    auto = prepare_upload(light, (1, 28, 28), "auto", dark_background=True)
    assert auto.inverted and "automatically" in auto.note and auto.pixels[0, 0, 0] == 0
    assert not prepare_upload(light, (1, 28, 28), "no", dark_background=True).inverted
    assert not prepare_upload(light, (1, 28, 28), "auto", dark_background=False).inverted
    assert prepare_upload(light[..., 0], (1, 28, 28), "yes").inverted
    with pytest.raises(ValueError, match="invert"):
        prepare_upload(light, (1, 28, 28), "maybe")


def test_bad_uploads_raise_clear_errors(store):
    run = store.get("ae-tiny")
    with pytest.raises(ImageInputError, match="not an image"):
        core.upload(store, run, b"this is not an image at all")
    with pytest.raises(ImageInputError, match="no image"):
        prepare_upload(None, (1, 28, 28))


def test_gan_projection_gets_closer_than_its_starting_point(store):
    run = store.get("gan-tiny")
    target = render(run.model, seed_latent(run.model, 11)).transpose(2, 0, 1)
    fractions = []
    z = project(run.model, target, steps=40, candidates=16, progress=fractions.append)
    start = project(run.model, target, steps=0, candidates=16)
    err = lambda zz: reconstruction_error(target, render(run.model, zz).transpose(2, 0, 1))[0]  # noqa: E731
    assert err(z) <= err(start)
    assert fractions and fractions[-1] == 1.0
    # The shared model's weights never get gradients.
    assert all(p.grad is None for p in run.model.parameters())


# ---- maps -----------------------------------------------------------------------------------------------------------

def test_pca_map_matches_the_pca_sliders_and_is_cached(store):
    run = store.get("vae-tiny")
    m = maps.compute_map(run, "PCA", 100)
    assert m.xy.shape == (100, 2)
    assert maps.compute_map(run, "PCA", 100) is m
    z = torch.from_numpy(run.z[7])
    assert np.allclose(maps.place(run, m, z), m.xy[7], atol=1e-4)
    assert np.allclose(core.pc_values(run, run.z[7].tolist())[:2], m.xy[7], atol=1e-3)
    zc = core.pca_map_latent(run, *m.xy[7])
    assert np.allclose(core.pc_values(run, zc)[:2], m.xy[7], atol=1e-3)


def test_tsne_map_progress_cache_and_placing_new_points(store):
    run = store.get("ae-tiny")
    seen = []
    m = maps.compute_map(run, "t-SNE", 80, perplexity=10, progress=lambda f, d: seen.append(f))
    assert m.xy.shape == (80, 2) and np.isfinite(m.xy).all()
    assert seen and maps.cached_map(run, "t-SNE", 80, 10) is m
    assert maps.compute_map(run, "t-SNE", 80, perplexity=10) is m
    x, y = maps.place(run, m, torch.from_numpy(run.z[3]))
    assert np.allclose((x, y), m.xy[3], atol=1e-3)  # a stored point lands on itself
    with pytest.raises(ValueError, match="sample size"):
        maps.compute_map(run, "t-SNE", 5)
    with pytest.raises(ValueError, match="perplexity"):
        maps.compute_map(run, "t-SNE", 30, perplexity=40)


def test_core_never_imports_gradio():
    code = ("import sys; import explorer.core, explorer.maps, explorer.inversion, explorer.store;"
            " assert 'gradio' not in sys.modules, 'gradio imported'")
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_centre_strokes_frames_a_digit_like_mnist():
    paper = np.full((300, 200), 255, np.uint8)
    paper[20:290, 150:180] = 0  # a dark stroke near the right edge of a light page
    prep = prepare_upload(paper, (1, 28, 28), "auto", dark_background=True, framing="centre strokes")
    assert prep.inverted and "centred" in prep.note
    ys, xs = np.nonzero(prep.pixels[0] > 64)
    assert ys.max() - ys.min() + 1 <= 21  # fits the central 20x20 box
    assert abs((xs.min() + xs.max()) / 2 - 13.5) <= 1.5 and abs((ys.min() + ys.max()) / 2 - 13.5) <= 1.5
    with pytest.raises(ImageInputError, match="blank"):
        prepare_upload(np.zeros((50, 50), np.uint8), (1, 28, 28), "no", framing="centre strokes")
    with pytest.raises(ValueError, match="framing"):
        prepare_upload(paper, (1, 28, 28), framing="stretch")


def test_ganspace_finds_the_latent_directions_that_change_the_features():
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(500, 6, generator=gen)  # isotropic: PCA of z itself would be arbitrary
    mix = torch.zeros(6, 40)
    mix[2, :20] = 5.0  # feature variance comes mostly from z2, then z4
    mix[4, 20:] = 2.0
    features = z @ mix + 0.01 * torch.randn(500, 40, generator=gen)
    basis = fit_ganspace(z, features, 3)
    assert torch.allclose(basis.components @ basis.components.T, torch.eye(3), atol=1e-4)
    assert basis.components[0, 2].abs() > 0.99 and basis.components[1, 4].abs() > 0.99
    assert basis.explained[0] > basis.explained[1]
    moved = set_pca_coords(basis, z[0], torch.tensor([1.0, -2.0, 0.5]))
    assert torch.allclose(pca_coords(basis, moved), torch.tensor([1.0, -2.0, 0.5]), atol=1e-3)


def test_gan_principal_directions_are_ganspace_directions(store):
    gan = store.get("gan-tiny")
    basis = maps.pca_basis(gan)
    assert gan.peek(("ganspace", 10)) is basis
    assert torch.allclose(basis.components @ basis.components.T, torch.eye(basis.k), atol=1e-4)
    assert "image variance" in core.controls(store, gan).pcs[0].label


@pytest.mark.parametrize("name", ["ae-tiny", "vae-tiny", "gan-tiny"])
def test_moving_one_slider_changes_only_its_coordinate(store, name):
    """The browser sends one slider's value per move: that coordinate changes, every other stays."""
    run = store.get(name)
    z = core.seed_latent(run, 5)
    pcs = core.pc_values(run, z)
    moved = core.latent_with_pc(run, z, 1, pcs[1] + 0.75)
    after = core.pc_values(run, moved)
    assert after[1] == pytest.approx(pcs[1] + 0.75, abs=1e-3)
    assert np.allclose(np.delete(after, 1), np.delete(pcs, 1), atol=1e-3)
    assert np.allclose(moved, core.latent_from_pcs(run, z, [*pcs[:1], pcs[1] + 0.75, *pcs[2:]]), atol=1e-3)
    dims = core.dim_values(run, z)
    moved = core.latent_with_dim(run, z, 2, 1.5)
    assert core.dim_values(run, moved) == [*dims[:2], 1.5, *dims[3:]]
    with pytest.raises(ValueError, match="principal direction 99 does not exist"):
        core.latent_with_pc(run, z, 99, 0.0)
    with pytest.raises(ValueError, match="dimension slider 99 does not exist"):
        core.latent_with_dim(run, z, 99, 0.0)


def test_list_runs_refuses_a_symlink_out_of_the_directory_without_reading_it(tiny_runs, tmp_path):
    import os
    import shutil

    from explorer.store import list_runs

    inside, outside = tmp_path / "runs", tmp_path / "elsewhere"
    inside.mkdir()
    shutil.copytree(tiny_runs["vae"], outside / "vae")
    shutil.copytree(tiny_runs["ae"], inside / "ae")
    os.symlink(outside / "vae", inside / "sneaky")
    infos = {r.name: r for r in list_runs(inside)}
    assert infos["ae"].explorable
    assert not infos["sneaky"].explorable and "outside" in infos["sneaky"].error
    assert infos["sneaky"].kind == "?"  # its config.json was never read
