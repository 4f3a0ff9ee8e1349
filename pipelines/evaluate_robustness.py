"""Robustness evaluation on Ray: the protocol of ``videopure evaluate`` on model actors (one per GPU), batch by batch.

    python pipelines/evaluate_robustness.py --config configs/evaluate_synthetic.yaml           # local Ray
    python pipelines/evaluate_robustness.py --config ... --address auto                       # existing cluster
    ray submit configs/cluster/aws-gpu.yaml pipelines/evaluate_robustness.py -- \\
        --address auto --gpus-per-actor 1 --actors 4 --config ~/videopure/configs/evaluate_ucf101_adm.yaml

Plain Ray actors rather than Ray Data: one batch of attacks costs minutes of GPU time and decoding it next to
nothing, so there is nothing to stream between stages. Each actor is a thin shell over
:class:`videopure.attacks.evaluate.BatchEvaluator` (the defended model built once; decoding in its own timed-out
process). The driver cuts the clips into the library's fixed batches (:func:`pending_batches`, as the in-process
run groups them) and keeps at most ``--in-flight`` batches queued per actor (backpressure). A dead actor is
restarted and its batches retried up to ``ACTOR_RETRIES`` times; a batch that still fails stops new work, and the
run ends with an error once the running batches are recorded (a rerun retries the rest).

The driver is the only writer of ``clips.jsonl``: as each batch finishes, its kept arrays and then its rows
(:func:`record_batch`); a rerun skips finished clips. Per-clip seeds and the in-process batches make every row equal
to ``videopure evaluate``'s, and :func:`finish_report` writes the same report.json, report.md and figures.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import ray
import torch
from ray.actor import ActorHandle
from ray.exceptions import RayError
from tqdm import tqdm

from videopure.attacks.config import EvaluateJob
from videopure.attacks.cost import CostEstimate
from videopure.attacks.evaluate import (
    MANIFEST,
    BatchEvaluator,
    BatchResult,
    build_classifier,
    describe_run,
    finish_report,
    kept_ids,
    pending_batches,
    record_batch,
    run_cost,
    start_evaluation,
)
from videopure.attacks.report import SanityCheckError, failed_checks
from videopure.data import ClipRecord
from videopure.manifest import Manifest

# The shared driver helpers sit beside this script; `ray submit` copies the script alone (the cluster YAMLs mount
# the repository at ~/videopure).
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path.home() / "videopure" / "pipelines"))
from _ray_helpers import ActorPlan, job_parser, load_job, on_actor_device, plan_actors, ray_session, setup_logging  # noqa: E402

logger = logging.getLogger("pipelines.evaluate_robustness")

ACTOR_RETRIES = 3
SANITY_FAILED = 3  # exit status when a sanity check fails, as `videopure evaluate` (pipelines import no CLI code)
IN_FLIGHT = 2  # batches queued per actor: one running, one waiting, so an actor never waits on the driver


class EvaluateActor:
    """Ray actor: builds the defended model once, evaluates batches of clip records (or estimates their cost)."""

    def __init__(self, job: EvaluateJob, class_names: Sequence[str], cpu_threads: int | None = None):
        if cpu_threads:  # CPU-only runs: Ray pins a 1-CPU actor to one thread
            torch.set_num_threads(cpu_threads)
        self.evaluator = BatchEvaluator(job, class_names)

    def estimate(self, todo: Sequence[ClipRecord]) -> CostEstimate | None:
        return self.evaluator.estimate(todo)

    def evaluate(self, records: Sequence[ClipRecord], keep: Sequence[str]) -> BatchResult:
        return self.evaluator(records, keep)


class BatchesFailed(RuntimeError):
    """Batches failed after every retry; their clips are not in the manifest, so a rerun tries them again."""


@dataclass(frozen=True)
class Throughput:
    """This run's pace: clips finished, wall seconds, actors, and the seconds actors spent evaluating them."""

    clips: int
    seconds: float
    actors: int
    busy_seconds: float

    def describe(self) -> str:
        return (
            f"evaluated {self.clips} clips in {self.seconds:.1f} s on {self.actors} actor(s): "
            f"{self.clips / self.seconds:.3g} clips/s, {self.seconds / self.clips:.3g} s per clip; "
            f"actors busy {100 * self.busy_seconds / (self.seconds * self.actors):.0f}% of the run"
        )


def start_actors(job: EvaluateJob, class_names: Sequence[str], plan: ActorPlan, actor_cls: type = EvaluateActor) -> list[ActorHandle]:
    """``plan.actors`` actors, restarted (and their running batches retried) up to ``ACTOR_RETRIES`` times."""
    remote = ray.remote(actor_cls).options(
        num_gpus=plan.gpus_per_actor, num_cpus=1, max_restarts=ACTOR_RETRIES, max_task_retries=ACTOR_RETRIES
    )
    return [remote.remote(job, list(class_names), plan.cpu_threads) for _ in range(plan.actors)]


