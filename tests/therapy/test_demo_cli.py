"""``python main.py demo`` as a user runs it: a whole session, its record and frames, its errors, Ctrl-C."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.gl


def vrex(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "main.py"), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO_ROOT,
    )


def wait_for_line(proc: subprocess.Popen, needle: str, timeout_s: float = 120.0) -> str:
    """Read the program's output until a line contains ``needle`` (the timeout only guards against a hang)."""
    found: list[str] = []
    seen = threading.Event()

    def reader() -> None:
        for line in proc.stdout:
            if needle in line:
                found.append(line)
                seen.set()
                return
        seen.set()

    threading.Thread(target=reader, daemon=True).start()
    assert seen.wait(timeout_s) and found, f"the program never printed {needle!r}"
    return found[0]


def test_demo_runs_a_whole_session_and_writes_record_and_frames(tmp_path):
    out = tmp_path / "out"
    res = vrex("demo", "--minutes", "20", "--speed", "60", "--seed", "3", "--out", str(out),
               "--display", "headless", "--eye-size", "128x128", "--fps", "15")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    db = out / "vrex.sqlite3"
    with sqlite3.connect(db) as conn:
        (sid, status, meta), = conn.execute("SELECT id, status, metadata_json FROM sessions").fetchall()
        phases = [p for (p,) in conn.execute("SELECT phase FROM phases ORDER BY t_s")]
        levels = conn.execute("SELECT level, previous, cause FROM level_changes ORDER BY t_s").fetchall()
        hr_t = np.array([t for (t,) in conn.execute("SELECT t_s FROM hr_samples ORDER BY t_s")])
    assert status == "completed" and '"seed": 3' in meta
    assert phases[:2] == ["baseline", "exposure"] and phases[-2:] == ["recovery", "ended"]
    assert len({lvl for lvl, _, _ in levels}) >= 3
    assert any(prev is not None and lvl < prev and cause == "controller" for lvl, prev, cause in levels)
    # HR once a second of session time across the session; at 60x a busy CPU may delay a few ticks
    assert len(hr_t) > 1000 and hr_t[-1] - hr_t[0] > 1150 and np.diff(hr_t).max() < 20.0

    frames = out / "frames" / sid
    names = sorted(p.name for p in frames.glob("*.png"))
    assert "00-baseline.png" in names and "99-end.png" in names
    level_frames = sorted(n for n in names if n.startswith("level-"))
    assert len(level_frames) >= 3
    images = {n: np.asarray(Image.open(frames / n).convert("RGB"), dtype=np.float32) for n in names}
    for name, img in images.items():
        assert img.shape == (128, 128, 3), name
        assert img.std() > 5.0, f"{name} is blank"
    low, high = images[level_frames[0]], images[level_frames[-1]]
    assert np.abs(low - high).mean() > 4.0, "the lowest and highest level look the same"
    assert np.abs(images["00-baseline.png"] - low).mean() > 4.0, "baseline (safe place) looks like exposure"
    assert str(db) in res.stdout and "completed" in res.stdout


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["demo", "--bogus"], {}, "unrecognized arguments: --bogus"),
        (["demo", "--protocol", "spiderz"], {}, "unknown protocol 'spiderz'"),
        (["demo", "--minutes", "2"], {}, "--minutes 2 is too short"),
        (["demo", "--speed", "0"], {}, "'0' must be a finite number greater than 0"),
        (["demo", "--seed", "-1"], {}, "'-1' must be 0 or more"),
        (["demo", "--eye-size", "big"], {}, "is not a size"),
        (["demo", "--fault", "meltdown@1+2"], {}, "unknown fault kind 'meltdown'"),
        (["demo", "--display", "desktop"], {"DISPLAY": ""}, "use --display headless"),
        (["demo", "--display", "openvr"], {}, "use --display desktop"),
        (["demo", "--display", "holodeck"], {}, "invalid choice: 'holodeck'"),
        (["frobnicate"], {}, "invalid choice: 'frobnicate'"),
    ],
)
def test_user_errors_exit_2_with_one_clear_line(tmp_path, args, env, expected):
    res = vrex(*args, "--out", str(tmp_path / "o"), env=env, timeout=60) if args[0] == "demo" else vrex(*args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("vrex: error:")]
    assert len(errors) == 1 and expected in errors[0], res.stderr
    db = tmp_path / "o" / "vrex.sqlite3"
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,), "a failed start recorded a session"


