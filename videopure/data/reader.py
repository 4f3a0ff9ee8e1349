"""``read_clip``: sample, decode (optionally in a worker process with a timeout), resize and crop."""

from __future__ import annotations

import atexit
import threading

import numpy as np
import torch

from videopure.data.decode import Backend, PathType, decode_clips
from videopure.data.transforms import center_crop, resize_short_side
from videopure.data.worker import DecodeWorker

__all__ = ["read_clip", "read_clips"]

_shared_worker: DecodeWorker | None = None
_shared_worker_lock = threading.Lock()


def read_clips(
    path: PathType,
    num_frames: int,
    num_clips: int = 1,
    *,
    stride: int | None = None,
    size: int | None = None,
    crop: int | tuple[int, int] | None = None,
    backend: Backend = "auto",
    timeout: float | None = None,
    worker: DecodeWorker | None = None,
) -> np.ndarray:
    """Read ``num_clips`` clips of ``num_frames`` frames from a video → uint8 ``(num_clips, T, H, W, 3)``.

    Args:
        stride: ``None`` samples frames uniformly over the whole video; an int takes every ``stride``-th frame.
            See :func:`videopure.data.sample_indices` for where the clips lie.
        size: resize so that the shorter side is ``size`` (``None``: keep the decoded size).
        crop: then crop the centre, square (int) or ``(height, width)`` (``None``: no crop).
        backend: ``'decord'``, ``'pyav'`` or ``'auto'`` (decord when installed). Both give identical frames.
        timeout: decode in a worker process and give up after this many seconds (:class:`DecodeTimeoutError`).
            Without ``timeout`` or ``worker`` the decode runs in this process, where a hung decoder cannot be
            stopped. A torch DataLoader worker cannot start child processes: leave ``timeout`` unset there.
        worker: the :class:`DecodeWorker` to decode in (default with ``timeout``: one shared per process).

    Raises:
        VideoDecodeError: a subclass saying why the file could not give these clips (see ``videopure.data.errors``).
    """
    if worker is None and timeout is not None:
        worker = _get_shared_worker()
    if worker is None:
        clips = decode_clips(path, num_frames, stride=stride, num_clips=num_clips, backend=backend)
    else:
        clips = worker.decode_clips(
            path, num_frames, stride=stride, num_clips=num_clips, backend=backend, timeout=timeout
        )
    return _resize_and_crop(clips, size, crop)


def read_clip(
    path: PathType,
    num_frames: int,
    *,
    stride: int | None = None,
    size: int | None = None,
    crop: int | tuple[int, int] | None = None,
    backend: Backend = "auto",
    timeout: float | None = None,
    worker: DecodeWorker | None = None,
) -> np.ndarray:
    """Read one clip of ``num_frames`` frames → uint8 ``(T, H, W, 3)``. Arguments as for :func:`read_clips`."""
    clips = read_clips(
        path, num_frames, stride=stride, size=size, crop=crop, backend=backend, timeout=timeout, worker=worker
    )
    return clips[0]


def _resize_and_crop(clips: np.ndarray, size: int | None, crop: int | tuple[int, int] | None) -> np.ndarray:
    if size is None and crop is None:
        return clips
    frames = torch.from_numpy(clips)
    if size is not None:
        frames = resize_short_side(frames, size)
    if crop is not None:
        frames = center_crop(frames, crop)
    return np.ascontiguousarray(frames.numpy())


def _get_shared_worker() -> DecodeWorker:
    global _shared_worker
    with _shared_worker_lock:
        if _shared_worker is None:
            _shared_worker = DecodeWorker()
            atexit.register(_shared_worker.close)
        return _shared_worker
