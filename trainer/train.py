"""The training loop for every model family, on CPU, one GPU, or many processes under torchrun.

Reads top to bottom: set-up, resume, then per epoch (1) the steps, (2) held-out loss, (3) the log line,
sample grid and checkpoint. Under torchrun (WORLD_SIZE > 1) each process takes every WORLD_SIZE-th
index of one shared shuffle (a distributed sampler without the DataLoader), gradients are averaged by
DistributedDataParallel, and only rank 0 writes files or prints.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from trainer import checkpoint as ckpt
from trainer.config import TrainConfig
from trainer.data import ImageData, load_dataset
from trainer.device import pick_device
from trainer.models import build_model, has_decoder, has_encoder

PREVIEW_N = 64  # images in a sample grid (8 x 8)


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, bad resume); the message says what to do."""


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_name: str) -> tuple[_Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(), pick_device(device_name)
    d = _Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = pick_device(device_name)
    if device.type == "mps":
        raise ValueError("data-parallel training on MPS is not supported (no collective backend for it); "
                         "run without torchrun, or add --device cpu")
    if device.type == "cuda":
        if d.local_rank >= torch.cuda.device_count():
            raise ValueError(f"process {d.local_rank} on this machine has no GPU of its own ({torch.cuda.device_count()}"
                             " visible): set --nproc_per_node to at most the number of GPUs, or use --device cpu")
        torch.cuda.set_device(d.local_rank)
        device = torch.device("cuda", d.local_rank)
    if not dist.is_initialized():  # NCCL on GPUs (bound to this rank's GPU), gloo on CPU
        if device.type == "cuda":
            dist.init_process_group(backend="nccl", device_id=device)
        else:
            dist.init_process_group(backend="gloo")
    return d, device


def build_from_config(cfg: TrainConfig, image_shape: tuple[int, int, int], num_classes: int = 10) -> nn.Module:
    """The model a TrainConfig describes, for images of ``image_shape`` (C, H, W)."""
    c, h, _ = image_shape
    model_cfg: dict = {"arch": cfg.arch, "image_size": h, "channels": c}
    if cfg.latent_dim is not None:
        model_cfg["latent_dim"] = cfg.latent_dim
    if cfg.width is not None:
        model_cfg["width"] = cfg.width
    if cfg.hidden is not None:
        model_cfg["hidden"] = [int(s) for s in cfg.hidden.split(",")]
    if cfg.model in ("ae", "vae"):
        model_cfg["recon_loss"] = cfg.recon_loss
    if cfg.model == "vae":
        model_cfg["beta"] = cfg.beta
    if cfg.model == "gan":
        model_cfg.update(loss=cfg.gan_loss, ema=cfg.ema)
    if cfg.model == "classifier":
        model_cfg["num_classes"] = num_classes
        model_cfg.pop("arch")
    return build_model(cfg.model, model_cfg)


def _to_model_range(x01: torch.Tensor, model: nn.Module) -> torch.Tensor:
    lo, hi = model.value_range
    return x01 if (lo, hi) == (0.0, 1.0) else x01 * (hi - lo) + lo


def _to_01(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    lo, hi = model.value_range
    return ((x - lo) / (hi - lo)).clamp(0, 1)


def train(cfg: TrainConfig) -> Path:
    """Train as ``cfg`` says and return the checkpoint directory."""
    cfg.validate()
    d, device = _init_distributed(cfg.device)
    out = Path(cfg.resolved_out())
    try:
        return _train(cfg, d, device, out)
    finally:
        if d.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, d: _Dist, device: torch.device, out: Path) -> Path:
    # ---- set-up ------------------------------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    data = load_dataset(cfg.dataset, cfg.image_size, cfg.channels, holdout=cfg.holdout, seed=cfg.seed,
                        root=cfg.data_root)
    train_idx = data.train_idx
    epochs = cfg.epochs
    if cfg.dry_run:
        train_idx, epochs = _spread(train_idx, 256, cfg.seed).sort().values, 1  # every class, in index order
    if cfg.model == "classifier" and not data.has_labels:
        raise TrainingError(f"--model classifier needs labels, and dataset {data.name!r} has none")
    model = build_from_config(cfg, data.image_shape, max(2, len(data.label_names))).to(device)
    generative = has_decoder(model)
    is_gan = model.kind == "gan"
    lr = cfg.resolved_lr()
    betas = ((0.0, 0.9) if cfg.gan_loss == "wgan-gp" else (0.5, 0.999)) if is_gan else (0.9, 0.999)
    if is_gan:
        opt_g = torch.optim.Adam(model.generator.parameters(), lr=lr, betas=betas)
        opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=lr, betas=betas)
        optimizers = {"g": opt_g, "d": opt_d}
    else:
        optimizers = {"model": torch.optim.Adam(model.parameters(), lr=lr, betas=betas)}
    critic_steps = cfg.critic_steps or (5 if is_gan and cfg.gan_loss == "wgan-gp" else 1)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else nullcontext
    # The shuffle and the noise drawn here for a whole global batch (GAN latents, sliced per rank) come from
    # generators identical on every rank, so a sample's noise does not depend on how the batch is split.
    # Noise drawn inside a loss for this rank's share only (VAE ε, WGAN-GP α) comes from ``loss_gen``:
    # the same generator with one process (as always), a per-rank stream under torchrun (set after resume).
    shuffle_gen = torch.Generator().manual_seed(cfg.seed)
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + 1)
    loss_gen = noise_gen
    preview_z = model.sample_latent(PREVIEW_N, torch.Generator(device=device).manual_seed(1234), device) \
        if generative else None
    # held-out images spread over the whole split (datasets are often stored sorted by class)
    preview_x = data.batch(_spread(data.test_idx, 32, cfg.seed), device)

    # ---- resume ------------------------------------------------------------------------------------
    history: list[dict] = []
    start_epoch, start_batch, resume_perm = 0, 0, None
    if cfg.resume:
        history, start_epoch, start_batch, resume_perm = _resume(out, model, optimizers, scaler, shuffle_gen,
                                                                 noise_gen, device, d, cfg.batch_size * d.world)
        if start_epoch >= epochs:
            if not generative or (out / ckpt.LATENTS_NAME).exists():
                if d.main:
                    print(f"{out} already finished {start_epoch} epochs (asked for {epochs}); nothing to do")
                return out
            epochs = start_epoch  # trained to the end, but its final save was cut short: write it now
            if d.main:
                print(f"{out} finished {epochs} epochs but its final checkpoint was interrupted; writing it now")
    elif d.main and (out / ckpt.CONFIG_NAME).exists():
        print(f"note: {out} exists and will be overwritten (use --resume to continue it)")

    if d.world > 1:
        if train_idx.numel() < d.world:
            raise TrainingError(f"{train_idx.numel()} training images cannot be shared by {d.world} processes")
        # Per-rank streams for noise that sees only this rank's share (dropout, VAE ε, WGAN-GP α); the
        # resume position is mixed in so a resumed run does not replay the noise of its first epochs.
        rank_seed = hash((cfg.seed, d.rank, start_epoch, start_batch)) & (2**63 - 1)
        torch.manual_seed(rank_seed)
        loss_gen = torch.Generator(device=device).manual_seed(rank_seed)
    # DDP wraps exactly what is trained: the whole model, or the GAN's generator and discriminator apart
    # (never generator_ema, which is not a submodule of either). Its forward is the loss (AE/VAE/classifier).
    train_net = _ddp(model, device) if d.world > 1 and not is_gan else model
    g_net = _ddp(model.generator, device) if d.world > 1 and is_gan else (model.generator if is_gan else None)
    d_net = _ddp(model.discriminator, device) if d.world > 1 and is_gan else (model.discriminator if is_gan else None)

    n_params = sum(p.numel() for p in model.parameters())
    if d.main:
        shape = f"latent {model.latent_dim}" if generative else f"{model.config.num_classes} classes"
        print(f"training {model.kind} ({cfg.arch}, {shape}, {n_params / 1e6:.2f}M params) "
              f"on {data.name} {tuple(data.image_shape)}: {train_idx.numel()} train / {data.test_idx.numel()} "
              f"held-out images, {epochs} epochs, batch {cfg.batch_size}x{d.world}, lr {lr:g}, "
              f"device {device}{' + amp ' + str(amp_dtype).split('.')[-1] if use_amp else ''} -> {out}")

    meta_base = {
        "train_config": cfg.to_dict(),
        "dataset": {
            "name": data.name, "image_shape": list(data.image_shape), "value_range": list(model.value_range),
            "label_names": data.label_names, "n_train": int(train_idx.numel()), "n_test": int(data.test_idx.numel()),
        },
        "world_size": d.world,
    }
    interrupted = False
    if d.world > 1:
        stop = _install_stop_request()  # SIGINT/SIGTERM only ask; all ranks then stop before the same step
    else:
        _install_sigterm()
    epoch, bi, perm = start_epoch, start_batch, resume_perm
    finished = start_epoch  # epochs whose steps are all done
    t_run = time.perf_counter()
    try:
        for epoch in range(start_epoch, epochs):
            # ---- (1) the steps ------------------------------------------------------------------------
            model.train()
            if perm is None:
                perm = train_idx[torch.randperm(train_idx.numel(), generator=shuffle_gen)]
            global_batch = cfg.batch_size * d.world
            n_batches = max(1, perm.numel() // global_batch) if perm.numel() >= global_batch else 1
            if cfg.dry_run:
                n_batches = min(n_batches, 3)
            sums: dict[str, float] = {}
            seen, bad_run, skipped = 0, 0, 0
            t0 = time.perf_counter()
            bar = tqdm(range(bi, n_batches), desc=f"epoch {epoch + 1}/{epochs}", leave=False,
                       disable=not d.main, dynamic_ncols=True)
            for bi in bar:
                if d.world > 1 and _any_rank(stop.is_set(), device):
                    raise KeyboardInterrupt  # every rank stops before this same batch; rank 0 saves below
                chunk = perm[bi * global_batch:(bi + 1) * global_batch]
                idx = chunk[d.rank::d.world]  # this process's share of the global batch
                if is_gan:
                    x = _to_model_range(data.batch(idx, device), model)
                    parts = _gan_step(model, g_net, d_net, optimizers, scaler, autocast, x, noise_gen, loss_gen,
                                      critic_steps, d, chunk.numel())
                else:
                    parts = _step(train_net, optimizers["model"], scaler, autocast, _inputs(model, data, idx, device),
                                  loss_gen, d)
                if parts is None:  # non-finite loss: the step was skipped
                    skipped += 1
                    bad_run += 1
                    if bad_run >= cfg.max_bad_steps:
                        raise TrainingError(
                            f"training diverged: {bad_run} consecutive steps had a NaN/Inf loss at epoch "
                            f"{epoch + 1}. Lower --lr (now {lr:g}) or --resume from the last good checkpoint."
                        )
                    continue
                bad_run = 0
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v * idx.numel()
                seen += idx.numel()
                if d.main and bi % 10 == 0:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in parts.items()}, refresh=False)
            bar.close()
            dt = time.perf_counter() - t0
            bi, perm = 0, None

            # ---- (2) held-out loss --------------------------------------------------------------------
            row = {"epoch": epoch + 1, **{k: v / max(seen, 1) for k, v in sums.items()}}
            if d.world > 1:
                row = _average_across(row, device)
            row["img_per_s"] = seen * d.world / dt if dt > 0 else 0.0
            row["seconds"] = dt
            if skipped:
                row["skipped_steps"] = skipped
            if not is_gan and d.main:  # only rank 0's numbers are logged; the others go on to the next step
                row.update(_heldout_loss(model, data, device, cfg.batch_size))
            history.append(row)
            finished = epoch + 1  # an interrupt from here on keeps this epoch; only its save may be cut short

            # ---- (3) log line, sample grid, checkpoint ------------------------------------------------
            if d.main:
                tqdm.write(_log_line(row, epochs))
                if generative:
                    _save_grids(out, epoch + 1, model, preview_z, preview_x)
                state = _training_state(epoch + 1, 0, None, optimizers, scaler, shuffle_gen, noise_gen)
                ckpt.save_checkpoint(out, model, {**meta_base, "history": history}, training_state=state)
    except KeyboardInterrupt:
        interrupted = True
        if d.main:
            if finished > epoch:  # the interrupt hit this epoch's log line or checkpoint, after its steps
                epoch, bi, perm = finished, 0, None
                print(f"\ninterrupted after epoch {epoch}; saving a resumable checkpoint to {out}")
            else:
                print(f"\ninterrupted in epoch {epoch + 1} at batch {bi}; saving a resumable checkpoint to {out}")
            state = _training_state(epoch, bi, perm, optimizers, scaler, shuffle_gen, noise_gen)
            try:
                ckpt.save_checkpoint(out, model, {**meta_base, "history": history}, training_state=state)
            except KeyboardInterrupt:  # a second Ctrl-C: the swap is atomic, so the last checkpoint is intact
                print(f"interrupted again: save abandoned; {out} keeps its last complete checkpoint")
                raise SystemExit(130) from None
            print(f"resume with the same command plus --resume --out {out}")

    if interrupted:
        if d.world > 1:
            dist.barrier()  # all ranks exit together, once rank 0's resumable checkpoint is written
        raise SystemExit(130)
    # ---- the end: latents for the explorer, final checkpoint, summary ------------------------------
    if d.main:
        try:
            latents = _latents(model, data, device, cfg, train_idx) if generative else None
            state = _training_state(epochs, 0, None, optimizers, scaler, shuffle_gen, noise_gen)
            ckpt.save_checkpoint(out, model, {**meta_base, "history": history}, latents=latents,
                                 training_state=state)
        except KeyboardInterrupt:  # the last epoch's checkpoint is intact; --resume writes the final one
            print(f"\ninterrupted while writing the final checkpoint; {out} keeps all {epochs} epochs."
                  f" Run again with --resume --out {out} to finish it")
            raise SystemExit(130) from None
        total = time.perf_counter() - t_run
        rates = [h["img_per_s"] for h in history[-epochs + start_epoch:]] or [0.0]
        print(f"done: {epochs} epochs in {total:.1f} s, {np.mean(rates):.0f} img/s; checkpoint {out}")
        print(f"explore it: python app.py --checkpoints {out.parent}")
    if d.world > 1:
        dist.barrier()  # the other ranks wait for rank 0's final files instead of tearing the group down early
    return out


