"""Shared test fixtures: the reference fixtures in ../shared/fixtures (or $VIDEOPURE_FIXTURES)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(os.environ.get("VIDEOPURE_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        raise FileNotFoundError(f"reference fixtures not found at {FIXTURES}; set VIDEOPURE_FIXTURES")
    return FIXTURES


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Keep tests on the CI's two cores."""
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
