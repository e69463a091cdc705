"""Start-up and memory: `python app.py` to the first served page, and resident memory with every
shipped model loaded.

    python bench/startup_memory.py [--runs 3]

Each run starts a fresh `python app.py` on a free localhost port, polls `/` until it answers 200
(that time is the start-up), then waits for the background pre-load of every model (which also
computes each model's first view) and reads the process's peak resident memory (VmHWM).
Targets: <= 10 s to the first page; <= 1.5 GB resident.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine, machine_line, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


def one_start(timeout: float = 120.0) -> dict:
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        started = None
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        started = time.perf_counter() - t0
                        break
            except OSError:
                time.sleep(0.05)
        if started is None:
            raise RuntimeError(f"app.py did not serve {url} within {timeout:.0f} s")
        # Wait for the background pre-load: memory stops growing for 3 s.
        last, stable_since = 0, time.perf_counter()
        while time.perf_counter() - stable_since < 3.0 and time.perf_counter() - t0 < timeout:
            rss = _status(proc.pid).get("VmRSS", 0)
            if abs(rss - last) > 2 * 2**20:
                last, stable_since = rss, time.perf_counter()
            time.sleep(0.25)
        mem = _status(proc.pid)
        return {"startup_s": started, "rss_mb": mem.get("VmRSS", 0) / 2**20, "peak_rss_mb": mem.get("VmHWM", 0) / 2**20}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    m = machine()
    print(f"machine: {machine_line(m)}")
    rows = []
    for i in range(args.runs):
        rows.append(one_start())
        print(f"start {i + 1}: {rows[-1]['startup_s']:.2f} s to first page, {rows[-1]['rss_mb']:.0f} MB resident "
              f"({rows[-1]['peak_rss_mb']:.0f} MB peak) with every model loaded")
    best = min(r["startup_s"] for r in rows)
    worst = max(r["startup_s"] for r in rows)
    peak = max(r["peak_rss_mb"] for r in rows)
    md = [f"# Start-up and memory\n\nMachine: {machine_line(m)}\n",
          "| start | to first page (s) | resident with all models (MB) | peak resident (MB) |", "|---|---|---|---|"]
    md += [f"| {i + 1} | {r['startup_s']:.2f} | {r['rss_mb']:.0f} | {r['peak_rss_mb']:.0f} |" for i, r in enumerate(rows)]
    md.append(f"\nTargets: ≤ 10 s to first page — worst {worst:.2f} s ({'met' if worst <= 10 else 'MISSED'}); "
              f"≤ 1.5 GB resident — peak {peak:.0f} MB ({'met' if peak <= 1536 else 'MISSED'}).")
    payload = {"machine": m, "rows": rows, "best_startup_s": best, "worst_startup_s": worst, "peak_rss_mb": peak}
    write_results("startup", payload, "\n".join(md))
    return payload


if __name__ == "__main__":
    main()
