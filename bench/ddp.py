"""Training throughput (images/s) for 1 vs N data-parallel processes, launched the README's way.

Every run is ``torchrun --standalone --nproc_per_node=N -m trainer ...`` (N = 1 too, so the one-process
number goes through the same launcher); the rate is the trainer's own per-epoch ``img_per_s`` (the steps
only: no held-out loss, grids or checkpoint), the median over the epochs after the first (warm-up).

On CPU (gloo) the machine's cores are split between the processes (OMP_NUM_THREADS = cores / N), so
1 x 2 threads is compared with 2 x 1 thread; a 1 x 1 thread row shows what one core does. With CUDA
(NCCL) each process gets one GPU and N goes up to the number of GPUs; nothing else changes.

    python bench/ddp.py                           # CPU here; the GPUs (NCCL) where CUDA is available
    python bench/ddp.py --models vae --epochs 4   # quicker
Writes bench/results_ddp.md and bench/results_ddp.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent


def machine(device: str) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "backend": "nccl" if device == "cuda" else "gloo",
    }
    if device == "cuda":
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if hasattr(os, "getloadavg"):
        info["load_avg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def run(model: str, procs: int, threads: int | None, batch: int, args, workdir: Path) -> dict:
    """One torchrun launch; returns its measured rate."""
    out = workdir / f"{model}-{procs}x{batch}-{threads}t"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
           "-m", "trainer", "--model", model, "--arch", args.arch, "--dataset", args.dataset,
           "--epochs", str(args.epochs), "--batch-size", str(batch), "--device", args.device,
           "--latents-sample", "100", "--out", str(out)]
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    history = json.loads((out / "config.json").read_text())["history"]
    rates = [h["img_per_s"] for h in history[1:]] or [history[0]["img_per_s"]]
    return {"model": model, "procs": procs, "threads_per_proc": threads, "batch_per_proc": batch,
            "global_batch": batch * procs, "img_per_s": round(statistics.median(rates), 1),
            "epoch_rates": [round(x, 1) for x in rates], "wall_s": round(wall, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    p.add_argument("--models", default="vae,gan")
    p.add_argument("--arch", default="conv", choices=("conv", "mlp"))
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--epochs", type=int, default=3, help="the first is warm-up")
    p.add_argument("--batch-size", type=int, default=128, help="per process")
    p.add_argument("--procs", default=None, help="comma-separated process counts (default 1,2 on CPU, 1..GPUs)")
    args = p.parse_args()

    info = machine(args.device)
    if args.procs:
        counts = [int(n) for n in args.procs.split(",")]
    elif args.device == "cuda":
        counts = list(range(1, torch.cuda.device_count() + 1))
    else:
        counts = [1, 2]
    cores = info["cores"]
    print(f"machine: {info}", flush=True)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            plan = []  # (procs, threads per process, batch per process)
            for n in counts:
                threads = max(1, cores // n) if args.device == "cpu" else None
                plan.append((n, threads, args.batch_size))  # same per-process batch: global batch grows
                if n > 1:
                    plan.append((n, threads, args.batch_size // n))  # same global batch as one process
            if args.device == "cpu" and cores > 1:
                plan.insert(0, (1, 1, args.batch_size))
            for n, threads, batch in plan:
                row = run(model, n, threads, batch, args, Path(tmp))
                rows.append(row)
                print(f"{model}: {n} proc x {threads or '-'} threads, batch {batch}x{n}: {row['img_per_s']:.0f} img/s",
                      flush=True)
    if hasattr(os, "getloadavg"):
        info["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {"machine": info, "settings": {k: v for k, v in vars(args).items()}, "runs": rows,
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    (HERE / "results_ddp.json").write_text(json.dumps(result, indent=2) + "\n")
    (HERE / "results_ddp.md").write_text(_markdown(result))
    print(f"wrote {HERE / 'results_ddp.md'} and results_ddp.json")


def _markdown(result: dict) -> str:
    m, s = result["machine"], result["settings"]
    where = f"{m['cpu']}, {m['cores']} cores" + (f", {', '.join(m['gpus'])}" if m.get("gpus") else "")
    lines = [
        "# Data-parallel training throughput (bench/ddp.py)",
        "",
        f"Machine: {where}; {m['os']}; Python {m['python']}, torch {m['torch']}; device {m['device']}, "
        f"backend {m['backend']}. Load average at start {m.get('load_avg_at_start')}, at end "
        f"{m.get('load_avg_at_end')}. {result['date']}.",
        "",
        f"`torchrun --standalone --nproc_per_node=N -m trainer --model M --arch {s['arch']} --dataset {s['dataset']} "
        f"--epochs {s['epochs']} --batch-size B`; images/s of the training steps, median over epochs 2..{s['epochs']}.",
        "",
        "A load average above the core count means the machine was shared with other work while this ran: then",
        "each process got part of a core, and N processes together got a larger share than one, which flatters",
        "the N-process rows. Compare rows of one run only.",
        "",
        "| model | processes | threads / process | batch per process | global batch | images/s | vs best 1 process |",
        "|---|---|---|---|---|---|---|",
    ]
    base: dict[str, float] = {}
    for r in result["runs"]:
        if r["procs"] == 1:  # the faster of 1 thread and all cores (CPU), or one GPU
            base[r["model"]] = max(base.get(r["model"], 0.0), r["img_per_s"])
    for r in result["runs"]:
        ref = base.get(r["model"])
        rel = f"{r['img_per_s'] / ref:.2f}x" if ref and r["procs"] > 1 else ""
        lines.append(f"| {r['model']} | {r['procs']} | {r['threads_per_proc'] or '-'} | {r['batch_per_proc']} | "
                     f"{r['global_batch']} | {r['img_per_s']:.0f} | {rel} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
