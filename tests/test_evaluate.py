"""The evaluation protocol: report contents and invariants, resume after an interruption, sanity checks that fail
loudly, configs, and the CLI on the synthetic dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from attack_helpers import MICRO_ADM, TinyVideoNet, micro_defended, random_clips

from videopure.attacks.config import AttackConfig, EvalOutputConfig, EvaluateJob, Protocol, SanityConfig, EvaluationConfig, parse_budget
from videopure.attacks.evaluate import MANIFEST, ClipRef, run_protocol
from videopure.attacks.report import SanityCheckError, sanity_checks, wilson
from videopure.cli import main
from videopure.config import ConfigError, from_dict, load_config

CLASSES = [f"class{i}" for i in range(10)]
PROTOCOL = Protocol(
    attacks=(
        AttackConfig("apgd-ce", ("16/255", "32/255"), n_iter=2, eot_iter=2),
        AttackConfig("bpda-eot", ("32/255",), n_iter=2, eot_iter=2),
        AttackConfig("apgd-ce", ("32/255",), surrogate="classifier", n_iter=5),
    ),
    evaluation=EvaluationConfig(repeats=3, undefended_steps=10),
    sanity=SanityConfig(huge_steps=3, strict=False),
    clips_per_batch=2,
)


@pytest.fixture(scope="module")
def setup():
    model = micro_defended(TinyVideoNet(10))
    clips = random_clips(4, seed=7)
    with torch.no_grad():
        labels = model(clips, [f"v{i}" for i in range(4)], draw=0).argmax(dim=1).tolist()  # mostly correct clean
    return model, clips, labels


def refs(clips, labels, interrupt_at: int | None = None) -> list[ClipRef]:
    def loader(i):
        def load():
            if i == interrupt_at:
                raise KeyboardInterrupt  # the run is killed while reading this clip
            return clips[i]

        return load

    return [ClipRef(f"v{i}", labels[i], CLASSES[labels[i]], loader(i)) for i in range(len(labels))]


@pytest.fixture(scope="module")
def full_run(setup, tmp_path_factory):
    model, clips, labels = setup
    out = tmp_path_factory.mktemp("full")
    report = run_protocol(model, refs(clips, labels), CLASSES, PROTOCOL, EvalOutputConfig(out), {"name": "test"})
    return out, report


def test_report_holds_every_number_and_worst_case_is_at_most_mean(full_run):
    out, report = full_run
    assert report["clean"]["n"] == 4 and report["clips"]["failed"] == []
    labels = [(e["label"], e["budget"]) for e in report["attacks"]]
    assert labels == [("apgd-ce", "16/255"), ("apgd-ce", "32/255"), ("bpda-eot", "32/255"), ("transfer-apgd-ce", "32/255")]
    for entry in [report["clean"], report["huge_budget"], *report["attacks"]]:
        assert entry["worst"]["accuracy"] <= entry["mean"]["accuracy"]
        low, high = entry["worst"]["ci95"]
        assert low <= entry["worst"]["accuracy"] <= high
    for entry in report["attacks"]:
        assert entry["max_perturbation"]["linf"] <= entry["budget_value"] + 1e-6
    rows = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    assert [r["id"] for r in rows] == ["v0", "v1", "v2", "v3"]
    assert all(len(r["attacks"]["apgd-ce@32/255"]["pred"]) == 3 for r in rows)
    assert {c["status"] for c in report["sanity"]} <= {"PASS", "NOTE", "WARN"}
    markdown = (out / "report.md").read_text()
    assert "| apgd-ce | linf | 32/255 | adjoint | 2 | 2 |" in markdown and "## Sanity checks" in markdown
    for figure in ("figures/v0.png", "figures/v1.png", "figures/accuracy_vs_budget.png"):
        assert (out / figure).is_file() and f"]({figure})" in markdown
    assert report["cost"]["estimate"]["defended_gradient_calls"]["adjoint"] > 0


def test_resume_after_an_interruption_gives_the_same_report(setup, full_run, tmp_path):
    model, clips, labels = setup
    with pytest.raises(KeyboardInterrupt):
        run_protocol(model, refs(clips, labels, interrupt_at=2), CLASSES, PROTOCOL, EvalOutputConfig(tmp_path), {"name": "test"})
    assert [json.loads(line)["id"] for line in (tmp_path / MANIFEST).read_text().splitlines()] == ["v0", "v1"]
    resumed = run_protocol(model, refs(clips, labels), CLASSES, PROTOCOL, EvalOutputConfig(tmp_path), {"name": "test"})
    ids = [json.loads(line)["id"] for line in (tmp_path / MANIFEST).read_text().splitlines()]
    assert ids == ["v0", "v1", "v2", "v3"]  # each clip exactly once
    _, uninterrupted = full_run
    strip = lambda report: {k: v for k, v in report.items() if k != "cost"}  # noqa: E731 (timings differ)
    assert strip(resumed) == strip(uninterrupted)


def test_failed_sanity_checks_raise_after_the_report_is_written(setup, tmp_path):
    model, clips, labels = setup
    protocol = Protocol(
        attacks=(AttackConfig("apgd-ce", ("16/255",), surrogate="classifier", n_iter=2),),
        evaluation=EvaluationConfig(repeats=2, undefended_steps=2),
        sanity=SanityConfig(huge_budget=None, max_undefended_accuracy=-1.0),  # impossible to meet
    )
    with pytest.raises(SanityCheckError, match="undefended classifier"):
        run_protocol(model, refs(clips[:1], labels[:1]), CLASSES, protocol, EvalOutputConfig(tmp_path))
    assert "**FAIL** undefended classifier" in (tmp_path / "report.md").read_text()


def entry(label, budget, worst, grad="adjoint"):
    stat = {"accuracy": worst, "ci95": wilson(worst * 10, 10)}
    return {"label": label, "norm": "linf", "budget": str(budget), "budget_value": budget, "grad": grad, "worst": stat, "mean": stat, "zero_grad_clips": 0}


def test_sanity_checks_catch_rising_accuracy_strong_bpda_and_robust_undefended():
    report = {
        "clean": {"n": 10, "worst": {"accuracy": 0.8}},
        "undefended": {"pgd": [{"norm": "linf", "budget": "4/255", "worst": {"accuracy": 0.5}}]},
        "attacks": [entry("a", 0.01, 0.2), entry("a", 0.02, 0.6), entry("b", 0.02, 0.1, grad="bpda"), entry("c", 0.03, 0.95)],
        "huge_budget": {"budget": "0.5", "steps": 5, "worst": {"accuracy": 0.0}},
    }
    statuses = {c["check"]: c["status"] for c in sanity_checks(report, PROTOCOL)}
    assert statuses["undefended classifier under PGD linf 4/255"] == "FAIL"
    assert statuses["a: accuracy non-increasing in the budget"] == "FAIL"
    assert statuses["c linf 0.03 <= clean"] == "FAIL"
    assert statuses["BPDA vs adjoint at linf 0.02"] == "WARN"
    assert statuses["huge budget (Linf 0.5, PGD 5 steps)"] == "PASS"


def test_attack_configs_are_checked():
    assert parse_budget("4/255") == pytest.approx(4 / 255) and parse_budget(0.5) == 0.5
    with pytest.raises(ValueError, match="fraction"):
        parse_budget("four")
    with pytest.raises(ValueError, match="contradicts"):
        AttackConfig("bpda-eot", (0.1,), grad="adjoint")
    with pytest.raises(ValueError, match="unique"):
        Protocol(attacks=(AttackConfig("pgd", (0.1,)), AttackConfig("pgd", (0.2,))))
    with pytest.raises(ConfigError, match="'attacks\\[0\\].kind'"):
        from_dict(Protocol, {"attacks": [{"kind": "fgsm", "budgets": [0.1]}]})
    defaults = AttackConfig("autoattack-rand", ("4/255",))
    assert (defaults.iterations, defaults.eot, defaults.grad_mode) == (100, 20, "adjoint")
    assert AttackConfig("apgd-ce", (0.1,), surrogate="classifier").eot == 1


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[1].glob("configs/evaluate_*.yaml")))
def test_shipped_configs_load(path):
    job = load_config(path, EvaluateJob)
    assert job.attacks and job.evaluation.repeats >= 1


def test_cli_evaluates_the_synthetic_dataset_and_refuses_a_changed_config(tmp_path, capsys):
    assert main(["make-dataset", "synthetic", "--layout", "ucf101", "--out", str(tmp_path / "data"), "--videos-per-class", "6", "--frames", "8", "--size", "32x32"]) == 0
    (tmp_path / "micro_adm.json").write_text(json.dumps(MICRO_ADM | {"learn_sigma": True}))
    config = {
        "dataset": {"root": str(tmp_path / "data"), "layout": "ucf101", "num_frames": 4},
        "diffusion": {"model": str(tmp_path / "micro_adm.json"), "allow_random_weights": True},
        "purifier": {"t_star": 0.01, "dt": 0.005},
        "classifier": {"name": "x3d_tiny", "allow_random_weights": True, "overrides": {"crop_size": 32, "num_frames": 4}},
        "attacks": [{"kind": "apgd-ce", "budgets": ["8/255"], "n_iter": 2, "eot_iter": 1}],
        "evaluation": {"repeats": 2, "undefended_steps": 0},
        "sanity": {"huge_budget": None, "strict": False},
        "output": {"dir": str(tmp_path / "run"), "figure_clips": 1},
        "device": "cpu",
        "clips_per_batch": 2,
    }
    path = tmp_path / "evaluate.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["evaluate", "--config", str(path), "--clips", "2"]) == 0
    assert "# Robustness evaluation: run" in capsys.readouterr().out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["clips"]["evaluated"] == 2 and "RANDOM WEIGHTS" in report["run"]["classifier"]
    assert main(["evaluate", "--config", str(path), "--clips", "2", "--set", "seed=1"]) == 2  # not mixed into the old run
