"""Purify a dataset split with Ray Data: decode (CPU actors) → purify + classify (GPU actors) → write (CPU tasks).

    python pipelines/purify_dataset.py --config configs/purify_ucf101_adm.yaml            # local Ray
    python pipelines/purify_dataset.py --config ... --address auto                        # existing cluster
    ray submit configs/cluster/aws-gpu.yaml pipelines/purify_dataset.py -- --config ~/videopure/configs/...

The actors are thin shells over :mod:`videopure.jobs.stages`, the same code ``videopure purify`` runs in one
process, and every clip's noise comes from (run seed, clip id): results are identical either way. The driver is
the only writer of ``manifest.jsonl``; a clip's row is appended after its outputs are written, so a rerun after a
crash skips finished clips and duplicates nothing. Failed actors are restarted and their batches retried.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import ray
import torch
from ray.data import ActorPoolStrategy
from tqdm import tqdm

from videopure.jobs import ClipDecoder, ClipPurifier, ClipWriter, PurifyJob, pending_records, start_run, write_summary
from videopure.jobs.stages import Row, record_row

# The shared driver helpers sit beside this script; `ray submit` copies the script alone (the cluster YAMLs mount
# the repository at ~/videopure).
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path.home() / "videopure" / "pipelines"))
from _ray_helpers import (  # noqa: E402
    cpu_threads_per_actor,
    job_parser,
    load_job,
    on_actor_device,
    plan_actors,
    ray_session,
    setup_logging,
)

logger = logging.getLogger("pipelines.purify_dataset")

ACTOR_RETRIES = 3


class DecodeStage:
    """Ray Data callable class: one decode worker process per actor."""

    def __init__(self, job: PurifyJob):
        self.decoder = ClipDecoder(job.dataset)

    def __call__(self, row: Row) -> Row:
        return self.decoder(row)


class PurifyStage:
    """Ray Data callable class: loads the diffusion network (and classifier) once, purifies batches of clips."""

    def __init__(self, job: PurifyJob, cpu_threads: int | None = None):
        if cpu_threads:  # CPU-only runs: Ray pins a 1-CPU actor to one thread; give it the cores decoding leaves
            torch.set_num_threads(cpu_threads)
        self.purifier = ClipPurifier(job.diffusion, job.purifier, job.classifier, job.device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return rows_to_batch(self.purifier(batch_to_rows(batch)))


def write_stage(row: Row, job: PurifyJob) -> dict[str, str]:
    """Write a clip's outputs; the manifest row travels to the driver as one JSON string."""
    manifest_row = ClipWriter(job.output)(row)
    return {"id": manifest_row["id"], "manifest_row": json.dumps(manifest_row)}


def batch_to_rows(batch: dict[str, np.ndarray]) -> list[Row]:
    size = len(next(iter(batch.values())))
    return [{key: _plain(values[i]) for key, values in batch.items()} for i in range(size)]


def rows_to_batch(rows: Sequence[Row]) -> dict[str, np.ndarray]:
    batch = {}
    for key in rows[0]:
        values = [row[key] for row in rows]
        if isinstance(values[0], np.ndarray) and len({v.shape for v in values}) > 1:
            column = np.empty(len(values), dtype=object)  # ragged: e.g. empty arrays of clips that failed to decode
            for i, value in enumerate(values):
                column[i] = value
            batch[key] = column
        else:
            batch[key] = np.stack(values) if isinstance(values[0], np.ndarray) else np.asarray(values)
    return batch


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def build_dataset(job: PurifyJob, rows: list[Row], decode_actors: int, purify_actors: int, gpus_per_actor: float, purify_stage: type = PurifyStage) -> ray.data.Dataset:
    """The streaming dataset of manifest rows; nothing is materialised whole (decoded clips stream in small blocks)."""
    cpu_threads = None if gpus_per_actor else cpu_threads_per_actor(purify_actors, reserved_cpus=decode_actors)
    return (
        ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
        .map(DecodeStage, fn_constructor_kwargs={"job": job}, compute=ActorPoolStrategy(size=decode_actors), num_cpus=1)
        .map_batches(
            purify_stage,
            fn_constructor_kwargs={"job": job, "cpu_threads": cpu_threads},
            batch_size=job.clips_per_batch,
            batch_format="numpy",
            compute=ActorPoolStrategy(size=purify_actors),
            num_gpus=gpus_per_actor,
            num_cpus=0 if gpus_per_actor else 1,
            max_restarts=ACTOR_RETRIES,
            max_task_retries=ACTOR_RETRIES,
        )
        .map(write_stage, fn_kwargs={"job": job}, num_cpus=1)
    )


def run_pipeline(job: PurifyJob, decode_actors: int = 1, purify_actors: int = 1, gpus_per_actor: float = 0.0, purify_stage: type = PurifyStage) -> dict[str, Any]:
    """Run (or resume) ``job`` on the connected Ray cluster; returns the summary (also in summary.json)."""
    manifest = start_run(job)
    todo = pending_records(job, manifest)
    started = time.perf_counter()
    if todo:
        dataset = build_dataset(job, [record_row(r) for r in todo], decode_actors, purify_actors, gpus_per_actor, purify_stage)
        seen: set[str] = set()
        with tqdm(total=len(todo), desc="purify (ray)", unit="clip") as bar:
            for item in dataset.iter_rows():
                if item["id"] in seen:  # a retried task re-emitting a row: record each clip once
                    continue
                seen.add(item["id"])
                manifest.append(json.loads(item["manifest_row"]))
                bar.update(1)
    wall = time.perf_counter() - started
    summary = write_summary(job, manifest.rows(), wall, len(todo))
    if todo:
        purify_seconds = sum(row["seconds"]["purify"] for row in manifest.rows() if row["status"] == "ok" and row["id"] in seen)
        summary["this_run"]["purify_busy_fraction"] = round(purify_seconds / (wall * purify_actors), 3)
        logger.info("purify actors busy %.0f%% of the run", 100 * summary["this_run"]["purify_busy_fraction"])
    return summary


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = job_parser(__doc__.splitlines()[0], "YAML job config, as for `videopure purify`")
    parser.add_argument("--decode-actors", type=int, default=1)
    parser.add_argument("--purify-actors", type=int, help="default: one per GPU, or 1 without GPUs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    args = parse_args(argv)
    job = load_job(args, PurifyJob)
    with ray_session(args):
        plan = plan_actors(args.purify_actors, args.gpus_per_actor, reserved_cpus=args.decode_actors)
        summary = run_pipeline(on_actor_device(job, plan), args.decode_actors, plan.actors, plan.gpus_per_actor)
    print(json.dumps({k: v for k, v in summary.items() if k != "errors"}, indent=2))
    for error in summary["errors"]:
        print(f"{error['status']}: {error['id']}: {error['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
