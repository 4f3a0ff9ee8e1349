"""Clips for training and evaluation: a torch ``Dataset`` over :class:`ClipRecord` s, decoded in DataLoader workers.

An item is one video read as ``V`` views, uint8 ``(V, T, H, W, C)``. :class:`TrainView` draws one random view
(temporal offset, short-side scale, crop position, optional horizontal flip); :class:`EvalViews` takes ``K``
evenly spaced temporal windows × 1 (centre) or 3 (along the long side) spatial crops. The randomness of an item
comes from a generator seeded by ``(seed, epoch, clip id)``: a clip's view does not depend on the worker count,
the batch or the order. A video that cannot be decoded becomes a :class:`SkippedVideo`, which :func:`collate`
moves out of the batch; with ``decode_timeout`` set, each loader process decodes in its own killable
:class:`~videopure.data.DecodeWorker`, so a hung decoder costs one video, not the run.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from videopure.data import (
    ClipRecord,
    DecodeWorker,
    VideoDecodeError,
    VideoTooShortError,
    decode_frames,
    frames_needed,
    probe_video,
    resize_short_side,
    sample_indices,
    to_float_clip,
)
from videopure.data.decode import Backend
from videopure.models.smooth_adversarial import smooth_perturbation
from videopure.models.spec import InputSpec

logger = logging.getLogger(__name__)

__all__ = [
    "Batch",
    "ClipDataset",
    "ClipSample",
    "ClipSampling",
    "EpochShuffle",
    "EvalViews",
    "SkippedVideo",
    "TrainView",
    "collate",
    "derive_seed",
    "make_loader",
]


def derive_seed(*parts: int) -> int:
    """One 63-bit seed from non-negative integers (``(run seed, epoch)``, ...), well mixed."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class ClipSampling:
    """The frames of a clip (``num_frames`` frames ``stride`` apart) and the square crop they end in."""

    num_frames: int
    stride: int
    crop_size: int
    short_side: int

    @classmethod
    def from_spec(cls, spec: InputSpec, num_frames: int | None = None, stride: int | None = None) -> ClipSampling:
        """The model's own sampling (the zoo's "frames x rate", crop and short side), frames and stride overridable."""
        return cls(num_frames or spec.num_frames, stride or spec.sampling_rate, spec.crop_size, spec.short_side)


class ClipViews(Protocol):
    """Where the views of a video lie in time (:meth:`indices`) and space (:meth:`crop`)."""

    def indices(self, total: int, sampling: ClipSampling, rng: np.random.Generator) -> np.ndarray:
        """Frame indices ``(K, T)`` of the ``K`` temporal windows of a video of ``total >= T`` frames."""

    def crop(self, frames: Tensor, sampling: ClipSampling, rng: np.random.Generator) -> Tensor:
        """uint8 ``(K, T, H, W, C)`` → the views ``(V, T, crop, crop, C)``."""


def _windows(total: int, sampling: ClipSampling, num_clips: int) -> np.ndarray:
    """``num_clips`` windows of ``stride``-spaced frames spread evenly; a video too short for that, uniformly."""
    fits = total >= frames_needed(sampling.num_frames, sampling.stride)
    stride = sampling.stride if fits else None
    return sample_indices(total, sampling.num_frames, stride=stride, num_clips=num_clips)


def _crop(frames: Tensor, top: int, left: int, size: int) -> Tensor:
    return frames[..., top : top + size, left : left + size, :]


def smooth_fields(rng: np.random.Generator, count: int, size: int, amplitude: float, cells: int) -> Tensor:
    """``count`` random smooth colour fields, float ``(count, size, size, 3)``: a ``cells × cells`` grid of values
    drawn uniformly from ``[-amplitude, amplitude]`` per channel, bilinearly enlarged to ``size × size``."""
    grid = torch.from_numpy(rng.uniform(-amplitude, amplitude, (count, 3, 1, cells, cells)).astype(np.float32))
    return smooth_perturbation(grid, (size, size))[:, :, 0].permute(0, 2, 3, 1)


