"""The session store's writer, row by row: sequence numbers, batches, retries, end status, lock file, errors.

Everything goes through a real SQLite file; a failing disk is a connection
whose next BEGINs raise (as a full or locked disk does), the writer's retry
waits are set to zero so nothing sleeps.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from therapy.errors import TherapyError
from therapy.events import EndStatus, HeartSampled, LevelChanged, SessionEnded
from therapy.store import SessionInfo, open_store

INFO = SessionInfo("p", "name='p'", "heights", "simulated strap (seed 0)", 12.5,
                   {"seed": 0, "out": Path("/tmp/x"), "speed": 2.0}, patient_code="P01")


def rows(path: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, args).fetchall()


def session_row(store, w) -> tuple:
    (row,) = rows(store.path, "SELECT status, end_reason, ended_utc IS NOT NULL FROM sessions WHERE id=?", w.session_id)
    return row


def hr(t: float) -> HeartSampled:
    return HeartSampled(t, 70.0, 0.1, 30.0, 1.0, False)


class FailingBegins:
    """A connection whose next ``fail`` BEGINs raise sqlite3.OperationalError."""

    def __init__(self, conn: sqlite3.Connection, fail: int) -> None:
        self._conn, self.fail = conn, fail

    def execute(self, sql: str, *args):
        if sql.startswith("BEGIN") and self.fail > 0:
            self.fail -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def close(self) -> None:
        self._conn.close()


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path) as s:
        yield s


def writer(store, *, fail: int = 0):
    w = store.begin_session(INFO)
    w.retry_waits_s = (0.0, 0.0, 0.0)
    if fail:
        w._conn = FailingBegins(w._conn, fail)
    return w


def test_the_session_row_opens_running_with_everything_known(store):
    w = writer(store)
    (row,) = rows(store.path, "SELECT status, protocol_name, protocol_toml, environment, sensor, clock_origin_s, "
                              "metadata_json, patient_code, ended_utc FROM sessions WHERE id=?", w.session_id)
    assert row == ("running", "p", "name='p'", "heights", "simulated strap (seed 0)", 12.5,
                   json.dumps({"seed": 0, "out": "/tmp/x", "speed": 2.0}), "P01", None)
    assert len(w.session_id) == 32 and w.end_status is None and w.lost_events == 0 and w.committed_events == 0
    w.finish()


def test_events_are_numbered_from_0_in_order_across_batches(store):
    w = writer(store)
    w(hr(1.0))
    w(LevelChanged(2.0, "heights", 1, 0, "controller", "calm"))
    w.flush()
    w(hr(3.0))
    w("not an event")  # raw sensor records and other items are not stored
    w.flush()
    w.flush()  # nothing pending: no empty transaction, no gap
    assert rows(store.path, "SELECT seq, t_s, kind, payload_json FROM events WHERE session_id=? ORDER BY seq",
                w.session_id) == [
        (0, 1.0, "HeartSampled", json.dumps(hr(1.0).payload())),
        (1, 2.0, "LevelChanged", json.dumps(LevelChanged(2.0, "heights", 1, 0, "controller", "calm").payload())),
        (2, 3.0, "HeartSampled", json.dumps(hr(3.0).payload())),
    ]
    assert rows(store.path, "SELECT t_s, level, previous, cause FROM level_changes") == [(2.0, 1, 0, "controller")]
    assert rows(store.path, "SELECT count(*) FROM hr_samples") == [(2,)]
    assert w.committed_events == 3
    w.finish()


def test_a_value_json_cannot_encode_is_stored_as_text_not_lost(store):
    w = writer(store)
    w(LevelChanged(1.0, "heights", np.int64(2), None, "therapist", "jump"))
    w.flush()
    ((payload,),) = rows(store.path, "SELECT payload_json FROM events WHERE session_id=?", w.session_id)
    assert json.loads(payload)["level"] == "2"
    w.finish()


def test_a_full_batch_is_committed_without_waiting_for_the_queue_to_run_empty(store):
    w = writer(store)
    w.batch_max = 3
    w(hr(1.0))
    w(hr(2.0))
    assert w.committed_events == 0
    w(hr(3.0))
    assert w.committed_events == 3
    assert rows(store.path, "SELECT count(*) FROM events WHERE session_id=?", w.session_id) == [(3,)]
    w.finish()


def test_the_end_of_the_session_closes_its_row(store):
    w = writer(store)
    w(hr(1.0))
    w(SessionEnded(2.0, EndStatus.STOPPED, "the therapist stopped"))
    w.close()
    assert w.end_status is EndStatus.STOPPED
    assert session_row(store, w) == ("stopped", "the therapist stopped", 1)
    w.finish(EndStatus.INTERRUPTED, "closed")  # it ended: the fallback does not apply
    assert session_row(store, w) == ("stopped", "the therapist stopped", 1)


def test_a_session_that_never_ended_gets_the_fallback_status(store):
    w = writer(store)
    w(hr(1.0))
    w.finish()
    assert session_row(store, w) == ("interrupted", "closed", 1)
    assert rows(store.path, "SELECT count(*) FROM events WHERE session_id=?", w.session_id) == [(1,)]
    w2 = writer(store)
    w2.finish(EndStatus.FAILED, "rendering failed")
    assert session_row(store, w2) == ("failed", "rendering failed", 1)


def test_a_batch_that_fails_is_retried_and_keeps_its_sequence(store, caplog):
    w = writer(store, fail=2)
    w.retry_waits_s = (0.0, 0.0, 0.0)
    with caplog.at_level(logging.WARNING, logger="therapy.store.sqlite"):
        w(hr(1.0))
        w(hr(2.0))
        w.flush()
    assert w.lost_events == 0 and w.committed_events == 2
    assert rows(store.path, "SELECT seq FROM events WHERE session_id=? ORDER BY seq", w.session_id) == [(0,), (1,)]
    assert [r.getMessage() for r in caplog.records] == [
        "session store: writing 2 events failed (database or disk is full); retrying in 0.00 s"] * 2
    w.finish()


def test_lost_batches_are_counted_and_logged_and_the_sequence_goes_on(store, caplog):
    w = writer(store, fail=4)
    with caplog.at_level(logging.ERROR, logger="therapy.store.sqlite"):
        w(hr(1.0))
        w(hr(2.0))
        w.flush()  # four tries, all fail: lost
    assert w.lost_events == 2 and w.committed_events == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"session store: 2 events could not be written to {store.path} after 4 tries: database or disk is full"]
    w._conn.fail = 4
    w(hr(3.0))
    w.flush()
    assert w.lost_events == 3  # counted over every lost batch
    w(hr(4.0))
    w.flush()
    assert rows(store.path, "SELECT seq, t_s FROM events WHERE session_id=?", w.session_id) == [(0, 4.0)]
    w.finish()


def test_a_completed_session_that_lost_events_is_recorded_as_failed(store):
    w = writer(store, fail=4)
    w(hr(1.0))
    w.flush()
    w(SessionEnded(2.0, EndStatus.COMPLETED, "protocol completed"))
    w.flush()
    assert w.end_status is EndStatus.COMPLETED  # what the session said; the record says more
    assert session_row(store, w)[:2] == (
        "failed", "protocol completed, but 1 events could not be written: the record is incomplete")
    w.finish()
    assert session_row(store, w)[:2] == (
        "failed", "protocol completed, but 1 events could not be written: the record is incomplete")


def test_a_stopped_session_that_lost_events_keeps_its_status(store):
    w = writer(store, fail=4)
    w(hr(1.0))
    w.flush()
    w(SessionEnded(2.0, EndStatus.STOPPED, "the patient stopped"))
    w.finish()
    assert session_row(store, w)[:2] == ("stopped", "the patient stopped")


def test_events_lost_after_a_completed_end_turn_the_record_failed_at_finish(store):
    w = writer(store)
    w(SessionEnded(1.0, EndStatus.COMPLETED, "protocol completed"))
    w.flush()
    assert session_row(store, w)[:2] == ("completed", "protocol completed")
    w._conn = FailingBegins(w._conn, 4)
    w(hr(2.0))  # a late event the disk refuses
    w.flush()
    w._conn.fail = 0
    w.finish()
    assert session_row(store, w)[:2] == (
        "failed", "protocol completed; 1 events could not be written: the record is incomplete")


def test_finish_is_once_only_and_logs_a_store_it_cannot_close(store, caplog):
    w = writer(store)
    w._conn = FailingBegins(w._conn, 10)
    with caplog.at_level(logging.ERROR, logger="therapy.store.sqlite"):
        w.finish()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [f"session store: could not close session {w.session_id} in {store.path}: "
                        "database or disk is full"]
    assert not store.lock_path(w.session_id).exists()
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="therapy.store.sqlite"):
        w.finish()  # a second finish does nothing (the connection is closed)
    assert caplog.records == []


def test_the_lock_file_is_held_while_running_and_removed_at_finish(store, tmp_path):
    old = os.umask(0o022)
    try:
        w = writer(store)
    finally:
        os.umask(old)
    lock = store.lock_path(w.session_id)
    assert lock.exists() and (lock.stat().st_mode & 0o777) == 0o644
    w.finish()
    assert not lock.exists()


def test_a_lock_file_removed_by_hand_does_not_break_finish(store):
    w = writer(store)
    store.lock_path(w.session_id).unlink()
    w.finish()
    assert session_row(store, w)[0] == "interrupted"


def test_a_store_the_writer_cannot_open_is_a_user_error(store, tmp_path):
    store.locks_dir.rmdir()  # the lock file cannot be created
    with pytest.raises(TherapyError, match=rf"^cannot open the session store {store.path}: .*No such file or "
                                           r"directory.*; choose another --data-dir$"):
        store.begin_session(INFO)
