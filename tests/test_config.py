"""YAML configs → typed dataclasses, with errors that name the field and the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from videopure.config import ConfigError, apply_overrides, load_config, to_dict


@dataclass(frozen=True)
class Purify:
    t_star: float = 0.1
    noise: Literal["independent", "shared"] = "independent"
    frame_batch: Optional[int] = None


@dataclass(frozen=True)
class Run:
    name: str
    purify: Purify = field(default_factory=Purify)
    budgets: tuple[float, ...] = (4 / 255,)
    checkpoint: Optional[Path] = None
    resume: bool = True


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_reads_nested_typed_config_with_overrides(tmp_path):
    path = write(tmp_path, "name: demo\npurify:\n  t_star: 0.15\n  noise: shared\nbudgets: [0.01, 0.02]\ncheckpoint: w.pt\n")
    config = load_config(path, Run, overrides=["purify.frame_batch=8", "resume=false"])
    assert config == Run(
        name="demo", purify=Purify(0.15, "shared", 8), budgets=(0.01, 0.02), checkpoint=Path("w.pt"), resume=False
    )
    assert to_dict(config)["purify"] == {"t_star": 0.15, "noise": "shared", "frame_batch": 8}


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: a\npurify:\n  t_sta: 0.1\n", "unknown field 'purify.t_sta'"),
        ("purify: {}\n", "required field 'name' is missing"),
        ("name: a\npurify:\n  t_star: fast\n", "field 'purify.t_star': expected a number"),
        ("name: a\npurify:\n  noise: sometimes\n", "field 'purify.noise': 'sometimes' is not one of"),
        ("name: a\nbudgets: 0.1\n", "field 'budgets': expected a list"),
        ("name: a\nresume: 1\n", "field 'resume': expected true or false"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_invalid_configs_name_the_field_and_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, Run)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_bad_overrides_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="dotted.key=value"):
        apply_overrides({}, ["no_equals_sign"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"name": "a"}, ["name.inner=1"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml", Run)
