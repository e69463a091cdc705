"""Run every speed bench of the explorer and trainer in one go; write bench/results.md and results.json.

    python bench/run_all.py            # ~15 minutes on a 2-core CPU
    python bench/run_all.py --quick    # fewer moves, repeats and sizes: a smoke run

Each bench also runs alone (see its --help) and writes its own results_NAME.md/.json. Run it on an
otherwise idle machine: every number is wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import core_compute, maps, slider_latency, startup_memory, train_throughput  # noqa: E402
from bench.common import BENCH_DIR, machine, machine_line  # noqa: E402

SECTIONS = [("slider", "results_slider.md"), ("core", "results_core.md"), ("maps", "results_maps.md"),
            ("train", "results_train.md"), ("startup", "results_startup.md")]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    m = machine()
    print(f"machine: {machine_line(m)}")
    t0 = time.perf_counter()
    results = {
        "slider": slider_latency.main(["--moves", "40" if args.quick else "200"]),
        "core": core_compute.main(["--repeat", "50" if args.quick else "300"]),
        "maps": maps.main(["--sizes", "1000" if args.quick else "1000,5000,10000"]),
        "train": train_throughput.main(["--epochs", "1" if args.quick else "5"]),
        "startup": startup_memory.main(["--runs", "1" if args.quick else "3"]),
    }
    total = time.perf_counter() - t0
    parts = [f"# Benchmark results\n\nOne run of `python bench/run_all.py{' --quick' if args.quick else ''}`"
             f" ({total / 60:.1f} min). Machine: {machine_line(m)}.\n"]
    for _, fname in SECTIONS:
        text = (BENCH_DIR / fname).read_text().strip().split("\n", 1)
        parts.append("## " + text[0].lstrip("# ") + "\n" + (text[1] if len(text) > 1 else ""))
    (BENCH_DIR / "results.md").write_text("\n\n".join(parts) + "\n")
    (BENCH_DIR / "results.json").write_text(json.dumps({"machine": m, "seconds": total, **results}, indent=2,
                                                       default=str) + "\n")
    print(f"wrote {BENCH_DIR / 'results.md'} in {total / 60:.1f} min")


if __name__ == "__main__":
    main()
