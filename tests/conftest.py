"""Suite-wide set-up: liblsl stays on loopback; CI turns missing components into failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
LOOPBACK_CFG = SHARED_DIR / "lsl" / "loopback.cfg"

# liblsl reads LSLAPICFG once, at its first use: set it before any test imports pylsl.
if LOOPBACK_CFG.is_file():
    os.environ.setdefault("LSLAPICFG", str(LOOPBACK_CFG))

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip locally when a component is missing; in CI a missing component is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing in CI (the set-up must install it): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data`` (recordings for tests and benchmarks)."""
    path = SHARED_DIR / "data"
    require(path.is_dir(), f"shared data folder {path} not found")
    return path
