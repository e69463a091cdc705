"""Core compute of the explorer, per shipped checkpoint, on the device the app would use.

    python bench/core_compute.py [--checkpoints checkpoints] [--device cpu] [--repeat 200]

Measures what one user action costs without the web framework: decode one latent to a PNG data URI
(the slider path), encode one uploaded image (decode + preprocess + encoder, or GAN projection),
PCA projection of one latent onto the sliders, and a 32-frame interpolation with GIF encoding.
Targets on CPU: decode <= 5 ms; 32-frame interpolation + GIF <= 300 ms.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine, machine_line, summarize_ms, timeit, write_results  # noqa: E402
from explorer import core  # noqa: E402
from explorer.render import render  # noqa: E402
from explorer.store import Store  # noqa: E402

TARGETS = {"decode_to_png_uri": 5.0, "interpolate_32_gif": 300.0}


def _upload_png(run) -> bytes:
    """A real digit from the run's stored pixels (or its own sample, for a GAN) as PNG bytes, 3x larger
    and in RGB, as a phone photo of a digit would arrive."""
    if run.images is not None:
        a = run.images[7].transpose(1, 2, 0)
    else:
        a = render(run.model, torch.from_numpy(run.z[7]))
    im = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a).convert("RGB").resize((84, 84))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def bench_run(store: Store, name: str, repeat: int) -> dict:
    run = store.get(name)
    core.controls(store, run)  # what the first page view computes (PCA basis, ranges)
    rng = np.random.default_rng(0)
    zs = [core.seed_latent(run, int(s)) for s in rng.integers(0, 10**6, size=repeat + 2)]
    it = iter(zs * 2)
    out = {"run": name, "kind": run.kind, "latent_dim": run.latent_dim, "device": str(run.device)}
    out["decode_to_png_uri"] = summarize_ms(timeit(lambda: core.image_uri(run, next(it)), repeat))
    out["decode_only"] = summarize_ms(timeit(lambda: render(run.model, torch.tensor(zs[0])), repeat))
    pcs = core.pc_values(run, zs[0])
    out["pca_slider_to_latent"] = summarize_ms(timeit(lambda: core.latent_from_pcs(run, zs[0], pcs), repeat))
    out["pca_projection"] = summarize_ms(timeit(lambda: core.pc_values(run, zs[1]), repeat))
    png = _upload_png(run)
    n_up = 20 if run.has_encoder else 3

    def encode_upload():
        run.cached("uploads", dict).clear()  # measure the work, not the upload cache
        core.upload(store, run, png)

    out["encode_upload"] = summarize_ms(timeit(encode_upload, n_up, warmup=1))
    out["encode_method"] = "encoder" if run.has_encoder else "projection (optimisation)"
    with tempfile.TemporaryDirectory() as tmp:
        gif = str(Path(tmp) / "a.gif")
        out["interpolate_32_gif"] = summarize_ms(
            timeit(lambda: core.interpolation(run, zs[0], zs[1], 32, "slerp", gif), 20))
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", default="checkpoints")
    p.add_argument("--device", default="auto")
    p.add_argument("--repeat", type=int, default=200)
    p.add_argument("--threads", type=int, default=1, help="torch threads, as the app sets on CPU (default 1)")
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    m = machine()
    print(f"machine: {machine_line(m)}")
    store = Store(args.checkpoints, args.device)
    rows = [bench_run(store, r.name, args.repeat) for r in store.explorable()]
    md = [f"# Core compute\n\nMachine: {machine_line(m)}; torch threads {torch.get_num_threads()}.\n",
          "| run | device | decode → PNG URI p50 / p95 (ms) | decode only p50 | PCA projection p50 | "
          "encode upload p50 (ms) | 32-frame interpolation + GIF p50 (ms) |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['run']} | {r['device']} | {r['decode_to_png_uri']['p50_ms']:.2f} / "
                  f"{r['decode_to_png_uri']['p95_ms']:.2f} | {r['decode_only']['p50_ms']:.2f} | "
                  f"{r['pca_projection']['p50_ms']:.3f} | {r['encode_upload']['p50_ms']:.1f} ({r['encode_method']}) | "
                  f"{r['interpolate_32_gif']['p50_ms']:.0f} |")
        print(md[-1])
    worst_decode = max(r["decode_to_png_uri"]["p50_ms"] for r in rows)
    worst_gif = max(r["interpolate_32_gif"]["p50_ms"] for r in rows)
    md.append(f"\nTargets: decode ≤ {TARGETS['decode_to_png_uri']:.0f} ms — worst p50 {worst_decode:.2f} ms "
              f"({'met' if worst_decode <= TARGETS['decode_to_png_uri'] else 'MISSED'}); 32-frame interpolation "
              f"+ GIF ≤ {TARGETS['interpolate_32_gif']:.0f} ms — worst p50 {worst_gif:.0f} ms "
              f"({'met' if worst_gif <= TARGETS['interpolate_32_gif'] else 'MISSED'}).")
    payload = {"machine": m, "rows": rows, "targets_ms": TARGETS}
    write_results("core", payload, "\n".join(md))
    return payload


if __name__ == "__main__":
    main()
