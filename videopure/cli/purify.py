"""``videopure purify``: purify a dataset split in one process (resumable), writing purified videos and a manifest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from videopure.cli.options import add_overrides
from videopure.config import load_config
from videopure.jobs import PurifyJob, purify_dataset


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "purify",
        help="purify a dataset split: purified mp4s, manifest.jsonl, summary.json, figure.png (resumes where it stopped)",
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML job config (see configs/purify_*.yaml)")
    add_overrides(parser, "purifier.t_star=0.1")
    parser.add_argument("--limit", type=int, help="purify only the first N clips of the split")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + ([f"dataset.limit={args.limit}"] if args.limit is not None else [])
    summary = purify_dataset(load_config(args.config, PurifyJob, overrides))
    print(json.dumps({k: v for k, v in summary.items() if k != "errors"}, indent=2))
    for error in summary["errors"]:
        print(f"{error['status']}: {error['id']}: {error['error']}")
    return 0
