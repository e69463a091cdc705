"""Training throughput: our trainer against a minimal textbook loop, same model, data and batch size.

    python bench/train_throughput.py                 # all kinds, 3 epochs each on mnist5k
    python bench/train_throughput.py --kinds vae --epochs 5

The textbook loop is what pytorch/examples writes: a DataLoader over a TensorDataset, zero_grad /
backward / step, nothing else. Our number is the whole ``trainer.train`` call (held-out loss, sample
grids, atomic checkpoint each epoch, latents at the end) divided into the images it trained on, so the
ratio shows what our data path, logging and checkpointing cost. Target: ratio >= 1.0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine, machine_line, write_results  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.data import load_dataset  # noqa: E402
from trainer.train import build_from_config, train  # noqa: E402

BATCH = {"vae": 128, "ae": 128, "gan": 64}


def textbook_loop(kind: str, epochs: int, seed: int = 0) -> float:
    """images/s of the pytorch/examples-style loop for the same architecture as our default ``kind``."""
    torch.manual_seed(seed)
    data = load_dataset("mnist5k")
    x = data.images[data.train_idx].float() / 255.0
    cfg = TrainConfig(model=kind)
    model = build_from_config(cfg, data.image_shape)
    loader = DataLoader(TensorDataset(x), batch_size=BATCH[kind], shuffle=True, drop_last=True)
    n = 0
    t = time.perf_counter()
    if kind == "gan":
        opt_g = torch.optim.Adam(model.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        bce = torch.nn.BCEWithLogitsLoss()
        for _ in range(epochs):
            for (real,) in loader:
                real = real * 2 - 1
                b = real.shape[0]
                ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)
                # (1) update D
                fake = torch.tanh(model.generator(torch.randn(b, model.latent_dim)))
                opt_d.zero_grad()
                loss_d = bce(model.discriminator(real), ones) + bce(model.discriminator(fake.detach()), zeros)
                loss_d.backward()
                opt_d.step()
                # (2) update G
                opt_g.zero_grad()
                loss_g = bce(model.discriminator(fake), ones)
                loss_g.backward()
                opt_g.step()
                model.update_ema()
                n += b
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(epochs):
            for (batch,) in loader:
                opt.zero_grad()
                loss, _ = model.loss(batch)
                loss.backward()
                opt.step()
                n += batch.shape[0]
    return n / (time.perf_counter() - t)


def our_trainer(kind: str, epochs: int, out: Path) -> tuple[float, float]:
    """(images/s over the whole train() call, mean in-loop images/s from the history)."""
    cfg = TrainConfig(model=kind, epochs=epochs, batch_size=BATCH[kind], out=str(out), device="cpu")
    t = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - t
    from trainer.checkpoint import read_meta

    meta = read_meta(out)
    n = meta["dataset"]["n_train"] // BATCH[kind] * BATCH[kind] * epochs
    rates = [h["img_per_s"] for h in meta["history"]]
    return n / wall, sum(rates) / len(rates)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kinds", default="vae,ae,gan")
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args(argv)
    m = machine()
    print(f"machine: {machine_line(m)}")
    import torchvision.utils  # noqa: F401 - a one-off import (seconds) that is no part of the data path
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            ref = textbook_loop(kind, args.epochs)
            whole, in_loop = our_trainer(kind, args.epochs, Path(tmp) / kind)
            rows.append({"kind": kind, "batch": BATCH[kind], "epochs": args.epochs, "textbook_img_s": ref,
                         "ours_whole_run_img_s": whole, "ours_in_loop_img_s": in_loop, "ratio": whole / ref,
                         "ratio_in_loop": in_loop / ref})
            print(f"{kind}: textbook {ref:.0f} img/s | ours {whole:.0f} img/s whole run "
                  f"({in_loop:.0f} in-loop) | ratio {whole / ref:.2f} whole run, {in_loop / ref:.2f} in-loop")
    md = [f"# Training throughput\n\nMachine: {machine_line(m)}\n",
          "| model | batch | epochs | textbook loop img/s | ours, whole run img/s | ours, in-loop img/s "
          "| ratio whole run | ratio in-loop |",
          "|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['kind']} | {r['batch']} | {r['epochs']} | {r['textbook_img_s']:.0f} | "
           f"{r['ours_whole_run_img_s']:.0f} | {r['ours_in_loop_img_s']:.0f} | {r['ratio']:.2f} | "
           f"{r['ratio_in_loop']:.2f} |" for r in rows]
    md.append("\nWhole run: every image trained on divided by the wall time of the whole `trainer.train` call "
              "(dataset loading, model set-up, per-epoch held-out loss, sample grids and atomic checkpoint, "
              "latents.npz at the end). In-loop: the epoch's own img/s from the run's history, the same span "
              "the textbook loop is timed over.")
    write_results("train", {"machine": m, "rows": rows}, "\n".join(md))
    return {"machine": m, "rows": rows}


if __name__ == "__main__":
    main()
