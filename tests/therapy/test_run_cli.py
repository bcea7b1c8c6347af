"""``python main.py run`` and friends as a therapist uses them: real sensors' specs, patients, sessions, kill -9,
a busy CPU, and every user error as one line with exit status 2."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from biofeedback.clock import PacedClock, VirtualClock
from therapy.events import LevelChanged, LoopLagged, SafetyAlert
from therapy.runner import SessionRequest, SessionRunner
from therapy.store import open_store
from tests.conftest import REPO_ROOT
from tests.therapy.conftest import EventLog
from tests.therapy.test_demo_cli import wait_for_line

DATA = REPO_ROOT / "tests" / "data"


def vrex(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "main.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO_ROOT)


def one_error_line(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("vrex: error:")]
    assert len(errors) == 1, res.stderr
    return errors[0]


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    assert vrex("patients", "add", "P01", "--birth-year", "1985", "--data-dir", str(d)).returncode == 0
    return d


def test_patients_and_sessions_commands(tmp_path):
    d = str(tmp_path / "d")
    res = vrex("patients", "add", "P-01", "--birth-year", "1990", "--notes", "heights since 2019", "--data-dir", d)
    assert res.returncode == 0 and "P-01" in res.stdout
    assert "already exists" in one_error_line(vrex("patients", "add", "P-01", "--data-dir", d))
    assert "not valid" in one_error_line(vrex("patients", "add", "Jane Doe", "--data-dir", d))
    res = vrex("patients", "hierarchy", "P-01", "heights", "0", "2:balcony, door open", "5", "--data-dir", d)
    assert res.returncode == 0 and "0 -> 2 -> 5" in res.stdout
    assert "outside heights's levels" in one_error_line(vrex("patients", "hierarchy", "P-01", "heights", "99",
                                                              "--data-dir", d))
    shown = json.loads(vrex("patients", "show", "P-01", "--json", "--data-dir", d).stdout)
    assert shown["birth_year"] == 1990 and shown["hierarchies"]["heights"][1] == {"level": 2, "note": "balcony, door open"}
    listed = json.loads(vrex("patients", "list", "--json", "--data-dir", d).stdout)
    assert [p["code"] for p in listed] == ["P-01"]
    assert json.loads(vrex("sessions", "list", "--json", "--data-dir", d).stdout) == []
    assert "unknown patient 'P-02'" in one_error_line(vrex("sessions", "list", "--patient", "P-02", "--data-dir", d))
    assert "no session with id 'abc'" in one_error_line(vrex("sessions", "show", "abc", "--data-dir", d))
    # VREX_DATA_DIR chooses the data directory for every command
    assert [p["code"] for p in json.loads(vrex("patients", "list", "--json", env={"VREX_DATA_DIR": d}).stdout)] == \
        ["P-01"]


def test_run_completes_a_session_from_a_recorded_heart_and_uses_the_personal_hierarchy(data_dir):
    assert vrex("patients", "hierarchy", "P01", "heights", "0", "2", "4", "6", "--data-dir", str(data_dir)).returncode == 0
    res = vrex("run", "--patient", "P01", "--sensor", f"replay:{DATA / 'nsrdb' / 'SampleNNISeriesLong.npy'}",
               "--protocol", "heights-graded", "--minutes", "9", "--speed", "60", "--display", "headless",
               "--eye-size", "64x64", "--fps", "4", "--data-dir", str(data_dir))
    assert res.returncode == 0, res.stderr
    (row,) = json.loads(vrex("sessions", "list", "--json", "--data-dir", str(data_dir)).stdout)
    assert set(row) == {"id", "patient", "protocol", "environment", "started_utc", "ended_utc", "status"}
    assert row["patient"] == "P01" and row["status"] == "completed" and row["protocol"] == "heights-graded"
    details = json.loads(vrex("sessions", "show", row["id"][:8], "--json", "--data-dir", str(data_dir)).stdout)
    assert details["counts"]["hr_samples"] >= 500 and details["counts"]["beats"] >= 500
    assert "replay" in details["sensor"] and details["metadata"]["hierarchy"] == [0, 2, 4, 6]
    assert {lv["level"] for lv in details["levels"]} <= {0, 2, 4, 6}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--patient", "NOBODY", "--sensor", "sim"], "unknown patient 'NOBODY'"),
        (["--patient", "P01", "--sensor", "bluetooth:AA"], "unknown sensor kind 'bluetooth'"),
        (["--patient", "P01", "--sensor", "sim:-1"], "bad sensor spec"),
        (["--patient", "P01", "--sensor", "replay:/no/such/file.npy"], "/no/such/file.npy"),
        (["--patient", "P01", "--sensor", "ble:AA:BB", "--speed", "10"], "runs in real time"),
        (["--patient", "P01", "--sensor", "replay:x.npy", "--fault", "dropout@1+2"], "--fault scripts faults"),
        (["--patient", "P01"], "the following arguments are required: --sensor"),
    ],
)
def test_run_user_errors_are_one_line_and_record_nothing(data_dir, args, expected):
    line = one_error_line(vrex("run", *args, "--display", "headless", "--data-dir", str(data_dir), timeout=60))
    assert expected in line
    with sqlite3.connect(data_dir / "vrex.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)


def test_a_sensor_that_never_delivers_is_one_line_and_nothing_is_recorded(data_dir, tmp_path):
    silent = tmp_path / "flat.npz"
    np.savez(silent, ecg=np.zeros(130 * 600), fs_hz=130.0)  # ten minutes of a flat ECG: a strap with no heartbeat
    res = vrex("run", "--patient", "P01", "--sensor", f"replay:{silent}", "--signal-timeout", "5", "--speed", "50",
               "--display", "headless", "--data-dir", str(data_dir), timeout=120)
    line = one_error_line(res)
    assert "no valid heart signal" in line and "within 5 s" in line and "then run the session again" in line, line
    with sqlite3.connect(data_dir / "vrex.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)


def test_a_sensor_that_goes_silent_before_the_session_starts_is_a_user_error_through_the_runner(tmp_path):
    """The runner itself (no CLI): a strap with no contact from the start never opens a record."""
    from biofeedback.simulated import Fault, SimulatedSensor
    from therapy.runner import NoHeartSignalError

    with open_store(tmp_path) as store:
        store.add_patient("P01")
    runner = SessionRunner(
        SessionRequest(patient="P01", sensor="sim", display="none", data_dir=tmp_path, signal_timeout_s=20.0,
                       xdf=False, lsl=False),
        clock=VirtualClock(1000.0),
        sensor_factory=lambda clock, scene: SimulatedSensor(clock, faults=[Fault("no_contact", 0.0, 1e6)]),
    )
    with pytest.raises(NoHeartSignalError, match="no valid heart signal .* within 20 s"):
        runner.run()
    with open_store(tmp_path) as store:
        assert store.sessions() == []


def test_an_unwritable_data_dir_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = one_error_line(vrex("run", "--patient", "P01", "--sensor", "sim", "--data-dir", str(blocker / "sub")))
    assert "pass a writable --data-dir" in line
    assert "pass a writable --data-dir" in one_error_line(vrex("patients", "list", "--data-dir", str(blocker)))


def test_kill_9_leaves_an_interrupted_session_with_every_sample_older_than_a_second(data_dir):
    """SIGKILL gives the program no chance to close anything: what was committed is what a crash keeps."""
    speed = 20.0
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "main.py"), "run", "--patient", "P01", "--sensor", "sim:3", "--minutes", "20",
         "--speed", str(speed), "--display", "headless", "--eye-size", "64x64", "--fps", "5",
         "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )
    try:
        wait_for_line(proc, "level 0 (protocol)")  # printed once the exposure began, 180 s into the session
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    (row,) = json.loads(vrex("sessions", "list", "--json", "--data-dir", str(data_dir)).stdout)
    assert row["status"] == "interrupted" and row["ended_utc"] is not None
    with sqlite3.connect(data_dir / "vrex.sqlite3") as conn:
        (t0,) = conn.execute("SELECT clock_origin_s FROM sessions").fetchone()
        t = np.array([t for (t,) in conn.execute("SELECT t_s FROM hr_samples ORDER BY t_s")]) - t0
        (reason,) = conn.execute("SELECT end_reason FROM sessions").fetchone()
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # the kill came at least 180 s of session time in; one wall second is `speed` session seconds: every HR sample
    # (one a second) up to 180 - speed s must be there
    covered = t[t <= 180.0 - speed]
    assert covered[0] <= 1.0 and len(covered) >= 180 - speed - 1 and np.diff(covered).max() <= 1.5
    assert "stopped unexpectedly" in reason


def test_a_busy_cpu_never_changes_what_the_session_decides(tmp_path):
    """A thread burning CPU beside the session and the renderer at 640x720: the same level steps, at the same
    session times (within 2 s), as the virtual-clock run of the same seed, and no stale alert."""
    with open_store(tmp_path) as store:
        store.add_patient("P01", birth_year=1990)

    def request(display: str) -> SessionRequest:
        return SessionRequest(patient="P01", sensor="sim:0", minutes=11, display=display, eye_size=(640, 720), lsl=False,
                              fps=10.0, data_dir=tmp_path, simulated_patient=True, simulated_therapist=True, seed=0,
                              capture_frames=False)

    def run(runner: SessionRunner) -> list:
        log = EventLog()
        runner._observers = (lambda live: live.subscribe(log, lossless=True, name="log"),)
        runner.run()
        return log.events

    quiet = run(SessionRunner(request("none"), clock=VirtualClock(1000.0)))
    stop = threading.Event()

    def burn() -> None:
        x = 0
        while not stop.is_set():
            x = (x * 31 + 7) % 1_000_003

    burner = threading.Thread(target=burn, daemon=True)
    burner.start()
    try:
        busy = run(SessionRunner(request("headless"), clock=PacedClock(20.0)))
    finally:
        stop.set()
        burner.join()

    def steps(events) -> list[tuple[int, float]]:
        t0 = events[0].t_s
        return [(e.level, e.t_s - t0) for e in events if isinstance(e, LevelChanged)]

    a, b = steps(quiet), steps(busy)
    assert len(a) >= 3 and [lv for lv, _ in a] == [lv for lv, _ in b]
    assert all(abs(ta - tb) <= 2.0 for (_, ta), (_, tb) in zip(a, b, strict=True)), (a, b)
    assert not [e for e in busy if isinstance(e, SafetyAlert) and e.code == "heart_data_stale"]
    lags = [e for e in busy if isinstance(e, LoopLagged)]
    assert all(e.lag_s >= 0 for e in lags)  # reported, if it happened (it is not decided on)
