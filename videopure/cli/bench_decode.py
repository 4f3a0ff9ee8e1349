"""``videopure bench decode``: clips/s of decord and PyAV on the same videos (synthetic by default), and their ratio."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from videopure.bench.decode import bench_decode
from videopure.cli.data import parse_size
from videopure.data import LAYOUTS, MOTIONS, SPLITS, SUBSETS, detect_layout, load_split, make_synthetic_dataset


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "decode",
        help="clips/s of decord vs PyAV",
        description="Read one clip per video with decord and with PyAV (taking turns, best of --repeats) and "
        "print clips/s, the decord/PyAV ratio and whether the frames are identical. Without --root, a synthetic "
        "dataset at UCF-101 resolution is written to a temporary folder first.",
    )
    parser.add_argument("--root", type=Path, help="dataset root (default: a temporary synthetic dataset)")
    parser.add_argument("--layout", choices=("auto", *LAYOUTS), default="auto")
    parser.add_argument("--split", type=int, choices=SPLITS, default=1)
    parser.add_argument("--subset", choices=SUBSETS, default="test")
    parser.add_argument("--annotations", type=Path, help="split-file folder, or the list file for --layout list")
    parser.add_argument("--max-videos", type=int, default=200, help="use at most this many videos of the subset")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (uniform sampling)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--video-frames", type=int, default=75, help="synthetic: frames per video")
    parser.add_argument("--size", type=parse_size, default=(240, 320), help="synthetic: HxW (default 240x320)")
    parser.add_argument("--videos-per-class", type=int, default=6, help="synthetic: videos per class")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.root is not None:
        return _bench(args, args.root, detect_layout(args.root) if args.layout == "auto" else args.layout)
    with tempfile.TemporaryDirectory(prefix="videopure-bench-") as folder:
        root = make_synthetic_dataset(
            Path(folder) / "synthetic",
            classes=MOTIONS[:4],
            videos_per_class=args.videos_per_class,
            num_frames=args.video_frames,
            size=args.size,
        )
        print(
            f"synthetic dataset: {args.videos_per_class * 4} videos of {args.video_frames} frames, "
            f"{args.size[0]}x{args.size[1]}, AVI/MPEG-4 with B-frames"
        )
        return _bench(args, root, "folder")


def _bench(args: argparse.Namespace, root: Path, layout: str) -> int:
    split = load_split(root, layout, args.split, args.subset, annotations=args.annotations)
    paths = [record.path for record in split.records[: args.max_videos]]
    result = bench_decode(paths, args.frames, repeats=args.repeats)
    print(f"{result.num_videos} videos, one clip of {result.num_frames} frames each, best of {result.repeats}:")
    for backend, rate in result.clips_per_second.items():
        print(f"  {backend:<7} {rate:8.1f} clips/s")
    rates = result.clips_per_second
    print(f"decord/pyav: {rates['decord'] / rates['pyav']:.2f}x   frames identical: {'yes' if result.identical else 'NO'}")
    return 0
