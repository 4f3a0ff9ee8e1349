"""``videopure bench ...``: speed and memory benchmarks, each against a baseline measured in the same run."""

from __future__ import annotations

import argparse

from videopure.cli import bench_classify, bench_decode, bench_purify

BENCH_MODULES: tuple = (bench_purify, bench_decode, bench_classify)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark (ratios against a baseline in the same run)")
    bench_subparsers = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for module in BENCH_MODULES:
        module.register(bench_subparsers)
