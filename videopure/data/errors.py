"""Typed errors for video files that cannot be used: every one names the file and the reason."""

from __future__ import annotations

from os import PathLike

__all__ = [
    "VideoDecodeError",
    "VideoNotFoundError",
    "EmptyVideoError",
    "NotAVideoError",
    "UnreadableVideoError",
    "VideoTooShortError",
    "VideoTruncatedError",
    "DecodeTimeoutError",
]


class VideoDecodeError(Exception):
    """A video cannot be decoded as asked. ``str(error)`` is ``"<path>: <reason>"``.

    The base class is raised as such only when the decoding process itself died (e.g. a crash in the decoder).
    """

    def __init__(self, path: str | PathLike[str], reason: str) -> None:
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class VideoNotFoundError(VideoDecodeError):
    """The file does not exist."""


class EmptyVideoError(VideoDecodeError):
    """The file is empty (zero bytes)."""


class NotAVideoError(VideoDecodeError):
    """The file is not in a recognised container format, or holds no video stream."""


class UnreadableVideoError(VideoDecodeError):
    """The file looks like a video but cannot be opened or decoded (damaged header or stream, no permission)."""


class VideoTooShortError(VideoDecodeError):
    """The video has fewer frames than the clip asks for."""


class VideoTruncatedError(VideoTooShortError):
    """Decoding ends before the frame count that the container header declares (e.g. a cut-off download)."""


class DecodeTimeoutError(VideoDecodeError):
    """Decoding took longer than the timeout; the decoding process was killed and replaced."""
