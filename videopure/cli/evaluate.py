"""``videopure evaluate``: clean and robust accuracy of a purified classifier under adaptive attacks (resumable)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from videopure.attacks.config import EvaluateJob
from videopure.attacks.evaluate import evaluate
from videopure.attacks.report import SanityCheckError
from videopure.cli.options import add_overrides
from videopure.config import load_config

SANITY_FAILED = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="robust accuracy under adaptive attacks: clips.jsonl, report.json, report.md, figures (resumes where it stopped)",
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML evaluation config (see configs/evaluate_*.yaml)")
    parser.add_argument("--clips", type=int, help="evaluate N clips of the split (seeded order; overrides evaluation.clips)")
    add_overrides(parser, "evaluation.repeats=10 or purifier.t_star=0.1")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + ([f"evaluation.clips={args.clips}"] if args.clips is not None else [])
    job = load_config(args.config, EvaluateJob, overrides)
    try:
        report = evaluate(job)
    except SanityCheckError as exc:
        print((job.output.dir / "report.md").read_text(encoding="utf-8"))
        logging.getLogger("videopure").error("%s", exc)
        return SANITY_FAILED
    print((job.output.dir / "report.md").read_text(encoding="utf-8"))
    return SANITY_FAILED if any(c["status"] == "FAIL" for c in report["sanity"]) else 0
