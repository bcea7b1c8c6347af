"""A ``python main.py demo`` killed with SIGKILL mid-session leaves a ``session.xdf`` that pyxdf loads."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

import pyxdf  # a declared dependency: never skipped

pytestmark = pytest.mark.gl


def wait_for_line(proc: subprocess.Popen, needle: str, timeout_s: float = 180.0) -> None:
    """Read the program's output until a line contains ``needle`` (the timeout only guards against a hang)."""
    seen = threading.Event()
    found: list[str] = []

    def reader() -> None:
        for line in proc.stdout:
            if needle in line:
                found.append(line)
                break
        seen.set()

    threading.Thread(target=reader, daemon=True).start()
    assert seen.wait(timeout_s) and found, f"the program never printed {needle!r}"


def test_sigkill_mid_session_leaves_a_loadable_xdf_equal_to_the_store(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "main.py"), "demo", "--minutes", "20", "--speed", "10", "--out", str(out),
         "--display", "headless", "--eye-size", "64x64", "--fps", "5", "--no-frames", "--no-lsl"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO_ROOT,
    )
    try:
        # The first step up, about a minute of session time into exposure: minutes of data are written, and the
        # marker of level 0 went out long before. Killing at level 0's own line raced the XDF writer's thread for
        # that marker (the printer is another subscriber), and lost once on a loaded machine.
        wait_for_line(proc, "level 1 (")
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    (path,) = list((out / "sessions").glob("*/session.xdf"))
    streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=False, synchronize_clocks=False)
    by = {s["info"]["type"][0]: s for s in streams}
    assert "footer" not in by["HR"]  # killed: no footers, and it loads anyway
    sid = path.parent.name
    with sqlite3.connect(out / "vrex.sqlite3") as conn:
        hr = np.array(conn.execute("SELECT t_s, hr_bpm FROM hr_samples WHERE session_id=? ORDER BY rowid",
                                   (sid,)).fetchall(), dtype=float)
        phases = [p for (p,) in conn.execute("SELECT phase FROM phases WHERE session_id=? ORDER BY t_s", (sid,))]
    assert phases[0] == "baseline"  # the exposure phase may be in the last fraction of a second the kill took
    t, v = by["HR"]["time_stamps"], by["HR"]["time_series"][:, 0]
    assert len(t) >= 180  # the whole baseline (180 s at 1 Hz) at least
    # both writers lost at most their last fraction of a second: on the samples both have, they agree
    n = min(len(t), len(hr))
    assert n >= len(hr) - 20 and n >= len(t) - 20
    np.testing.assert_array_equal(t[:n], hr[:n, 0])
    np.testing.assert_array_equal(v[:n], hr[:n, 1])
    kinds = [json.loads(m[0])["event"] for m in by["Markers"]["time_series"]]
    assert kinds[:1] == ["PhaseChanged"] and "LevelChanged" in kinds
