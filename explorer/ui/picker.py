"""Models tab and the model selector: every run in the checkpoints directory, switching loads it."""

from __future__ import annotations

import math

import gradio as gr

from explorer.store import RunInfo, Store

COLUMNS = ["Run", "Kind", "Dataset", "Latent", "Image", "Epochs", "Metrics", "Status"]
# Shown in the table when present (all metrics are in the run's details).
KEY_METRICS = ("fid_classifier", "inception_score", "precision", "recall", "recon_psnr", "log_likelihood_iw",
               "accuracy", "test_accuracy")


def _num(v) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def flat_metrics(metrics: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Metric name/value pairs from config.json's (possibly nested) metrics dict, numbers formatted."""
    out: list[tuple[str, str]] = []
    for k, v in metrics.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.extend(flat_metrics(v, name + "."))
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out.append((name, _num(v) if v is not None else "–"))
    return out


def table(runs: list[RunInfo]) -> list[list[str]]:
    rows = []
    for r in runs:
        metrics = flat_metrics(r.metrics)
        key = [(k, v) for k, v in metrics if k in KEY_METRICS] or metrics[:4]
        shown = ", ".join(f"{k} {v}" for k, v in key) + (" …" if len(metrics) > len(key) else "")
        if r.error:
            status = f"cannot open: {r.error}"
        elif r.kind == "classifier":
            status = "evaluator network (labels GAN samples; not explorable)"
        else:
            status = "ready"
        image = "×".join(str(s) for s in r.image_shape[1:]) + (f"×{r.image_shape[0]}" if r.image_shape else "")
        rows.append([r.name, r.kind, r.dataset, "" if r.latent_dim is None else str(r.latent_dim), image,
                     str(r.epochs), shown or "–", status])
    return rows or [["(no runs)", "", "", "", "", "", "", ""]]


def details(store: Store, name: str | None) -> str:
    """Markdown about one run: what it is and every metric it has."""
    if not name:
        return (f"No explorable model in `{store.root}`. Train one, e.g. "
                "`python -m trainer --model vae --epochs 10`, then press **Refresh**.")
    info = next((r for r in store.list() if r.name == name), None)
    if info is None:
        return f"`{name}` is no longer in `{store.root}`; press **Refresh**."
    lines = [f"### {info.name}",
             f"{info.kind.upper()} · dataset **{info.dataset}** · latent size **{info.latent_dim}** · images "
             f"{'×'.join(map(str, info.image_shape))} · {info.epochs} epochs · on **{store.device}**"]
    metrics = flat_metrics(info.metrics)
    if metrics:
        lines.append("\n| metric | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in metrics))
    else:
        lines.append("\nNo evaluation metrics yet (`python -m trainer evaluate` adds them).")
    if info.label_names:
        lines.append(f"\nLabels: {', '.join(info.label_names[:20])}")
    return "\n".join(lines)


def refresh(store: Store, current: str | None):
    runs = store.list()
    names = [r.name for r in runs if r.explorable]
    value = current if current in names else (names[0] if names else None)
    return gr.update(value=table(runs)), gr.update(choices=names, value=value)


def select_row(store: Store, evt: gr.SelectData):
    """Clicking a row of the table selects that run (if it can be explored)."""
    runs = store.list()
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    if not isinstance(row, int) or not 0 <= row < len(runs):
        return gr.update()
    info = runs[row]
    if not info.explorable:
        raise gr.Error(f"{info.name} cannot be explored: "
                       + (info.error or f"it is a {info.kind}, not an AE, VAE or GAN"))
    return gr.update(value=info.name)


def default_run(store: Store) -> str | None:
    """The run a new page opens with: a VAE if there is one (the richest controls), else the first."""
    runs = store.explorable()
    for kind in ("vae", "ae", "gan"):
        for r in runs:
            if r.kind == kind:
                return r.name
    return None