@dataclass(frozen=True)
class TrainView:
    """One random view: a random window, the short side scaled to ``short_side × U(scale)``, a random square crop,
    a horizontal flip with probability ½ when ``hflip`` (leave it off where left/right is the class), and, when
    ``field_amplitude`` > 0, a random colour field (:func:`smooth_fields`, amplitude on the [0, 1] scale) added to
    every frame, a new one per frame, with a grid size drawn per clip from ``field_cells`` (the crop size gives
    per-pixel noise)."""

    scale: tuple[float, float] = (1.0, 1.25)
    hflip: bool = True
    field_amplitude: float = 0.0
    field_cells: tuple[int, ...] = (8,)

    def indices(self, total: int, sampling: ClipSampling, rng: np.random.Generator) -> np.ndarray:
        needed = frames_needed(sampling.num_frames, sampling.stride)
        if total < needed:
            return _windows(total, sampling, 1)
        start = int(rng.integers(total - needed + 1))
        return (start + sampling.stride * np.arange(sampling.num_frames, dtype=np.int64))[None]

    def crop(self, frames: Tensor, sampling: ClipSampling, rng: np.random.Generator) -> Tensor:
        size = max(sampling.crop_size, round(sampling.short_side * rng.uniform(*self.scale)))
        frames = resize_short_side(frames, size)
        height, width = frames.shape[-3:-1]
        top = int(rng.integers(height - sampling.crop_size + 1))
        left = int(rng.integers(width - sampling.crop_size + 1))
        frames = _crop(frames, top, left, sampling.crop_size)
        frames = frames.flip(-2) if self.hflip and rng.random() < 0.5 else frames
        return self._add_fields(frames, rng) if self.field_amplitude > 0 else frames

    def _add_fields(self, frames: Tensor, rng: np.random.Generator) -> Tensor:
        """uint8 views ``(V, T, S, S, C)`` plus one smooth field per frame, rounded back to uint8."""
        *lead, size, _, _ = frames.shape
        cells = int(self.field_cells[rng.integers(len(self.field_cells))])
        fields = smooth_fields(rng, int(np.prod(lead)), size, 255.0 * self.field_amplitude, cells)
        return (frames.float() + fields.reshape(frames.shape)).round_().clamp_(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class EvalViews:
    """``temporal`` windows spread evenly over the video × ``spatial`` crops, deterministic.

    One crop: the short side resized to ``short_side`` and the centre ``crop_size`` square. Three crops
    (PySlowFast's multi-view test): the short side resized to ``crop_size`` and three squares along the long
    side (start, centre, end). Views are ordered window-major: view ``k * spatial + s``.
    """

    temporal: int = 1
    spatial: int = 1

    def __post_init__(self) -> None:
        if self.temporal < 1 or self.spatial not in (1, 3):
            raise ValueError(f"need temporal views >= 1 and 1 or 3 spatial crops, got {self.temporal}, {self.spatial}")

    def indices(self, total: int, sampling: ClipSampling, rng: np.random.Generator) -> np.ndarray:
        return _windows(total, sampling, self.temporal)

    def crop(self, frames: Tensor, sampling: ClipSampling, rng: np.random.Generator) -> Tensor:
        size = sampling.crop_size
        if self.spatial == 1:
            frames = resize_short_side(frames, sampling.short_side)
            height, width = frames.shape[-3:-1]
            return _crop(frames, (height - size) // 2, (width - size) // 2, size)
        frames = resize_short_side(frames, size)
        height, width = frames.shape[-3:-1]
        offsets = [0, (max(height, width) - size) // 2, max(height, width) - size]
        crops = [_crop(frames, o, 0, size) if height > width else _crop(frames, 0, o, size) for o in offsets]
        return torch.stack(crops, dim=1).flatten(0, 1)  # (K, 3, T, ...) → (K·3, T, ...)


@dataclass(frozen=True)
class SkippedVideo:
    """A video left out because it could not be decoded: its id, file and the reason."""

    id: str
    path: str
    reason: str


class ClipSample(NamedTuple):
    frames: Tensor  # uint8 (V, T, H, W, C)
    label: int
    id: str


class _Decoder:
    """Runs decode functions here, or with ``timeout`` in a :class:`DecodeWorker` owned by the calling process."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._worker: DecodeWorker | None = None
        self._pid: int | None = None

    def __call__(self, fn: Callable[..., Any], path: Any, *args: Any) -> Any:
        if self.timeout is None:
            return fn(path, *args)
        if self._pid != os.getpid():  # a forked loader process must not talk to its parent's worker
            self._worker, self._pid = DecodeWorker(timeout=self.timeout), os.getpid()
        return self._worker.run(fn, path, *args)

    def close(self) -> None:
        if self._worker is not None and self._pid == os.getpid():
            self._worker.close()

    def __getstate__(self) -> dict[str, Any]:  # spawned loader processes start their own worker
        return {"timeout": self.timeout, "_worker": None, "_pid": None}


class ClipDataset(Dataset):
    """The videos of ``records`` as uint8 views ``(V, T, H, W, C)``; an undecodable one as a :class:`SkippedVideo`.

    Keys are record indices, or ``(epoch, index)`` from :class:`EpochShuffle` (the epoch seeds the views).

    Args:
        records: the videos.
        sampling: frames per window, their stride, the crop and short side.
        views: :class:`TrainView` or :class:`EvalViews`.
        seed: run seed; with the epoch and the clip id it seeds every random choice of an item.
        backend: decoder (``'auto'``: decord when installed).
        decode_timeout: seconds allowed to decode one video, in a worker process (``None``: decode in-process).
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        sampling: ClipSampling,
        views: ClipViews,
        *,
        seed: int = 0,
        backend: Backend = "auto",
        decode_timeout: float | None = 60.0,
    ) -> None:
        self.records = tuple(records)
        self.sampling = sampling
        self.views = views
        self.seed = seed
        self.backend = backend
        self._decode = _Decoder(decode_timeout)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> ClipSample | SkippedVideo:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        record = self.records[index]
        rng = np.random.default_rng([self.seed, epoch, zlib.crc32(record.id.encode())])
        try:
            frames = self._read(record, rng)
        except VideoDecodeError as exc:
            return SkippedVideo(record.id, str(record.path), f"{type(exc).__name__}: {exc.reason}")
        return ClipSample(self.views.crop(frames, self.sampling, rng), record.label, record.id)

    def _read(self, record: ClipRecord, rng: np.random.Generator) -> Tensor:
        info = self._decode(probe_video, record.path)
        if info.num_frames < self.sampling.num_frames:
            raise VideoTooShortError(
                record.path, f"a clip needs {self.sampling.num_frames} frames, the video has {info.num_frames}"
            )
        indices = self.views.indices(info.num_frames, self.sampling, rng)
        frames = self._decode(decode_frames, record.path, indices.ravel(), self.backend, info)
        return torch.from_numpy(frames).unflatten(0, indices.shape)

    def close(self) -> None:
        """Stop this process's decode worker, if it started one."""
        self._decode.close()


class EpochShuffle(Sampler[tuple[int, int]]):
    """``(epoch, index)`` keys in a permutation drawn from ``(seed, epoch)``; call :meth:`set_epoch` each epoch.

    The sampler runs in the main process, so the epoch reaches persistent loader workers through the keys.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        return iter([(self.epoch, i) for i in torch.randperm(self.size, generator=generator).tolist()])


@dataclass
class Batch:
    """Decoded clips of one batch and the videos of it that were skipped."""

    frames: Tensor  # uint8 (B, V, T, H, W, C); B may be 0 when every video was skipped
    labels: Tensor  # int64 (B,)
    ids: tuple[str, ...]
    skipped: tuple[SkippedVideo, ...]

    def clips(self, device: torch.device, channels_last: bool = False) -> Tensor:
        """float ``(B·V, C, T, H, W)`` in ``[0, 1]`` on ``device`` (converted there, so uint8 travels)."""
        clips = to_float_clip(self.frames.flatten(0, 1).to(device, non_blocking=True))
        return clips.contiguous(memory_format=torch.channels_last_3d) if channels_last else clips

    def pin_memory(self) -> Batch:
        return Batch(self.frames.pin_memory(), self.labels.pin_memory(), self.ids, self.skipped)


def collate(items: Sequence[ClipSample | SkippedVideo]) -> Batch:
    """Stack the decoded items; the skipped ones go to ``Batch.skipped``."""
    samples = [item for item in items if isinstance(item, ClipSample)]
    skipped = tuple(item for item in items if isinstance(item, SkippedVideo))
    if not samples:
        return Batch(torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), (), skipped)
    frames = torch.stack([s.frames for s in samples])
    labels = torch.tensor([s.label for s in samples], dtype=torch.int64)
    return Batch(frames, labels, tuple(s.id for s in samples), skipped)


def _init_worker(worker_id: int) -> None:
    torch.set_num_threads(1)  # loader processes resize frames; leave the cores to the model


def make_loader(
    dataset: ClipDataset,
    *,
    batch_size: int,
    num_workers: int,
    seed: int = 0,
    sampler: Sampler | None = None,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader of :class:`Batch` es, its workers persistent and seeded from ``seed`` (not the global RNG)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=drop_last,
        worker_init_fn=_init_worker,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
    )
