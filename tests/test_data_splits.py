"""Split parsing on hand-written files in the exact official formats, quirks included."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_helpers import touch_videos, write_text

from videopure.data import SplitFileError, detect_layout, load_split

UCF_CLASSES = ["1 ApplyEyeMakeup", "2 HandstandPushups", "3 YoYo"]
UCF_TRAIN = [
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1",
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c02.avi 1",
    "HandstandPushups/v_HandStandPushups_g08_c01.avi 2",  # folder and file name spell the class differently
    "YoYo/v_YoYo_g25_c05.avi 3",
]
UCF_TEST = [
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
    "HandstandPushups/v_HandStandPushups_g01_c01.avi",
    "YoYo/v_YoYo_g01_c01.avi",
]


def make_ucf101(root: Path, train: list[str] = UCF_TRAIN, test: list[str] = UCF_TEST) -> Path:
    """UCF-101 as downloaded: CRLF split files, trainlist with 1-based labels, testlist without."""
    folder = root / "ucfTrainTestlist"
    write_text(folder / "classInd.txt", UCF_CLASSES, "\r\n")
    write_text(folder / "trainlist01.txt", train, "\r\n")
    write_text(folder / "testlist01.txt", test, "\r\n")
    touch_videos(root, [line.split()[0] for line in UCF_TRAIN + UCF_TEST])
    return root


def test_ucf101_train_records_labels_and_class_order(tmp_path):
    split = load_split(make_ucf101(tmp_path), "ucf101", 1, "train")
    assert split.class_names == ("ApplyEyeMakeup", "HandstandPushups", "YoYo")
    assert [(r.id, r.label, r.class_name) for r in split.records] == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0, "ApplyEyeMakeup"),
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c02.avi", 0, "ApplyEyeMakeup"),
        ("HandstandPushups/v_HandStandPushups_g08_c01.avi", 1, "HandstandPushups"),
        ("YoYo/v_YoYo_g25_c05.avi", 2, "YoYo"),
    ]
    assert split.records[0].path == tmp_path / "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"
    assert split.problems == ()
    assert split.class_counts() == {"ApplyEyeMakeup": 2, "HandstandPushups": 1, "YoYo": 1}


def test_ucf101_test_labels_come_from_the_class_folder(tmp_path):
    split = load_split(make_ucf101(tmp_path), "ucf101", 1, "test")
    assert [(r.id, r.label) for r in split.records] == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 0),
        ("HandstandPushups/v_HandStandPushups_g01_c01.avi", 1),
        ("YoYo/v_YoYo_g01_c01.avi", 2),
    ]


def test_ucf101_folder_spelled_HandStandPushups_on_disk_is_found(tmp_path):
    root = make_ucf101(tmp_path)
    (root / "HandstandPushups").rename(root / "HandStandPushups")
    split = load_split(root, "ucf101", 1, "test")
    assert split.problems == ()
    assert split.records[1].id == "HandStandPushups/v_HandStandPushups_g01_c01.avi"
    assert split.records[1].class_name == "HandstandPushups" and split.records[1].path.is_file()


def test_ucf101_missing_video_is_reported_not_raised(tmp_path):
    root = make_ucf101(tmp_path)
    (root / "YoYo/v_YoYo_g25_c05.avi").unlink()
    split = load_split(root, "ucf101", 1, "train")
    assert len(split.records) == 3
    (problem,) = split.problems
    assert problem.path == "YoYo/v_YoYo_g25_c05.avi"
    assert problem.source == f"{root / 'ucfTrainTestlist' / 'trainlist01.txt'}:4"
    assert "missing" in problem.reason


@pytest.mark.parametrize("line", ["../outside/v_x.avi 1", "ApplyEyeMakeup/../../v_x.avi 1", "/etc/v_x.avi 1"])
def test_paths_leaving_the_root_are_rejected(tmp_path, line):
    root = make_ucf101(tmp_path / "UCF-101", train=UCF_TRAIN[:1] + [line])
    with pytest.raises(SplitFileError, match=r"trainlist01\.txt:2: .*(leaves|relative)"):
        load_split(root, "ucf101", 1, "train")


def test_ucf101_malformed_files_name_file_and_line(tmp_path):
    root = make_ucf101(tmp_path, train=["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2"])
    with pytest.raises(SplitFileError, match=r"trainlist01\.txt:1: label 2 does not match .*ApplyEyeMakeup"):
        load_split(root, "ucf101", 1, "train")
    root = make_ucf101(tmp_path / "b", train=["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"])
    with pytest.raises(SplitFileError, match=r"trainlist01\.txt:1: expected '<path> <label>'"):
        load_split(root, "ucf101", 1, "train")
    write_text(tmp_path / "b/ucfTrainTestlist/classInd.txt", ["1 ApplyEyeMakeup", "3 YoYo"], "\r\n")
    with pytest.raises(SplitFileError, match=r"classInd\.txt:2: expected '<index> <ClassName>' with index 2"):
        load_split(tmp_path / "b", "ucf101", 1, "test")


def test_split_folder_beside_the_root_and_a_clear_error_when_absent(tmp_path):
    make_ucf101(tmp_path)  # tmp_path/ucfTrainTestlist beside tmp_path/UCF-101 as the two official archives extract
    touch_videos(tmp_path / "UCF-101", [line.split()[0] for line in UCF_TRAIN])
    assert len(load_split(tmp_path / "UCF-101", "ucf101", 1, "train").records) == 4
    assert detect_layout(tmp_path / "UCF-101") == "ucf101"
    lonely = tmp_path / "other" / "UCF-101"
    lonely.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="other/UCF-101/ucfTrainTestlist or .*other/ucfTrainTestlist"):
        load_split(lonely, "ucf101", 1, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        load_split(tmp_path / "UCF-101", "ucf101", 4, "train")


HMDB_FILES = {
    # written out of order: class order must come out sorted
    "draw_sword_test_split1.txt": [
        "Return_of_the_King_#1_draw_sword_u_cm_np1_fr_goo_0.avi 2 ",
        "Veoh_Alpha_Dog_1_draw_sword_f_nm_np1_ri_med_3.avi 1 ",
        "unused_draw_sword_f_nm_np1_ri_med_4.avi 0 ",
    ],
    "brush_hair_test_split1.txt": [
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 ",
        "April_09_brush_hair_u_nm_np1_ba_goo_1.avi 2\t",
        "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi 1 ",
    ],
    "brush_hair_test_split2.txt": [
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2 ",
        "April_09_brush_hair_u_nm_np1_ba_goo_1.avi 1 ",
        "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi 0 ",
    ],
    "draw_sword_test_split2.txt": [
        "Return_of_the_King_#1_draw_sword_u_cm_np1_fr_goo_0.avi 1 ",
        "Veoh_Alpha_Dog_1_draw_sword_f_nm_np1_ri_med_3.avi 0 ",
        "unused_draw_sword_f_nm_np1_ri_med_4.avi 2 ",
    ],
}


def make_hmdb51(root: Path) -> Path:
    for name, lines in HMDB_FILES.items():
        write_text(root / "testTrainMulti_7030_splits" / name, lines)
        class_name = name.split("_test_split")[0]
        touch_videos(root, [f"{class_name}/{line.split()[0]}" for line in lines])
    return root


def test_hmdb51_flags_trailing_whitespace_and_sorted_classes(tmp_path):
    root = make_hmdb51(tmp_path)
    train = load_split(root, "hmdb51", 1, "train")
    test = load_split(root, "hmdb51", 1, "test")
    assert train.class_names == test.class_names == ("brush_hair", "draw_sword")
    assert [(r.id, r.label) for r in train.records] == [
        ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 0),
        ("brush_hair/Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi", 0),
        ("draw_sword/Veoh_Alpha_Dog_1_draw_sword_f_nm_np1_ri_med_3.avi", 1),
    ]
    assert [(r.id, r.label) for r in test.records] == [
        ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_1.avi", 0),
        ("draw_sword/Return_of_the_King_#1_draw_sword_u_cm_np1_fr_goo_0.avi", 1),
    ]
    assert all(r.path.is_file() for r in train.records + test.records)
    assert detect_layout(root) == "hmdb51"


def test_hmdb51_other_splits_read_their_own_files(tmp_path):
    split = load_split(make_hmdb51(tmp_path), "hmdb51", 2, "test")
    assert [r.id for r in split.records] == [
        "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi",
        "draw_sword/unused_draw_sword_f_nm_np1_ri_med_4.avi",
    ]


def test_hmdb51_bad_flag_names_file_and_line(tmp_path):
    root = make_hmdb51(tmp_path)
    write_text(root / "testTrainMulti_7030_splits/brush_hair_test_split1.txt", ["a.avi 1 ", "b.avi 3 "])
    with pytest.raises(SplitFileError, match=r"brush_hair_test_split1\.txt:2: expected '<video> <0\|1\|2>'"):
        load_split(root, "hmdb51", 1, "train")


def test_mmaction2_list_with_0_based_labels_and_spaces_in_paths(tmp_path):
    list_file = write_text(tmp_path / "train_list.txt", ["jump/a video.mp4 1", "run/b.mp4 0", "run/c.mp4 0", "jump/gone.mp4 1"])
    touch_videos(tmp_path, ["jump/a video.mp4", "run/b.mp4", "run/c.mp4"])
    split = load_split(tmp_path, "list", annotations=list_file)
    assert split.class_names == ("run", "jump")  # inferred: each label's videos share one folder
    assert [(r.id, r.label, r.class_name) for r in split.records] == [
        ("jump/a video.mp4", 1, "jump"),
        ("run/b.mp4", 0, "run"),
        ("run/c.mp4", 0, "run"),
    ]
    assert [p.path for p in split.problems] == ["jump/gone.mp4"]
    named = load_split(tmp_path, "list", annotations=list_file, class_names=["running", "jumping"])
    assert named.records[0].class_name == "jumping"
    with pytest.raises(SplitFileError, match=r"train_list\.txt:1: label 1 but only 1 class names"):
        load_split(tmp_path, "list", annotations=list_file, class_names=["running"])
    with pytest.raises(ValueError, match="needs the list file"):
        load_split(tmp_path, "list")


def test_list_path_leaving_root_is_rejected(tmp_path):
    list_file = write_text(tmp_path / "list.txt", ["ok.mp4 0", "../../etc/passwd 0"])
    (tmp_path / "videos").mkdir()
    with pytest.raises(SplitFileError, match=r"list\.txt:2: path '../../etc/passwd' leaves the dataset root"):
        load_split(tmp_path / "videos", "list", annotations=list_file)


def test_folder_tree(tmp_path):
    touch_videos(tmp_path, ["walk/x.avi", "clap/sub/y.MP4", "clap/a.webm", "clap/notes.txt", ".hidden/z.avi"])
    (tmp_path / "empty").mkdir()
    split = load_split(tmp_path, "folder")
    assert split.class_names == ("clap", "walk")
    assert [(r.id, r.label) for r in split.records] == [("clap/a.webm", 0), ("clap/sub/y.MP4", 0), ("walk/x.avi", 1)]
    assert detect_layout(tmp_path) == "folder"