def stream_batches(
    actors: Sequence[ActorHandle], batches: Sequence[list[ClipRecord]], keep: set[str], in_flight: int = IN_FLIGHT
) -> Iterator[tuple[list[ClipRecord], BatchResult]]:
    """Evaluate ``batches`` on ``actors``, at most ``in_flight`` queued per actor; yield each batch with its result
    as it finishes. After a batch fails for good no new batch starts, and once the running ones are yielded
    :class:`BatchesFailed` names the clips left undone."""
    queue = deque(batches)
    running: dict[ray.ObjectRef, tuple[int, list[ClipRecord]]] = {}
    load = [0] * len(actors)  # batches queued per actor
    failed: list[str] = []
    while True:
        while queue and not failed and min(load) < in_flight:
            actor, batch = load.index(min(load)), queue.popleft()
            kept = sorted(keep.intersection(record.id for record in batch))
            running[actors[actor].evaluate.remote(batch, kept)] = (actor, batch)
            load[actor] += 1
        if not running:
            break
        [ref], _ = ray.wait(list(running), num_returns=1)
        actor, batch = running.pop(ref)
        load[actor] -= 1
        try:
            result = ray.get(ref)
        except RayError as exc:  # the library raised, or the actor died more than ACTOR_RETRIES times
            logger.error("batch %s failed: %s", [record.id for record in batch], exc)
            failed += [record.id for record in batch]
            continue
        yield batch, result
    if failed:
        undone = failed + [r.id for batch in queue for r in batch]
        raise BatchesFailed(f"{len(undone)} clip(s) not evaluated ({', '.join(undone[:5])}{', ...' if len(undone) > 5 else ''}); rerun to retry them")


def fetch_estimate(ref: ray.ObjectRef) -> CostEstimate | None:
    """The first actor's cost estimate of the clips to go, logged; ``None`` if it failed."""
    try:
        estimate = ray.get(ref)
    except RayError as exc:
        logger.warning("no cost estimate: %s", exc)
        return None
    if estimate is not None:
        logger.info("%s (one actor; divide the time by the number of actors)", estimate.describe())
    return estimate


def run_pipeline(job: EvaluateJob, plan: ActorPlan = ActorPlan(), in_flight: int = IN_FLIGHT, actor_cls: type = EvaluateActor) -> dict[str, Any]:
    """Run (or resume) ``job`` on the connected Ray cluster; returns the report, written as ``videopure evaluate``
    writes it (a failed sanity check raises :class:`SanityCheckError` after writing, when strict)."""
    evaluation = start_evaluation(job)
    run = describe_run(job, evaluation, build_classifier(job, evaluation.class_names).name)  # fails early on a bad checkpoint
    clip_ids = [record.id for record in evaluation.records]
    manifest = Manifest(job.output.dir / MANIFEST)
    batches = pending_batches(evaluation.records, manifest.done_ids(), job.clips_per_batch)
    cost: dict[str, Any] = {}
    if batches:
        actors = start_actors(job, evaluation.class_names, plan, actor_cls)
        try:
            cost = evaluate_on_actors(actors, batches, kept_ids(clip_ids, job.output), manifest, in_flight)
        finally:
            for actor in actors:
                ray.kill(actor)
    return finish_report(clip_ids, evaluation.class_names, job.protocol, job.output, run, cost)


def evaluate_on_actors(
    actors: Sequence[ActorHandle], batches: Sequence[list[ClipRecord]], keep: set[str], manifest: Manifest, in_flight: int = IN_FLIGHT
) -> dict[str, Any]:
    """Evaluate ``batches``, recording each as it finishes (progress bar, throughput); returns the report's cost."""
    todo = [record for batch in batches for record in batch]
    pending_estimate: ray.ObjectRef | None = actors[0].estimate.remote(todo)
    estimate: CostEstimate | None = None
    started, busy = time.perf_counter(), 0.0
    with tqdm(total=len(todo), desc="evaluate (ray)", unit="clip") as bar:
        for batch, result in stream_batches(actors, batches, keep, in_flight):
            record_batch(manifest.path.parent, manifest, result)
            busy += sum(row.get("seconds", 0.0) for row in result.rows)
            bar.update(len(batch))
            if pending_estimate is not None and ray.wait([pending_estimate], timeout=0)[0]:
                estimate, pending_estimate = fetch_estimate(pending_estimate), None
    seconds = time.perf_counter() - started
    logger.info("%s", Throughput(len(todo), seconds, len(actors), busy).describe())
    return run_cost(estimate if pending_estimate is None else fetch_estimate(pending_estimate), seconds)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = job_parser(__doc__.splitlines()[0], "YAML evaluation config, as for `videopure evaluate`")
    parser.add_argument("--clips", type=int, help="evaluate N clips of the split (seeded order; overrides evaluation.clips)")
    parser.add_argument("--actors", type=int, help="model actors; default: one per GPU, or 1 without GPUs")
    parser.add_argument("--cpu-threads", type=int, help="torch threads of each CPU-only actor (default: the CPUs shared)")
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT, help=f"batches queued per actor (default {IN_FLIGHT})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    args = parse_args(argv)
    job = load_job(args, EvaluateJob, [f"evaluation.clips={args.clips}"] if args.clips is not None else [])
    report: dict[str, Any] | None = None
    try:
        with ray_session(args):
            plan = plan_actors(args.actors, args.gpus_per_actor, cpu_threads=args.cpu_threads)
            report = run_pipeline(on_actor_device(job, plan), plan, args.in_flight)
    except BatchesFailed as exc:
        logger.error("%s", exc)
        return 1
    except SanityCheckError as exc:  # the report is written: show it, as `videopure evaluate` does
        logger.error("%s", exc)
    sys.stdout.write((job.output.dir / "report.md").read_text(encoding="utf-8"))
    return SANITY_FAILED if report is None or failed_checks(report) else 0


if __name__ == "__main__":
    sys.exit(main())
