"""Shared fixtures: paths to the development data and committed fixtures, seeds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = Path(os.environ.get("BIOXBRIDGE_SHARED_DATA", REPO.parent / "shared" / "data"))
# the small demo (10 subjects x 60 s) for every test, module fixtures and subprocesses included;
# a test that needs the full one sets BIOXBRIDGE_DEMO_SIZE=full itself (monkeypatch)
os.environ["BIOXBRIDGE_DEMO_SIZE"] = "small"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full development databases; tests using them skip cleanly when absent."""
    if not (SHARED_DATA / "eegmat").is_dir() or not (SHARED_DATA / "cinc2015_vt").is_dir():
        pytest.skip(f"development data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def rng(request) -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's caches (features, demo data) out of the user's folders."""
    cache = tmp_path_factory.getbasetemp() / "bioxbridge-cache"
    monkeypatch.setenv("BIOXBRIDGE_CACHE", str(cache))
