"""The session store: every event of a session, crash-safe, in SQLite.

One row per session (opened as ``running``, closed with its end status), one
row per event in ``events`` (kind + JSON payload, the full history), and typed
tables for what reports and researchers query most (HR samples, beats, level
changes, SUDS, phases). Writes happen on a writer thread in small transactions
(WAL journal), so the session loop never waits on the disk and a crash or
Ctrl-C loses at most the last fraction of a second, never a half-written row.
The SQL is kept portable so a PostgreSQL store can share it later.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from therapy.errors import OutputDirError, TherapyError
from therapy.events import (
    BeatRecorded,
    EndStatus,
    Event,
    HeartSampled,
    LevelChanged,
    PhaseChanged,
    SessionEnded,
    SudsRecorded,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    started_utc TEXT NOT NULL,
    ended_utc TEXT,
    status TEXT NOT NULL,
    end_reason TEXT,
    protocol_name TEXT NOT NULL,
    protocol_toml TEXT NOT NULL,
    environment TEXT NOT NULL,
    sensor TEXT NOT NULL,
    clock_origin_s REAL NOT NULL,
    metadata_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    seq INTEGER NOT NULL,
    t_s REAL NOT NULL,
    kind TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS hr_samples (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    t_s REAL NOT NULL,
    hr_bpm REAL,
    arousal REAL,
    rmssd_ms REAL,
    quality REAL NOT NULL,
    stale INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS beats (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    t_s REAL NOT NULL,
    rr_ms REAL NOT NULL,
    nn_ms REAL NOT NULL,
    artifact INTEGER NOT NULL,
    gap_before INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS level_changes (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    t_s REAL NOT NULL,
    environment TEXT NOT NULL,
    level INTEGER NOT NULL,
    previous INTEGER,
    cause TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS suds (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    t_s REAL NOT NULL,
    value INTEGER NOT NULL,
    level INTEGER NOT NULL,
    phase TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS phases (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    t_s REAL NOT NULL,
    phase TEXT NOT NULL,
    previous TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_kind ON events(session_id, kind);
CREATE INDEX IF NOT EXISTS hr_by_time ON hr_samples(session_id, t_s);
"""

_STOP = object()


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What is known about a session when it opens."""

    protocol_name: str
    protocol_toml: str
    environment: str
    sensor: str
    clock_origin_s: float
    metadata: Mapping[str, object]


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _typed_row(session_id: str, event: Event) -> tuple[str, tuple] | None:
    """The typed-table INSERT for an event, if it has one."""
    match event:
        case HeartSampled():
            return (
                "INSERT INTO hr_samples VALUES (?,?,?,?,?,?,?)",
                (session_id, event.t_s, event.hr_bpm, event.arousal, event.rmssd_ms, event.quality, int(event.stale)),
            )
        case BeatRecorded():
            return (
                "INSERT INTO beats VALUES (?,?,?,?,?,?)",
                (session_id, event.t_s, event.rr_ms, event.nn_ms, int(event.artifact), int(event.gap_before)),
            )
        case LevelChanged():
            return (
                "INSERT INTO level_changes VALUES (?,?,?,?,?,?,?)",
                (session_id, event.t_s, event.environment, event.level, event.previous, event.cause, event.reason),
            )
        case SudsRecorded():
            return (
                "INSERT INTO suds VALUES (?,?,?,?,?,?)",
                (session_id, event.t_s, event.value, event.level, event.phase, event.source),
            )
        case PhaseChanged():
            return (
                "INSERT INTO phases VALUES (?,?,?,?,?)",
                (session_id, event.t_s, event.phase.value, event.previous.value, event.reason),
            )
    return None


class SqliteSessionStore:
    """Writes one session's events to an SQLite file; use as a context manager or call :meth:`close`."""

    #: Longest a batch waits before it is committed (wall seconds), and the most events in one transaction.
    flush_interval_s = 0.2
    batch_max = 50

    def __init__(self, path: Path, info: SessionInfo) -> None:
        self.path = Path(path)
        self.session_id = uuid.uuid4().hex
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.execute(
                    "INSERT INTO sessions (id, started_utc, status, protocol_name, protocol_toml, environment, "
                    "sensor, clock_origin_s, metadata_json) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        self.session_id,
                        _utc_now(),
                        "running",
                        info.protocol_name,
                        info.protocol_toml,
                        info.environment,
                        info.sensor,
                        info.clock_origin_s,
                        json.dumps(dict(info.metadata), default=str),
                    ),
                )
        except (sqlite3.Error, OSError) as exc:
            raise TherapyError(
                f"cannot open the session store {self.path}: {exc}; choose another --out directory"
            ) from None
        self._seq = 0
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._closed = False
        self._end_status: EndStatus | None = None
        self._writer = threading.Thread(target=self._write_loop, name="vrex-store", daemon=True)
        self._writer.start()

    # The bus calls this on the runtime thread: enqueue only, never touch the disk here.
    def __call__(self, event: Event) -> None:
        if self._closed:
            return
        self._queue.put(event)

    def _write_loop(self) -> None:
        """Batch events into transactions: commit at ``batch_max`` events or ``flush_interval_s`` after the
        first event of the batch arrived, whichever comes first; on stop, commit what is left."""
        pending: list[Event] = []
        deadline: float | None = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._commit(pending)
                return
            if item is not None:
                pending.append(item)  # type: ignore[arg-type]
                if deadline is None:
                    deadline = time.monotonic() + self.flush_interval_s
            if pending and (len(pending) >= self.batch_max or time.monotonic() >= deadline):
                self._commit(pending)
                pending, deadline = [], None

    def _commit(self, events: list[Event]) -> None:
        if not events:
            return
        try:
            with self._conn:
                self._conn.execute("BEGIN")
                for event in events:
                    self._conn.execute(
                        "INSERT INTO events VALUES (?,?,?,?,?)",
                        (self.session_id, self._seq, event.t_s, event.kind, json.dumps(event.payload(), default=str)),
                    )
                    self._seq += 1
                    typed = _typed_row(self.session_id, event)
                    if typed is not None:
                        self._conn.execute(*typed)
                    if isinstance(event, SessionEnded):
                        self._end_status = event.status
                        self._conn.execute(
                            "UPDATE sessions SET status=?, end_reason=?, ended_utc=? WHERE id=?",
                            (event.status.value, event.reason, _utc_now(), self.session_id),
                        )
        except sqlite3.Error:
            log.exception("session store: a batch of %d events could not be written to %s", len(events), self.path)

    def close(self, fallback_status: EndStatus = EndStatus.INTERRUPTED, reason: str = "closed") -> None:
        """Flush everything and close; a session that never ended is marked ``fallback_status``."""
        if self._closed:
            return
        self._queue.put(_STOP)
        self._writer.join()
        self._closed = True
        if self._end_status is None:
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.execute(
                    "UPDATE sessions SET status=?, end_reason=?, ended_utc=? WHERE id=? AND ended_utc IS NULL",
                    (fallback_status.value, reason, _utc_now(), self.session_id),
                )
        self._conn.close()

    def __enter__(self) -> SqliteSessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare_output_dir(path: Path) -> Path:
    """Create ``path`` if needed and prove it is writable, before anything of the session starts."""
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".vrex-write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputDirError(f"cannot write to output directory {path}: {reason}; pass a writable --out DIR") from None
    return path.resolve()
