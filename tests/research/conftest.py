"""Fixtures of the research-stream tests: whole virtual sessions with vrex's research sinks attached."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DATA_DIR
from tests.therapy.conftest import run_virtual_session  # noqa: F401  (re-exported for the tests here)

MITBIH_ECG = DATA_DIR / "mitbih208" / "ecg.dat"
STATION = "teststation"


@pytest.fixture
def station() -> str:
    return STATION


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("research")
