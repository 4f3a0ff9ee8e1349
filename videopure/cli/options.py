"""Command-line options shared by the subcommands."""

from __future__ import annotations

import argparse


def add_overrides(parser: argparse.ArgumentParser, examples: str, what: str = "a config field") -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides``: dotted config fields, YAML values."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=f"override {what}, e.g. {examples}"
    )