# ---- steps -------------------------------------------------------------------------------------------

def _finite(t: torch.Tensor, d: _Dist) -> bool:
    """Whether ``t`` is finite on every rank. One decision for all: ranks that skipped the backward alone
    would leave the others waiting in DDP's gradient all-reduce forever."""
    ok = torch.isfinite(t).all()
    if d.world > 1:
        ok = ok.to(torch.int32).reshape(1)
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok)  # note: forces a device sync


def _any_rank(flag: bool, device) -> bool:
    """True on every rank if ``flag`` is true on any rank."""
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t)


def _ddp(module: nn.Module, device: torch.device) -> DDP:
    """DDP with its defaults: parameters and buffers broadcast from rank 0 at wrapping, buffers (BatchNorm
    running statistics) again before every forward, no search for unused parameters (every trained
    parameter is used by every step, so none is needed)."""
    return DDP(module, device_ids=[device.index] if device.type == "cuda" else None)


def _inputs(model, data: ImageData, idx: torch.Tensor, device) -> tuple:
    """Positional inputs of a model's loss: (x,) for AE/VAE, (x, labels) for the classifier."""
    x = data.batch(idx, device)
    return (x, data.labels[idx].to(device)) if model.kind == "classifier" else (x,)


def _step(net, opt, scaler, autocast, inputs: tuple, noise_gen, d: _Dist) -> dict | None:
    """One optimizer step of a single-loss model (AE, VAE, classifier); None if the loss was not finite."""
    with autocast():
        loss, parts = net(*inputs, generator=noise_gen)
    if not _optimize(loss, opt, scaler, d):
        return None
    scaler.update()
    return {"loss": loss.item(), **{k: float(v) for k, v in parts.items()}}


