"""Decoding in a child process, so that a decode that hangs (decord can hang holding the GIL) can be killed.

A :class:`DecodeWorker` owns one child process, started on first use as a fresh Python interpreter
(``python -c``, with the parent's ``sys.path``): it inherits no lock held by a parent thread and, unlike
multiprocessing's ``spawn``, never re-runs the caller's ``__main__`` script. Calls and results travel pickled
over a socket pair. A call that exceeds its timeout kills the child and raises :class:`DecodeTimeoutError`; the
next call starts a fresh child. A child that dies (e.g. a segfault in the decoder) is reported as a
:class:`VideoDecodeError` and replaced the same way.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any, Callable

import numpy as np

from videopure.data.decode import Backend, PathType, decode_clips
from videopure.data.errors import DecodeTimeoutError, VideoDecodeError

logger = logging.getLogger(__name__)

__all__ = ["DecodeWorker"]

_CHILD_MAIN = "import sys; from videopure.data.worker import serve; serve(int(sys.argv[1]))"
_STARTUP_TIMEOUT = 300.0  # seconds for a new child to import its modules; not counted in a call's timeout
_READY = "ready"


class DecodeWorker:
    """Runs decode functions in a child process with a timeout. Thread-safe (one call at a time); reusable.

    Args:
        timeout: default limit in seconds for one call (``None``: no limit). It counts the call only: a new
            child's start-up (importing torch, decord, PyAV: a few seconds) is awaited before the clock starts.
        decode_fn: what :meth:`decode_clips` runs in the child; a picklable (module-level) function with the
            signature of :func:`videopure.data.decode_clips`. Tests inject a slow one.
    """

    def __init__(self, timeout: float | None = 60.0, decode_fn: Callable[..., np.ndarray] = decode_clips) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout}")
        self.timeout = timeout
        self.decode_fn = decode_fn
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def decode_clips(
        self,
        path: PathType,
        num_frames: int,
        *,
        stride: int | None = None,
        num_clips: int = 1,
        backend: Backend = "auto",
        timeout: float | None = None,
    ) -> np.ndarray:
        """:func:`videopure.data.decode_clips` in the child → uint8 ``(num_clips, num_frames, H, W, 3)``."""
        return self.run(
            self.decode_fn, path, num_frames, stride=stride, num_clips=num_clips, backend=backend, timeout=timeout
        )

    def run(self, fn: Callable[..., Any], path: PathType, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Return ``fn(path, *args, **kwargs)`` computed in the child, or raise the exception it raised there.

        ``timeout`` overrides the worker's default for this call. Raises :class:`DecodeTimeoutError` on timeout.
        """
        limit = self.timeout if timeout is None else timeout
        with self._lock:
            conn = self._connection()
            conn.send((fn, str(path), args, kwargs))
            if not conn.poll(limit):
                self._stop()
                logger.warning("decoding %s took longer than %g s: killed the decode worker", path, limit)
                raise DecodeTimeoutError(path, f"no result after {limit:g} s; the decoding process was killed")
            try:
                status, value = conn.recv()
            except EOFError:
                exitcode = self._stop()
                raise VideoDecodeError(path, f"the decoding process died (exit code {exitcode})") from None
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        """Stop the child process (a later call starts a new one)."""
        with self._lock:
            self._stop()

    def __enter__(self) -> DecodeWorker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> Connection:
        if self._process is not None and self._process.poll() is not None:
            logger.warning("the decode worker exited (code %s): starting a new one", self._stop())
        if self._conn is None:
            parent_socket, child_socket = socket.socketpair()
            with child_socket:
                fd = child_socket.fileno()
                env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
                self._process = subprocess.Popen(
                    [sys.executable, "-c", _CHILD_MAIN, str(fd)], pass_fds=(fd,), env=env, stdin=subprocess.DEVNULL
                )
            self._conn = Connection(parent_socket.detach())
            self._wait_until_ready()
        return self._conn

    def _wait_until_ready(self) -> None:
        try:
            ready = self._conn.poll(_STARTUP_TIMEOUT) and self._conn.recv() == _READY
        except EOFError:
            ready = False
        if not ready:
            exitcode = self._stop()
            raise RuntimeError(f"the decode worker process did not start (exit code {exitcode}); see its stderr")

    def _stop(self) -> int | None:
        if self._process is None:
            return None
        self._process.kill()
        exitcode = self._process.wait()
        self._conn.close()
        self._process = self._conn = None
        return exitcode


def serve(fd: int) -> None:
    """The child's loop on socket ``fd``: run each ``(fn, path, args, kwargs)``, send back its result or exception."""
    conn = Connection(fd)
    conn.send(_READY)
    while True:
        try:
            fn, path, args, kwargs = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        try:
            reply = ("ok", fn(path, *args, **kwargs))
        except Exception as exc:  # sent to the parent, which raises it
            reply = ("error", exc)
        try:
            conn.send(reply)
        except Exception as exc:  # the result or exception would not pickle
            conn.send(("error", VideoDecodeError(path, f"{type(exc).__name__} while returning the result: {exc}")))
