"""The synthetic dataset: real videos in the official layouts and split files, motion classes, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from videopure.data import MOTIONS, check_video, load_split, make_synthetic_dataset, read_clip, render_video
from videopure.data.synthetic import _MOTION_FNS

SMALL = dict(classes=["move_left", "rotate_clockwise", "grow"], videos_per_class=6, num_frames=12, size=(32, 48))


def test_ucf101_round_trip(tmp_path):
    root = make_synthetic_dataset(tmp_path / "ucf", "ucf101", **SMALL)
    folder = root / "ucfTrainTestlist"
    assert (folder / "classInd.txt").read_bytes() == b"1 MoveLeft\r\n2 RotateClockwise\r\n3 Grow\r\n"
    assert (folder / "trainlist01.txt").read_bytes().startswith(b"MoveLeft/v_MoveLeft_g02_c01.avi 1\r\n")
    assert (folder / "testlist01.txt").read_bytes().startswith(b"MoveLeft/v_MoveLeft_g01_c01.avi\r\n")
    all_ids = {path.relative_to(root).as_posix() for path in root.rglob("*.avi")}
    assert len(all_ids) == 18
    test_sets = []
    for split in (1, 2, 3):
        train = load_split(root, "ucf101", split, "train")
        test = load_split(root, "ucf101", split, "test")
        assert train.class_names == ("MoveLeft", "RotateClockwise", "Grow")
        assert train.problems == test.problems == ()
        assert train.class_counts() == dict.fromkeys(train.class_names, 4)
        assert test.class_counts() == dict.fromkeys(train.class_names, 2)
        assert {r.id for r in train.records} | {r.id for r in test.records} == all_ids
        assert all(r.id.startswith(f"{r.class_name}/v_{r.class_name}_g") for r in train.records + test.records)
        test_sets.append({r.id for r in test.records})
    assert set.union(*test_sets) == all_ids and sum(map(len, test_sets)) == len(all_ids)  # each video tested once
    info = check_video(root / "Grow/v_Grow_g03_c02.avi")
    assert (info.num_frames, info.height, info.width, info.codec) == (12, 32, 48, "mpeg4")


def test_hmdb51_round_trip(tmp_path):
    root = make_synthetic_dataset(tmp_path / "hmdb", "hmdb51", **SMALL)
    lines = (root / "testTrainMulti_7030_splits/grow_test_split2.txt").read_text().splitlines()
    assert lines[:3] == ["synthetic_grow_000.avi 1 ", "synthetic_grow_001.avi 1 ", "synthetic_grow_002.avi 2 "]
    train = load_split(root, "hmdb51", 2, "train")
    test = load_split(root, "hmdb51", 2, "test")
    assert train.class_names == ("grow", "move_left", "rotate_clockwise")  # HMDB-51 orders classes by name
    assert len(train.records) == 12 and len(test.records) == 6
    assert [r.label for r in test.records] == [0, 0, 1, 1, 2, 2]
    assert read_clip(test.records[0].path, 12).shape == (12, 32, 48, 3)


def test_deterministic_from_the_seed_and_independent_of_the_other_classes(tmp_path):
    first = make_synthetic_dataset(tmp_path / "a", **SMALL, seed=3)
    again = make_synthetic_dataset(tmp_path / "b", **SMALL, seed=3)
    other_seed = make_synthetic_dataset(tmp_path / "c", **SMALL, seed=4)
    only_grow = make_synthetic_dataset(tmp_path / "d", **{**SMALL, "classes": ["grow", "shrink"]}, seed=3)
    video = "Grow/v_Grow_g02_c01.avi"
    np.testing.assert_array_equal(read_clip(first / video, 12), read_clip(again / video, 12))
    np.testing.assert_array_equal(read_clip(first / video, 12), read_clip(only_grow / video, 12))
    assert not np.array_equal(read_clip(first / video, 12), read_clip(other_seed / video, 12))


@pytest.mark.parametrize(
    "motion, feature, sign",
    [
        ("move_left", lambda t: t.centres[:, 0], -1),
        ("move_right", lambda t: t.centres[:, 0], 1),
        ("move_up", lambda t: t.centres[:, 1], -1),
        ("move_down", lambda t: t.centres[:, 1], 1),
        ("rotate_clockwise", lambda t: t.angles, 1),  # y points down: a growing angle turns clockwise on screen
        ("rotate_counterclockwise", lambda t: t.angles, -1),
        ("grow", lambda t: t.scales, 1),
        ("shrink", lambda t: t.scales, -1),
    ],
)
def test_each_class_is_its_motion_and_stays_in_the_frame(motion, feature, sign):
    rng = np.random.default_rng(0)
    for _ in range(20):
        radius = 0.18 * 64
        trajectory = _MOTION_FNS[motion](rng, 16, 64, 80, radius)
        assert np.all(sign * np.diff(feature(trajectory)) > 0)
        reach = radius * trajectory.scales.max()
        assert np.all(trajectory.centres >= reach - 1e-9) and np.all(trajectory.centres <= np.array([80, 64]) - reach)


def test_rendered_motion_is_visible(tmp_path):
    """The shape's displacement (pixels far from the per-pixel median over time) moves the right way."""
    for motion, sign in (("move_left", -1), ("move_right", 1)):
        frames = render_video(motion, np.random.default_rng(1), 16, (64, 64)).astype(float)
        changed = np.abs(frames - np.median(frames, axis=0)).sum(-1) > 60
        centroid_x = [np.nonzero(mask)[1].mean() for mask in changed]
        assert sign * (centroid_x[-1] - centroid_x[0]) > 10


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="classes must be 2 or more distinct motions"):
        make_synthetic_dataset(tmp_path / "a", classes=["move_left", "jump"])
    with pytest.raises(ValueError, match="videos_per_class must be >= 6"):
        make_synthetic_dataset(tmp_path / "a", videos_per_class=5)
    with pytest.raises(ValueError, match="even"):
        make_synthetic_dataset(tmp_path / "a", size=(63, 64))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an empty folder"):
        make_synthetic_dataset(tmp_path / "full")
    assert len(MOTIONS) == 8
