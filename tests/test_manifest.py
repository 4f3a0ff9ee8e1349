"""Atomic writes and the append-only manifest."""

from __future__ import annotations

import os
import stat

import pytest

from videopure.manifest import Manifest, atomic_write


def test_atomic_write_gives_plain_file_permissions_and_leaves_nothing_on_failure(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "weights.pt", lambda p: p.write_bytes(b"data"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # shareable weights, not mkstemp's 0600

    def fail_halfway(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "weights.pt", fail_halfway)
    assert path.read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.pt"]


def test_manifest_rows_survive_a_torn_last_line(tmp_path):
    manifest = Manifest(tmp_path / "rows.jsonl")
    manifest.append({"id": "a", "value": 1})
    with manifest.path.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "b", "val')  # a writer killed mid-line
    manifest.append({"id": "c", "value": 3})
    assert [row["id"] for row in manifest.rows()] == ["a", "c"]
    assert manifest.done_ids() == {"a", "c"}
