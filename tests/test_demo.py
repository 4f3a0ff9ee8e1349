"""The demo's science, with the shipped models and full adjoint gradients: the attack breaks the classifier alone,
and the purified classifier keeps most clips (CPU minutes; the demo's own defaults)."""

from __future__ import annotations

import json

import pytest

from videopure.cli import main
from videopure.demo import DemoConfig, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(DemoConfig(out=out))


def test_the_attack_breaks_the_classifier_and_purification_holds(demo):
    _, summary = demo
    undefended, *defended = summary["rows"]
    assert summary["clips"] == 8 and "adjoint" in summary["attack"]
    assert undefended["clean"] >= 0.8, summary["rows"]
    assert undefended["robust"] <= 0.125, summary["rows"]  # at most one clip of 8 survives the attack
    for row in defended:  # independent and shared noise, worst case over the repeated purifications
        assert row["robust"] <= row["robust_mean"] and row["robust"] <= row["clean"] + 0.125
        assert row["robust"] >= undefended["robust"] + 0.3, summary["rows"]
    assert not [c for checks in summary["sanity"].values() for c in checks if c["status"] == "FAIL"]


def test_the_demo_writes_what_it_promises_and_a_rerun_resumes(demo, capsys):
    out, summary = demo
    for name in ("report.md", "report.json", "figure.png", "independent/report.md", "shared/report.md"):
        assert (out / name).stat().st_size > 0, name
    assert sorted(summary["media"]) == ["adversarial", "clean", "figure", "purified"]
    assert all(path.endswith(".mp4") for kind, path in summary["media"].items() if kind != "figure")
    assert json.loads((out / "report.json").read_text())["rows"] == summary["rows"]

    assert main(["demo", "--out", str(out)]) == 0  # every clip is done: nothing is attacked again
    printed = capsys.readouterr().out
    assert "| model | clean accuracy | robust accuracy |" in printed
    assert json.loads((out / "report.json").read_text())["rows"] == summary["rows"]
