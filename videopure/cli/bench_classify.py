"""``videopure bench classify``: classifier clips/s, forward and forward+backward, tuned vs float32 eager."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from videopure.bench.classify import ClassifyBench, run_classify_benchmark
from videopure.models import list_classifiers
from videopure.models.evaluate import PRECISIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = ClassifyBench()
    parser = subparsers.add_parser(
        "classify",
        help="classifier clips/s, forward and forward+backward: channels-last + autocast vs float32 eager",
        description="Time a registry classifier (random weights) on random clips of its own input size: clips/s "
        "forward (no grad) and forward+backward, float32 eager against channels_last_3d + autocast, and how far "
        "their logits differ. On a CPU, PyTorch uses all cores: set OMP_NUM_THREADS to measure fewer.",
    )
    parser.add_argument("--model", default=defaults.model, choices=list_classifiers(), metavar="NAME", help="registry name (default %(default)s)")
    parser.add_argument("--num-classes", type=int, default=defaults.num_classes, help="head size (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="clips per batch")
    parser.add_argument("--device", default=defaults.device, help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--precision", default=defaults.precision, choices=("auto", *PRECISIONS), help="tuned variant (auto: bfloat16 on CUDA, float32 on CPU)")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false", help="tuned variant keeps contiguous tensors")
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="timed batches per measurement")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed batches first")
    parser.add_argument("--json", type=Path, help="also write the result to this JSON file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    bench = ClassifyBench(
        model=args.model, num_classes=args.num_classes, batch_size=args.batch_size, device=args.device,
        precision=args.precision, channels_last=args.channels_last, repeats=args.repeats, warmup=args.warmup,
    )
    result = run_classify_benchmark(bench)
    print(f"{bench.model} on {result['device']}: batches of {result['input_shape']}, {result['gflop_per_clip']} GFLOP per clip")
    for name in ("baseline", "tuned"):
        variant = result[name]
        print(
            f"  {name:<8} ({variant['setup']}): forward {variant['forward']['clips_per_s']:8.1f} clips/s, "
            f"forward+backward {variant['forward_backward']['clips_per_s']:8.1f} clips/s"
        )
    speedup = result["speedup"]
    print(
        f"tuned/baseline: forward {speedup['forward']:.2f}x, forward+backward {speedup['forward_backward']:.2f}x; "
        f"max |logit difference| {result['max_abs_logit_difference']:.3g}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0
