"""Clean evaluation of a classifier on a dataset split: top-1/top-5, multi-view, per-class accuracy, confusion.

:func:`evaluate` reads every video of a split as ``K`` temporal windows × 1 or 3 spatial crops, averages the
logits of the views, and returns an :class:`EvalResult` (JSON-ready with :meth:`EvalResult.to_dict`). The model
is any ``nn.Module`` mapping clips ``(B, C, T, H, W)`` in ``[0, 1]`` to logits: a
:class:`~videopure.models.VideoClassifier`, or a purifier in front of one.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal, Optional, Sequence

import torch
from torch import Tensor, nn
from tqdm import tqdm

from videopure.data import ClipRecord
from videopure.devices import resolve_device
from videopure.models.clip_dataset import Batch, ClipDataset, ClipSampling, EvalViews, SkippedVideo, make_loader

logger = logging.getLogger(__name__)

__all__ = [
    "PRECISIONS",
    "AccuracyMeter",
    "ClassAccuracy",
    "EvalConfig",
    "EvalResult",
    "Prediction",
    "autocast",
    "evaluate",
    "evaluate_batches",
]

Precision = Literal["float32", "bfloat16", "float16"]
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16", "float16")
TOP_K = 5


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """Mixed precision on ``device`` for ``bfloat16``/``float16``; nothing for ``float32``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, precision))


@dataclass(frozen=True)
class EvalConfig:
    """How :func:`evaluate` reads and runs a split.

    Attributes:
        temporal_views: windows per video, spread evenly over it.
        spatial_crops: 1 (centre) or 3 (start, centre, end of the long side).
        batch_size: videos per batch (the model sees ``batch_size × views`` clips).
        num_workers: DataLoader processes decoding videos (0: decode in this process).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        precision: autocast dtype on the device (``float32``: none).
        backend: video decoder.
        decode_timeout: seconds allowed per video, in a killable worker process (``None``: in-process, no limit).
    """

    temporal_views: int = 1
    spatial_crops: Literal[1, 3] = 1
    batch_size: int = 8
    num_workers: int = 2
    device: str = "auto"
    precision: Precision = "float32"
    backend: Literal["auto", "decord", "pyav"] = "auto"
    decode_timeout: Optional[float] = 60.0

    def __post_init__(self) -> None:
        for name, low in (("temporal_views", 1), ("batch_size", 1), ("num_workers", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")


@dataclass(frozen=True)
class ClassAccuracy:
    name: str
    videos: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.videos if self.videos else None


@dataclass(frozen=True)
class Prediction:
    id: str
    label: int
    predicted: int


@dataclass(frozen=True)
class EvalResult:
    """Accuracy over the videos that decoded; ``top5`` is top-min(5, classes).

    ``confusion[i][j]`` counts videos of class ``i`` predicted as ``j``.
    """

    num_videos: int
    top1: float
    top5: float
    class_names: tuple[str, ...]
    per_class: tuple[ClassAccuracy, ...]
    confusion: tuple[tuple[int, ...], ...]
    predictions: tuple[Prediction, ...]
    skipped: tuple[SkippedVideo, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; per-class entries carry their accuracy."""
        data = asdict(self)
        data["per_class"] = [{**asdict(c), "accuracy": c.accuracy} for c in self.per_class]
        return data


class AccuracyMeter:
    """Accumulates logits and labels batch by batch into an :class:`EvalResult`."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = tuple(class_names)
        n = len(self.class_names)
        self.confusion = torch.zeros(n, n, dtype=torch.int64)
        self.top5_correct = 0
        self.predictions: list[Prediction] = []

    def update(self, logits: Tensor, labels: Tensor, ids: Sequence[str]) -> None:
        """``logits (B, classes)`` (any device) against ``labels (B,)``."""
        n = len(self.class_names)
        if logits.ndim != 2 or logits.shape[1] != n or not logits.shape[0] == len(labels) == len(ids):
            raise ValueError(f"expected logits (B, {n}) for B labels and ids, got {tuple(logits.shape)}, {len(labels)}")
        logits, labels = logits.detach().float().cpu(), labels.cpu()
        predicted = logits.argmax(dim=1)
        self.confusion += torch.bincount(labels * n + predicted, minlength=n * n).view(n, n)
        top = logits.topk(min(TOP_K, n), dim=1).indices
        self.top5_correct += int((top == labels[:, None]).any(dim=1).sum())
        self.predictions.extend(Prediction(i, int(y), int(p)) for i, y, p in zip(ids, labels, predicted))

    @property
    def total(self) -> int:
        return len(self.predictions)

    @property
    def top1(self) -> float:
        return float(self.confusion.trace()) / self.total if self.total else 0.0

    def result(self, skipped: Sequence[SkippedVideo] = ()) -> EvalResult:
        rows = self.confusion.tolist()
        per_class = tuple(ClassAccuracy(name, sum(row), row[i]) for i, (name, row) in enumerate(zip(self.class_names, rows)))
        return EvalResult(
            num_videos=self.total,
            top1=self.top1,
            top5=self.top5_correct / self.total if self.total else 0.0,
            class_names=self.class_names,
            per_class=per_class,
            confusion=tuple(tuple(row) for row in rows),
            predictions=tuple(self.predictions),
            skipped=tuple(skipped),
        )


def evaluate_batches(
    model: nn.Module,
    batches: Iterable[Batch],
    class_names: Sequence[str],
    *,
    device: torch.device,
    precision: Precision = "float32",
    channels_last: bool = False,
    desc: str = "evaluate",
) -> EvalResult:
    """Run ``model`` (in eval mode, without gradients) over ``batches``; logits of a video's views are averaged."""
    meter = AccuracyMeter(class_names)
    skipped: list[SkippedVideo] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in tqdm(batches, desc=desc, unit="batch", leave=False, disable=None):
                skipped.extend(batch.skipped)
                if not batch.ids:
                    continue
                with autocast(device, precision):
                    logits = model(batch.clips(device, channels_last))
                views = logits.float().unflatten(0, (len(batch.ids), -1))  # (B, V, classes)
                meter.update(views.mean(dim=1), batch.labels, batch.ids)
    finally:
        model.train(was_training)
    return meter.result(skipped)


def evaluate(
    model: nn.Module,
    records: Sequence[ClipRecord],
    class_names: Sequence[str],
    sampling: ClipSampling,
    config: EvalConfig = EvalConfig(),
) -> EvalResult:
    """Evaluate ``model`` on ``records`` read with ``sampling`` (e.g. ``ClipSampling.from_spec(classifier.spec)``).

    ``model`` is moved to the configured device. Videos that do not decode are logged and listed in ``skipped``.
    """
    device = resolve_device(config.device)
    model.to(device)
    dataset = ClipDataset(
        records,
        sampling,
        EvalViews(config.temporal_views, config.spatial_crops),
        backend=config.backend,
        decode_timeout=config.decode_timeout,
    )
    loader = make_loader(
        dataset, batch_size=config.batch_size, num_workers=config.num_workers, pin_memory=device.type == "cuda"
    )
    try:
        result = evaluate_batches(model, loader, class_names, device=device, precision=config.precision)
    finally:
        dataset.close()
    for video in result.skipped:
        logger.warning("skipped %s (%s): %s", video.id, video.path, video.reason)
    logger.info("top-1 %.4f, top-5 %.4f over %d videos (%d skipped)", result.top1, result.top5, result.num_videos, len(result.skipped))
    return result
