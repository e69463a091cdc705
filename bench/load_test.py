"""Load test: many concurrent users on the launched app, through the same API the browser uses.

    python bench/load_test.py                           # app.py on ./checkpoints, 20 users, 60 s
    python bench/load_test.py --users 5 --seconds 15 --checkpoints /tmp/runs
    python bench/load_test.py --url http://127.0.0.1:7860   # an app that is already running (loopback only)

Each user is a ``gradio_client.Client`` (its own session and ``gr.State``) that keeps doing what people
do: drags latent sliders (most calls), picks seeds, interpolates between two seeds, uploads a digit to
reconstruct, and now and then uploads a broken file, which must be refused with our own message. It
reports every unexpected error (target: zero), p50/p95 latency per action, and the server's resident
memory before, during and after (target: flat once warm). Loopback only; every loop is bounded by time
and by a maximum number of calls.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import machine, machine_line, percentile, write_results  # noqa: E402

MAX_CALLS_PER_USER = 100_000
CALL_TIMEOUT = 120.0  # seconds before a single call counts as an error
# action -> share of calls
MIX = {"slider_dims": 0.40, "slider_pcs": 0.15, "truncation": 0.05, "seed": 0.10, "interpolate": 0.10,
       "upload": 0.15, "hostile_upload": 0.05}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _wait_up(url: str, proc: subprocess.Popen | None, log: Path | None, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the app exited ({proc.returncode}):\n{log.read_text()[-3000:] if log else ''}")
        try:
            if httpx.get(url + "/config", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the app did not come up at {url} within {timeout:.0f} s")


def _files(tmp: Path) -> tuple[list[str], list[str]]:
    """A few digit-like uploads (light stroke on dark, and dark on light) and a few broken files."""
    good = []
    rng = np.random.default_rng(0)
    for i in range(6):
        a = np.zeros((56, 56), np.uint8)
        x0 = int(rng.integers(14, 30))
        a[10:46, x0:x0 + 8] = 255
        if i % 2:
            a = 255 - a
        p = tmp / f"digit{i}.png"
        Image.fromarray(a).save(p)
        good.append(str(p))
    jpg = tmp / "photo.jpg"
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), np.uint8)).save(jpg, quality=80)
    good.append(str(jpg))
    bad = []
    buf = io.BytesIO()
    Image.new("L", (64, 64), 128).save(buf, "PNG")
    for name, data in (("truncated.png", buf.getvalue()[:60]), ("notes.png", b"not an image\n" * 20),
                       ("drawing.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"), ("empty.png", b"")):
        p = tmp / name
        p.write_bytes(data)
        bad.append(str(p))
    return good, bad


class User(threading.Thread):
    def __init__(self, i: int, url: str, runs: list[tuple[str, bool, bool]], ranges: dict[str, list[tuple[float, float]]],
                 files: tuple[list[str], list[str]], deadline: float, results: dict, lock: threading.Lock):
        super().__init__(name=f"user-{i}", daemon=True)
        self.i, self.url, self.deadline = i, url, deadline
        self.run_name, self.has_encoder, self.dim_sliders = runs[i % len(runs)]
        self.ranges = ranges
        self.good, self.bad = files
        self.rng = random.Random(i)
        self.results, self.lock = results, lock

    def _record(self, action: str, seconds: float | None, error: str | None = None) -> None:
        with self.lock:
            r = self.results[action]
            if seconds is not None:
                r["latency"].append(seconds)
            if error:
                r["errors"].append(error)

    def _positions(self, api_name: str) -> list[float]:
        """Slider positions a person could set: each within its slider's range."""
        return [round(self.rng.uniform(lo, hi), 3) for lo, hi in self.ranges[api_name]]

    def run(self) -> None:
        from gradio_client import Client, handle_file
        from gradio_client.exceptions import AppError

        try:
            client = Client(self.url, verbose=False)
        except Exception as e:  # noqa: BLE001 - a user that cannot connect is an error to report
            self._record("connect", None, f"{type(e).__name__}: {e}")
            return
        actions, weights = list(MIX), list(MIX.values())
        for _ in range(MAX_CALLS_PER_USER):
            if time.monotonic() >= self.deadline:
                break
            action = self.rng.choices(actions, weights)[0]
            if action in ("upload", "hostile_upload") and not self.has_encoder:
                action = "seed"  # a GAN reconstructs by optimisation: a different, slower benchmark
            if action == "slider_dims" and not self.dim_sliders:
                action = "slider_pcs"  # the UI offers per-dimension sliders only up to MAX_DIM_SLIDERS
            name = self.run_name
            if action == "slider_dims":
                args, api = (name, *self._positions("explore_dims")), "/explore_dims"
            elif action == "slider_pcs":
                args, api = (name, *self._positions("explore_pcs")), "/explore_pcs"
            elif action == "truncation":
                args, api = (name, self.rng.uniform(0.3, 1.0)), "/explore_truncation"
            elif action == "seed":
                args, api = (name, self.rng.randrange(100_000), 1.0), "/explore_seed"
            elif action == "interpolate":
                args = (name, "Seed", self.rng.randrange(1000), "any", 0, None,
                        "Seed", self.rng.randrange(1000), "any", 0, None, 10, self.rng.choice(["slerp", "lerp"]))
                api = "/interpolate"
            elif action == "upload":
                args, api = (name, handle_file(self.rng.choice(self.good)), "auto"), "/reconstruct"
            else:
                args, api = (name, handle_file(self.rng.choice(self.bad)), "auto"), "/reconstruct"
            t = time.perf_counter()
            try:
                client.submit(*args, api_name=api).result(timeout=CALL_TIMEOUT)
                dt = time.perf_counter() - t
                if action == "hostile_upload":
                    self._record(action, dt, "a broken file was accepted")
                else:
                    self._record(action, dt)
            except AppError as e:
                dt = time.perf_counter() - t
                ours = action == "hostile_upload" and "Something went wrong" not in str(e) and str(e)
                self._record(action, dt, None if ours else f"AppError: {e}")
            except Exception as e:  # noqa: BLE001 - timeouts, connection errors, 5xx: all count
                self._record(action, time.perf_counter() - t, f"{type(e).__name__}: {e}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    p.add_argument("--url", default=None, help="test an app already running on this loopback URL")
    p.add_argument("--no-write", action="store_true", help="print only; do not write bench/results_load_test.*")
    args = p.parse_args(argv)
    if not 1 <= args.users <= 200 or not 0 < args.seconds <= 3600:
        p.error("--users must be 1..200 and --seconds 0..3600")

    from explorer.core import MAX_DIM_SLIDERS
    from explorer.store import list_runs

    runs = [(r.name, r.kind in ("ae", "vae"), (r.latent_dim or 0) <= MAX_DIM_SLIDERS)
            for r in list_runs(args.checkpoints) if r.explorable]
    if not runs:
        raise SystemExit(f"no explorable runs in {args.checkpoints}; train one first (see README)")

    proc, log = None, None
    if args.url:
        url = args.url.rstrip("/")
        if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("--url must be a loopback address: this script only loads your own machine")
    else:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tempfile.mkdtemp(prefix="load-test-")) / "app.log"
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
        with open(log, "w") as f:
            proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--checkpoints", args.checkpoints,
                                     "--port", str(port), "--host", "127.0.0.1", "--device", "cpu"],
                                    cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_up(url, proc, log)
        return _drive(args, url, runs, proc)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _slider_ranges(config: dict) -> dict[str, list[tuple[float, float]]]:
    """(minimum, maximum) of every slider input of the slider events, from the app's config."""
    comps = {c["id"]: c for c in config["components"]}
    out = {}
    for dep in config["dependencies"]:
        if dep.get("api_name") in ("explore_dims", "explore_pcs"):
            sliders = [comps[i]["props"] for i in dep["inputs"] if comps[i].get("type") == "slider"]
            out[dep["api_name"]] = [(float(p["minimum"]), float(p["maximum"])) for p in sliders]
    return out


