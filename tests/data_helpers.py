"""Helpers for the data tests: split files in the exact official formats, and decode functions for the worker."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from videopure.data import decode_clips


def write_text(path: Path, lines: Iterable[str], newline: str = "\n") -> Path:
    """Write ``lines`` exactly as given (each ended by ``newline``), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{line}{newline}" for line in lines).encode())
    return path


def touch_videos(root: Path, relative_paths: Iterable[str]) -> None:
    """Placeholder files (split parsing never opens them)."""
    for relative in relative_paths:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded in split tests")


def hanging_decode(path: str, *args: object, **kwargs: object) -> np.ndarray:
    """A decode function for :class:`DecodeWorker` that hangs on files named ``*hang*``, else decodes normally."""
    if "hang" in Path(path).name:
        time.sleep(3600)
    return decode_clips(path, *args, **kwargs)


def exit_process(path: str) -> None:
    """Ends the worker process abruptly, as a crashing decoder would."""
    os._exit(3)


def moving_square(num_frames: int, size: int = 32) -> np.ndarray:
    """uint8 (T, size, size, 3): a bright square moving right over a gradient, every frame different."""
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    frames[:] = np.linspace(20, 120, size, dtype=np.uint8)[None, None, :, None]
    for t in range(num_frames):
        left = t % (size - 8)
        frames[t, 8:16, left : left + 8] = (250, 60, 30)
    return frames
