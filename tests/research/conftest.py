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


@pytest.fixture(scope="package")
def recorded_session(tmp_path_factory):
    """One 8-minute simulated session (simulated patient answering SUDS) with its session.xdf."""
    from therapy.sinks.xdf import attach_xdf

    folder = tmp_path_factory.mktemp("recorded")
    session = run_virtual_session(folder, minutes=8, seed=5,
                                  observers=[lambda live: attach_xdf(live, folder, station=STATION)])
    return session, folder


@pytest.fixture(scope="package")
def ecg_session(tmp_path_factory):
    """A session on the MIT-BIH ECG replayed at 360 Hz, stopped after 60 s, with its session.xdf."""
    import shutil

    from therapy.commands import Stop
    from therapy.sinks.xdf import attach_xdf

    folder = tmp_path_factory.mktemp("ecg")
    ecg_file = folder / "ecg.dat"
    shutil.copy(MITBIH_ECG, ecg_file)
    session = run_virtual_session(folder, minutes=8, sensor=f"replay:{ecg_file}",
                                  script=[(60.0, Stop(source="therapist"))],
                                  observers=[lambda live: attach_xdf(live, folder, station=STATION)])
    return session, folder
