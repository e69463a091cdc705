"""How the app is served: safe defaults for a demo that strangers use.

- binds to 127.0.0.1 unless a host is asked for (``--host`` or ``GRADIO_SERVER_NAME``);
- a bounded queue (``QUEUE_MAX_SIZE`` waiting requests; beyond that a user is told the queue is full
  instead of waiting forever) with ``CONCURRENCY_LIMIT`` workers per queued event. The slider path runs
  outside the queue (``queue=False``, one HTTP round trip) and is bounded by ``MAX_THREADS``;
- uploads limited to ``MAX_FILE_SIZE`` bytes by the server before any handler runs (the same limit
  ``explorer.images`` enforces again on every file it opens);
- nothing served from disk but Gradio's own cache of this app's uploads and outputs: no
  ``allowed_paths``, and the checkpoints directory explicitly blocked;
- Gradio's cache of uploads and outputs cleaned every ``CACHE_CLEANUP[0]`` s of files older than
  ``CACHE_CLEANUP[1]`` s, and the app's own scratch directories likewise (``start_scratch_cleanup``);
- analytics off unless ``GRADIO_ANALYTICS_ENABLED`` says otherwise; the monitoring dashboard and the
  MCP server off.

No gradio import: ``serve`` only calls methods of the ``gr.Blocks`` it is given.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from explorer.images import MAX_BYTES

DEFAULT_HOST = "127.0.0.1"
QUEUE_MAX_SIZE = 64
CONCURRENCY_LIMIT = 4  # per queued event: projections, maps and interpolations are CPU-heavy
MAX_THREADS = 40  # Starlette's thread pool for the un-queued slider path (Gradio's default)
MAX_FILE_SIZE = MAX_BYTES
CACHE_CLEANUP = (900, 3600)  # (every seconds, older than seconds)
STATE_SESSION_CAPACITY = 2000  # per-user gr.State kept for this many recent sessions


def analytics_enabled() -> bool:
    """Gradio's usage analytics: off unless GRADIO_ANALYTICS_ENABLED is explicitly true."""
    return os.environ.get("GRADIO_ANALYTICS_ENABLED", "").strip().lower() in ("1", "true", "yes")


def resolve_host(host: str | None = None) -> str:
    """``host``, else $GRADIO_SERVER_NAME, else loopback only."""
    return host or os.environ.get("GRADIO_SERVER_NAME") or DEFAULT_HOST


def queue_kwargs() -> dict[str, Any]:
    return {"max_size": QUEUE_MAX_SIZE, "default_concurrency_limit": CONCURRENCY_LIMIT}


def launch_kwargs(host: str | None = None, port: int | None = None, *, share: bool = False,
                  checkpoints_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Keyword arguments for ``Blocks.launch`` (add css/theme and the like on top)."""
    blocked = [str(Path(checkpoints_dir).resolve())] if checkpoints_dir is not None else []
    return {
        "server_name": resolve_host(host),
        "server_port": port,
        "share": share,
        "max_file_size": MAX_FILE_SIZE,
        "allowed_paths": [],
        "blocked_paths": blocked,
        "max_threads": MAX_THREADS,
        "state_session_capacity": STATE_SESSION_CAPACITY,
        "enable_monitoring": False,
        "strict_cors": True,
        "mcp_server": False,
        "ssr_mode": False,
        "show_error": False,  # handlers raise gr.Error with their own message; nothing else leaks
    }


def serve(demo: Any, host: str | None = None, port: int | None = None, *, share: bool = False,
          checkpoints_dir: str | os.PathLike | None = None, **extra: Any) -> Any:
    """Queue and launch ``demo`` (a ``gr.Blocks``) with the defaults above; ``extra`` goes to ``launch``
    (css, theme, prevent_thread_lock, ...) and may override them."""
    if getattr(demo, "delete_cache", None) is None:
        demo.delete_cache = CACHE_CLEANUP  # read when the server starts
    demo.queue(**queue_kwargs())
    return demo.launch(**{**launch_kwargs(host, port, share=share, checkpoints_dir=checkpoints_dir), **extra})


def prune(directory: str | os.PathLike, older_than: float, now: float | None = None) -> int:
    """Delete entries of ``directory`` last modified more than ``older_than`` seconds ago; returns how many.
    Symlinks are removed, never followed."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for e in entries:
        try:
            if now - e.stat(follow_symlinks=False).st_mtime <= older_than:
                continue
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path, ignore_errors=True)
            else:
                os.unlink(e.path)
            removed += 1
        except OSError:
            continue
    return removed


def start_scratch_cleanup(directory: str | os.PathLike, every: float = CACHE_CLEANUP[0],
                          older_than: float = CACHE_CLEANUP[1]) -> threading.Event:
    """Prune ``directory`` every ``every`` seconds in a daemon thread (files the app writes before Gradio
    copies them into its own cache). Set the returned event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            prune(directory, older_than)

    threading.Thread(target=loop, name="scratch-cleanup", daemon=True).start()
    return stop
