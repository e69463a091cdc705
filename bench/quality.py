"""Quality of the shipped checkpoints against the textbook baselines, side by side, in one run.

    python bench/quality.py                     # everything: ~minutes on a 2-core CPU
    python bench/quality.py --samples 1000 --no-readme --no-write

Trains the textbook MLP GAN and MLP autoencoder (bench/baselines.py) at the shipped models' budget
(same data, epochs and batch size, read from their config.json), scores them and the shipped
checkpoints with the same code (trainer/evaluate.py: same evaluator, samples and seed), checks the bar
(each shipped model beats its baseline), and writes bench/results_quality.{md,json}, the metrics into
each shipped checkpoint's config.json, and the README's "## Quality" section.

The bar: GAN vs textbook GAN: lower FID-classifier, higher precision and higher recall.
AE and VAE vs textbook AE: lower reconstruction MSE and higher SSIM on the held-out split.
Exit status 1 when a shipped model misses it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.baselines import train_ae, train_gan  # noqa: E402
from bench.common import machine, machine_line, write_results  # noqa: E402
from trainer.checkpoint import read_meta  # noqa: E402
from trainer.evaluate import (  # noqa: E402
    DEFAULT_EVALUATOR,
    DEFAULT_SAMPLES,
    ROOT,
    classifier_accuracy,
    dataset_of,
    evaluate_model,
    evaluate_real,
    evaluate_run,
    load_evaluator,
    markdown_table,
)

SHIPPED = ("vae", "ae", "gan")
# which baseline each shipped kind is held against, and the bar: (metric, "lower" | "higher")
BAR = {
    "gan": ("gan", [("fid_classifier", "lower"), ("precision", "higher"), ("recall", "higher")]),
    "ae": ("ae", [("recon_mse", "lower"), ("recon_ssim", "higher")]),
    "vae": ("ae", [("recon_mse", "lower"), ("recon_ssim", "higher")]),
}
BASELINE_NAME = {"gan": "textbook MLP GAN", "ae": "textbook MLP AE"}


def _beats(ours: dict, base: dict, metric: str, direction: str) -> bool:
    a, b = ours.get(metric), base.get(metric)
    if a is None or b is None:
        return False
    return a < b if direction == "lower" else a > b


def replace_readme_section(readme: Path, heading: str, body: str) -> None:
    """Replace the text between ``heading`` and the next "## " heading (only that section)."""
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(rf"(^{re.escape(heading)}[ \t]*\n)(.*?)(?=^## |\Z)", re.S | re.M)
    if not pattern.search(text):
        raise SystemExit(f"{readme} has no {heading!r} section to fill")
    new = pattern.sub(lambda m: m.group(1) + "\n" + body.strip() + "\n\n", text, count=1)
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(readme)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="generated images per model")
    p.add_argument("--seed", type=int, default=0, help="seed of the baselines' training and of all samples")
    p.add_argument("--evaluator", default=DEFAULT_EVALUATOR)
    p.add_argument("--checkpoints", default=str(ROOT / "checkpoints"), help="where the shipped runs are")
    p.add_argument("--no-readme", action="store_true", help="do not rewrite README.md's Quality section")
    p.add_argument("--no-write", action="store_true", help="do not store metrics in the shipped config.json files")
    args = p.parse_args(argv)

    m = machine()
    m["load_average_at_start"] = round(os.getloadavg()[0], 1)  # the machine may be shared: times are upper bounds
    print(f"machine: {machine_line(m)}; load average {m['load_average_at_start']}")
    t_all = time.perf_counter()
    evaluator = load_evaluator(args.evaluator)
    ev_meta = read_meta(evaluator.path)
    ev_data = dataset_of(ev_meta)
    ev_acc = classifier_accuracy(evaluator.model, ev_data)
    print(f"evaluator {evaluator.path.name}: held-out accuracy {ev_acc:.4f} ({ev_data.test_idx.numel()} images)")

    # ---- (1) the shipped checkpoints ------------------------------------------------------------------
    shipped: dict[str, dict] = {}
    budgets: dict[str, tuple[int, int]] = {}
    data = None
    for kind in SHIPPED:
        run = Path(args.checkpoints) / f"{kind}-mnist5k"
        if not (run / "config.json").is_file():
            print(f"note: {run} is missing; skipped")
            continue
        meta = read_meta(run)
        tc = meta["train_config"]
        budgets[kind] = (int(tc["epochs"]), int(tc["batch_size"]))
        data = dataset_of(meta)
        res = evaluate_run(run, evaluator, n_samples=args.samples, seed=args.seed, write=not args.no_write)
        shipped[kind] = {"run": run.name, "budget": budgets[kind], "metrics": res}
        print(f"{run.name}: evaluated in {res['seconds']:.1f} s")
    if not shipped:
        print("error: no shipped checkpoints found; nothing to compare", file=sys.stderr)
        return 2

    # ---- (2) the textbook baselines at the same budget -------------------------------------------------
    baselines: dict[str, dict] = {}
    for kind in SHIPPED:
        if kind not in shipped:
            continue
        base_kind = BAR[kind][0]
        epochs, batch = budgets[kind]
        key = f"{base_kind}@{epochs}x{batch}"
        if key in baselines:
            continue
        t = time.perf_counter()
        train = train_gan if base_kind == "gan" else train_ae
        model = train(data, epochs, batch, args.seed, log=lambda s: None)
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        res = evaluate_model(model, data, evaluator, n_samples=args.samples, seed=args.seed)
        res["seconds"] = time.perf_counter() - t
        baselines[key] = {"name": BASELINE_NAME[base_kind], "epochs": epochs, "batch_size": batch,
                          "train_seconds": train_s, "metrics": res}
        print(f"{BASELINE_NAME[base_kind]} ({epochs} epochs, batch {batch}): trained in {train_s:.1f} s, "
              f"evaluated in {res['seconds']:.1f} s")
    real = evaluate_real(data, evaluator, n_samples=args.samples, seed=args.seed)

    # ---- (3) the bar -----------------------------------------------------------------------------------
    verdicts = []
    for kind, entry in shipped.items():
        base_kind, checks = BAR[kind]
        epochs, batch = entry["budget"]
        base = baselines[f"{base_kind}@{epochs}x{batch}"]
        results = [(metric, d, _beats(entry["metrics"], base["metrics"], metric, d)) for metric, d in checks]
        ok = all(r for *_, r in results)
        verdicts.append({"run": entry["run"], "baseline": base["name"], "passed": ok,
                         "checks": [{"metric": mt, "want": d, "ours": entry["metrics"].get(mt),
                                     "baseline": base["metrics"].get(mt), "passed": r} for mt, d, r in results]})

    # ---- (4) report ------------------------------------------------------------------------------------
    rows = []
    for kind in SHIPPED:
        if kind in shipped:
            e, b = shipped[kind]["budget"]
            rows.append((f"`{shipped[kind]['run']}` ({e} ep, batch {b})", shipped[kind]["metrics"]))
    for b in baselines.values():
        rows.append((f"{b['name']} ({b['epochs']} ep, batch {b['batch_size']})", b["metrics"]))
    rows.append(("real images (train split)", real))
    table = markdown_table(rows)
    eval_times = {e["run"]: e["metrics"]["seconds"] for e in shipped.values()}
    bar_lines = []
    for v in verdicts:
        parts = ", ".join(f"{c['metric']} {c['ours']:.4g} vs {c['baseline']:.4g} {'✓' if c['passed'] else '✗'}"
                          for c in v["checks"])
        bar_lines.append(f"- `{v['run']}` vs {v['baseline']}: **{'beats it' if v['passed'] else 'MISSES'}** ({parts})")
    for b in baselines.values():
        bm = b["metrics"]
        if bm.get("recall", 1.0) < 0.05 and bm.get("inception_score", 10.0) < 1.5:
            bar_lines.append(
                f"- note: the {b['name']} mode-collapsed at this budget (IS {bm['inception_score']:.2f}, recall "
                f"{bm['recall']:.3f}): every sample is the same image, and that image lies inside the real k-NN manifold, so its "
                f"precision is {bm['precision']:.3f}, which a model that draws varied digits cannot exceed; precision means "
                "something only beside recall (Kynkäänniemi et al. 2019), and its coverage "
                f"({bm.get('coverage', float('nan')):.3f}) shows the collapse."
            )
    total = time.perf_counter() - t_all
    md = f"""`python bench/quality.py` trains the textbook baselines at the shipped models' budget (same data,
