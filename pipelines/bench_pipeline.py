"""Benchmark: the Ray pipeline against the in-process loop (``videopure purify``) on the same machine and clips.

    python pipelines/bench_pipeline.py --config configs/purify_synthetic.yaml --limit 16 [--num-cpus N]

Both runs purify the same clips into fresh folders; the ratio is in-process seconds / pipeline seconds (Ray's
start-up excluded, reported separately). Outputs are compared clip by clip.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import ray

from videopure.config import load_config
from videopure.jobs import PurifyJob, purify_dataset
from videopure.manifest import Manifest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ray_helpers import init_ray  # noqa: E402
from purify_dataset import run_pipeline  # noqa: E402


def _outcomes(out: Path) -> dict[str, tuple]:
    return {row["id"]: (row["status"], row.get("mean_abs_change")) for row in Manifest(out / "manifest.jsonl").rows()}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--num-cpus", type=int)
    parser.add_argument("--decode-actors", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    job = load_config(args.config, PurifyJob, [*args.overrides, f"dataset.limit={args.limit}", "output.mp4=true"])
    work = Path(tempfile.mkdtemp(prefix="videopure-bench-pipeline-"))
    try:
        local_job = replace(job, output=replace(job.output, dir=work / "in_process"))
        start = time.perf_counter()
        local = purify_dataset(local_job)
        local_seconds = time.perf_counter() - start

        start = time.perf_counter()
        init_ray(None, args.num_cpus, dashboard=False)
        ray_start_seconds = time.perf_counter() - start
        try:
            ray_job = replace(job, output=replace(job.output, dir=work / "ray"), device="cpu" if not ray.cluster_resources().get("GPU") else job.device)
            start = time.perf_counter()
            piped = run_pipeline(ray_job, decode_actors=args.decode_actors, gpus_per_actor=1.0 if ray.cluster_resources().get("GPU") else 0.0)
            ray_seconds = time.perf_counter() - start
        finally:
            ray.shutdown()
        result = {
            "benchmark": "pipeline",
            "clips": local["this_run"]["clips"],
            "in_process_seconds": round(local_seconds, 2),
            "pipeline_seconds": round(ray_seconds, 2),
            "ray_start_seconds": round(ray_start_seconds, 2),
            "ratio_pipeline_vs_in_process": round(local_seconds / ray_seconds, 3),
            "pipeline_seconds_per_stage": piped["seconds_per_stage_all_runs"],
            "in_process_seconds_per_stage": local["seconds_per_stage_all_runs"],
            "purify_busy_fraction": piped["this_run"].get("purify_busy_fraction"),
            "same_outcomes": _outcomes(work / "in_process") == _outcomes(work / "ray"),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if result["same_outcomes"] else 1


if __name__ == "__main__":
    sys.exit(main())
