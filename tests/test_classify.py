"""Clean evaluation: multi-view clips, accuracy per class and confusion, skipped videos, ``videopure classify``, the bench."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from videopure.cli import main
from videopure.data import decode_frames, load_split, make_synthetic_dataset, probe_video, resize_short_side, sample_indices
from videopure.models import create_classifier, save_classifier
from videopure.models.clip_dataset import (
    ClipDataset,
    ClipSample,
    ClipSampling,
    EvalViews,
    SkippedVideo,
    TrainView,
    smooth_fields,
)
from videopure.models.evaluate import AccuracyMeter, EvalConfig, evaluate

CLASSES = ["move_left", "move_right", "grow"]
IN_PROCESS = {"batch_size": 4, "num_workers": 0, "device": "cpu", "decode_timeout": None}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """3 classes × 6 videos of 12 frames, 24×32 (the long side is the width); split 1 tests 2 per class."""
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("data") / "synthetic", classes=CLASSES, videos_per_class=6, num_frames=12, size=(24, 32)
    )


def all_frames(path: Path) -> Tensor:
    return torch.from_numpy(decode_frames(path, range(probe_video(path).num_frames)))


def test_eval_views_are_windows_times_crops_in_order(dataset):
    record = load_split(dataset, "ucf101", 1, "test").records[0]
    sampling = ClipSampling(num_frames=4, stride=2, crop_size=16, short_side=20)
    frames = all_frames(record.path)
    windows = sample_indices(12, 4, stride=2, num_clips=3)  # starts 0, 2, 5

    three = ClipDataset([record], sampling, EvalViews(temporal=3, spatial=3), decode_timeout=None)[0]
    assert isinstance(three, ClipSample) and three.frames.shape == (9, 4, 16, 16, 3) and three.frames.dtype == torch.uint8
    for k, window in enumerate(windows):
        resized = resize_short_side(frames[window], 16)  # 16 × 21: crops start at x = 0, 2, 5
        for s, left in enumerate((0, 2, 5)):
            assert torch.equal(three.frames[3 * k + s], resized[:, :, left : left + 16])

    one = ClipDataset([record], sampling, EvalViews(temporal=2), decode_timeout=None)[0]
    resized = resize_short_side(frames[sample_indices(12, 4, stride=2, num_clips=2)[1]], 20)  # 20 × 27
    assert one.frames.shape == (2, 4, 16, 16, 3)
    assert torch.equal(one.frames[1], resized[:, 2:18, 5:21])


def test_train_view_is_random_per_epoch_but_reproducible(dataset):
    records = load_split(dataset, "ucf101", 1, "train").records
    views = ClipDataset(records, ClipSampling(4, 2, 16, 20), TrainView(scale=(1.0, 1.5)), seed=3, decode_timeout=None)
    first = views[(1, 0)].frames
    assert first.shape == (1, 4, 16, 16, 3)
    assert torch.equal(first, views[(1, 0)].frames)
    assert not torch.equal(first, views[(2, 0)].frames)
    other_seed = ClipDataset(records, ClipSampling(4, 2, 16, 20), TrainView(scale=(1.0, 1.5)), seed=4, decode_timeout=None)
    assert not torch.equal(first, other_seed[(1, 0)].frames)


def test_smooth_fields_are_bounded_smooth_and_change_every_frame(dataset):
    fields = smooth_fields(np.random.default_rng(0), 5, 32, 0.1, 4)
    assert fields.shape == (5, 32, 32, 3) and float(fields.abs().max()) <= 0.1 + 1e-6
    neighbours = (fields[:, 1:] - fields[:, :-1]).abs().max()
    assert neighbours < 0.2 / 8 + 1e-6  # bilinear over 8-pixel cells: at most a 1/8 of the largest jump per pixel
    assert not torch.equal(fields[0], fields[1])

    records = load_split(dataset, "ucf101", 1, "train").records
    sampling = ClipSampling(4, 2, 16, 16)
    plain = ClipDataset(records, sampling, TrainView(scale=(1.0, 1.0), hflip=False), seed=3, decode_timeout=None)
    fielded = ClipDataset(
        records, sampling, TrainView(scale=(1.0, 1.0), hflip=False, field_amplitude=20 / 255, field_cells=(2,)),
        seed=3, decode_timeout=None,
    )
    added = fielded[(1, 0)].frames.int() - plain[(1, 0)].frames.int()  # same window and crop: only the fields differ
    assert added.abs().max() <= 20 and added.float().abs().mean() > 2
    assert torch.equal(fielded[(1, 0)].frames, fielded[(1, 0)].frames)
    assert not torch.equal(added[0, 0], added[0, 1])  # a new field for every frame


def test_short_videos_fall_back_to_uniform_sampling_or_are_skipped(dataset):
    record = load_split(dataset, "ucf101", 1, "test").records[0]
    long_stride = ClipDataset([record], ClipSampling(4, 8, 16, 20), EvalViews(temporal=2), decode_timeout=None)[0]
    assert long_stride.frames.shape == (2, 4, 16, 16, 3)  # 25 frames needed, 12 there: uniform over the video
    too_many = ClipDataset([record], ClipSampling(16, 1, 16, 20), EvalViews(), decode_timeout=None)[0]
    assert isinstance(too_many, SkippedVideo) and "VideoTooShortError" in too_many.reason and "16 frames" in too_many.reason


def test_accuracy_meter_counts_top_k_classes_and_confusion():
    meter = AccuracyMeter(["a", "b", "c"])
    logits = torch.tensor([[3.0, 2, 1], [1, 2, 3], [1, 3, 2], [2, 1, 3]])
    meter.update(logits[:2], torch.tensor([0, 1]), ["v0", "v1"])
    meter.update(logits[2:], torch.tensor([1, 2]), ["v2", "v3"])
    result = meter.result()
    assert result.num_videos == 4 and result.top1 == 0.75 and result.top5 == 1.0  # top-3 of 3 classes
    assert result.confusion == ((1, 0, 0), (0, 1, 1), (0, 0, 1))
    assert [(c.name, c.videos, c.correct, c.accuracy) for c in result.per_class] == [
        ("a", 1, 1, 1.0), ("b", 2, 1, 0.5), ("c", 1, 1, 1.0)
    ]
    assert [p.predicted for p in result.predictions] == [0, 2, 1, 2]
    with pytest.raises(ValueError, match=r"expected logits \(B, 3\)"):
        meter.update(torch.zeros(2, 4), torch.tensor([0, 1]), ["x", "y"])


class ColourLinear(nn.Module):
    """Logits linear in the mean colour of a clip; records the shapes it sees."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, num_classes, generator=torch.Generator().manual_seed(0)))
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, clips: Tensor) -> Tensor:
        self.shapes.append(tuple(clips.shape))
        return clips.mean(dim=(2, 3, 4)) @ self.weight


