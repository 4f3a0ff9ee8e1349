"""``videopure make-dataset synthetic``, ``videopure data stats`` and ``videopure bench decode``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videopure.cli import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A small synthetic UCF-101 with one video deleted (missing) and one cut short (unreadable)."""
    root = tmp_path_factory.mktemp("cli") / "ucf"
    argv = ["make-dataset", "synthetic", "--out", str(root), "--classes", "move_up", "move_down"]
    assert main(argv + ["--videos-per-class", "6", "--frames", "12", "--size", "32x32", "--seed", "1"]) == 0
    (root / "MoveUp/v_MoveUp_g02_c01.avi").unlink()
    cut = root / "MoveDown/v_MoveDown_g01_c02.avi"
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) * 85 // 100])  # past the AVI header (~5 kB), before the last frames
    return root


def test_make_dataset_prints_what_it_wrote(tmp_path, capsys):
    argv = ["make-dataset", "synthetic", "--layout", "hmdb51", "--out", str(tmp_path / "h"), "--classes", "grow", "shrink"]
    assert main(argv + ["--videos-per-class", "6", "--frames", "4", "--size", "16x16", "--format", "mp4"]) == 0
    out = capsys.readouterr().out
    assert "wrote 12 videos of 2 classes" in out and "split 1: 8 train, 4 test" in out
    assert (tmp_path / "h/testTrainMulti_7030_splits/grow_test_split3.txt").is_file()
    assert main(argv) == 2  # the folder is no longer empty: a clear error, not an overwrite


def test_data_stats_json(dataset, capsys):
    assert main(["data", "stats", str(dataset), "--layout", "ucf101", "--split", "1", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["layout"], stats["split"], stats["class_names"]) == ("ucf101", 1, ["MoveUp", "MoveDown"])
    train, test = stats["subsets"]
    assert (train["name"], train["num_videos"], train["per_class"]) == ("train", 7, {"MoveUp": 3, "MoveDown": 4})
    assert (test["name"], test["num_videos"], test["per_class"]) == ("test", 4, {"MoveUp": 2, "MoveDown": 2})
    assert [m["path"] for m in train["missing"]] == ["MoveUp/v_MoveUp_g02_c01.avi"]
    assert train["missing"][0]["source"].endswith("trainlist01.txt:1")
    assert train["unreadable"] == [] and len(test["unreadable"]) == 1
    assert test["unreadable"][0]["id"] == "MoveDown/v_MoveDown_g01_c02.avi"
    assert test["unreadable"][0]["error"] == "VideoTruncatedError"
    assert (train["min_frames"], train["max_frames"]) == (12, 12)


def test_data_stats_table_detects_the_layout(dataset, capsys):
    assert main(["data", "stats", str(dataset), "--split", "2", "--backend", "pyav"]) == 0
    out = capsys.readouterr().out
    assert "(ucf101 layout, split 2): 2 classes" in out
    assert "class     train   test\nMoveUp        4      1\nMoveDown      4      2\n" in out
    assert "missing in test (1):\n  MoveUp/v_MoveUp_g02_c01.avi" in out
    assert "unreadable in train (1):\n  MoveDown/v_MoveDown_g01_c02.avi: VideoTruncatedError:" in out


def test_data_stats_without_split_files_is_a_clear_error(tmp_path, caplog):
    assert main(["data", "stats", str(tmp_path), "--layout", "hmdb51"]) == 2
    assert "testTrainMulti_7030_splits" in caplog.text


def test_bench_decode_reports_both_backends_and_their_ratio(dataset, capsys):
    argv = ["bench", "decode", "--root", str(dataset), "--subset", "train", "--frames", "4", "--repeats", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "7 videos, one clip of 4 frames each" in out
    assert "decord" in out and "pyav" in out and "decord/pyav:" in out and "frames identical: yes" in out
