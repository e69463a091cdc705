"""Shared by the tabs: the build context, per-user state, and turning core errors into gr.Error."""

from __future__ import annotations

import functools
import html
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from explorer import core
from explorer.images import ImageInputError
from explorer.store import Run, Store
from trainer.checkpoint import CheckpointError

log = logging.getLogger("explorer")

# Errors whose message is written for the user: shown as they are.
USER_ERRORS = (ValueError, CheckpointError, ImageInputError, FileNotFoundError)


def friendly(fn):
    """Run a handler; a bad input becomes a gr.Error with the core's message, anything else a short
    gr.Error while the traceback goes to the log. Either way the app keeps serving."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as e:
            raise gr.Error(html.escape(str(e)), print_exception=False) from None
        except Exception as e:  # noqa: BLE001 - the server must survive whatever a handler hits
            log.exception("handler %s failed", getattr(fn, "__name__", fn))
            raise gr.Error(f"Something went wrong ({type(e).__name__}: {html.escape(str(e))}). The app is still running;"
                           " try again or pick another model.", print_exception=False) from None

    return wrapper


def bind(fn, store: Store):
    """``fn(store, ...)`` as a Gradio handler ``(...)`` with friendly errors."""
    return functools.partial(friendly(fn), store)


@dataclass
class Ctx:
    """What the tabs share while the app is built: the store, the initial run, and components by name."""

    store: Store
    run: str | None  # initial run name
    c: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.c[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.c[name] = value


def new_state(run: Run | None) -> dict:
    """A fresh session's state: only names and small vectors (gr.State deep-copies it per user)."""
    return {
        "run": run.name if run else None,
        "z": core.default_latent(run) if run else None,
        "seed": 0,
        "psi": 1.0,
        "note": "seed 0",
        "upload": None,  # {"run", "z", "file"} of the last reconstructed upload
    }


def current(store: Store, run_name: str, state: dict | None) -> tuple[Run, list[float]]:
    """The run and the session's current latent for it (a fresh one if the state belongs to another run)."""
    run = store.get(run_name)
    state = state or {}
    z = state.get("z")
    if state.get("run") != run.name or not z or len(z) != run.latent_dim:
        z = core.default_latent(run)
    return run, z


def with_z(state: dict | None, run: Run, z: list[float], **changes: Any) -> dict:
    out = dict(state or {})
    if out.get("run") != run.name:
        out.update(seed=None, psi=1.0)
    out.update(run=run.name, z=z, **changes)
    return out


_TMP = None


def tmp_path(name: str) -> str:
    """A fresh path for a file called ``name`` in this process's scratch directory (Gradio copies outputs
    into its own cache, so the name is what a download is saved as)."""
    global _TMP
    if _TMP is None:
        from explorer.serving import start_scratch_cleanup

        _TMP = tempfile.mkdtemp(prefix="latent-explorer-")
        start_scratch_cleanup(_TMP)  # GIFs are copied into Gradio's cache; old ones here are pruned
    folder = os.path.join(_TMP, uuid.uuid4().hex[:12])
    os.makedirs(folder)
    return os.path.join(folder, name)


UPLOAD_TYPES = [".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"]


def file_path(value: Any) -> str | None:
    """The server path of a gr.File value (a path string, or a dict/FileData from some clients)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("path") or value.get("name")
    return getattr(value, "path", None) or getattr(value, "name", None)
