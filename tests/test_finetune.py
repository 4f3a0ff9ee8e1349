"""Fine-tuning: learns the synthetic motions, resumes to the same numbers, skips corrupt videos, names bad config."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch

from videopure.cli import main
from videopure.config import ConfigError, from_dict, load_config
from videopure.data import load_split, make_synthetic_dataset
from videopure.manifest import Manifest
from videopure.models import create_classifier, load_classifier
from videopure.models.clip_dataset import ClipSampling
from videopure.models.evaluate import EvalConfig, evaluate
from videopure.models.finetune import EpochMetrics, FinetuneConfig, finetune


def config(root: Path, out: Path, **changes) -> FinetuneConfig:
    """r3d_tiny (32x32, 8 frames), decoded in this process; ``changes`` as ``section.field`` → value."""
    data = {
        "model": {"name": "r3d_tiny"},
        "data": {"root": str(root), "num_frames": 8, "stride": 1, "hflip": False, "num_workers": 0, "decode_timeout": None},
        "optim": {"name": "adamw", "lr": 0.002, "weight_decay": 0.05, "warmup_epochs": 1},
        "output_dir": str(out),
        "epochs": 2,
        "batch_size": 8,
        "device": "cpu",
    }
    for key, value in changes.items():
        section, _, name = key.rpartition(".")
        (data[section] if section else data)[name] = value
    return from_dict(FinetuneConfig, data)


@pytest.fixture(autouse=True)
def one_thread():
    """Train on one thread: these nets are tiny, and two OpenMP threads spin-waiting on a busy 2-core machine run
    them tens of times slower (a learning run: ~20 s on one thread, ~6 min on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """3 classes × 6 videos: split 1 trains on 12 and validates on 6."""
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("small") / "synthetic", classes=["move_right", "move_down", "grow"],
        videos_per_class=6, num_frames=8, size=(32, 32),
    )


def metrics_rows(out: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in Manifest(out / "metrics.jsonl").rows()]


class Interrupted(Exception):
    pass


def stop_after(epoch: int):
    def callback(metrics: EpochMetrics) -> None:
        if metrics.epoch == epoch:
            raise Interrupted

    return callback


ROBUST_TRAINING = {"data.field_amplitude": 0.1, "data.field_cells": [4, 32], "adversarial": {"budget": "8/255", "cells": [4, 8], "steps": 2}}


@pytest.mark.parametrize("training", [{}, ROBUST_TRAINING], ids=["plain", "fields-and-smooth-adversarial"])
def test_resume_after_an_interruption_gives_the_uninterrupted_result(tmp_path, small, training):
    through = finetune(config(small, tmp_path / "through", **training))
    assert [m.epoch for m in through.history] == [1, 2]

    # loader workers: same numbers
    interrupted = config(small, tmp_path / "interrupted", **{"data.num_workers": 2}, **training)
    with pytest.raises(Interrupted):
        finetune(interrupted, on_epoch_end=stop_after(1))
    assert [row["epoch"] for row in metrics_rows(tmp_path / "interrupted")] == [1]
    resumed = finetune(interrupted, resume=True)

    assert [m.epoch for m in resumed.history] == [1, 2]
    assert metrics_rows(tmp_path / "interrupted") == metrics_rows(tmp_path / "through")
    assert (resumed.best_epoch, resumed.best_top1) == (through.best_epoch, through.best_top1)
    for name in ("last.pt", "best.pt"):
        a, b = (load_classifier(tmp_path / run / name).state_dict() for run in ("through", "interrupted"))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert finetune(interrupted, resume=True).history == resumed.history  # finished: nothing more to do


def test_a_run_folder_is_never_overwritten_and_resume_needs_a_run(tmp_path, small):
    with pytest.raises(ValueError, match="nothing to resume"):
        finetune(config(small, tmp_path / "run", epochs=1), resume=True)
    finetune(config(small, tmp_path / "run", epochs=1))
    with pytest.raises(ValueError, match="already holds a fine-tuning run"):
        finetune(config(small, tmp_path / "run", epochs=1))


def test_corrupt_videos_are_skipped_and_reported(tmp_path, small, caplog):
    root = shutil.copytree(small, tmp_path / "data")
    broken = [load_split(root, "ucf101", 1, subset).records[0] for subset in ("train", "test")]
    broken[0].path.write_bytes(b"RIFF\0\0\0\0AVI garbage" * 10)
    broken[1].path.write_bytes(broken[1].path.read_bytes()[:2500])  # cut off
    run = config(root, tmp_path / "run", epochs=1, **{"data.num_workers": 1, "data.decode_timeout": 30.0})
    with caplog.at_level(logging.WARNING, logger="videopure.models.finetune"):
        result = finetune(run)
    assert {video.id for video in result.skipped} == {record.id for record in broken}
    assert (result.history[0].train_skipped, result.history[0].val_skipped) == (1, 1)
    for record in broken:
        assert str(record.path) in caplog.text


