"""Decoding speed: clips per second for each decode backend on the same videos, in the same run."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from videopure.data import read_clip

logger = logging.getLogger(__name__)

__all__ = ["DecodeBenchResult", "bench_decode"]


@dataclass(frozen=True)
class DecodeBenchResult:
    """Best-of-``repeats`` throughput per backend; ``identical``: every backend gave the same clips."""

    num_videos: int
    num_frames: int
    repeats: int
    clips_per_second: dict[str, float]
    identical: bool


def bench_decode(
    paths: Sequence[Path], num_frames: int = 16, *, backends: Sequence[str] = ("decord", "pyav"), repeats: int = 3
) -> DecodeBenchResult:
    """Time :func:`videopure.data.read_clip` (uniform sampling, in this process) over ``paths`` with each backend.

    The backends take turns within each repeat, so that both see the same machine load.
    """
    if not paths or repeats < 1:
        raise ValueError("need at least one video and one repeat")
    seconds: dict[str, list[float]] = {backend: [] for backend in backends}
    digests: dict[str, list[str]] = {}
    for repeat in range(repeats):
        for backend in backends:
            start = time.perf_counter()
            clips = [read_clip(path, num_frames, backend=backend) for path in paths]
            seconds[backend].append(time.perf_counter() - start)
            digests.setdefault(backend, [hashlib.sha1(clip.tobytes()).hexdigest() for clip in clips])
        logger.debug("repeat %d: %s", repeat, {b: round(s[-1], 3) for b, s in seconds.items()})
    return DecodeBenchResult(
        num_videos=len(paths),
        num_frames=num_frames,
        repeats=repeats,
        clips_per_second={backend: len(paths) / min(times) for backend, times in seconds.items()},
        identical=len({tuple(d) for d in digests.values()}) == 1,
    )
