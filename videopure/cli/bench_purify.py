"""``videopure bench purify`` and ``videopure bench purify-grad``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from videopure.bench.purify import PurifyBench, run_gradient_benchmark, run_purify_benchmark


def _add_workload_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = PurifyBench()
    parser.add_argument("--model", default=defaults.model, help="diffusion preset, or JSON file of create_adm kwargs / Score-SDE config")
    parser.add_argument("--checkpoint", help="weights for the preset (random weights when omitted: speed does not depend on them)")
    parser.add_argument("--resolution", type=int, default=defaults.resolution, help="clip height and width in pixels")
    parser.add_argument("--clips", type=int, default=defaults.clips)
    parser.add_argument("--frames", type=int, default=defaults.frames, help="frames per clip")
    parser.add_argument("--t-star", type=float, default=defaults.t_star)
    parser.add_argument("--dt", type=float, default=defaults.dt)
    parser.add_argument("--device", default=defaults.device, help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--precision", default=defaults.precision, choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--frame-batch", type=int, help="frames per solver call (default: all)")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--json", type=Path, help="also write the result to this JSON file")


def _workload(args: argparse.Namespace) -> PurifyBench:
    return PurifyBench(
        model=args.model,
        checkpoint=args.checkpoint,
        resolution=args.resolution,
        clips=args.clips,
        frames=args.frames,
        t_star=args.t_star,
        dt=args.dt,
        device=args.device,
        precision=args.precision,
        frame_batch=args.frame_batch,
        channels_last=args.channels_last,
        seed=args.seed,
    )


def _report(result: dict, path: Path | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if path is not None:
        path.write_text(text + "\n")


def register(subparsers: argparse._SubParsersAction) -> None:
    purify = subparsers.add_parser("purify", help="purifier frames/s and memory vs one-clip-at-a-time float32 DiffPure")
    _add_workload_arguments(purify)
    purify.set_defaults(func=lambda args: _report(run_purify_benchmark(_workload(args)), args.json))

    grad = subparsers.add_parser("purify-grad", help="one adjoint gradient vs autograd: time and memory as steps grow")
    _add_workload_arguments(grad)
    grad.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 40], help="Euler step counts to try")
    grad.set_defaults(func=lambda args: _report(run_gradient_benchmark(_workload(args), tuple(args.steps)), args.json))