def _optimize(loss: torch.Tensor, opt, scaler, d: _Dist) -> bool:
    """Backward and step on ``loss``; False, with no step, when it is NaN/Inf (on any rank)."""
    opt.zero_grad(set_to_none=True)
    if not _finite(loss, d):
        return False
    scaler.scale(loss).backward()
    scaler.step(opt)
    return True


def _gan_step(model, g_net, d_net, optimizers, scaler, autocast, x_real, noise_gen, loss_gen, critic_steps,
              d: _Dist, n_global: int) -> dict | None:
    """One D update (``critic_steps`` of them) and one G update on this rank's share ``x_real`` of a global
    batch of ``n_global``. Latents are drawn for the whole global batch from the rank-shared ``noise_gen``
    and sliced like the images, so the run does not depend on how many processes share the batch."""
    opt_g, opt_d = optimizers["g"], optimizers["d"]
    # (1) update D: real -> 1, fake -> 0 (or the Wasserstein critic)
    for step in range(critic_steps):
        z = model.sample_latent(n_global, noise_gen, x_real.device)[d.rank::d.world]  # (B, latent_dim)
        last = step == critic_steps - 1
        with autocast():
            # The last fakes keep their graph: the G step reuses them (one generator forward per
            # iteration, as in dcgan); d_loss detaches them, so D's update never reaches G.
            with torch.set_grad_enabled(last):
                x_fake = model.generate(z, g_net)
            loss_d, parts_d = model.d_loss(x_real, x_fake, loss_gen, critic=d_net)
        if not _optimize(loss_d, opt_d, scaler, d):
            return None
    # (2) update G: make D call the fakes real. D is frozen and called unwrapped: no D grads, no all-reduce.
    model.discriminator.requires_grad_(False)
    with autocast():
        loss_g, parts_g = model.g_loss(x_fake, critic=model.discriminator)
    model.discriminator.requires_grad_(True)
    if not _optimize(loss_g, opt_g, scaler, d):
        return None
    scaler.update()
    model.update_ema()
    return {k: float(v) for k, v in {**parts_d, **parts_g}.items()}