VALID = {"model": "{name: x3d_tiny}", "data": "{root: d}", "output_dir": "out"}


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"optim": "{name: adam}"}, r"field 'optim.name': 'adam' is not one of 'sgd', 'adamw'"),
        ({"data": "{root: d, hfilp: false}"}, r"unknown field 'data.hfilp'"),
        ({"model": "{name: x3d_tiny, zoo_weights: a.pyth, checkpoint: b.pt}"}, r"section 'model': 'zoo_weights' and 'checkpoint'"),
        ({"data": "{root: d, scale: [1.5, 1.0]}"}, r"section 'data': 'scale' must be a range"),
        ({"epochs": "0"}, r"need epochs >= 1"),
        ({"data": "{root: d, field_amplitude: 2}"}, r"section 'data': 'field_amplitude' must lie in \[0, 1\]"),
        ({"adversarial": "{budget: 8/0}"}, r"section 'adversarial': budget '8/0' is not a number"),
        ({"adversarial": "{cells: []}"}, r"section 'adversarial': adversarial: need cells >= 1"),
        ({"output_dir": None}, r"required field 'output_dir' is missing"),
    ],
)
def test_config_errors_name_the_field_and_the_file(tmp_path, fields, message):
    path = tmp_path / "finetune.yaml"
    path.write_text("".join(f"{key}: {value}\n" for key, value in {**VALID, **fields}.items() if value is not None))
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path, FinetuneConfig)
    assert str(path) in str(error.value)


def test_finetune_command_from_zoo_weights_then_from_its_checkpoint(tmp_path, small, caplog):
    zoo = tmp_path / "X3D_TINY.pyth"
    torch.save({"model_state": create_classifier("x3d_tiny", 400, crop_size=32).net.state_dict()}, zoo)
    path = tmp_path / "finetune.yaml"
    path.write_text(
        f"model: {{name: x3d_tiny, zoo_weights: {zoo}, overrides: {{crop_size: 32}}}}\n"
        f"data: {{root: {small}, num_frames: 8, stride: 1, hflip: false, num_workers: 0, decode_timeout: null}}\n"
        f"output_dir: {tmp_path / 'zoo_run'}\nepochs: 1\ndevice: cpu\n"
    )
    with caplog.at_level(logging.INFO):
        assert main(["finetune", "--config", str(path)]) == 0
    assert "dropped the 400-class head" in caplog.text
    best = tmp_path / "zoo_run" / "best.pt"
    assert load_classifier(best).class_names == ("MoveRight", "MoveDown", "Grow")

    assert main(["finetune", "--config", str(path)]) == 2  # the folder holds a run: refused without --resume
    overrides = ["--set", f"model.checkpoint={best}", "--set", "model.zoo_weights=null", "--set", "model.overrides={}",
                 "--set", f"output_dir={tmp_path / 'second'}"]
    assert main(["finetune", "--config", str(path), *overrides]) == 0
    assert len(metrics_rows(tmp_path / "second")) == 1


LEARN_CLASSES = ["move_right", "move_down", "rotate_clockwise", "grow"]


def test_finetuning_learns_the_motions_well_above_chance(tmp_path):
    """4 motions × 60 videos (160 training, 80 test), 12 epochs from scratch: about 0.9 top-1 (chance 0.25)."""
    root = make_synthetic_dataset(tmp_path / "data", classes=LEARN_CLASSES, videos_per_class=60, num_frames=8, size=(32, 32))
    result = finetune(config(root, tmp_path / "run", epochs=12))
    assert result.best_top1 >= 0.75, [m.val_top1 for m in result.history]
    best = load_classifier(result.best_checkpoint)
    split = load_split(root, "ucf101", 1, "test")
    sampling = ClipSampling.from_spec(best.spec)
    again = evaluate(best, split.records, split.class_names, sampling, EvalConfig(num_workers=0, device="cpu", decode_timeout=None))
    assert again.top1 == result.best_top1
    assert len(metrics_rows(tmp_path / "run")) == 12


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[1].glob("configs/finetune_*.yaml")), ids=lambda p: p.name)
def test_the_shipped_finetune_configs_load(path):
    loaded = load_config(path, FinetuneConfig)
    assert loaded.data.layout == "ucf101" and loaded.epochs >= 1
    if path.name == "finetune_demo_robust.yaml":  # stage 2 of the demo classifier: from stage 1, smooth PGD at 8/255
        assert str(loaded.model.checkpoint) == "runs/finetune_demo/best.pt"
        assert loaded.adversarial is not None and loaded.adversarial.budget == "8/255"
