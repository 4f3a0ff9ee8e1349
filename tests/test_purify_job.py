"""videopure purify: a dataset split through decode → purify → mp4 + manifest, resumable, bad files recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videopure.cli import main
from videopure.config import from_dict
from videopure.data import make_synthetic_dataset, read_clip
from videopure.jobs import PurifyJob, purify_dataset
from videopure.manifest import Manifest
from tiny_models import TINY_ADM



@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = make_synthetic_dataset(
        tmp_path_factory.mktemp("data") / "synthetic", "ucf101", classes=["move_left", "move_right"],
        videos_per_class=6, num_frames=8, size=(16, 16),
    )
    return root


def job_config(tmp_path: Path, root: Path, **dataset) -> dict:
    model = tmp_path / "adm.json"
    model.write_text(json.dumps(TINY_ADM))
    return {
        "dataset": {"root": str(root), "layout": "ucf101", "subset": "test", "num_frames": 4, **dataset},
        "diffusion": {"model": str(model), "allow_random_weights": True},
        "purifier": {"t_star": 0.002, "noise": "shared"},
        "output": {"dir": str(tmp_path / "out"), "figure_clips": 1},
        "device": "cpu",
        "clips_per_batch": 2,
    }


def test_purifies_a_split_and_resumes_without_duplicates(tmp_path, dataset):
    config = job_config(tmp_path, dataset, limit=3)
    first = purify_dataset(from_dict(PurifyJob, config))
    assert first["by_status"] == {"ok": 3}
    out = tmp_path / "out"
    rows = list(Manifest(out / "manifest.jsonl").rows())
    purified = read_clip(out / rows[0]["outputs"]["mp4"], 4, backend="pyav")
    assert purified.shape == (4, 16, 16, 3)
    assert (out / "figure.png").stat().st_size > 0 and (out / "run_config.json").exists()

    config["dataset"]["limit"] = None  # the rest of the split; the first three are not redone
    second = purify_dataset(from_dict(PurifyJob, config))
    ids = [row["id"] for row in Manifest(out / "manifest.jsonl").rows()]
    assert len(ids) == len(set(ids)) == second["clips"] == first["clips"] + second["this_run"]["clips"]

    again = purify_dataset(from_dict(PurifyJob, config))
    assert again["this_run"]["clips"] == 0 and again["clips"] == second["clips"]


def test_bad_and_missing_videos_are_recorded_and_the_rest_completes(tmp_path, dataset):
    root = tmp_path / "copy"
    import shutil

    shutil.copytree(dataset, root)
    tests = sorted((root / "ucfTrainTestlist" / "testlist01.txt").read_text().split())
    (root / tests[0]).write_bytes(b"not a video at all")
    (root / tests[1]).unlink()
    summary = purify_dataset(from_dict(PurifyJob, job_config(tmp_path, root)))
    by_id = {row["id"]: row for row in Manifest(tmp_path / "out" / "manifest.jsonl").rows()}
    assert by_id[tests[0]]["status"] == "decode_error" and tests[0] in by_id[tests[0]]["error"]
    assert by_id[tests[1]]["status"] == "missing"
    assert summary["by_status"]["ok"] == len(tests) - 2


def test_an_interrupted_manifest_row_is_redone(tmp_path, dataset):
    config = job_config(tmp_path, dataset, limit=2)
    purify_dataset(from_dict(PurifyJob, config))
    manifest = tmp_path / "out" / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # killed while appending row 2
    summary = purify_dataset(from_dict(PurifyJob, config))
    assert summary["this_run"]["clips"] == 1 and summary["by_status"] == {"ok": 2}


def test_untrained_network_needs_explicit_consent_and_cli_runs(tmp_path, dataset):
    config = job_config(tmp_path, dataset, limit=1)
    config["diffusion"]["allow_random_weights"] = False
    with pytest.raises(ValueError, match="diffusion.checkpoint"):
        purify_dataset(from_dict(PurifyJob, config))
    path = tmp_path / "job.yaml"
    config["diffusion"]["allow_random_weights"] = True
    path.write_text(json.dumps(config))  # JSON is YAML
    assert main(["purify", "--config", str(path), "--set", "purifier.noise=independent"]) == 0
    assert main(["purify", "--config", str(path), "--set", "purifier.nois=x"]) == 2  # unknown field: named error


def test_classifies_purified_clips_when_given_a_classifier(tmp_path, dataset):
    from videopure.models import create_classifier, save_classifier

    checkpoint = save_classifier(create_classifier("x3d_tiny", num_classes=2), tmp_path / "classifier.pt")
    config = job_config(tmp_path, dataset, limit=3)
    config["classifier"] = {"checkpoint": str(checkpoint)}
    summary = purify_dataset(from_dict(PurifyJob, config))
    rows = list(Manifest(tmp_path / "out" / "manifest.jsonl").rows())
    assert all(len(row["logits"]) == 2 and row["prediction"] == max(range(2), key=row["logits"].__getitem__) for row in rows)
    assert summary["accuracy_on_purified"] == round(sum(row["correct"] for row in rows) / len(rows), 4)
