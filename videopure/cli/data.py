"""``videopure data stats`` and ``videopure make-dataset synthetic``: inspect a video dataset, write a synthetic one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from videopure.data import (
    BACKENDS,
    LAYOUTS,
    MOTIONS,
    SPLITS,
    VIDEO_FORMATS,
    DatasetStats,
    dataset_stats,
    detect_layout,
    load_split,
    make_synthetic_dataset,
)
from videopure.data.synthetic import SYNTHETIC_LAYOUTS


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_data(subparsers)
    _register_make_dataset(subparsers)


def _register_data(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="inspect a video dataset")
    commands = parser.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    stats = commands.add_parser(
        "stats",
        help="videos per subset and class, missing and unreadable files",
        description="Count the videos of one split per subset and class, list the videos the split files name "
        "but the disk lacks, and decode every video (in worker processes, with a timeout) to list the unreadable ones.",
    )
    stats.add_argument("root", type=Path, help="dataset root (the folder holding the class folders)")
    stats.add_argument(
        "--layout", choices=("auto", *LAYOUTS), default="auto", help="dataset layout (default: detect from split folders)"
    )
    stats.add_argument("--split", type=int, choices=SPLITS, default=1, help="official split (ucf101, hmdb51)")
    stats.add_argument("--annotations", type=Path, help="split-file folder, or the list file for --layout list")
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON")
    stats.add_argument("--no-decode", dest="decode", action="store_false", help="count only; do not decode")
    stats.add_argument("--backend", choices=BACKENDS, default="auto", help="decoder (default: decord if installed)")
    stats.add_argument("--timeout", type=float, default=60.0, help="seconds allowed to decode one video")
    stats.add_argument("--workers", type=int, default=1, help="decoding processes")
    stats.set_defaults(func=run_stats)


def _register_make_dataset(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("make-dataset", help="write a dataset")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    synthetic = kinds.add_parser(
        "synthetic",
        help="motion classes as real videos in the UCF-101 or HMDB-51 layout, with official split files",
        description="Write a synthetic action dataset: a shape on a textured background whose class is its "
        "motion, as real encoded videos in the UCF-101 or HMDB-51 layout with split files for splits 1-3.",
    )
    synthetic.add_argument("--out", type=Path, required=True, help="new or empty output folder")
    synthetic.add_argument("--layout", choices=SYNTHETIC_LAYOUTS, default="ucf101")
    synthetic.add_argument("--classes", nargs="+", choices=MOTIONS, metavar="MOTION", help=f"default: all of {', '.join(MOTIONS)}")
    synthetic.add_argument("--videos-per-class", type=int, default=30)
    synthetic.add_argument("--frames", type=int, default=16, help="frames per video")
    synthetic.add_argument("--size", type=parse_size, default=(64, 64), help="HxW, even (default 64x64)")
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--format", dest="video_format", choices=VIDEO_FORMATS, default="avi")
    synthetic.add_argument("--fps", type=int, default=25)
    synthetic.set_defaults(func=run_make_synthetic)


def parse_size(text: str) -> tuple[int, int]:
    """``'64x80'`` → (64, 80); ``'64'`` → (64, 64)."""
    parts = text.lower().split("x")
    if len(parts) > 2 or not all(part.isdecimal() for part in parts):
        raise argparse.ArgumentTypeError(f"expected HxW such as 64x64, got {text!r}")
    return int(parts[0]), int(parts[-1])


def run_stats(args: argparse.Namespace) -> int:
    layout = detect_layout(args.root) if args.layout == "auto" else args.layout
    stats = dataset_stats(
        args.root,
        layout,
        args.split,
        annotations=args.annotations,
        decode=args.decode,
        backend=args.backend,
        timeout=args.timeout,
        workers=args.workers,
    )
    print(json.dumps(stats.to_dict(), indent=2) if args.json else format_stats(stats))
    return 0


def format_stats(stats: DatasetStats) -> str:
    """The statistics as a few plain-text tables."""
    split = f", split {stats.split}" if stats.split is not None else ""
    lines = [f"{stats.root} ({stats.layout} layout{split}): {len(stats.class_names)} classes"]
    lines.append(f"{'subset':<8} {'videos':>7} {'missing':>8} {'unreadable':>11} {'frames':>11}")
    for subset in stats.subsets:
        unreadable = str(len(subset.unreadable)) if stats.decoded else "-"
        frames = f"{subset.min_frames}-{subset.max_frames}" if subset.min_frames is not None else "-"
        lines.append(f"{subset.name:<8} {subset.num_videos:>7} {len(subset.missing):>8} {unreadable:>11} {frames:>11}")
    width = max((len(name) for name in stats.class_names), default=5)
    lines.append("")
    lines.append(f"{'class':<{width}} " + " ".join(f"{subset.name:>6}" for subset in stats.subsets))
    for name in stats.class_names:
        lines.append(f"{name:<{width}} " + " ".join(f"{subset.per_class[name]:>6}" for subset in stats.subsets))
    for subset in stats.subsets:
        if subset.missing:
            lines.append(f"\nmissing in {subset.name} ({len(subset.missing)}):")
            lines.extend(f"  {problem.path}  ({problem.source})" for problem in subset.missing)
        if subset.unreadable:
            lines.append(f"\nunreadable in {subset.name} ({len(subset.unreadable)}):")
            lines.extend(f"  {video.id}: {video.error}: {video.reason}" for video in subset.unreadable)
    return "\n".join(lines)


def run_make_synthetic(args: argparse.Namespace) -> int:
    root = make_synthetic_dataset(
        args.out,
        args.layout,
        classes=args.classes,
        videos_per_class=args.videos_per_class,
        num_frames=args.frames,
        size=args.size,
        seed=args.seed,
        video_format=args.video_format,
        fps=args.fps,
    )
    train, test = (load_split(root, args.layout, 1, subset) for subset in ("train", "test"))
    print(
        f"wrote {len(train.records) + len(test.records)} videos of {len(train.class_names)} classes to {root} "
        f"({args.layout} layout; split 1: {len(train.records)} train, {len(test.records)} test)"
    )
    return 0
