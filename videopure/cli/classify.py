"""``videopure classify``: clean accuracy of a classifier checkpoint on a dataset split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from videopure.data import LAYOUTS, SPLITS, SUBSETS, load_split
from videopure.models import load_classifier
from videopure.models.clip_dataset import ClipSampling
from videopure.models.evaluate import PRECISIONS, EvalConfig, EvalResult, evaluate


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = EvalConfig()
    parser = subparsers.add_parser(
        "classify",
        help="top-1/top-5 and per-class accuracy of a checkpoint on a split (multi-view optional)",
        description="Evaluate a videopure classifier checkpoint on a dataset split: K temporal clips x 1 or 3 "
        "spatial crops per video, logits averaged; top-1, top-5, per-class accuracy and the confusion counts.",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="a videopure classifier checkpoint (best.pt)")
    parser.add_argument("--root", type=Path, required=True, help="dataset root")
    parser.add_argument("--layout", choices=LAYOUTS, required=True)
    parser.add_argument("--split", type=int, choices=SPLITS, default=1, help="official split (ucf101, hmdb51)")
    parser.add_argument("--subset", choices=SUBSETS, default="test")
    parser.add_argument("--annotations", type=Path, help="split-file folder, or the list file for --layout list")
    parser.add_argument("--views", type=int, default=defaults.temporal_views, help="temporal clips per video")
    parser.add_argument("--crops", type=int, choices=(1, 3), default=defaults.spatial_crops, help="spatial crops per clip")
    parser.add_argument("--frames", type=int, help="frames per clip (default: the model's)")
    parser.add_argument("--stride", type=int, help="frame stride (default: the model's sampling rate)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="videos per batch")
    parser.add_argument("--workers", type=int, default=defaults.num_workers, help="decoding processes")
    parser.add_argument("--timeout", type=float, default=defaults.decode_timeout, help="seconds allowed to decode one video")
    parser.add_argument("--device", default=defaults.device, help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default=defaults.precision)
    parser.add_argument("--limit", type=int, help="only the first N videos of the split")
    parser.add_argument("--json", type=Path, help="write the full result (per-class, confusion, predictions) here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    classifier = load_classifier(args.checkpoint)
    split = load_split(args.root, args.layout, args.split, args.subset, annotations=args.annotations,
                       class_names=classifier.class_names)
    if classifier.class_names is not None and classifier.class_names != split.class_names:
        raise ValueError(f"{args.checkpoint} was trained on other classes than {args.root} (split {args.split}) has")
    config = EvalConfig(
        temporal_views=args.views, spatial_crops=args.crops, batch_size=args.batch_size, num_workers=args.workers,
        device=args.device, precision=args.precision, decode_timeout=args.timeout,
    )
    sampling = ClipSampling.from_spec(classifier.spec, args.frames, args.stride)
    result = evaluate(classifier, split.records[: args.limit], split.class_names, sampling, config)
    print(format_result(result, args.views, args.crops))
    if args.json is not None:
        report = {"checkpoint": str(args.checkpoint), "root": str(args.root), "layout": args.layout, "split": args.split,
                  "subset": args.subset, "temporal_views": args.views, "spatial_crops": args.crops, **result.to_dict()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def format_result(result: EvalResult, views: int, crops: int) -> str:
    """Overall and per-class accuracy as plain text."""
    lines = [
        f"{result.num_videos} videos, {views} clip(s) x {crops} crop(s): top-1 {result.top1:.4f}  top-5 {result.top5:.4f}"
    ]
    width = max((len(c.name) for c in result.per_class), default=5)
    for c in result.per_class:
        accuracy = f"{c.accuracy:.4f}" if c.accuracy is not None else "-"
        lines.append(f"  {c.name:<{width}}  {c.correct:>5}/{c.videos:<5} {accuracy}")
    lines.extend(f"skipped {video.id}: {video.reason}" for video in result.skipped)
    return "\n".join(lines)
