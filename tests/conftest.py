"""Suite-wide set-up: liblsl stays on loopback; recordings come from the repository; CI turns missing components into failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "tests" / "data"
LOOPBACK_CFG = REPO_ROOT / "tests" / "lsl" / "loopback.cfg"

# liblsl reads its configuration once, at its first use. Forced (not a default), so a user's own
# LSLAPICFG never changes what the tests see; subprocesses inherit it. Importing biofeedback.lsl
# hands that file to liblsl (log quietened) before any test touches pylsl.
os.environ["LSLAPICFG"] = str(LOOPBACK_CFG)
import biofeedback.lsl  # noqa: E402,F401  (configures liblsl at import)

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip locally when a component is missing; in CI a missing component is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing in CI (the set-up must install it): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``tests/data``: the recordings tests use (sources and licences in its README)."""
    return DATA_DIR


@pytest.fixture(scope="session")
def shared_data_dir(data_dir: Path) -> Path:
    """Old name of :func:`data_dir`, kept while the signal benchmark test moves over."""
    return data_dir


@pytest.fixture(scope="session")
def xvfb_server():
    """One private Xvfb server for the whole run (pyglet keeps its first X connection for the process)."""
    require(shutil.which("Xvfb") is not None, "Xvfb is not installed (apt-get install xvfb)")
    num = 90 + os.getpid() % 400
    proc = subprocess.Popen(["Xvfb", f":{num}", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sock = f"/tmp/.X11-unix/X{num}"
    for _ in range(100):
        if os.path.exists(sock) or proc.poll() is not None:
            break
        time.sleep(0.05)  # waiting for the X server to start, not for the engine
    require(proc.poll() is None, "Xvfb failed to start")
    yield f":{num}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def xvfb_display(xvfb_server, monkeypatch):
    """DISPLAY points at the private Xvfb server while the test runs."""
    monkeypatch.setenv("DISPLAY", xvfb_server)
    return xvfb_server
