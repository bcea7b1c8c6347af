"""The session store: durable batches, crash recovery, migrations from older files, patients, retries."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from therapy.errors import OutputDirError, TherapyError
from therapy.events import EndStatus, HeartSampled, LevelChanged, Phase, PhaseChanged, SessionEnded
from therapy.store import SCHEMA_VERSION, HierarchyStep, SessionInfo, open_store, prepare_output_dir

INFO = SessionInfo("p", "name='p'", "heights", "simulated strap (seed 0)", 0.0, {"seed": 0}, patient_code="P01")
V1_FIXTURE = Path(__file__).parent / "data" / "store-v1-main.sqlite3"


def _rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def test_session_without_end_is_closed_as_interrupted(tmp_path):
    with open_store(tmp_path) as store:
        w = store.begin_session(INFO)
        w(PhaseChanged(1.0, Phase.BASELINE, Phase.STARTING, "start"))
        for i in range(500):
            w(HeartSampled(2.0 + i, 70.0, 0.1, 30.0, 1.0, False))
        w.finish(EndStatus.INTERRUPTED, "SIGINT received")
    db = tmp_path / "vrex.sqlite3"
    assert _rows(db, "SELECT status, end_reason FROM sessions") == [("interrupted", "SIGINT received")]
    assert _rows(db, "SELECT count(*) FROM hr_samples") == [(500,)]
    assert _rows(db, "SELECT count(*) FROM events") == [(501,)]
    assert _rows(db, "PRAGMA integrity_check") == [("ok",)]
    assert not list((tmp_path / "locks").iterdir()), "the session's lock is released"


def test_ended_session_keeps_its_status_and_second_session_shares_the_file(tmp_path):
    with open_store(tmp_path) as store:
        a = store.begin_session(INFO)
        a(LevelChanged(1.0, "heights", 0, None, "protocol", "first"))
        a(SessionEnded(2.0, EndStatus.COMPLETED, "protocol completed"))
        a.finish()
        b = store.begin_session(INFO)
        b(SessionEnded(3.0, EndStatus.STOPPED, "stop (therapist)"))
        b.finish()
        rows = {r.id: r.status for r in store.sessions("P01")}
    assert rows == {a.session_id: "completed", b.session_id: "stopped"}


def test_unwritable_data_dir_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputDirError, match="pass a writable --data-dir"):
        prepare_output_dir(blocker / "sub")
    with pytest.raises(TherapyError):
        open_store(blocker / "sub")


def test_store_written_by_mains_schema_is_migrated_and_read(tmp_path):
    """A file made by vrex 0.1 (schema 1, no patients): migrated in place, its sessions read, and the session its
    killed program left ``running`` marked interrupted at the time of its last record."""
    shutil.copy(V1_FIXTURE, tmp_path / "vrex.sqlite3")
    before = _rows(tmp_path / "vrex.sqlite3", "SELECT id, status FROM sessions ORDER BY started_utc")
    assert [s for _, s in before] == ["completed", "running"]
    with open_store(tmp_path) as store:
        assert store.migrated_from == 1
        assert store.recovered == [before[1][0]]
        rows = store.sessions()
        assert [(r.id, r.status, r.patient) for r in rows] == [(before[0][0], "completed", None),
                                                               (before[1][0], "interrupted", None)]
        details = store.session_details(before[0][0])
        assert details["counts"]["hr_samples"] == 481 and details["phases"][0]["phase"] == "baseline"
        killed = store.session_details(before[1][0])
        assert "29.0 s into the session" in killed["end_reason"]
        # the migrated file takes new patients and sessions
        store.add_patient("P01", birth_year=1980)
        w = store.begin_session(INFO)
        w(SessionEnded(1.0, EndStatus.COMPLETED, "done"))
        w.finish()
        assert [r.status for r in store.sessions("P01")] == ["completed"]
    assert _rows(tmp_path / "vrex.sqlite3", "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def test_a_file_from_a_newer_vrex_is_refused(tmp_path):
    with sqlite3.connect(tmp_path / "vrex.sqlite3") as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(TherapyError, match="written by a newer vrex"):
        open_store(tmp_path)


def test_a_running_session_of_a_live_program_is_left_alone(tmp_path):
    with open_store(tmp_path) as a:
        w = a.begin_session(INFO)
        w(PhaseChanged(1.0, Phase.BASELINE, Phase.STARTING, "start"))
        w.flush()
        with open_store(tmp_path) as b:  # e.g. 'sessions list' while the session runs
            assert b.recovered == [] and [r.status for r in b.sessions()] == ["running"]
        w.finish(EndStatus.INTERRUPTED, "closed")


def test_patients_codes_hierarchy_and_errors(tmp_path):
    with open_store(tmp_path) as store:
        p = store.add_patient("P-07", birth_year=1990, notes="fear of heights since 2015")
        assert p.age_years() is not None and p.hierarchies == {}
        with pytest.raises(TherapyError, match="already exists"):
            store.add_patient("P-07")
        with pytest.raises(TherapyError, match="not valid"):
            store.add_patient("Jane Doe")
        with pytest.raises(TherapyError, match="birth year 1700 is not plausible"):
            store.add_patient("P-08", birth_year=1700)
        with pytest.raises(TherapyError, match="unknown patient 'P-99'.*patients add P-99"):
            store.patient("P-99")
        store.set_hierarchy("P-07", "heights", [HierarchyStep(0), HierarchyStep(2, "balcony"), HierarchyStep(5)])
        assert store.patient("P-07").hierarchies["heights"] == (HierarchyStep(0), HierarchyStep(2, "balcony"),
                                                                HierarchyStep(5))


class _FlakyConnection:
    """An sqlite3 connection whose next ``fail`` BEGINs raise, as a full or locked disk does."""

    def __init__(self, conn: sqlite3.Connection, fail: int) -> None:
        self._conn, self.fail = conn, fail

    def execute(self, sql: str, *args):
        if sql.startswith("BEGIN") and self.fail > 0:
            self.fail -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def close(self) -> None:
        self._conn.close()


def test_a_failed_batch_is_retried_and_lost_data_is_never_recorded_as_completed(tmp_path):
    with open_store(tmp_path) as store:
        w = store.begin_session(INFO)
        w.retry_waits_s = (0.0, 0.0)
        w._conn = _FlakyConnection(w._conn, fail=2)  # two failures, then the third try succeeds
        w(HeartSampled(1.0, 70.0, 0.1, 30.0, 1.0, False))
        w.flush()
        assert w.lost_events == 0 and w.committed_events == 1
        w._conn.fail = 3  # every try of the next batch fails: it is lost
        w(HeartSampled(2.0, 70.0, 0.1, 30.0, 1.0, False))
        w.flush()
        assert w.lost_events == 1
        w(SessionEnded(3.0, EndStatus.COMPLETED, "protocol completed"))
        w.finish()
        (row,) = [r for r in store.sessions() if r.id == w.session_id]
    assert row.status == "failed" and "1 events could not be written" in row.end_reason
    assert _rows(tmp_path / "vrex.sqlite3", "SELECT count(*) FROM hr_samples") == [(1,)]
