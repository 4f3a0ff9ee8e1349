"""pipelines/evaluate_robustness.py on a local 2-CPU Ray: the report of `videopure evaluate`, clip by clip,
exactly once, fault tolerant."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from ray import cloudpickle  # noqa: E402

from pipeline_helpers import PIPELINES, load_pipeline  # noqa: E402

from attack_helpers import MICRO_ADM  # noqa: E402
from videopure.attacks.config import EvaluateJob  # noqa: E402
from videopure.attacks.evaluate import MANIFEST, evaluate  # noqa: E402
from videopure.config import from_dict  # noqa: E402
from videopure.data import make_synthetic_dataset  # noqa: E402
from videopure.manifest import Manifest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPT = PIPELINES / "evaluate_robustness.py"


pipeline = load_pipeline("evaluate_robustness.py", "evaluate_pipeline")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Six test clips of three classes; one of them corrupt."""
    root = make_synthetic_dataset(
        tmp_path_factory.mktemp("data") / "synthetic", "ucf101", classes=["move_left", "grow", "move_right"],
        videos_per_class=6, num_frames=8, size=(32, 32),
    )
    first_test = sorted((root / "ucfTrainTestlist" / "testlist01.txt").read_text().split())[0]
    (root / first_test).write_bytes(b"\x00corrupt")
    return root


def config(root: Path, out: Path) -> dict:
    """A tiny job: micro ADM (2 Euler steps, 8x8 frames), x3d_tiny at 32 px, batches of 2 clips."""
    model = root.parent / "micro_adm.json"  # one path for all runs: the report names it
    model.write_text(json.dumps(MICRO_ADM))
    return {
        "dataset": {"root": str(root), "layout": "ucf101", "num_frames": 4},
        "diffusion": {"model": str(model), "allow_random_weights": True},
        "purifier": {"t_star": 0.01, "dt": 0.005},
        "classifier": {"name": "x3d_tiny", "allow_random_weights": True, "overrides": {"crop_size": 32, "num_frames": 4}},
        "attacks": [{"kind": "apgd-ce", "budgets": ["8/255", "16/255"], "n_iter": 3, "eot_iter": 2}],
        "evaluation": {"repeats": 3, "undefended_steps": 3},
        "sanity": {"huge_steps": 2, "strict": False},
        "output": {"dir": str(out), "figure_clips": 2},
        "device": "cpu",
        "clips_per_batch": 2,
    }


def outcome(out: Path) -> dict:
    """Everything a run leaves that must not depend on where it ran: rows (timings left out), report (cost left
    out), report.md (cost section left out), saved arrays, figure names."""
    rows = {row["id"]: {k: v for k, v in row.items() if k != "seconds"} for row in Manifest(out / MANIFEST).rows()}
    report = json.loads((out / "report.json").read_text())
    markdown = (out / "report.md").read_text().split("\n## ")
    arrays = {path.name: dict(np.load(path)) for path in sorted((out / "clips").glob("*.npz"))}
    return {
        "rows": rows,
        "report": {k: v for k, v in report.items() if k != "cost"},
        "markdown": [section for section in markdown if not section.startswith("Cost\n")],
        "arrays": arrays,
        "figures": sorted(path.name for path in (out / "figures").iterdir()),
    }


def assert_same(a: dict, b: dict) -> None:
    assert a["rows"].keys() == b["rows"].keys()
    for clip_id in a["rows"]:
        assert a["rows"][clip_id] == b["rows"][clip_id], clip_id
    assert a["report"] == b["report"]
    assert a["markdown"] == b["markdown"]
    assert a["figures"] == b["figures"] and a["arrays"].keys() == b["arrays"].keys()
    for name, arrays in a["arrays"].items():
        assert all(np.array_equal(arrays[key], b["arrays"][name][key]) for key in arrays), name


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> dict:
    """`videopure evaluate` in this process (one torch thread, as the actors get)."""
    out = tmp_path_factory.mktemp("in_process") / "eval"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        evaluate(from_dict(EvaluateJob, config(dataset, out)))
    finally:
        torch.set_num_threads(threads)
    result = outcome(out)
    assert sum(row["status"] == "error" for row in result["rows"].values()) == 1 and len(result["rows"]) == 6
    return result


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


class CrashOnceActor(pipeline.EvaluateActor):
    """Kills its actor process on the first batch it gets (a marker file makes it happen once per run)."""

    marker: str = ""

    def evaluate(self, records, keep):
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return super().evaluate(records, keep)


class FailThirdBatchActor(pipeline.EvaluateActor):
    """Raises on its third batch (a bug, not a crash: Ray does not retry it)."""

    calls = 0

    def evaluate(self, records, keep):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("injected failure")
        return super().evaluate(records, keep)


cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module either


def test_ray_equals_in_process_after_a_failed_batch_and_an_actor_crash(tmp_path, dataset, reference, local_ray):
    out = tmp_path / "ray" / "eval"
    job = from_dict(EvaluateJob, config(dataset, out))
    plan = pipeline.ActorPlan(1, 0.0, cpu_threads=1)
    with pytest.raises(pipeline.BatchesFailed, match="2 clip\\(s\\) not evaluated"):
        pipeline.run_pipeline(job, plan, actor_cls=FailThirdBatchActor)
    assert len(list(Manifest(out / MANIFEST).rows())) == 4 and not (out / "report.json").exists()

    CrashOnceActor.marker = str(tmp_path / "crashed")
    report = pipeline.run_pipeline(job, plan, actor_cls=CrashOnceActor)  # resumes the failed batch
    assert Path(CrashOnceActor.marker).exists(), "the actor must have crashed once"
    assert_same(reference, outcome(out))
    [failed] = report["clips"]["failed"]
    assert failed["error"]  # the decoder's reason, recorded
    assert report["clips"]["evaluated"] == 5 and report["cost"]["estimate"]["clips"] == 2


def test_killed_driver_resumes_exactly_once(tmp_path, dataset, reference):
    out = tmp_path / "killed" / "eval"
    job_file = tmp_path / "job.yaml"
    job_file.write_text(json.dumps(config(dataset, out)))
    command = [sys.executable, str(SCRIPT), "--config", str(job_file), "--num-cpus", "2", "--cpu-threads", "1"]
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if len(list(Manifest(out / MANIFEST).rows())) >= 1:
                break
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and the local Ray it started
        process.wait()
    partial = list(Manifest(out / MANIFEST).rows())
    assert 1 <= len(partial) < 6, "the run must be killed part-way"

    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    sanity_failed = any(check["status"] == "FAIL" for check in reference["report"]["sanity"])  # untrained models
    assert done.returncode == (3 if sanity_failed else 0), done.stderr[-2000:]
    assert "# Robustness evaluation: eval" in done.stdout
    ids = [row["id"] for row in Manifest(out / MANIFEST).rows()]
    assert len(ids) == len(set(ids)) == 6
    assert_same(reference, outcome(out))
