"""Shared helpers for the bench scripts: the machine description and result writing."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    try:
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return info


def machine_line(m: dict | None = None) -> str:
    m = m or machine()
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    return f"{m['cpu']} ({m['cores']} cores, {m.get('memory_gb', '?')} GB{gpu}), torch {m['torch']}, {m['date']}"


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize_ms(samples_s: list[float]) -> dict:
    ms = [s * 1000 for s in samples_s]
    return {"n": len(ms), "p50_ms": percentile(ms, 0.5), "p95_ms": percentile(ms, 0.95),
            "mean_ms": statistics.fmean(ms) if ms else float("nan")}


def write_results(name: str, payload: dict, markdown: str) -> Path:
    """bench/results_NAME.json and bench/results_NAME.md; returns the markdown path."""
    (BENCH_DIR / f"results_{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md = BENCH_DIR / f"results_{name}.md"
    md.write_text(markdown.rstrip() + "\n")
    return md


def timeit(fn, repeat: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out
