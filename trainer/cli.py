"""Command line: ``python -m trainer`` trains; ``python -m trainer evaluate RUN`` scores a checkpoint.

Examples::

    python -m trainer --model vae --dataset mnist5k --epochs 30 --out checkpoints/vae-mnist5k
    python -m trainer --model gan --arch conv --latent-dim 64 --epochs 40 --device cuda
    python -m trainer --model ae --dataset folder:~/pictures/faces --image-size 64 --channels 3 --dry-run
    torchrun --nproc_per_node=2 -m trainer --model vae --epochs 30      # data-parallel, see README
"""

from __future__ import annotations

import argparse
import os
import sys
import types
import typing
from dataclasses import MISSING, fields

from trainer.config import TrainConfig


def _type_of(f) -> type:
    hints = typing.get_type_hints(TrainConfig)
    t = hints[f.name]
    args = [a for a in typing.get_args(t) if a is not type(None)]
    if typing.get_origin(t) in (typing.Union, types.UnionType) and args:
        return args[0]
    return t


def build_parser() -> argparse.ArgumentParser:
    doc = (__doc__ or "").split("Examples::")
    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description="Train an AE, VAE or GAN and write a self-describing checkpoint the explorer can open.",
        epilog="examples:" + doc[1].rstrip() if len(doc) > 1 else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        help_text = f.metadata.get("help", "") + (f" (default: {default})" if default is not None else "")
        t = _type_of(f)
        choices = f.metadata.get("choices")
        if t is bool and default:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=True, help=help_text)
        elif t is bool:
            parser.add_argument(flag, action="store_true", help=f.metadata.get("help", ""))
        else:
            parser.add_argument(flag, type=t, default=default, choices=choices,
                                metavar=None if choices else f.name.upper(), help=help_text)
    return parser


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Flags -> TrainConfig. With --resume, the run's saved training config fills in every flag
    not given again, so ``--resume --out RUN --epochs 60`` is enough."""
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    if args["resume"]:
        args = _resumed_args(argv, args)
    cfg = TrainConfig(**args)
    try:
        cfg.validate()
    except ValueError as e:
        build_parser().error(str(e))
    return cfg


def _resumed_args(argv: list[str] | None, args: dict) -> dict:
    from trainer.checkpoint import CheckpointError, read_meta

    out = TrainConfig(**args).resolved_out()
    try:
        saved = read_meta(out).get("train_config", {})
    except CheckpointError:
        return args  # nothing to resume from: train() says so
    explicit = build_parser()
    for action in explicit._actions:
        action.default = argparse.SUPPRESS  # parse again to learn which flags were given
    given = vars(explicit.parse_args(argv))
    known = {k: v for k, v in saved.items() if k in args}
    return {**args, **known, **given, "resume": True, "out": out}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "evaluate":
        from trainer.evaluate import main as evaluate_main

        return evaluate_main(argv[1:])
    if argv and argv[0] == "train":
        argv = argv[1:]
    cfg = parse_config(argv)

    from trainer.data import DatasetError
    from trainer.train import TrainingError, train

    try:
        train(cfg)
    except (DatasetError, TrainingError, ValueError) as e:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank fails alike; say it once
            print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
