"""The purifier benchmarks run end to end on a tiny network and report agreeing outputs (no timing asserts)."""

from __future__ import annotations

import json

from videopure.bench.purify import PurifyBench, run_gradient_benchmark, run_purify_benchmark
from videopure.cli import main
from tiny_models import TINY_ADM



def test_purify_benchmark_compares_with_the_baseline(tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_ADM))
    result = run_purify_benchmark(
        PurifyBench(model=str(config), resolution=20, clips=2, frames=2, t_star=0.005, device="cpu")
    )
    assert result["euler_steps"] == 5
    assert result["baseline"]["frames_per_s"] > 0 and result["videopure"]["frames_per_s"] > 0
    ratio = result["baseline"]["seconds"] / result["videopure"]["seconds"]  # both rounded to milliseconds
    assert abs(result["speedup"] - ratio) <= 0.05 * ratio
    assert result["max_abs_output_difference"] < 1e-4  # same noise: same purification, up to float rounding


def test_gradient_benchmark_and_cli(tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_ADM))
    result = run_gradient_benchmark(PurifyBench(model=str(config), resolution=16, frames=1, device="cpu"), steps=(2, 4))
    assert [(row["steps"], row["mode"]) for row in result["rows"]] == [(2, "direct"), (2, "adjoint"), (4, "direct"), (4, "adjoint")]
    assert all(row["cosine_to_direct"] > 0.99 for row in result["rows"] if row["mode"] == "adjoint")

    out = tmp_path / "bench.json"
    code = main(["bench", "purify", "--model", str(config), "--resolution", "16", "--clips", "1", "--frames", "1",
                 "--t-star", "0.002", "--device", "cpu", "--json", str(out)])
    assert code == 0 and json.loads(out.read_text())["euler_steps"] == 2
