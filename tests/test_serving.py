"""The app as strangers meet it: launched with explorer.serving's defaults on loopback, driven over HTTP
and with gradio_client. Nothing outside the app is served, uploads are limited and hostile ones get our
own message (never a server error), and one user's latent never shows up in another user's session."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
import pytest

from explorer import serving

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_safe(monkeypatch, tmp_path):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    kw = serving.launch_kwargs(checkpoints_dir=tmp_path)
    assert kw["server_name"] == "127.0.0.1"
    assert kw["allowed_paths"] == [] and kw["blocked_paths"] == [str(tmp_path.resolve())]
    assert kw["max_file_size"] == serving.MAX_FILE_SIZE and kw["enable_monitoring"] is False
    assert serving.queue_kwargs()["max_size"] > 0 and serving.queue_kwargs()["default_concurrency_limit"] > 0
    assert serving.analytics_enabled() is False
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    assert serving.launch_kwargs()["server_name"] == "0.0.0.0"  # asked for explicitly
    assert serving.launch_kwargs("10.1.2.3")["server_name"] == "10.1.2.3"


def test_prune_removes_only_old_entries(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    (old / "frames.gif").write_bytes(b"x")
    new.write_bytes(b"y")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_bytes(b"keep")
    (tmp_path / "link").symlink_to(outside)
    t = time.time()
    os.utime(old, (t - 7200, t - 7200))
    os.utime(tmp_path / "link", (t - 7200, t - 7200), follow_symlinks=False)
    assert serving.prune(tmp_path, 3600, now=t) == 2
    assert not old.exists() and new.exists() and outside.exists()


class Server(NamedTuple):
    url: str
    checkpoints: Path
    demo: Any  # the launched gr.Blocks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_checkpoints_dir):
    """The real app on the tiny checkpoints, launched as app.py does, on a free loopback port."""
    from explorer.ui import build_app, launch_kwargs

    demo = build_app(tiny_checkpoints_dir, "cpu")
    _, url, _ = serving.serve(demo, port=_free_port(), checkpoints_dir=tiny_checkpoints_dir,
                              prevent_thread_lock=True, quiet=True, **launch_kwargs())
    yield Server(url.rstrip("/"), Path(tiny_checkpoints_dir), demo)
    demo.close()


@pytest.mark.parametrize("path", [
    "/etc/passwd", "{ck}/vae-tiny/config.json", "{ck}/vae-tiny/model.safetensors", "{root}/README.md",
    "{root}/app.py", "README.md", "app.py", "../../../../etc/passwd", "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "..%2f..%2f..%2fetc%2fpasswd", "/proc/self/environ", "~/.bashrc",
])
def test_nothing_outside_the_app_is_served(server, path):
    url, ck = server.url, server.checkpoints
    target = path.format(ck=ck, root=ROOT)
    for prefix in ("/gradio_api/file=", "/file="):
        r = httpx.get(url + prefix + target, timeout=30)
        assert r.status_code in (403, 404), f"{prefix}{target} answered {r.status_code}"
        assert b"root:" not in r.content


def test_monitoring_and_analytics_are_off(server):
    url = server.url
    assert httpx.get(url + "/monitoring", timeout=30).status_code in (403, 404)
    assert server.demo.analytics_enabled is False


def test_queue_is_bounded_and_cache_cleaned(server):
    demo = server.demo
    assert demo._queue.max_size == serving.QUEUE_MAX_SIZE
    assert demo._queue.default_concurrency_limit == serving.CONCURRENCY_LIMIT
    assert demo.delete_cache == serving.CACHE_CLEANUP
    assert demo.server_name == "127.0.0.1"


def test_oversized_upload_is_refused_by_the_server(server):
    url = server.url
    big = b"\x89PNG\r\n\x1a\n" + b"\x00" * (serving.MAX_FILE_SIZE + 1)
    r = httpx.post(url + "/gradio_api/upload", files={"files": ("big.png", big, "image/png")}, timeout=60)
    assert r.status_code == 413


def test_hostile_uploads_get_our_message_not_a_server_error(server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    from test_uploads import CORPUS

    url = server.url
    client = Client(url, verbose=False)
    refused = {"truncated_png": "truncated", "png_20000x20000": "megapixel", "svg": "not an image",
               "text_named_png": "not an image", "empty_file": "empty", "eps_with_payload": "not an image",
               "png_8192x8192_bomb": "megapixel", "ztxt_bomb_png": "header"}
    for name, words in refused.items():
        suffix, build, _ = CORPUS[name]
        p = tmp_path / f"{name}{suffix}"
        p.write_bytes(build())
        with pytest.raises(AppError) as info:
            client.predict("vae-tiny", handle_file(str(p)), "auto", api_name="/reconstruct")
        assert words in str(info.value), f"{name}: {info.value}"
    for name in ("exif_rotated_jpeg", "png_16bit_grey", "animated_gif", "cmyk_jpeg", "palette_transparency_png"):
        suffix, build, _ = CORPUS[name]
        p = tmp_path / f"{name}{suffix}"
        p.write_bytes(build())
        seen, recon, metrics = client.predict("vae-tiny", handle_file(str(p)), "auto", api_name="/reconstruct")
        assert "PSNR" in metrics


@pytest.mark.parametrize("value", [
    {"path": "{tmp}/secret.png", "meta": {"_type": "gradio.FileData"}},
    {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}},
    {"path": "../../../../etc/passwd", "meta": {"_type": "gradio.FileData"}},
    {"path": "x.png", "url": "file:///etc/passwd", "meta": {"_type": "gradio.FileData"}},
    {"path": "x.png", "url": "http://127.0.0.1:1/", "meta": {"_type": "gradio.FileData"}},
    "{tmp}/secret.png",
])
def test_server_side_paths_cannot_be_passed_as_uploads(server, value, tmp_path):
    """A raw API call naming a file on the server (instead of uploading one) must not get that file
    decoded and sent back as the 'preprocessed input'. Raw HTTP: gradio_client would upload the file."""
    from PIL import Image

    Image.new("L", (28, 28), 255).save(tmp_path / "secret.png")  # a real image the server could read
    url = server.url
    if isinstance(value, dict):
        value = {**value, "path": value["path"].format(tmp=tmp_path)}
    else:
        value = value.format(tmp=tmp_path)
    config = httpx.get(url + "/config", timeout=30).json()
    comps = {c["id"]: c for c in config["components"]}
    dep = next(d for d in config["dependencies"] if d.get("api_name") == "reconstruct")
    data = []
    for i in dep["inputs"]:
        kind = comps[i]["type"]
        data.append("vae-tiny" if kind == "dropdown" else value if kind == "file"
                    else comps[i].get("props", {}).get("value"))
    r = httpx.post(url + "/gradio_api/call/reconstruct", json={"data": data}, timeout=30)
    assert r.status_code in (200, 400, 403, 422), r.text
    if r.status_code == 200:
        events = httpx.get(url + f"/gradio_api/call/reconstruct/{r.json()['event_id']}", timeout=120).text
        assert "event: error" in events and "event: complete" not in events, events[:500]


@pytest.mark.parametrize("call", [
    ("/explore_seed", ("vae-tiny", -5, 1.0)),
    ("/explore_seed", ("vae-tiny", 10**30, 1.0)),
    ("/set_latent", ("vae-tiny", "[1, 2")),
    ("/set_latent", ("vae-tiny", "[1e400, 0, 0, 0, 0, 0, 0, 0]")),
    ("/set_latent", ("vae-tiny", '{"__class__": 1}')),
    ("/load_run", ("../../etc",)),
    ("/load_run", ("vae-tiny/../../..",)),
    ("/interpolate", ("vae-tiny", "Seed", 0, "0", 0, None, "Upload", 1, "0", 0, None, 10, "slerp")),
    ("/interpolate", ("vae-tiny", "Seed", 0, "0", 0, None, "Seed", 1, "0", 0, None, 10**6, "slerp")),
])
def test_bad_api_arguments_get_a_clear_error(server, call):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url = server.url
    api_name, args = call
    try:
        Client(url, verbose=False).predict(*args, api_name=api_name)
    except AppError as e:
        msg = str(e)
        assert msg and "Something went wrong" not in msg, msg  # our own message, not the catch-all
    # or it was accepted (e.g. a seed folded into range): either way the server answered


def test_sessions_are_isolated(server):
    """Eight users, each with their own seed, interleaving calls from threads: every user's
    state-dependent answer is always their own latent's image, never another's."""
    from gradio_client import Client

    url = server.url
    n, rounds = 8, 6
    seen: dict[int, set[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def user(i: int) -> None:
        try:
            client = Client(url, verbose=False)
            mine = client.predict("vae-tiny", 100 + i, 1.0, api_name="/explore_seed")
            got = {mine}
            barrier.wait(timeout=120)  # every session has its own latent before anyone reads theirs
            for _ in range(rounds):
                # /explore_truncation with psi unchanged re-renders the session's current latent
                got.add(client.predict("vae-tiny", 1.0, api_name="/explore_truncation"))
            seen[i] = got
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert all(len(images) == 1 for images in seen.values()), "a session saw an image that was not its own"
    assert len({next(iter(v)) for v in seen.values()}) == n, "seeds should give different images"


def test_per_session_state_holds_no_model(tiny_checkpoints_dir):
    """gr.State is deep-copied per session: it must hold small values only (names, floats), no tensors."""
    from explorer.store import get_store
    from explorer.ui.common import new_state

    run = get_store(tiny_checkpoints_dir, "cpu").get("vae-tiny")
    state = new_state(run)

    def plain(v) -> bool:
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        if isinstance(v, (list, tuple)):
            return all(plain(x) for x in v)
        return v is None or isinstance(v, (str, int, float, bool))

    assert plain(state), state
    assert not any(isinstance(v, np.ndarray) for v in state.values())
