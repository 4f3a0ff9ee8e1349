"""Dataset statistics: videos per subset and class, missing files, and files that do not decode."""

from __future__ import annotations

import dataclasses
import logging
import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from videopure.data.decode import Backend, PathType, VideoInfo, check_video
from videopure.data.errors import VideoDecodeError
from videopure.data.splits import SUBSETS, DatasetSplit, Layout, SplitProblem, load_split
from videopure.data.worker import DecodeWorker

logger = logging.getLogger(__name__)

__all__ = ["UnreadableVideo", "SubsetStats", "DatasetStats", "check_videos", "dataset_stats"]

_PROGRESS_EVERY = 500


@dataclass(frozen=True)
class UnreadableVideo:
    """A listed video that is on disk but does not decode: its id, the error class name and the reason."""

    id: str
    error: str
    reason: str


@dataclass(frozen=True)
class SubsetStats:
    """One subset (``train``/``test``; ``all`` for list and folder layouts). Frame counts are of readable videos."""

    name: str
    num_videos: int
    per_class: dict[str, int]
    missing: tuple[SplitProblem, ...]
    unreadable: tuple[UnreadableVideo, ...]
    min_frames: int | None
    max_frames: int | None


@dataclass(frozen=True)
class DatasetStats:
    """Statistics of one split of a dataset; ``decoded`` says whether the videos were decoded."""

    root: str
    layout: str
    split: int | None
    class_names: tuple[str, ...]
    decoded: bool
    subsets: tuple[SubsetStats, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts and lists, ready for ``json.dumps``."""
        return dataclasses.asdict(self)


def check_videos(
    paths: Sequence[PathType], *, backend: Backend = "auto", timeout: float = 60.0, workers: int = 1
) -> dict[Path, VideoInfo | VideoDecodeError]:
    """Decode every frame of each video in ``workers`` worker processes, each call limited to ``timeout`` seconds.

    Returns, per path, its :class:`VideoInfo` or the :class:`VideoDecodeError` it raised.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    pool: queue.SimpleQueue[DecodeWorker] = queue.SimpleQueue()
    decoders = [DecodeWorker(timeout) for _ in range(workers)]
    for decoder in decoders:
        pool.put(decoder)

    def check(path: PathType) -> VideoInfo | VideoDecodeError:
        decoder = pool.get()
        try:
            return decoder.run(check_video, path, backend)
        except VideoDecodeError as exc:
            return exc
        finally:
            pool.put(decoder)

    results: list[VideoInfo | VideoDecodeError] = []
    try:
        with ThreadPoolExecutor(workers) as executor:
            for done, result in enumerate(executor.map(check, paths), start=1):
                results.append(result)
                if done % _PROGRESS_EVERY == 0:
                    logger.info("decoded %d of %d videos", done, len(paths))
    finally:
        for decoder in decoders:
            decoder.close()
    return {Path(path): result for path, result in zip(paths, results)}


def dataset_stats(
    root: PathType,
    layout: Layout,
    split: int = 1,
    *,
    annotations: PathType | None = None,
    decode: bool = True,
    backend: Backend = "auto",
    timeout: float = 60.0,
    workers: int = 1,
) -> DatasetStats:
    """Counts per subset and class of one split, its missing videos and (``decode=True``) its unreadable ones.

    Arguments as for :func:`videopure.data.load_split` and :func:`check_videos`.
    """
    subsets = SUBSETS if layout in ("ucf101", "hmdb51") else ("all",)
    splits = [load_split(root, layout, split, subset, annotations=annotations) for subset in subsets]
    paths = list(dict.fromkeys(record.path for s in splits for record in s.records))
    results = check_videos(paths, backend=backend, timeout=timeout, workers=workers) if decode else {}
    return DatasetStats(
        root=str(root),
        layout=layout,
        split=splits[0].split,
        class_names=splits[0].class_names,
        decoded=decode,
        subsets=tuple(_subset_stats(name, s, results) for name, s in zip(subsets, splits)),
    )


def _subset_stats(name: str, split: DatasetSplit, results: dict[Path, VideoInfo | VideoDecodeError]) -> SubsetStats:
    outcomes = [(record, results.get(record.path)) for record in split.records]
    unreadable = tuple(
        UnreadableVideo(record.id, type(outcome).__name__, outcome.reason)
        for record, outcome in outcomes
        if isinstance(outcome, VideoDecodeError)
    )
    frames = [outcome.num_frames for _, outcome in outcomes if isinstance(outcome, VideoInfo)]
    return SubsetStats(
        name=name,
        num_videos=len(split.records),
        per_class=split.class_counts(),
        missing=split.problems,
        unreadable=unreadable,
        min_frames=min(frames, default=None),
        max_frames=max(frames, default=None),
    )
