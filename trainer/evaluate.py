"""Score checkpoints: ``python -m trainer evaluate RUN [RUN ...]`` prints a table and stores the numbers
in each checkpoint's config.json under "metrics".

Examples::

    python -m trainer evaluate checkpoints/vae-mnist5k
    python -m trainer evaluate checkpoints/*-mnist5k --samples 5000 --seed 1
    python -m trainer evaluate checkpoints/gan-mnist5k --evaluator checkpoints/classifier-mnist5k --no-write

Protocol (fixed seeds, so the same checkpoint gives the same numbers on the same machine):

- real images: the checkpoint's own held-out split (rebuilt from its training config: dataset, holdout,
  seed), at most ``--samples`` of them;
- generated images: ``--samples`` prior draws (``sample_latent`` with a generator seeded by ``--seed``);
- feature space: the evaluator's penultimate layer (a digit classifier trained on the dataset, see
  checkpoints/README.md). FID-classifier is not comparable to published Inception FIDs;
  ``fid_real`` (as many training images against the same held-out images) is the floor to read it against.
- precision/recall (k = 3) and density/coverage (k = 5) use equally many generated and held-out images
  (the first of the draws);
- AE/VAE add reconstruction MSE/PSNR/SSIM on the held-out split; a VAE trained with the Bernoulli
  (bce) loss adds the ELBO and the importance-weighted log-likelihood (nats per image; the pixels are
  grey levels in [0, 1], so these are the usual "Bernoulli on continuous MNIST" numbers);
- a classifier checkpoint is scored by its held-out accuracy.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer import metrics as M
from trainer.checkpoint import CheckpointError, finite_or_none, load_checkpoint, read_meta, update_meta
from trainer.data import DatasetError, ImageData, load_dataset
from trainer.models import has_encoder

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVALUATOR = "checkpoints/classifier-mnist5k"
DEFAULT_SAMPLES = 2000
DEFAULT_IW_K = 64
_BATCH = 500


class EvaluationError(ValueError):
    """A checkpoint cannot be evaluated (bad path, no evaluator for its images); the message says why."""


@dataclass
class Evaluator:
    """The classifier whose features define the metric space. ``model`` is in eval mode."""

    path: Path
    model: nn.Module
    meta: dict[str, Any]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.meta["dataset"]["image_shape"])

    @property
    def dataset(self) -> str:
        return self.meta["dataset"]["name"]

    @property
    def accuracy(self) -> float | None:
        return (self.meta.get("metrics") or {}).get("accuracy")

    @torch.no_grad()
    def outputs(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C, H, W) in [0, 1] -> features (N, feature_dim), logits (N, classes), float32 on CPU."""
        feats, logits = [], []
        for chunk in x01.split(_BATCH):
            f = self.model.features(chunk.float())
            feats.append(f)
            logits.append(self.model.head(f))
        return torch.cat(feats), torch.cat(logits)


def _resolve(path: str | Path) -> Path:
    """A path as given, or relative to the repository root when it is not there (for the default)."""
    p = Path(path).expanduser()
    if not p.exists() and not p.is_absolute() and (ROOT / p).exists():
        return ROOT / p
    return p


def _load(path: str | Path, what: str):
    p = _resolve(path)
    if not p.exists():
        raise EvaluationError(f"{what} {path} does not exist")
    if not p.is_dir():
        raise EvaluationError(f"{what} {path} is not a checkpoint directory (it is a file)")
    try:
        return load_checkpoint(p, "cpu", with_latents=False)
    except CheckpointError as e:
        raise EvaluationError(f"cannot load {what} {path}: {e}") from e


def load_evaluator(path: str | Path = DEFAULT_EVALUATOR) -> Evaluator:
    ck = _load(path, "evaluator")
    if ck.kind != "classifier":
        raise EvaluationError(
            f"evaluator {path} is a {ck.kind!r} checkpoint; it must be a classifier "
            "(train one: python -m trainer --model classifier --out checkpoints/classifier-DATASET)"
        )
    return Evaluator(ck.path, ck.model, ck.meta)


_DATA_CACHE: dict[tuple, ImageData] = {}


def dataset_of(meta: dict[str, Any]) -> ImageData:
    """The dataset and held-out split a checkpoint was trained with (cached per process)."""
    tc = meta.get("train_config") or {}
    ds = meta.get("dataset") or {}
    if "name" not in ds or "image_shape" not in ds:
        raise EvaluationError("config.json has no dataset section; cannot rebuild its held-out split")
    c, h, _ = ds["image_shape"]
    key = (ds["name"], h, c, tc.get("holdout", 0.1), tc.get("seed", 0), tc.get("data_root", "data"))
    if key not in _DATA_CACHE:
        try:
            _DATA_CACHE[key] = load_dataset(key[0], h, c, holdout=key[3], seed=key[4], root=key[5])
        except DatasetError as e:
            raise EvaluationError(f"cannot load the dataset the checkpoint was trained on: {e}") from e
    return _DATA_CACHE[key]