def test_protocol_naming_an_unknown_environment(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ntitle = "Bad"\nenvironment = "volcano"\n')
    res = vrex("demo", "--protocol", str(bad), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and '"volcano": unknown environment' in res.stderr and "heights" in res.stderr


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = vrex("demo", "--out", str(blocker / "sub"))
    assert res.returncode == 2 and "pass a writable --data-dir" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_a_valid_closed_record(tmp_path, signum):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "main.py"), "demo", "--minutes", "20", "--speed", "10", "--out", str(out),
         "--display", "headless", "--eye-size", "64x64", "--fps", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )
    db = out / "vrex.sqlite3"
    try:
        wait_for_line(proc, "level 0 (protocol)")  # the session is in exposure: it has written minutes of HR
        with sqlite3.connect(db) as conn:
            (n,), = conn.execute("SELECT count(*) FROM hr_samples").fetchall()
        assert n >= 20, "the session never started writing"
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    with sqlite3.connect(db) as conn:
        status, ended, reason = conn.execute("SELECT status, ended_utc, end_reason FROM sessions").fetchone()
        kinds = [k for (k,) in conn.execute("SELECT kind FROM events ORDER BY seq")]
        (n_after,), = conn.execute("SELECT count(*) FROM hr_samples").fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert status == "interrupted" and ended is not None and signal.Signals(signum).name in reason
    assert kinds[-1] == "SessionEnded" and n_after >= n
    assert "interrupted" in stdout


@pytest.mark.xvfb
def test_demo_opens_a_desktop_window_when_there_is_a_screen(tmp_path, xvfb_display):
    out = tmp_path / "out"
    res = vrex("demo", "--minutes", "7", "--speed", "60", "--out", str(out), "--eye-size", "96x96",
               env={"DISPLAY": xvfb_display})
    assert res.returncode == 0, res.stderr
    with sqlite3.connect(out / "vrex.sqlite3") as conn:
        (sid, status, meta), = conn.execute("SELECT id, status, metadata_json FROM sessions").fetchall()
    assert status == "completed" and '"display": "desktop"' in meta
    shots = sorted((out / "frames" / sid).glob("*.png"))
    assert len(shots) >= 3
    assert all(np.asarray(Image.open(p).convert("RGB")).std() > 5.0 for p in shots)


def test_auto_display_is_headless_without_an_x_display(monkeypatch):
    from therapy.cli import choose_display

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")  # pyglet needs X: Wayland alone is not enough
    assert choose_display("auto") == "headless"
    monkeypatch.setenv("DISPLAY", ":0")
    assert choose_display("auto") == "desktop"
    assert choose_display("headless") == "headless"


def test_a_render_crash_is_recorded_as_failed(tmp_path, monkeypatch):
    import main
    from environments.render_loop import RenderLoop

    real_run = RenderLoop.run

    def crashing_run(self, stop, *, max_frames=None):  # fault injection: the GL side dies after 20 frames
        real_run(self, stop, max_frames=20)
        raise RuntimeError("GPU lost")

    monkeypatch.setattr(RenderLoop, "run", crashing_run)
    out = tmp_path / "out"
    code = main.run(["demo", "--minutes", "8", "--speed", "20", "--out", str(out), "--display", "headless",
                     "--eye-size", "32x32", "--fps", "50"])
    assert code == 1
    with sqlite3.connect(out / "vrex.sqlite3") as conn:
        status, reason = conn.execute("SELECT status, end_reason FROM sessions").fetchone()
        kinds = [k for (k,) in conn.execute("SELECT kind FROM events ORDER BY seq")]
    assert status == "failed" and "GPU lost" in reason and kinds[-1] == "SessionEnded"
