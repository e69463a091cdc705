"""Latent Explorer: the web app over the checkpoints in ./checkpoints.

    python app.py                                  # http://127.0.0.1:7860, models on cuda/mps/cpu
    python app.py --checkpoints /data/runs --port 8000 --device cpu
    python app.py --host 0.0.0.0 --share           # reachable from the network, plus a public link

GRADIO_SERVER_NAME, GRADIO_SERVER_PORT and the other GRADIO_* variables are honoured; a flag given
on the command line wins over them.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", default=str(HERE / "checkpoints"),
                   help="directory holding one sub-directory per run (default: %(default)s)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                   help="where models run; auto picks cuda, then mps, then cpu (default: %(default)s)")
    p.add_argument("--host", default=None,
                   help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=None,
                   help="port (default: $GRADIO_SERVER_PORT or the first free one from 7860)")
    p.add_argument("--share", action="store_true", help="also create a temporary public gradio.live link")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: 1 on CPU, which keeps single-image decodes fastest"
                        " under load; 0 = torch's default)")
    p.add_argument("--no-warm", action="store_true",
                   help="do not pre-load every model in the background after start-up")
    return p.parse_args(argv)


def warm(store, names: list[str]) -> None:
    """Load every run and compute what its first view needs, so the first user of each model waits less."""
    from explorer import core

    for name in names:
        try:
            run = store.get(name)
            core.controls(store, run)
        except Exception as e:  # noqa: BLE001 - a broken run must not stop the others; the UI will say why
            print(f"note: could not pre-load {name}: {e}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from explorer import serving
    from explorer.store import get_store, pick_device
    from explorer.ui import build_app, launch_kwargs

    try:
        device = pick_device(args.device)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    threads = args.threads if args.threads is not None else (1 if device.type == "cpu" else 0)
    if threads > 0:
        torch.set_num_threads(threads)
    store = get_store(args.checkpoints, args.device)
    runs = store.explorable()
    if not runs:
        print(f"note: no explorable runs in {args.checkpoints}; the app will say how to train one", file=sys.stderr)
    demo = build_app(store=store)
    host = args.host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = args.port or (int(os.environ["GRADIO_SERVER_PORT"]) if os.environ.get("GRADIO_SERVER_PORT") else None)
    print(f"Latent Explorer: {len(runs)} model(s) from {args.checkpoints} on {device}")
    # Bounded queue, upload limit, nothing served from disk, cache cleanup: see explorer/serving.py.
    serving.serve(demo, host, port, share=args.share, checkpoints_dir=args.checkpoints, prevent_thread_lock=True,
                  **launch_kwargs())
    if not args.no_warm:  # once the server is up, so start-up never waits for it
        threading.Thread(target=warm, args=(store, [r.name for r in runs]), daemon=True).start()
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
