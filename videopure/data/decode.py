"""Deterministic frame decoding with decord or PyAV, and temporal sampling.

Frames are always decoded in order from the start of the file (decord: ``next``; PyAV: the decode iterator),
never with seeks: on AVI files with B-frames (as the UCF-101/HMDB-51 originals) decord's ``get_batch`` and even
``skip_frames`` return wrong frames, while sequential reads make both backends give bit-identical frames. The frame count comes from the container
header (read with PyAV) for both backends, so both sample the same indices and a truncated file is reported
whichever decodes it (decord alone silently shortens a truncated AVI; PyAV alone returns its decodable prefix).

This module imports no torch: it is what runs inside the decode worker process.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Callable, Literal, Sequence

import av
import numpy as np

from videopure.data.errors import (
    EmptyVideoError,
    NotAVideoError,
    UnreadableVideoError,
    VideoNotFoundError,
    VideoTooShortError,
    VideoTruncatedError,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "Backend",
    "VideoInfo",
    "probe_video",
    "frames_needed",
    "sample_indices",
    "decode_frames",
    "decode_clips",
    "check_video",
    "resolve_backend",
]

Backend = Literal["auto", "decord", "pyav"]
BACKENDS: tuple[str, ...] = ("auto", "decord", "pyav")
PathType = str | PathLike[str]

# (offset, magic bytes, container name): files that start like a video container but cannot be opened are
# reported as damaged videos, everything else that cannot be opened as "not a video".
_CONTAINER_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (8, b"AVI ", "AVI"),
    (4, b"ftyp", "MP4/QuickTime"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"FLV", "FLV"),
    (0, b"\x00\x00\x01\xba", "MPEG program stream"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "ASF/WMV"),
    (0, b"OggS", "Ogg"),
)


@dataclass(frozen=True)
class VideoInfo:
    """What the container header says about a file's first video stream."""

    num_frames: int
    fps: float
    height: int
    width: int
    codec: str


