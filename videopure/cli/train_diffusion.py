"""``videopure train-diffusion``: train an ADM diffusion model on the frames of a dataset split (resumable)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from videopure.cli.options import add_overrides
from videopure.config import load_config
from videopure.diffusion.train import TrainDiffusionConfig, train_diffusion


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-diffusion",
        help="train an ADM diffusion model on video frames: ema.pt, model.pt, metrics.jsonl, purified.png (--resume continues)",
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML config (see configs/train_diffusion_*.yaml)")
    add_overrides(parser, "steps=20000 or optim.lr=1e-4")
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir from its last checkpoint")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = train_diffusion(load_config(args.config, TrainDiffusionConfig, args.overrides), resume=args.resume)
    print(json.dumps(result.to_dict(), indent=2))
    return 0
