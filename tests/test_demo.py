"""The offline demo: what the science says comes out (issue 8), the files it promises, and a resumed rerun.

The shipped models: the tiny ADM purifier (preset `demo`) and r3d_tiny trained against smooth adversarial
perturbations (configs/finetune_demo_robust.yaml, then finetune_demo_robust_10.yaml). Measured: 75% clean / 12.5%
robust without defence, 75% / 62.5% behind the purifier (worst case of 3 purifications, exact gradients), 92% clean
on all 160 test videos."""

from __future__ import annotations

import json

import pytest

from videopure.cli import main
from videopure.demo import DemoConfig, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(DemoConfig(out=out))


def test_the_attack_breaks_the_undefended_classifier_and_the_report_is_consistent(demo):
    _, summary = demo
    undefended, *defended = summary["rows"]
    assert summary["clips"] == 8 and "direct gradients" in summary["attack"]
    assert summary["test_split"]["videos"] == 160 and summary["test_split"]["top1"] >= 0.8, summary["test_split"]
    assert undefended["clean"] >= 0.75, summary["rows"]  # 6 of the 8 attacked clips (3 are RotateCounterclockwise)
    assert undefended["robust"] <= 0.125, summary["rows"]  # at most one clip of 8 survives the attack
    for row in defended:  # independent and shared noise, worst case over the repeated purifications
        assert row["clean"] >= 0.75, summary["rows"]
        assert row["robust"] <= row["robust_mean"] and row["robust"] <= row["clean"] + 0.125
    # exact gradients reach the input: the huge budget breaks every clip, no FAIL in either report
    assert not [c for checks in summary["sanity"].values() for c in checks if c["status"] == "FAIL"]


def test_purification_keeps_30_points_more_than_no_defence(demo):
    _, summary = demo
    undefended, *defended = summary["rows"]
    assert all(row["robust"] >= undefended["robust"] + 0.3 for row in defended), summary["rows"]


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