def probe_video(path: PathType) -> VideoInfo:
    """Read the header of ``path`` (no decoding). Raises a :class:`VideoDecodeError` subclass saying why not."""
    path = Path(path)
    _check_file(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise _open_error(path, exc) from None
    with container:
        if not container.streams.video:
            raise NotAVideoError(path, f"no video stream in this {container.format.name} file")
        stream = container.streams.video[0]
        num_frames = stream.frames or _count_packets(container)
        codec = stream.codec_context
        info = VideoInfo(num_frames, float(stream.average_rate or 0.0), codec.height, codec.width, codec.name)
    if info.num_frames == 0:
        raise VideoTooShortError(path, "the video stream holds no frames")
    return info


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoNotFoundError(path, "no such file")
    if not path.is_file():
        raise NotAVideoError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise EmptyVideoError(path, "the file is empty (0 bytes)")


def _open_error(path: Path, exc: Exception) -> Exception:
    reason = getattr(exc, "strerror", None) or str(exc)
    if isinstance(exc, PermissionError):
        return UnreadableVideoError(path, f"cannot open it: {reason}")
    with path.open("rb") as handle:
        head = handle.read(16)
    for offset, magic, name in _CONTAINER_SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return UnreadableVideoError(path, f"damaged {name} file that cannot be opened ({reason})")
    return NotAVideoError(path, f"not a recognised video container ({reason})")


def _count_packets(container: av.container.InputContainer) -> int:
    """Frame count for containers whose header has none (e.g. WebM): the number of video packets."""
    return sum(1 for packet in container.demux(video=0) if packet.size)


def frames_needed(num_frames: int, stride: int | None = None) -> int:
    """How many frames a video must have for one clip of ``num_frames`` (uniform sampling, or a fixed stride)."""
    return num_frames if stride is None else (num_frames - 1) * stride + 1


def sample_indices(total: int, num_frames: int, *, stride: int | None = None, num_clips: int = 1) -> np.ndarray:
    """Frame indices of ``num_clips`` clips of ``num_frames`` frames from a video of ``total`` frames.

    Uniform sampling (``stride=None``): the video is cut into ``num_frames`` equal segments and each clip takes
    one frame per segment, clip ``k`` at fraction ``(k + 0.5) / num_clips`` of the segment (one clip: centres).
    Fixed stride: each clip covers ``(num_frames - 1) * stride + 1`` frames; one clip is centred, several are
    spread evenly from the first to the last frame. Returns int64 ``(num_clips, num_frames)``, increasing per clip.
    """
    if num_frames < 1 or num_clips < 1 or (stride is not None and stride < 1):
        raise ValueError(f"need num_frames >= 1, num_clips >= 1, stride >= 1; got {num_frames}, {num_clips}, {stride}")
    needed = frames_needed(num_frames, stride)
    if total < needed:
        raise ValueError(f"a clip needs {needed} frames, the video has {total}")
    if stride is None:
        offsets = (np.arange(num_clips) + 0.5) / num_clips
        positions = (np.arange(num_frames)[None, :] + offsets[:, None]) * (total / num_frames)
        return np.floor(positions).astype(np.int64)
    last_start = total - needed
    starts = np.array([last_start // 2]) if num_clips == 1 else np.linspace(0, last_start, num_clips).round()
    return starts.astype(np.int64)[:, None] + stride * np.arange(num_frames, dtype=np.int64)[None, :]


@functools.cache
def resolve_backend(name: str) -> str:
    """``'auto'`` → ``'decord'`` when installed, else ``'pyav'``; an unknown or missing backend is a ValueError."""
    if name not in BACKENDS:
        raise ValueError(f"unknown decode backend {name!r}; choose one of {', '.join(BACKENDS)}")
    has_decord = importlib.util.find_spec("decord") is not None
    if name == "decord" and not has_decord:
        raise ValueError("decode backend 'decord' is not installed (pip install decord); 'pyav' works without it")
    if name == "auto":
        if not has_decord:
            logger.warning("decord is not installed: decoding with PyAV")
        return "decord" if has_decord else "pyav"
    return name


def decode_frames(
    path: PathType, indices: Sequence[int] | np.ndarray, backend: Backend = "auto", info: VideoInfo | None = None
) -> np.ndarray:
    """Decode the frames at ``indices`` (any order, repeats allowed) → uint8 ``(N, H, W, 3)`` RGB, in that order.

    ``info`` is the file's :func:`probe_video` result when the caller already has it.
    """
    path = Path(path)
    info = info or probe_video(path)
    requested = np.asarray(indices, dtype=np.int64).ravel()
    if requested.size == 0 or requested.min() < 0:
        raise ValueError(f"frame indices must be a non-empty list of indices >= 0, got {requested.tolist()}")
    if requested.max() >= info.num_frames:
        raise VideoTooShortError(path, f"frame {requested.max()} asked for, the video has {info.num_frames} frames")
    wanted = np.unique(requested)
    frames = _READERS[resolve_backend(backend)](path, wanted.tolist(), info.num_frames)
    return frames[np.searchsorted(wanted, requested)]


def decode_clips(
    path: PathType, num_frames: int, *, stride: int | None = None, num_clips: int = 1, backend: Backend = "auto"
) -> np.ndarray:
    """Sample (see :func:`sample_indices`) and decode clips at the file's own resolution.

    Returns uint8 ``(num_clips, num_frames, H, W, 3)``; a video with too few frames is a :class:`VideoTooShortError`.
    """
    info = probe_video(path)
    needed = frames_needed(num_frames, stride)
    if info.num_frames < needed:
        raise VideoTooShortError(path, f"a clip needs {needed} frames, the video has {info.num_frames}")
    indices = sample_indices(info.num_frames, num_frames, stride=stride, num_clips=num_clips)
    frames = decode_frames(path, indices, backend, info)
    return frames.reshape(num_clips, num_frames, *frames.shape[1:])


def check_video(path: PathType, backend: Backend = "auto") -> VideoInfo:
    """Decode every frame the header declares (converting only the last); return the header info if all decode."""
    info = probe_video(path)
    decode_frames(path, [info.num_frames - 1], backend, info)
    return info


def _truncated(path: Path, index: int, decodable: int, declared: int, cause: str = "") -> VideoTruncatedError:
    reason = f"frame {index} is needed but only {decodable} of the {declared} frames in the header can be decoded"
    return VideoTruncatedError(path, f"{reason} ({cause})" if cause else reason)


def _read_decord(path: Path, wanted: list[int], declared: int) -> np.ndarray:
    import decord
    from decord._ffi.base import DECORDError  # not a RuntimeError

    try:
        reader = decord.VideoReader(str(path), num_threads=1)
    except (RuntimeError, DECORDError) as exc:
        raise UnreadableVideoError(path, f"decord cannot open it: {_first_line(exc)}") from None
    decodable = len(reader)  # decord counts the frames it can index: fewer than declared when truncated
    if wanted[-1] >= decodable:
        raise _truncated(path, wanted[-1], decodable, declared)
    frames, targets = [], set(wanted)
    for index in range(wanted[-1] + 1):  # next() only: skip_frames and seeks return wrong frames on B-frame AVIs
        try:
            frame = reader.next()
        except (RuntimeError, DECORDError, StopIteration) as exc:
            raise _truncated(path, wanted[len(frames)], index, declared, _first_line(exc)) from None
        if index in targets:
            frames.append(_unpad(frame.asnumpy()))
    return np.stack(frames)


def _unpad(frame: np.ndarray) -> np.ndarray:
    """decord shapes frames whose rows it padded for alignment (widths 16, 24, 48, 72, ...) as (H, W, C > 3)."""
    if frame.shape[-1] == 3:
        return frame
    height, width = frame.shape[:2]
    return frame.reshape(height, -1)[:, : width * 3].reshape(height, width, 3)


def _read_pyav(path: Path, wanted: list[int], declared: int) -> np.ndarray:
    frames: list[np.ndarray] = []
    decoded, cause = 0, ""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            for decoded, frame in enumerate(container.decode(stream), start=1):
                if decoded - 1 == wanted[len(frames)]:
                    frames.append(frame.to_ndarray(format="rgb24"))
                    if len(frames) == len(wanted):
                        break
    except av.FFmpegError as exc:  # a packet cut short: the decodable part ends here
        cause = _first_line(exc)
    if len(frames) < len(wanted):  # PyAV may also end a truncated file quietly
        raise _truncated(path, wanted[len(frames)], decoded, declared, cause)
    return np.stack(frames)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


_READERS: dict[str, Callable[[Path, list[int], int], np.ndarray]] = {"decord": _read_decord, "pyav": _read_pyav}