def heldout_subset(data: ImageData, n: int, seed: int) -> torch.Tensor:
    """At most ``n`` held-out indices, a seeded random subset (datasets may be stored sorted by class,
    so the first n would not be a fair sample)."""
    perm = torch.randperm(data.test_idx.numel(), generator=torch.Generator().manual_seed(seed))
    return data.test_idx[perm[:n]]


def _train_subset(data: ImageData, n: int, seed: int) -> torch.Tensor:
    perm = torch.randperm(data.train_idx.numel(), generator=torch.Generator().manual_seed(seed + 1))
    return data.train_idx[perm[:n]]


def _to_01(x: torch.Tensor, value_range) -> torch.Tensor:
    lo, hi = value_range
    return ((x.float() - lo) / (hi - lo)).clamp(0.0, 1.0)


@torch.no_grad()
def generate(model: nn.Module, n: int, seed: int, batch: int = _BATCH) -> torch.Tensor:
    """``n`` prior samples of ``model`` as (n, C, H, W) float32 in [0, 1], reproducible from ``seed``."""
    model.eval()
    z = model.sample_latent(n, torch.Generator().manual_seed(seed), "cpu")
    return torch.cat([_to_01(model.decode(zc), model.value_range) for zc in z.split(batch)])


@torch.no_grad()
def reconstruct(model: nn.Module, x01: torch.Tensor, batch: int = _BATCH) -> torch.Tensor:
    model.eval()
    return torch.cat([_to_01(model.decode(model.encode(xc)), model.value_range) for xc in x01.split(batch)])


@torch.no_grad()
def classifier_accuracy(model: nn.Module, data: ImageData, idx: torch.Tensor | None = None) -> float:
    """Top-1 accuracy of a classifier on ``idx`` (default: the held-out split)."""
    model.eval()
    idx = data.test_idx if idx is None else idx
    correct = 0
    for chunk in idx.split(_BATCH):
        correct += int((model.logits(data.batch(chunk)).argmax(1) == data.labels[chunk]).sum())
    return correct / idx.numel()


def evaluate_model(model: nn.Module, data: ImageData, evaluator: Evaluator, *, n_samples: int = DEFAULT_SAMPLES,
                   seed: int = 0, iw_k: int = DEFAULT_IW_K) -> dict[str, Any]:
    """Every metric that applies to ``model`` (any object keeping the model contract: ``value_range``,
    ``sample_latent``, ``decode``, optionally ``encode``), against ``data``'s held-out split."""
    if n_samples < 20:
        raise EvaluationError(f"--samples must be at least 20, got {n_samples}")
    torch.manual_seed(seed)
    model.eval()
    test_idx = heldout_subset(data, n_samples, seed)
    real = data.batch(test_idx)  # (N_real, C, H, W) in [0, 1]
    train = data.batch(data.train_idx)
    feats_real, logits_real = evaluator.outputs(real)
    fake = generate(model, n_samples, seed)
    if fake.shape[1:] != real.shape[1:]:
        raise EvaluationError(f"the model makes {tuple(fake.shape[1:])} images but its dataset has {tuple(real.shape[1:])}")
    feats_fake, logits_fake = evaluator.outputs(fake)
    # floor: as many training images as samples, against the same held-out images
    feats_ref, _ = evaluator.outputs(data.batch(_train_subset(data, n_samples, seed)))

    n_pr = min(len(feats_real), len(feats_fake))
    precision, recall = M.precision_recall(feats_real[:n_pr], feats_fake[:n_pr])
    density, coverage = M.density_coverage(feats_real[:n_pr], feats_fake[:n_pr])
    splits = 10 if n_samples >= 100 else 1
    is_mean, is_std = M.inception_score(logits_fake, splits)
    out: dict[str, Any] = {
        "fid_classifier": M.frechet_distance(feats_real, feats_fake),
        "fid_real": M.frechet_distance(feats_real, feats_ref),
        "inception_score": is_mean,
        "inception_score_std": is_std,
        "inception_score_real": M.inception_score(logits_real, min(splits, len(logits_real)))[0],
        "precision": precision,
        "recall": recall,
        "pr_k": 3,
        "pr_n": n_pr,
        "density": density,
        "coverage": coverage,
        "dc_k": 5,
    }
    mem = M.memorisation(fake, train, real)
    out["memorisation_ratio"] = mem["ratio"]
    out["memorisation_frac_closer_than_p5"] = mem["frac_closer_than_p5"]
    out["memorisation"] = mem

    if has_encoder(model):
        out.update({f"recon_{k}": v for k, v in M.reconstruction_metrics(real, reconstruct(model, real)).items()})
    config = getattr(model, "config", None)
    if getattr(model, "kind", None) == "vae" and getattr(config, "recon_loss", None) == "bce":
        gen = torch.Generator().manual_seed(seed)
        elbo = torch.cat([M.vae_elbo(model, xc, gen) for xc in real.split(_BATCH)])
        ll = torch.cat([M.vae_log_likelihood(model, xc, iw_k, gen) for xc in real.split(_BATCH)])
        out.update(elbo=float(elbo.mean()), log_likelihood_iw=float(ll.mean()), iw_k=iw_k)
    out["n_samples"] = n_samples
    out["n_heldout"] = int(test_idx.numel())
    out["seed"] = seed
    return out


