"""Exactly-once bookkeeping for dataset runs: a JSON-lines manifest and atomic file writes.

A clip's outputs are written to a temporary file and renamed into place; only then is its manifest row
appended (and flushed to disk). A resumed run skips every clip id already in the manifest, so nothing is redone
or duplicated, and a half-written output never passes for a finished one.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

logger = logging.getLogger(__name__)


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path`` (same directory, so the rename is atomic).

    The file gets the permissions of a plain ``open()`` (0666 less the umask), not ``mkstemp``'s owner-only 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Manifest:
    """Append-only JSON-lines file of per-clip rows keyed by ``id``."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def rows(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    # Only a run killed mid-append leaves a partial last line; that clip is simply redone.
                    logger.warning("%s:%d: ignoring an incomplete row", self.path, number)

    def done_ids(self) -> set[str]:
        return {row["id"] for row in self.rows()}

    def append(self, row: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # a killed run's partial row: keep it on its own (ignored) line
                    handle.write(b"\n")
            handle.write((json.dumps(row, sort_keys=True) + "\n").encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
