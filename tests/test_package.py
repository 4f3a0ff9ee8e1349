"""The package's public API and command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

import videopure
from videopure.cli import main


def test_public_api_is_reexported():
    for name in videopure.__all__:
        assert getattr(videopure, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        videopure.nope  # noqa: B018


def test_cli_help_and_info(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "purify" in capsys.readouterr().out
    assert main(["info", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"adm-256-uncond"' in out and '"ddpmpp-cifar10"' in out


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "videopure", "info"], capture_output=True, text=True, check=True)
    assert "diffusion presets" in result.stdout