def evaluate_real(data: ImageData, evaluator: Evaluator, *, n_samples: int = DEFAULT_SAMPLES,
                  seed: int = 0) -> dict[str, Any]:
    """The generative metrics of real training images in place of samples: what a perfect model of the
    training set would score against the held-out split (the ceiling for IS/precision/recall, the floor
    for FID-classifier at this many samples)."""
    real = data.batch(heldout_subset(data, n_samples, seed))
    fake = data.batch(_train_subset(data, n_samples, seed))
    feats_real, _ = evaluator.outputs(real)
    feats_fake, logits_fake = evaluator.outputs(fake)
    n_pr = min(len(feats_real), len(feats_fake))
    precision, recall = M.precision_recall(feats_real[:n_pr], feats_fake[:n_pr])
    density, coverage = M.density_coverage(feats_real[:n_pr], feats_fake[:n_pr])
    return {
        "fid_classifier": M.frechet_distance(feats_real, feats_fake),
        "inception_score": M.inception_score(logits_fake, 10 if n_samples >= 100 else 1)[0],
        "precision": precision,
        "recall": recall,
        "density": density,
        "coverage": coverage,
        "pr_n": n_pr,
        "n_samples": int(fake.shape[0]),
        "n_heldout": int(real.shape[0]),
    }


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return finite_or_none(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    return obj


def evaluate_run(run_dir: str | Path, evaluator: Evaluator | str | Path = DEFAULT_EVALUATOR, *,
                 n_samples: int = DEFAULT_SAMPLES, seed: int = 0, iw_k: int = DEFAULT_IW_K,
                 write: bool = True) -> dict[str, Any]:
    """Evaluate one checkpoint; with ``write``, store the result in its config.json under "metrics"."""
    if not isinstance(evaluator, Evaluator):
        evaluator = load_evaluator(evaluator)
    t0 = time.perf_counter()
    ck = _load(run_dir, "checkpoint")
    ds = ck.meta.get("dataset") or {}
    shape = tuple(ds.get("image_shape") or ck.model.config.image_shape)
    if ck.kind != "classifier":
        if shape != evaluator.image_shape:
            raise EvaluationError(
                f"{run_dir} makes {'x'.join(map(str, shape))} images but the evaluator {evaluator.path} reads "
                f"{'x'.join(map(str, evaluator.image_shape))}; train an evaluator on the same dataset and size "
                f"(python -m trainer --model classifier --dataset {ds.get('name', 'DATASET')} --out checkpoints/"
                f"classifier-{ds.get('name', 'DATASET')}) and pass it with --evaluator"
            )
        if ds.get("name") != evaluator.dataset:
            raise EvaluationError(
                f"{run_dir} was trained on {ds.get('name')!r} but the evaluator {evaluator.path} on "
                f"{evaluator.dataset!r}; its features would not mean anything there. Pass an evaluator trained "
                f"on {ds.get('name')!r} with --evaluator"
            )
    data = dataset_of(ck.meta)
    if ck.kind == "classifier":
        result: dict[str, Any] = {"accuracy": classifier_accuracy(ck.model, data), "n_heldout": int(data.test_idx.numel())}
    else:
        result = evaluate_model(ck.model, data, evaluator, n_samples=n_samples, seed=seed, iw_k=iw_k)
        result["evaluator"] = {"path": _display(evaluator.path), "accuracy": evaluator.accuracy}
    result["seconds"] = time.perf_counter() - t0
    result["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = _json_safe(result)
    if write:
        update_meta(ck.path, metrics=result)
    return result


def _display(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


# ---- tables ------------------------------------------------------------------------------------------

# (key, header, format); a blank cell where a metric does not apply
COLUMNS = [
    ("fid_classifier", "FID-clf ↓", "{:.2f}"),
    ("inception_score", "IS ↑", "{:.2f}"),
    ("precision", "precision ↑", "{:.3f}"),
    ("recall", "recall ↑", "{:.3f}"),
    ("density", "density", "{:.3f}"),
    ("coverage", "coverage ↑", "{:.3f}"),
    ("recon_mse", "recon MSE ↓", "{:.4f}"),
    ("recon_psnr", "PSNR dB ↑", "{:.2f}"),
    ("recon_ssim", "SSIM ↑", "{:.3f}"),
    ("elbo", "ELBO nats ↑", "{:.1f}"),
    ("log_likelihood_iw", "log p(x) IW ↑", "{:.1f}"),
    ("memorisation_ratio", "NN-dist ratio", "{:.2f}"),
    ("accuracy", "accuracy", "{:.4f}"),
]


def _cell(m: dict, key: str, fmt: str) -> str:
    v = m.get(key)
    return fmt.format(v) if isinstance(v, (int, float)) else ""


def markdown_table(rows: list[tuple[str, dict]], columns=None) -> str:
    """A markdown table, one row per (name, metrics); columns nobody has are left out."""
    columns = [c for c in (columns or COLUMNS) if any(isinstance(m.get(c[0]), (int, float)) for _, m in rows)]
    lines = ["| run | " + " | ".join(h for _, h, _ in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(_cell(m, k, f) for k, _, f in columns) + " |")
    return "\n".join(lines)


def text_table(rows: list[tuple[str, dict]]) -> str:
    """Metrics as rows and runs as columns: fits a terminal however many metrics there are."""
    keys = [(k, h, f) for k, h, f in COLUMNS if any(isinstance(m.get(k), (int, float)) for _, m in rows)]
    keys += [k for k in [("fid_real", "FID-clf real floor", "{:.2f}"), ("seconds", "seconds", "{:.1f}")]
             if any(isinstance(m.get(k[0]), (int, float)) for _, m in rows)]
    names = [n for n, _ in rows]
    w0 = max(len(h) for _, h, _ in keys)
    widths = [max(len(n), 10) for n in names]
    lines = [" " * w0 + "  " + "  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))]
    for k, h, f in keys:
        cells = [_cell(m, k, f).rjust(w) for (_, m), w in zip(rows, widths, strict=True)]
        lines.append(h.ljust(w0) + "  " + "  ".join(cells))
    return "\n".join(lines)


# ---- command line ------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    doc = (__doc__ or "").split("Examples::")
    parser = argparse.ArgumentParser(
        prog="python -m trainer evaluate",
        description="Score checkpoints against their held-out split and store the numbers in config.json.",
        epilog="examples:" + doc[1] if len(doc) > 1 else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="checkpoint directories")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                        help=f"generated images per checkpoint (default: {DEFAULT_SAMPLES})")
    parser.add_argument("--evaluator", default=DEFAULT_EVALUATOR,
                        help=f"classifier checkpoint whose features define the metrics (default: {DEFAULT_EVALUATOR})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior draws (default: 0)")
    parser.add_argument("--iw-k", type=int, default=DEFAULT_IW_K,
                        help=f"VAE: importance samples per image for log p(x) (default: {DEFAULT_IW_K})")
    parser.add_argument("--no-write", action="store_true", help="print only; leave config.json as it is")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = []
    try:
        evaluator = None
        for run in args.runs:
            if read_meta_kind(run) != "classifier" and evaluator is None:
                evaluator = load_evaluator(args.evaluator)
            result = evaluate_run(run, evaluator or args.evaluator, n_samples=args.samples, seed=args.seed,
                                  iw_k=args.iw_k, write=not args.no_write)
            rows.append((Path(run).name, result))
            print(f"{run}: evaluated in {result['seconds']:.1f} s", file=sys.stderr)
    except (EvaluationError, CheckpointError) as e:
        if rows:
            print(text_table(rows))
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(text_table(rows))
    if evaluator is not None:
        acc = f", held-out accuracy {evaluator.accuracy:.4f}" if evaluator.accuracy is not None else ""
        print(f"\nevaluator: {_display(evaluator.path)}{acc}; {args.samples} samples, seed {args.seed}")
    if not args.no_write:
        print("stored under \"metrics\" in each checkpoint's config.json")
    return 0


def read_meta_kind(run: str | Path) -> str | None:
    """The kind of a checkpoint, or None when it cannot be read (evaluate_run then says why)."""
    try:
        return read_meta(_resolve(run)).get("kind")
    except (CheckpointError, OSError):
        return None