epochs and batch size), scores them and the shipped checkpoints with the same code
(`trainer/evaluate.py`, as `python -m trainer evaluate RUN`) and rewrites this section.
Measured on {machine_line(m)} (1-minute load average {m['load_average_at_start']} at the
start: times are upper bounds on a shared machine); {args.samples} samples per model, seed {args.seed}, against the
{real['n_heldout']} held-out images.

{table}

- **FID-clf** is the Fréchet distance in the feature space of the shipped evaluator
  (`checkpoints/classifier-mnist5k`, a LeNet-style digit classifier, held-out accuracy {ev_acc:.1%}),
  not Inception-v3: it is comparable only between rows of this table. The real-images row is its floor
  at this sample size. **IS** is the classifier-based Inception Score (1 to 10). **precision/recall**:
  k-NN manifolds (k = 3) in the same feature space (Kynkäänniemi et al. 2019); **density/coverage**:
  their outlier-robust variants on the real manifold only (k = 5, Naeem et al. 2020; density ≈ 1 for
  matching distributions).
- **recon**: held-out reconstructions (per-image MSE, PSNR, SSIM). **ELBO / log p(x) IW**: VAE only,
  nats per image, importance-weighted with {shipped.get('vae', {}).get('metrics', {}).get('iw_k', 64)} samples.
- **NN-dist ratio** (memorisation): median pixel distance from samples to their nearest training image
  over the same for held-out images; well below 1 would mean the model replays training images.
  AE and textbook-AE samples come from a Gaussian fitted to their training encodings.

The bar (each shipped model against its textbook baseline):

{chr(10).join(bar_lines)}

Evaluation time per checkpoint on this machine ({args.samples} samples):
{", ".join(f"`{k}` {v:.1f} s" for k, v in eval_times.items())}. Whole run (training the baselines
included): {total:.0f} s.
"""
    payload = {"machine": m, "samples": args.samples, "seed": args.seed,
               "evaluator": {"path": str(evaluator.path.relative_to(ROOT)) if evaluator.path.is_relative_to(ROOT)
                             else str(evaluator.path), "accuracy": ev_acc},
               "shipped": shipped, "baselines": baselines, "real": real, "bar": verdicts,
               "total_seconds": total}
    out = write_results("quality", payload, "# Quality: shipped checkpoints vs textbook baselines\n\n" + md)
    print()
    print(table)
    print()
    print("\n".join(bar_lines))
    print(f"\nwrote {out} and {out.with_suffix('.json')}")
    if not args.no_readme:
        replace_readme_section(ROOT / "README.md", "## Quality", md)
        print("rewrote the '## Quality' section of README.md")
    return 0 if all(v["passed"] for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