def _drive(args, url: str, runs: list[tuple[str, bool, bool]], proc: subprocess.Popen | None) -> int:
    from gradio_client import Client

    # Warm-up: every run loaded once (the first load of a model is not what a slider move costs).
    warm = Client(url, verbose=False)
    ranges = _slider_ranges(warm.config)
    for name, *_ in runs:
        warm.predict(name, 0, 1.0, api_name="/explore_seed")
    pid = proc.pid if proc is not None else None
    rss: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample_rss() -> None:
        t0 = time.monotonic()
        while not stop.is_set() and pid is not None:
            m = _rss_mb(pid)
            if m is not None:
                rss.append((time.monotonic() - t0, m))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    results: dict = defaultdict(lambda: {"latency": [], "errors": []})
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="load-test-files-") as tmp:
        files = _files(Path(tmp))
        load_before = os.getloadavg()[0]
        deadline = time.monotonic() + args.seconds
        t_start = time.perf_counter()
        users = [User(i, url, runs, ranges, files, deadline, results, lock) for i in range(args.users)]
        for u in users:
            u.start()
        for u in users:
            u.join(args.seconds + CALL_TIMEOUT + 60)
        wall = time.perf_counter() - t_start
        load_after = os.getloadavg()[0]
    stop.set()
    sampler.join(5)

    rows, all_lat, errors = [], [], []
    for action in [*MIX, "connect"]:
        if action not in results:
            continue
        r = results[action]
        lat = [x * 1000 for x in r["latency"]]
        all_lat += lat
        errors += [f"{action}: {e}" for e in r["errors"]]
        rows.append({"action": action, "calls": len(lat), "errors": len(r["errors"]),
                     "p50_ms": percentile(lat, 0.5), "p95_ms": percentile(lat, 0.95)})
    mem = {}
    if rss:
        start, end = rss[0][1], rss[-1][1]
        half = [m for t, m in rss if t >= rss[-1][0] / 2]
        mem = {"rss_start_mb": start, "rss_peak_mb": max(m for _, m in rss), "rss_end_mb": end,
               "growth_mb": end - start, "growth_second_half_mb": (half[-1] - half[0]) if half else 0.0}
    total = len(all_lat)
    payload = {"machine": machine(), "users": args.users, "seconds": args.seconds, "wall_s": wall,
               "runs": [r[0] for r in runs], "calls": total, "calls_per_s": total / wall if wall else 0.0,
               "errors": len(errors), "error_samples": errors[:20], "p50_ms": percentile(all_lat, 0.5),
               "p95_ms": percentile(all_lat, 0.95), "by_action": rows, "memory": mem,
               "load_average_1min": [load_before, load_after]}

    lines = [f"# Load test: {args.users} users for {args.seconds:.0f} s", "",
             f"Machine: {machine_line(payload['machine'])}. App: `app.py --device cpu` on "
             f"{', '.join(payload['runs'])}, loopback, gradio_client sessions on the same machine."
             f" 1-minute load average {load_before:.1f} before, {load_after:.1f} after"
             " (the users' own threads and anything else running share the cores).", "",
             f"**{total} calls, {payload['calls_per_s']:.1f}/s, {len(errors)} unexpected errors;"
             f" p50 {payload['p50_ms']:.0f} ms, p95 {payload['p95_ms']:.0f} ms.**", "",
             "| action | calls | errors | p50 ms | p95 ms |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['action']} | {r['calls']} | {r['errors']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} |" for r in rows]
    if mem:
        lines += ["", f"Server RSS: {mem['rss_start_mb']:.0f} MB after warm-up, peak {mem['rss_peak_mb']:.0f} MB,"
                      f" {mem['rss_end_mb']:.0f} MB at the end (growth {mem['growth_mb']:+.0f} MB;"
                      f" {mem['growth_second_half_mb']:+.0f} MB over the second half)."]
    lines += ["", "hostile_upload calls are broken files; they count as errors only if accepted or answered"
                  " with anything but our own message."]
    if errors:
        lines += ["", "Errors (first 20):", *[f"- {e}" for e in errors[:20]]]
    md = "\n".join(lines)
    print(md)
    if not args.no_write:
        print(f"\nwritten to {write_results('load_test', payload, md)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
