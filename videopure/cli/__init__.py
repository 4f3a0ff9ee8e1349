"""The ``videopure`` command. Each command group lives in its own module with a ``register(subparsers)``."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from videopure.cli import bench, classify, data, demo, evaluate, finetune, info, purify, train_diffusion
from videopure.config import ConfigError

COMMAND_MODULES = (info, demo, bench, data, purify, evaluate, finetune, classify, train_diffusion)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videopure",
        description="Diffusion purification (DiffPure) for video action recognition, and robustness evaluation.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        logging.getLogger("videopure").error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