@torch.no_grad()
def _heldout_loss(model, data: ImageData, device, batch_size: int) -> dict:
    model.eval()
    total, n = {}, 0
    gen = torch.Generator(device=device).manual_seed(0)
    for idx in data.test_idx.split(max(batch_size, 256)):
        loss, parts = model.loss(*_inputs(model, data, idx, device), generator=gen)
        for k, v in {"loss": loss, **parts}.items():
            total[f"test_{k}"] = total.get(f"test_{k}", 0.0) + float(v) * idx.numel()
        n += idx.numel()
    model.train()
    return {k: v / n for k, v in total.items()}


def _average_across(row: dict, device) -> dict:
    keys = [k for k in row if k != "epoch"]
    t = torch.tensor([row[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {"epoch": row["epoch"], **{k: float(v) / dist.get_world_size() for k, v in zip(keys, t, strict=True)}}


def _log_line(row: dict, epochs: int) -> str:
    skip = {"epoch", "img_per_s", "seconds", "skipped_steps"}
    parts = [f"epoch {row['epoch']}/{epochs}"] + [f"{k} {v:.4g}" for k, v in row.items() if k not in skip]
    parts.append(f"{row['img_per_s']:.0f} img/s")
    if row.get("skipped_steps"):
        parts.append(f"{row['skipped_steps']} non-finite steps skipped")
    return " | ".join(parts)


@torch.no_grad()
def _save_grids(out: Path, epoch: int, model, preview_z, preview_x) -> None:
    """samples/epoch_NNN.png from fixed noise; for AE/VAE also recon_NNN.png (top: input, bottom: output)."""
    from torchvision.utils import save_image  # torchvision's import costs seconds; only rank 0 ever needs it

    model.eval()
    samples = out / ckpt.SAMPLES_DIR
    samples.mkdir(parents=True, exist_ok=True)
    z = preview_z
    if model.kind == "ae":  # no prior: refit the sampling Gaussian to the preview encodings, use the noise as ε
        model.fit_prior(model.encode(preview_x))
        z = model.latent_mean + preview_z * model.latent_std
    save_image(_to_01(model.decode(z), model).float().cpu(), samples / f"epoch_{epoch:03d}.png", nrow=8)
    if has_encoder(model):
        recon = model.decode(model.encode(preview_x))
        save_image(torch.cat([preview_x, recon]).float().cpu(), samples / f"recon_{epoch:03d}.png", nrow=8)
    model.train()


@torch.no_grad()
def _latents(model, data: ImageData, device, cfg: TrainConfig, train_idx) -> dict[str, np.ndarray]:
    """What the explorer draws maps from: encodings of held-out then training images (AE/VAE),
    or prior draws (GAN). ``images`` holds the first rows' pixels, for thumbnails and class samples."""
    model.eval()
    if model.kind == "ae":
        zs = [model.encode(data.batch(i, device)) for i in train_idx.split(512)]
        model.fit_prior(torch.cat(zs))
    if not has_encoder(model):
        n = min(cfg.latents_sample, 2000)
        z = model.sample_latent(n, torch.Generator(device=device).manual_seed(cfg.seed), device)
        return {"z": z.float().cpu().numpy(), "labels": np.full(n, -1, np.int64)}
    order = torch.cat([_spread(data.test_idx, data.test_idx.numel(), cfg.seed),
                       _spread(train_idx, train_idx.numel(), cfg.seed)])[: cfg.latents_sample]
    out: dict[str, list] = {"z": [], "logvar": []}
    for idx in order.split(512):
        x = data.batch(idx, device)
        if model.kind == "vae":
            mu, logvar = model.encode_posterior(x)
            out["z"].append(mu)
            out["logvar"].append(logvar)
        else:
            out["z"].append(model.encode(x))
    result = {k: torch.cat(v).float().cpu().numpy() for k, v in out.items() if v}
    n_test = data.test_idx.numel()
    result["labels"] = data.labels[order].numpy()
    result["index"] = order.numpy()
    result["split"] = (torch.arange(order.numel()) >= n_test).numpy().astype(np.int8)  # 0 held-out, 1 train
    result["images"] = data.images[order[:1000]].numpy()
    return result



def _spread(idx: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` of ``idx`` in a fixed random order, so a prefix covers every class."""
    return idx[torch.randperm(idx.numel(), generator=torch.Generator().manual_seed(seed))[:n]]


# ---- resume ------------------------------------------------------------------------------------------

def _training_state(epoch, batch, perm, optimizers, scaler, shuffle_gen, noise_gen) -> dict:
    state = {
        "epoch": epoch,
        "batch": batch,
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "scaler": scaler.state_dict(),
        "shuffle_gen": shuffle_gen.get_state(),
        "noise_gen": noise_gen.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    if perm is not None:
        state["perm"] = perm
    return state


def _resume(out: Path, model, optimizers, scaler, shuffle_gen, noise_gen, device, d: _Dist, global_batch: int):
    if d.main:
        ckpt.recover(out)
    if d.world > 1:
        dist.barrier()
    if not (out / ckpt.CONFIG_NAME).exists():
        raise TrainingError(f"--resume: no checkpoint in {out} to resume from; drop --resume to start fresh")
    loaded = ckpt.load_checkpoint(out, device, with_latents=False)
    state = ckpt.load_training_state(out)
    if state is None:
        raise TrainingError(f"--resume: {out} has no {ckpt.STATE_NAME} (it was not saved for resuming)")
    if loaded.meta["model_config"] != model.config.to_dict():
        raise TrainingError(
            f"--resume: the flags describe a different model than {out} holds "
            f"({loaded.meta['model_config']} vs {model.config.to_dict()}); use the original flags"
        )
    model.load_state_dict(loaded.model.state_dict())
    for k, o in optimizers.items():
        o.load_state_dict(state["optimizers"][k])
    scaler.load_state_dict(state["scaler"])
    shuffle_gen.set_state(state["shuffle_gen"])
    noise_gen.set_state(state["noise_gen"])  # identical on every rank, so rank 0's state is everyone's
    torch.set_rng_state(state["torch_rng"])
    history = list(loaded.meta.get("history", []))[: state["epoch"]]
    batch = int(state["batch"])
    saved_global = int(loaded.meta.get("world_size", 1)) * int(loaded.meta["train_config"]["batch_size"])
    if batch and saved_global != global_batch:  # stopped mid-epoch with another number of processes
        batch = batch * saved_global // global_batch  # the first global batch not yet fully trained on
    if d.main:
        where = f"epoch {state['epoch'] + 1}" + (f", batch {batch}" if batch else "")
        print(f"resuming {out} at {where}")
    return history, int(state["epoch"]), batch, state.get("perm")


def _install_stop_request() -> threading.Event:
    """Under torchrun: SIGINT/SIGTERM (torchrun sends SIGTERM to every rank) only set the returned event.
    Raising at once could leave one rank inside a collective its peer never joins, or losing the save
    when the peer is gone; instead the ranks agree before each step (``_any_rank``) and stop together."""
    stop = threading.Event()

    def handler(signum, frame):
        stop.set()

    try:
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        pass
    return stop


def _install_sigterm() -> None:
    """torchrun and schedulers stop with SIGTERM: treat it like Ctrl-C (save, then exit)."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        pass
