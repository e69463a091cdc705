"""Maps: PCA and t-SNE of 1k / 5k / 10k latents, first run and cached, and placing a new point.

    python bench/maps.py [--sizes 1000,5000,10000] [--run vae-mnist5k]

The latents are the shipped VAE's encodings of mnist5k (5,000 rows); for 10k the set is topped up
with encodings of the same images shifted by one pixel (real encodings of real digits, not noise).
Our t-SNE (explorer.maps) is timed against scikit-learn's and openTSNE's with the same data, the same
thread count and the same iteration budget. Targets: PCA of 5k <= 0.2 s; t-SNE of 5k no slower than the
fastest reference; a cached view <= 0.5 s; a new point on a t-SNE map <= 1 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine, machine_line, write_results  # noqa: E402
from explorer import maps  # noqa: E402
from explorer.store import Store  # noqa: E402


def _latents(run, n: int) -> np.ndarray:
    z = run.z
    if n <= len(z):
        return np.ascontiguousarray(z[:n])
    from trainer.data import load_dataset

    data = load_dataset(run.checkpoint.meta["dataset"]["name"])
    extra = []
    with torch.inference_mode():
        for idx in torch.arange(len(data.images)).split(1000):
            x = torch.roll(data.batch(idx), shifts=1, dims=3)
            extra.append(run.model.encode(x).numpy())
    return np.concatenate([z, *extra])[:n].astype(np.float32)


def _with_latents(run, z: np.ndarray):
    """The same run with ``z`` as its latents and a fresh cache (so nothing is reused between sizes)."""
    from dataclasses import replace

    ck = replace(run.checkpoint, latents={"z": z, "labels": np.full(len(z), -1, np.int64)})
    return replace(run, checkpoint=ck, _derived={}, _key_locks={})


def _sklearn(z, threads):
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, perplexity=30, init="pca", random_state=0, n_jobs=threads,
                max_iter=750).fit_transform(z)


def _opentsne(z, threads):
    from openTSNE import TSNE

    return np.asarray(TSNE(n_components=2, perplexity=30, initialization="pca", random_state=0, n_jobs=threads,
                           early_exaggeration_iter=250, n_iter=500).fit(z))


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", default="checkpoints")
    p.add_argument("--run", default="vae-mnist5k")
    p.add_argument("--sizes", default="1000,5000,10000")
    p.add_argument("--references", action=argparse.BooleanOptionalAction, default=True,
                   help="also time scikit-learn and openTSNE directly")
    args = p.parse_args(argv)
    m = machine()
    print(f"machine: {machine_line(m)}")
    store = Store(args.checkpoints, "cpu")
    base = store.get(args.run)
    threads = maps._threads()
    import sklearn.manifold  # noqa: F401 - one-off imports stay out of the first timed map
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        run = _with_latents(base, _latents(base, n))
        row = {"n": n, "threads": threads, "tsne_backend": maps.TSNE_BACKEND}
        row["pca_first_s"] = _time(lambda: maps.compute_map(run, "PCA", n))  # noqa: B023
        row["pca_cached_s"] = _time(lambda: maps.compute_map(run, "PCA", n))  # noqa: B023
        row["tsne_first_s"] = _time(lambda: maps.compute_map(run, "t-SNE", n, 30.0))  # noqa: B023
        row["tsne_cached_s"] = _time(lambda: maps.compute_map(run, "t-SNE", n, 30.0))  # noqa: B023
        tsne_map = maps.compute_map(run, "t-SNE", n, 30.0)
        z_new = torch.from_numpy(base.z[3] + 0.1)
        maps.place(run, tsne_map, z_new)  # first placement builds the reference tensor
        row["place_tsne_s"] = _time(lambda: maps.place(run, tsne_map, z_new + 0.05))  # noqa: B023
        row["place_tsne_first_s"] = _time(lambda: maps.place(_with_latents(run, run.z), tsne_map, z_new))  # noqa: B023
        if args.references:
            z64 = run.z.astype(np.float64)
            row["sklearn_tsne_s"] = _time(lambda: _sklearn(z64, threads))  # noqa: B023
            try:
                row["opentsne_tsne_s"] = _time(lambda: _opentsne(z64, threads))  # noqa: B023
            except ImportError:  # pip install "latent-explorer[tsne]" for this reference
                row["opentsne_tsne_s"] = float("nan")
            refs = [t for t in (row["sklearn_tsne_s"], row["opentsne_tsne_s"]) if t == t]
            row["ratio_vs_fastest"] = row["tsne_first_s"] / min(refs)
        rows.append(row)
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    md = [f"# Maps\n\nMachine: {machine_line(m)}; {threads} threads; latents of `{args.run}`.\n",
          "| points | PCA first (s) | PCA cached (s) | t-SNE first (s) | t-SNE cached (s) | scikit-learn t-SNE (s) "
          "| openTSNE (s) | ours / fastest | new point on t-SNE map (s) |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['n']} | {r['pca_first_s']:.3f} | {r['pca_cached_s']:.4f} | {r['tsne_first_s']:.1f} | "
                  f"{r['tsne_cached_s']:.4f} | {r.get('sklearn_tsne_s', float('nan')):.1f} | "
                  f"{r.get('opentsne_tsne_s', float('nan')):.1f} | {r.get('ratio_vs_fastest', float('nan')):.2f} | "
                  f"{r['place_tsne_first_s']:.3f} |")
    payload = {"machine": m, "run": args.run, "rows": rows}
    write_results("maps", payload, "\n".join(md))
    return payload


if __name__ == "__main__":
    main()
