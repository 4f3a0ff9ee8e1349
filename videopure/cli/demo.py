"""``videopure demo``: the shipped classifier under attack, without and with diffusion purification (offline, CPU)."""

from __future__ import annotations

import argparse
from pathlib import Path

from videopure.cli.options import add_overrides
from videopure.config import apply_overrides, from_dict
from videopure.demo import DemoConfig, render_summary, run_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="offline demo on generated data with the bundled models: clean vs attacked vs purified (report, figure, mp4s)",
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out; a rerun resumes)")
    parser.add_argument("--clips", type=int, help="test clips to evaluate (default 8)")
    add_overrides(parser, "budget=4/255, n_iter=10, eot_iter=4, repeats=5, t_star=0.15, dt=0.01, device=cuda", "a demo setting")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = {"out": str(args.out), **({"clips": args.clips} if args.clips is not None else {})}
    config = from_dict(DemoConfig, apply_overrides(settings, args.overrides), "videopure demo")
    summary = run_demo(config)
    print(render_summary(summary))
    for name, path in summary.get("media", {}).items():
        print(f"{name}: {path}")
    return 0
