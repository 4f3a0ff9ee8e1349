"""Driver-side Ray set-up shared by the pipelines: command-line options, a local Ray or a cluster, actor sizing.

Only drivers import this module: Ray workers never need it (actor classes live in the pipeline scripts, which Ray
pickles by value). A script finds it beside itself or, when ``ray submit`` copied the script alone to the head node,
in the repository the cluster YAMLs mount at ``~/videopure``.
"""

from __future__ import annotations

import argparse
import logging
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence, TypeVar

import ray

from videopure.config import load_config

Job = TypeVar("Job")  # a job config dataclass (PurifyJob, EvaluateJob)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def job_parser(description: str, config_help: str) -> argparse.ArgumentParser:
    """The options every pipeline takes: the job config and its overrides, where Ray runs, GPUs per actor."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", type=Path, required=True, help=config_help)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    parser.add_argument("--limit", type=int, help="only the first N clips of the split")
    parser.add_argument("--address", help="join an existing cluster ('auto' or host:port); default: start a local Ray")
    parser.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: all)")
    parser.add_argument("--dashboard", action="store_true", help="start Ray's dashboard with a local Ray")
    parser.add_argument(
        "--gpus-per-actor", type=float,
        help="default: 1 when the cluster has GPUs now, else 0 (an autoscaling cluster with no GPU node up yet: set it)",
    )
    return parser


def load_job(args: argparse.Namespace, cls: type[Job], overrides: Sequence[str] = ()) -> Job:
    """The job config of ``args`` with its ``--set`` overrides, ``overrides``, and ``--limit`` applied."""
    limit = [f"dataset.limit={args.limit}"] if args.limit is not None else []
    return load_config(args.config, cls, [*args.overrides, *overrides, *limit])


def init_ray(address: str | None, num_cpus: int | None, dashboard: bool) -> None:
    """Join ``address`` if given; otherwise start a local Ray with no dashboard unless asked.

    Ray's token authentication is left as Ray sets it (on by default for local clusters since Ray 2.59) and never
    turned off here. A local Ray listens on all interfaces: it is not private to this machine.
    """
    if address:
        ray.init(address=address, log_to_driver=False)
        return
    # address="local": always a new instance; a bare ray.init() would attach to any cluster already on this host
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=dashboard, log_to_driver=False)


@contextmanager
def ray_session(args: argparse.Namespace) -> Iterator[None]:
    """Ray joined or started as ``args`` say (:func:`init_ray`), shut down on exit."""
    init_ray(args.address, args.num_cpus, args.dashboard)
    try:
        yield
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class ActorPlan:
    """The model actors to start: how many, GPUs each, and (CPU-only actors) torch threads each."""

    actors: int = 1
    gpus_per_actor: float = 0.0
    cpu_threads: int | None = None


def plan_actors(actors: int | None = None, gpus_per_actor: float | None = None, reserved_cpus: int = 0, cpu_threads: int | None = None) -> ActorPlan:
    """One actor per ``gpus_per_actor`` GPUs of the connected cluster (default 1 GPU each); without GPUs, one CPU
    actor whose torch threads use the CPUs left after ``reserved_cpus`` (unless ``cpu_threads`` says)."""
    gpus = ray.cluster_resources().get("GPU", 0)
    per_actor = gpus_per_actor if gpus_per_actor is not None else (1.0 if gpus else 0.0)
    count = actors or (max(1, int(gpus // per_actor)) if per_actor else 1)
    threads = None if per_actor else cpu_threads or cpu_threads_per_actor(count, reserved_cpus)
    return ActorPlan(count, per_actor, threads)


def cpu_threads_per_actor(actors: int, reserved_cpus: int = 0) -> int:
    """Torch threads for each of ``actors`` CPU-only model actors: the cluster's CPUs left after ``reserved_cpus``.

    Ray pins a 1-CPU actor to one thread; a CPU-only model actor gets the cores the other stages leave.
    """
    return max(1, (int(ray.cluster_resources().get("CPU", 1)) - reserved_cpus) // actors)


def on_actor_device(job: Job, plan: ActorPlan) -> Job:
    """``job`` with ``device: cpu`` when its actors hold no GPU (``auto``/``cuda`` would find none there)."""
    if plan.gpus_per_actor == 0 and job.device in ("auto", "cuda"):
        return replace(job, device="cpu")
    return job
