"""pipelines/purify_dataset.py on a local 2-CPU Ray: same results as in-process, exactly-once, fault tolerant."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from ray import cloudpickle  # noqa: E402

from pipeline_helpers import PIPELINES, load_pipeline  # noqa: E402

from videopure.config import from_dict  # noqa: E402
from videopure.data import make_synthetic_dataset  # noqa: E402
from videopure.jobs import PurifyJob, purify_dataset  # noqa: E402
from videopure.manifest import Manifest  # noqa: E402
from tiny_models import TINY_ADM  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPT = PIPELINES / "purify_dataset.py"


pipeline = load_pipeline("purify_dataset.py", "purify_pipeline")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = make_synthetic_dataset(
        tmp_path_factory.mktemp("data") / "synthetic", "ucf101", classes=["move_left", "grow"],
        videos_per_class=6, num_frames=8, size=(16, 16),
    )
    first_test = sorted((root / "ucfTrainTestlist" / "testlist01.txt").read_text().split())[0]
    (root / first_test).write_bytes(b"\x00corrupt")
    return root


def config(tmp_path: Path, root: Path, out: str, t_star: float = 0.002) -> dict:
    model = tmp_path / "adm.json"
    model.write_text(json.dumps(TINY_ADM))
    return {
        "dataset": {"root": str(root), "layout": "ucf101", "subset": "test", "num_frames": 4},
        "diffusion": {"model": str(model), "allow_random_weights": True},
        "purifier": {"t_star": t_star, "noise": "independent", "seed": 3},
        "output": {"dir": str(tmp_path / out), "mp4": False, "arrays": True},
        "device": "cpu",
        "clips_per_batch": 2,
    }


def results(out: Path) -> dict[str, tuple]:
    """Per clip: status, error, change and the purified array (timings left out)."""
    rows = {}
    for row in Manifest(out / "manifest.jsonl").rows():
        array = np.load(out / row["outputs"]["npz"])["clip"] if row["status"] == "ok" else None
        rows[row["id"]] = (row["status"], row.get("error"), row.get("mean_abs_change"), array)
    return rows


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for clip_id in a:
        assert a[clip_id][:3] == b[clip_id][:3], clip_id
        if a[clip_id][3] is not None:
            assert np.array_equal(a[clip_id][3], b[clip_id][3]), clip_id


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


class CrashOnceStage(pipeline.PurifyStage):
    """Kills its actor process on the first batch it sees (a marker file makes it happen once per run)."""

    marker: str = ""

    def __call__(self, batch):
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return super().__call__(batch)


cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module either


def test_ray_equals_in_process_and_survives_an_actor_crash(tmp_path, dataset, local_ray):
    in_process = from_dict(PurifyJob, config(tmp_path, dataset, "local"))
    purify_dataset(in_process)
    expected = results(tmp_path / "local")
    assert sum(status == "decode_error" for status, *_ in expected.values()) == 1

    on_ray = from_dict(PurifyJob, config(tmp_path, dataset, "ray"))
    summary = pipeline.run_pipeline(on_ray)
    assert_same(expected, results(tmp_path / "ray"))
    assert summary["by_status"] == {"ok": len(expected) - 1, "decode_error": 1}

    CrashOnceStage.marker = str(tmp_path / "crashed")
    crashing = from_dict(PurifyJob, config(tmp_path, dataset, "crash"))
    pipeline.run_pipeline(crashing, purify_stage=CrashOnceStage)
    assert Path(CrashOnceStage.marker).exists()
    assert_same(expected, results(tmp_path / "crash"))


def test_killed_driver_resumes_exactly_once(tmp_path, dataset):
    job = config(tmp_path, dataset, "killed", t_star=0.05)
    job_file = tmp_path / "job.yaml"
    job_file.write_text(json.dumps(job))
    command = [sys.executable, str(SCRIPT), "--config", str(job_file), "--num-cpus", "2", "--set", "clips_per_batch=1"]
    manifest = tmp_path / "killed" / "manifest.jsonl"
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if manifest.exists() and sum(1 for row in Manifest(manifest).rows() if row["status"] == "ok") >= 1:
                break
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and the local Ray it started
        process.wait()
    total = len((dataset / "ucfTrainTestlist" / "testlist01.txt").read_text().split())
    partial = list(Manifest(manifest).rows())
    assert 1 <= len(partial) < total, "the run must be killed part-way"

    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    ids = [row["id"] for row in Manifest(manifest).rows()]
    assert len(ids) == len(set(ids)) == total
    reference = tmp_path / "reference"
    shutil.rmtree(reference, ignore_errors=True)
    purify_dataset(from_dict(PurifyJob, {**job, "output": {**job["output"], "dir": str(reference)}}))
    assert_same(results(reference), results(tmp_path / "killed"))


def test_cluster_configs_validate_against_rays_schema():
    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    paths = sorted((REPO / "configs" / "cluster").glob("*.yaml"))
    assert {p.name for p in paths} >= {"aws-gpu.yaml", "local.yaml"}
    for path in paths:
        validate_config(prepare_config(yaml.safe_load(path.read_text())))  # as `ray up` does
    broken = yaml.safe_load(paths[0].read_text()) | {"file_mount": {}}
    with pytest.raises(Exception, match="file_mount"):
        validate_config(prepare_config(broken))


def test_runs_on_a_started_cluster_with_address_auto(tmp_path, dataset):
    """`ray start --head`, then the pipeline joins it with --address auto (no `ray stop`: the head is killed by group)."""
    ray_bin = Path(sys.executable).with_name("ray")
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # where `auto` looks up the address
    before = current.stat().st_mtime_ns if current.exists() else None
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.1", "--port=0", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats", "--block"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while not current.exists() or current.stat().st_mtime_ns == before:
            assert time.monotonic() < deadline and head.poll() is None, "the Ray head did not come up"
            time.sleep(0.5)
        job_file = tmp_path / "job.yaml"
        job_file.write_text(json.dumps(config(tmp_path, dataset, "cluster")))
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--config", str(job_file), "--address", "auto", "--limit", "2"],
            cwd=REPO, capture_output=True, text=True, timeout=240,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert len(list(Manifest(tmp_path / "cluster" / "manifest.jsonl").rows())) == 2
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
