"""Writing videos with PyAV: AVI/MPEG-4 Part 2 with B-frames like the UCF-101/HMDB-51 originals, or MP4/H.264."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import av
import numpy as np

__all__ = ["VIDEO_FORMATS", "write_video"]

VIDEO_FORMATS: tuple[str, ...] = ("avi", "mp4")
_BITS_PER_PIXEL = 2.0  # MPEG-4 Part 2 bit rate: visually clean at small sizes


def write_video(path: str | PathLike[str], frames: np.ndarray, fps: int = 25) -> Path:
    """Encode uint8 RGB frames ``(T, H, W, 3)`` (H and W even) to ``path``; the suffix (.avi/.mp4) picks the codec.

    ``.avi``: MPEG-4 Part 2 (``mpeg4``, as XviD/DivX) with 2 B-frames; ``.mp4``: H.264 (``libx264``, CRF 18).
    Single-threaded encoding: the same frames give the same bytes.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in VIDEO_FORMATS:
        raise ValueError(f"{path}: video format must be one of {', '.join(VIDEO_FORMATS)}")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"expected uint8 frames (T, H, W, 3) with T >= 1, got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"frame height and width must be even (yuv420p), got {height}x{width}")
    with av.open(str(path), mode="w") as container:
        if fmt == "avi":
            stream = container.add_stream("mpeg4", rate=fps)
            stream.bit_rate = int(_BITS_PER_PIXEL * height * width * fps)
            stream.codec_context.max_b_frames = 2
        else:
            stream = container.add_stream("libx264", rate=fps, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path