def test_evaluate_averages_the_logits_of_all_views(dataset):
    split = load_split(dataset, "ucf101", 1, "test")
    sampling = ClipSampling(4, 2, 16, 20)
    model = ColourLinear(len(CLASSES))
    result = evaluate(model, split.records, split.class_names, sampling, EvalConfig(temporal_views=2, spatial_crops=3, **IN_PROCESS))
    assert model.shapes[0] == (4 * 6, 3, 4, 16, 16) and sum(s[0] for s in model.shapes) == 6 * 6
    views = ClipDataset(split.records, sampling, EvalViews(2, 3), decode_timeout=None)
    for i, prediction in enumerate(result.predictions):
        clips = views[i].frames.permute(0, 4, 1, 2, 3).float() / 255  # (V, C, T, H, W)
        assert prediction.id == split.records[i].id
        assert prediction.predicted == int(model(clips).mean(dim=0).argmax())
    assert result.num_videos == 6 and result.top5 == 1.0 and not result.skipped
    assert sum(map(sum, result.confusion)) == 6 and [c.videos for c in result.per_class] == [2, 2, 2]
    assert result.top1 == sum(c.correct for c in result.per_class) / 6
    json.dumps(result.to_dict())


def test_a_corrupt_video_is_skipped_and_reported(tmp_path, dataset, caplog):
    root = shutil.copytree(dataset, tmp_path / "data")
    split = load_split(root, "ucf101", 1, "test")
    broken = split.records[1]
    broken.path.write_bytes(broken.path.read_bytes()[:3000])  # a cut-off download
    config = EvalConfig(batch_size=2, num_workers=1, device="cpu", decode_timeout=30.0)  # decode worker in a loader process
    with caplog.at_level(logging.WARNING, logger="videopure.models.evaluate"):
        result = evaluate(ColourLinear(3), split.records, split.class_names, ClipSampling(4, 2, 16, 20), config)
    assert result.num_videos == 5 and [video.id for video in result.skipped] == [broken.id]
    assert "Error" in result.skipped[0].reason
    assert str(broken.path) in caplog.text
    assert broken.id not in {p.id for p in result.predictions}


def test_classify_command_writes_json(tmp_path, dataset, capsys):
    classifier = create_classifier("x3d_tiny", len(CLASSES), num_frames=4, crop_size=32)
    classifier.class_names = load_split(dataset, "ucf101", 1, "test").class_names
    checkpoint = save_classifier(classifier, tmp_path / "model.pt")
    out = tmp_path / "result.json"
    argv = ["classify", "--checkpoint", str(checkpoint), "--root", str(dataset), "--layout", "ucf101", "--split", "1",
            "--views", "2", "--crops", "3", "--stride", "2", "--workers", "0", "--device", "cpu", "--json", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["temporal_views"] == 2 and report["spatial_crops"] == 3 and report["num_videos"] == 6
    assert len(report["per_class"]) == 3 and len(report["confusion"]) == 3 and len(report["predictions"]) == 6
    assert "top-1" in capsys.readouterr().out


def test_classify_refuses_a_checkpoint_of_other_classes(tmp_path, dataset):
    classifier = create_classifier("x3d_tiny", 3, num_frames=4, crop_size=32)
    classifier.class_names = ["a", "b", "c"]
    checkpoint = save_classifier(classifier, tmp_path / "model.pt")
    argv = ["classify", "--checkpoint", str(checkpoint), "--root", str(dataset), "--layout", "ucf101", "--device", "cpu"]
    assert main(argv) == 2


def test_bench_classify_reports_both_variants_and_the_ratio(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "classify", "--model", "x3d_tiny", "--batch-size", "2", "--repeats", "1", "--warmup", "0",
            "--device", "cpu", "--json", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    for variant in ("baseline", "tuned"):
        assert result[variant]["forward"]["clips_per_s"] > 0 and result[variant]["forward_backward"]["clips_per_s"] > 0
    assert set(result["speedup"]) == {"forward", "forward_backward"} and result["max_abs_logit_difference"] < 1e-3
    assert "tuned/baseline" in capsys.readouterr().out
