"""The demo with the shipped models and its own defaults (exact gradients through the purifier, CPU minutes).

What the science asks for (issue 8: purified robust accuracy >= 30 points above undefended under the same attack)
does NOT hold yet for the shipped tiny models once gradients are exact: measured 12.5% worst case vs 0%. It is kept
as a strict xfail so that it turns red the day it passes. (With the stochastic adjoint at 4 solver steps the same
demo showed 88%: those gradients are nearly orthogonal to the exact ones, the overstatement the sanity checks
exist to catch; README "The demo".)"""

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
    assert undefended["clean"] >= 0.8, summary["rows"]
    assert undefended["robust"] <= 0.125, summary["rows"]  # at most one clip of 8 survives the attack
    for row in defended:  # independent and shared noise, worst case over the repeated purifications
        assert row["clean"] >= 0.75, summary["rows"]
        assert row["robust"] <= row["robust_mean"] and row["robust"] <= row["clean"] + 0.125
    # exact gradients reach the input: the huge budget breaks every clip, no FAIL in either report
    assert not [c for checks in summary["sanity"].values() for c in checks if c["status"] == "FAIL"]


@pytest.mark.xfail(strict=True, reason="shipped tiny models: 12.5% purified vs 0% undefended under exact gradients (issue 8 open)")
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
