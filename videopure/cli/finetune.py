"""``videopure finetune``: fine-tune a registry classifier on a dataset split (resumable)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from videopure.cli.options import add_overrides
from videopure.config import load_config
from videopure.models.finetune import FinetuneConfig, finetune


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a classifier on a dataset split: best.pt, last.pt, metrics.jsonl (--resume continues)",
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML config (see configs/finetune_*.yaml)")
    add_overrides(parser, "optim.lr=0.005 or data.num_workers=8")
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir after its last epoch")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = finetune(load_config(args.config, FinetuneConfig, args.overrides), resume=args.resume)
    summary = result.to_dict()
    history = summary.pop("history")
    print(json.dumps({**summary, "last_epoch": history[-1] if history else None}, indent=2))
    return 0
