"""The launched app driven over HTTP by gradio_client, the way scripts use it: generate, explore,
interpolate, reconstruct, map and map clicks, model switching, and errors that leave the app serving."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs_root(tiny_runs, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("api-runs")
    for path in tiny_runs.values():
        shutil.copytree(path, root / path.name)
    return root


@pytest.fixture(scope="module")
def app_url(runs_root):
    from explorer.store import Store
    from explorer.ui import build_app, launch_kwargs

    demo = build_app(store=Store(runs_root, "cpu"))
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                        **launch_kwargs())
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def _png_of(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _data_uri_pixels(uri: str) -> np.ndarray:
    from explorer.render import pixels_from_data_uri

    return pixels_from_data_uri(uri)


def test_generate_from_a_seed_and_from_a_latent(client):
    image, latent = client.predict("vae-tiny", 3, "", api_name="/generate")
    z = json.loads(latent)
    assert len(z) == 8
    pixels = _png_of(image)
    assert pixels.shape[:2] == (448, 448)  # 28 px upscaled 16x, crisp
    image2, latent2 = client.predict("vae-tiny", 0, latent, api_name="/generate")
    assert json.loads(latent2) == z
    assert np.array_equal(_png_of(image2), pixels)
    other, _ = client.predict("vae-tiny", 4, "", api_name="/generate")
    assert not np.array_equal(_png_of(other), pixels)


def test_a_latent_of_the_wrong_size_is_a_clear_error_and_the_app_keeps_serving(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="latent must have 8 values, got 3"):
        client.predict("vae-tiny", 0, "[1, 2, 3]", api_name="/generate")
    with pytest.raises(AppError, match="no run named"):
        client.predict("no-such-run", 0, "", api_name="/generate")
    image, _ = client.predict("vae-tiny", 1, "", api_name="/generate")
    assert Path(image).is_file()


def test_explore_slider_endpoints_return_the_image_inline(client, runs_root):
    from explorer import core
    from explorer.store import Store

    store = Store(runs_root, "cpu")
    specs = core.controls(store, store.get("vae-tiny")).dims[:8]
    client.predict("vae-tiny", api_name="/load_run")
    before = client.predict("vae-tiny", 2, 1.0, api_name="/explore_seed")
    assert before.startswith("data:image/png;base64,")
    pcs = [0.0] * 10
    centre = client.predict("vae-tiny", *pcs, api_name="/explore_pcs")
    pcs[0] = 2.0
    moved = client.predict("vae-tiny", *pcs, api_name="/explore_pcs")
    assert _data_uri_pixels(centre).shape == (28, 28, 1)
    assert not np.array_equal(_data_uri_pixels(centre), _data_uri_pixels(moved))
    dims = [(s.lo + s.hi) / 2 for s in specs] + [0.0] * 24  # slider values must lie in the data's range
    a = client.predict("vae-tiny", *dims, api_name="/explore_dims")
    dims[0] = specs[0].hi
    b = client.predict("vae-tiny", *dims, api_name="/explore_dims")
    assert a != b
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="greater than maximum"):
        client.predict("vae-tiny", *([specs[0].hi + 100] + dims[1:]), api_name="/explore_dims")


def test_interpolate_between_seeds_and_classes(client):
    strip, gif, gif_file, caption = client.predict(
        "vae-tiny", "Seed", 0, "any", 0, None, "Dataset sample", 0, "any", 3, None, 6, "slerp",
        api_name="/interpolate")
    assert "6 frames" in caption and "slerp" in caption
    assert _png_of(strip).shape[1] > _png_of(strip).shape[0]
    with Image.open(gif_file) as im:
        assert im.format == "GIF" and im.n_frames > 1
    with Image.open(gif) as im:
        assert im.format == "GIF"


def test_reconstruct_an_upload_and_send_it_on(client, tmp_path):
    from gradio_client import handle_file

    a = np.zeros((60, 45, 3), np.uint8)
    a[10:50, 18:26] = (250, 240, 230)
    path = tmp_path / "digit.png"
    Image.fromarray(a).save(path)
    seen, recon, metrics, = client.predict("vae-tiny", handle_file(str(path)), "auto", api_name="/reconstruct")
    assert "MSE" in metrics and "PSNR" in metrics
    assert _png_of(seen).shape[:2] == _png_of(recon).shape[:2]
    view = client.predict("vae-tiny", api_name="/reconstruct_to_explore")
    assert view.startswith("data:image/png")
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="not an image"):
        client.predict("vae-tiny", handle_file(str(bad)), "auto", api_name="/reconstruct")


def test_map_and_map_clicks(client):
    plot, status = client.predict("vae-tiny", "PCA", 200, 30, api_name="/map")
    assert "PCA" in status and "200" in status
    fig = json.loads(plot["plot"])
    n_points = sum(len(t["hovertext"]) for t in fig["data"] if t.get("name") not in ("current latent", "uploaded image"))
    assert n_points == 200
    view, picked, note = client.predict("vae-tiny", json.dumps({"kind": "point", "row": 5}), "PCA", 200, 30,
                                        api_name="/map_click")
    assert view == picked and "#5" in note
    view2, _, note2 = client.predict("vae-tiny", json.dumps({"kind": "empty", "x": 1.0, "y": -1.0}), "PCA", 200, 30,
                                     api_name="/map_click")
    assert view2 != view and "PCA map point" in note2
    _, status = client.predict("ae-tiny", "t-SNE", 60, 10, api_name="/map")
    assert "t-SNE" in status
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="JSON"):
        client.predict("vae-tiny", "not json", "PCA", 200, 30, api_name="/map_click")


def test_switching_models_and_per_user_state(app_url):
    from gradio_client import Client

    one, two = Client(app_url, verbose=False), Client(app_url, verbose=False)
    one.predict("gan-tiny", api_name="/load_run")
    two.predict("vae-tiny", api_name="/load_run")
    z = json.dumps([0.5] * 8)
    one.predict("gan-tiny", z, api_name="/set_latent")
    two.predict("vae-tiny", json.dumps([-0.5] * 8), api_name="/set_latent")
    args = ["Explore latent", 0, "any", 0, None, "Explore latent", 0, "any", 0, None, 2, "lerp"]
    *_, caption_one = one.predict("gan-tiny", *args, api_name="/interpolate")
    strip_one = one.predict("gan-tiny", *args, api_name="/interpolate")[0]
    strip_two = two.predict("vae-tiny", *args, api_name="/interpolate")[0]
    assert "Explore latent" in caption_one
    expected_one, _ = one.predict("gan-tiny", 0, z, api_name="/generate")
    # Each session interpolates its own latent: user one's frames are the GAN image of [0.5]*8.
    assert not np.array_equal(_png_of(strip_one), _png_of(strip_two))
    assert _png_of(expected_one).shape[:2] == (448, 448)
