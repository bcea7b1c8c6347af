"""The session store: durable batches, an unfinished session closed as interrupted, readable while open."""

from __future__ import annotations

import sqlite3

import pytest

from therapy.errors import OutputDirError, TherapyError
from therapy.events import EndStatus, HeartSampled, LevelChanged, Phase, PhaseChanged, SessionEnded
from therapy.store import SessionInfo, SqliteSessionStore, prepare_output_dir

INFO = SessionInfo("p", "name='p'", "heights", "simulated strap (seed 0)", 0.0, {"seed": 0})


def test_session_without_end_is_closed_as_interrupted(tmp_path):
    store = SqliteSessionStore(tmp_path / "v.sqlite3", INFO)
    store(PhaseChanged(1.0, Phase.BASELINE, Phase.STARTING, "start"))
    for i in range(500):
        store(HeartSampled(2.0 + i, 70.0, 0.1, 30.0, 1.0, False))
    store.close(EndStatus.INTERRUPTED, "SIGINT received")
    with sqlite3.connect(tmp_path / "v.sqlite3") as conn:
        assert conn.execute("SELECT status, end_reason FROM sessions").fetchone() == ("interrupted", "SIGINT received")
        assert conn.execute("SELECT count(*) FROM hr_samples").fetchone() == (500,)
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (501,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_ended_session_keeps_its_status_and_second_session_shares_the_file(tmp_path):
    path = tmp_path / "v.sqlite3"
    with SqliteSessionStore(path, INFO) as a:
        a(LevelChanged(1.0, "heights", 0, None, "protocol", "first"))
        a(SessionEnded(2.0, EndStatus.COMPLETED, "protocol completed"))
    with SqliteSessionStore(path, INFO) as b:
        b(SessionEnded(3.0, EndStatus.STOPPED, "stop (therapist)"))
    with sqlite3.connect(path) as conn:
        rows = dict(conn.execute("SELECT id, status FROM sessions").fetchall())
    assert rows == {a.session_id: "completed", b.session_id: "stopped"}


def test_unwritable_output_dir_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputDirError, match="pass a writable --out DIR"):
        prepare_output_dir(blocker / "sub")
    with pytest.raises(TherapyError):
        SqliteSessionStore(blocker / "v.sqlite3", INFO)
