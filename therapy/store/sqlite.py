"""The session store in SQLite: patients, sessions and every event of each session, crash-safe.

One file (``DATA_DIR/vrex.sqlite3``) holds any number of patients and sessions.
A session opens as ``running`` and is closed with its end status; one row per
event in ``events`` (kind + JSON payload: the full history) and typed tables for
what reports and researchers query most. The writer is a lossless subscriber of
the live session: it runs on its own thread and commits small WAL transactions
whenever its queue runs empty or a batch fills, so the session never waits on
the disk and a crash loses at most the last fraction of a second, never a
half-written row. A batch that fails is retried; if it still fails, the session
is not recorded as ``completed`` over lost data.

Each running session holds an advisory lock file (``DATA_DIR/locks/ID.lock``);
the next program that opens the store marks a ``running`` session whose lock is
free (its process died: ``kill -9``, power loss) as ``interrupted``, stamped
with the time of its last record.

The schema has a version (``PRAGMA user_version``) and forward migrations, so a
file written by an older vrex is upgraded in place when it is opened. The SQL is
kept portable (no SQLite-only types) so a PostgreSQL store can share it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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

DB_NAME = "vrex.sqlite3"

#: The schema on main before patients existed (vrex 0.1); a new file is created through every migration.
SCHEMA_V1 = """
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

#: v2: pseudonymous patients with an optional birth year and a personal hierarchy; sessions name their patient.
SCHEMA_V2 = """
CREATE TABLE patients (
    code TEXT PRIMARY KEY,
    birth_year INTEGER,
    notes TEXT NOT NULL DEFAULT '',
    created_utc TEXT NOT NULL,
    resonance_breaths_per_min REAL
);
CREATE TABLE patient_hierarchy (
    patient_code TEXT NOT NULL REFERENCES patients(code),
    environment TEXT NOT NULL,
    position INTEGER NOT NULL,
    level INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (patient_code, environment, position)
);
ALTER TABLE sessions ADD COLUMN patient_code TEXT;
CREATE INDEX sessions_by_patient ON sessions(patient_code, started_utc);
"""

#: v3: SUDS ratings say why they were asked (anticipated, entry, during, before_step_up, therapist, end, unprompted).
SCHEMA_V3 = """
ALTER TABLE suds ADD COLUMN kind TEXT NOT NULL DEFAULT 'during';
"""

MIGRATIONS: tuple[str, ...] = (SCHEMA_V1, SCHEMA_V2, SCHEMA_V3)  # MIGRATIONS[i] takes user_version i to i + 1
SCHEMA_VERSION = len(MIGRATIONS)

#: Patient codes are pseudonyms: letters, digits, '-' and '_' only, so a name cannot slip in as easily.
PATIENT_CODE_HELP = "1-32 characters: letters, digits, '-' or '_' (a pseudonymous code, never a name)"


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What is known about a session when it opens."""

    protocol_name: str
    protocol_toml: str
    environment: str
    sensor: str
    clock_origin_s: float
    metadata: Mapping[str, object]
    patient_code: str | None = None


@dataclass(frozen=True, slots=True)
class HierarchyStep:
    level: int
    note: str = ""


@dataclass(frozen=True, slots=True)
class PatientRecord:
    code: str
    birth_year: int | None
    notes: str
    created_utc: str
    resonance_breaths_per_min: float | None
    hierarchies: Mapping[str, tuple[HierarchyStep, ...]]

    def age_years(self, today: datetime | None = None) -> float | None:
        if self.birth_year is None:
            return None
        return float((today or datetime.now(UTC)).year - self.birth_year)


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    patient: str | None
    protocol: str
    environment: str
    started_utc: str
    ended_utc: str | None
    status: str
    end_reason: str | None
    sensor: str
    metadata: Mapping[str, object]

    def listing(self) -> dict[str, object]:
        """The ``sessions list --json`` shape."""
        return {"id": self.id, "patient": self.patient, "protocol": self.protocol, "environment": self.environment,
                "started_utc": self.started_utc, "ended_utc": self.ended_utc, "status": self.status}


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def validate_patient_code(code: str) -> str:
    code = (code or "").strip()
    if not (1 <= len(code) <= 32) or not all(c.isascii() and (c.isalnum() or c in "-_") for c in code):
        raise TherapyError(f"patient code {code!r} is not valid: {PATIENT_CODE_HELP}")
    return code


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
                "INSERT INTO suds (session_id, t_s, value, level, phase, source, kind) VALUES (?,?,?,?,?,?,?)",
                (session_id, event.t_s, event.value, event.level, event.phase, event.source, event.suds_kind),
            )
        case PhaseChanged():
            return (
                "INSERT INTO phases VALUES (?,?,?,?,?)",
                (session_id, event.t_s, event.phase.value, event.previous.value, event.reason),
            )
    return None


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the file up to :data:`SCHEMA_VERSION`; returns the version it had."""
    with _transaction(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise TherapyError(
                f"the session store {path} was written by a newer vrex (schema {version}, this one knows "
                f"{SCHEMA_VERSION}): upgrade vrex, or choose another --data-dir"
            )
        for target in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={target + 1}")
    if version < SCHEMA_VERSION and version > 0:
        log.info("session store %s migrated from schema %d to %d", path, version, SCHEMA_VERSION)
    return version


class SqliteStore:
    """One data directory's store: patients, sessions, and a writer for each new session."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = prepare_output_dir(data_dir)
        self.path = self.data_dir / DB_NAME
        self.locks_dir = self.data_dir / "locks"
        try:
            self.locks_dir.mkdir(exist_ok=True)
            self._conn = _connect(self.path)
            self.migrated_from = migrate(self._conn, self.path)
        except sqlite3.DatabaseError as exc:
            raise TherapyError(
                f"cannot open the session store {self.path}: {exc}; if the file is damaged, move it away "
                "and choose another --data-dir"
            ) from None
        except OSError as exc:
            raise OutputDirError(f"cannot open the session store in {self.data_dir}: {exc.strerror or exc}; "
                                 "pass a writable --data-dir") from None
        self.recovered = self._recover_dead_sessions()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- patients -------------------------------------------------------------------------------

    def add_patient(self, code: str, *, birth_year: int | None = None, notes: str = "") -> PatientRecord:
        code = validate_patient_code(code)
        this_year = datetime.now(UTC).year
        if birth_year is not None and not (this_year - 120 <= birth_year <= this_year):
            raise TherapyError(f"birth year {birth_year} is not plausible: give a year between "
                               f"{this_year - 120} and {this_year}")
        try:
            with _transaction(self._conn):
                self._conn.execute("INSERT INTO patients (code, birth_year, notes, created_utc) VALUES (?,?,?,?)",
                                   (code, birth_year, notes, _utc_now()))
        except sqlite3.IntegrityError:
            raise TherapyError(f"patient {code} already exists (see 'python main.py patients show {code}')") from None
        return self.patient(code)

    def find_patient(self, code: str) -> PatientRecord | None:
        row = self._conn.execute(
            "SELECT code, birth_year, notes, created_utc, resonance_breaths_per_min FROM patients WHERE code=?",
            (code,),
        ).fetchone()
        if row is None:
            return None
        hierarchies: dict[str, list[HierarchyStep]] = {}
        for env, level, note in self._conn.execute(
            "SELECT environment, level, note FROM patient_hierarchy WHERE patient_code=? ORDER BY environment, "
            "position", (code,)
        ):
            hierarchies.setdefault(env, []).append(HierarchyStep(level, note))
        return PatientRecord(row[0], row[1], row[2], row[3], row[4], {k: tuple(v) for k, v in hierarchies.items()})

    def patient(self, code: str) -> PatientRecord:
        found = self.find_patient(code)
        if found is None:
            known = [p.code for p in self.patients()]
            hint = f"known patients: {', '.join(known[:10])}" if known else "no patients yet"
            raise TherapyError(f"unknown patient {code!r} ({hint}); add one with "
                               f"'python main.py patients add {code}'")
        return found

    def patients(self) -> list[PatientRecord]:
        codes = [c for (c,) in self._conn.execute("SELECT code FROM patients ORDER BY code")]
        return [p for p in (self.find_patient(c) for c in codes) if p is not None]

    def set_hierarchy(self, code: str, environment: str, steps: Sequence[HierarchyStep]) -> PatientRecord:
        self.patient(code)
        with _transaction(self._conn):
            self._conn.execute("DELETE FROM patient_hierarchy WHERE patient_code=? AND environment=?",
                               (code, environment))
            self._conn.executemany(
                "INSERT INTO patient_hierarchy VALUES (?,?,?,?,?)",
                [(code, environment, i, s.level, s.note) for i, s in enumerate(steps)],
            )
        return self.patient(code)

    def set_resonance(self, code: str, breaths_per_min: float) -> None:
        self.patient(code)
        with _transaction(self._conn):
            self._conn.execute("UPDATE patients SET resonance_breaths_per_min=? WHERE code=?", (breaths_per_min, code))

    # -- sessions -------------------------------------------------------------------------------

    def begin_session(self, info: SessionInfo) -> SessionWriter:
        """Create the session's row (``running``) and return its writer (a lossless live-session sink)."""
        return SessionWriter(self, info)

    def sessions(self, patient: str | None = None) -> list[SessionRow]:
        sql = ("SELECT id, patient_code, protocol_name, environment, started_utc, ended_utc, status, end_reason, "
               "sensor, metadata_json FROM sessions")
        rows = self._conn.execute(sql + (" WHERE patient_code=?" if patient else "") + " ORDER BY started_utc",
                                  (patient,) if patient else ()).fetchall()
        return [SessionRow(*r[:9], json.loads(r[9] or "{}")) for r in rows]

    def session(self, session_id: str) -> SessionRow:
        matches = [s for s in self.sessions() if s.id == session_id or s.id.startswith(session_id)]
        if len(matches) != 1 or not session_id:
            what = "no session" if not matches else f"{len(matches)} sessions"
            raise TherapyError(f"{what} with id {session_id!r} in {self.path}; list them with "
                               "'python main.py sessions list'")
        return matches[0]

    def session_details(self, session_id: str) -> dict[str, object]:
        """A session's row plus what a clinician reads first: phases, levels, SUDS, alerts, counts."""
        row = self.session(session_id)
        q = self._conn.execute
        sid = row.id
        origin = q("SELECT clock_origin_s FROM sessions WHERE id=?", (sid,)).fetchone()[0]
        counts = {table: q(f"SELECT COUNT(*) FROM {table} WHERE session_id=?", (sid,)).fetchone()[0]
                  for table in ("events", "hr_samples", "beats", "level_changes", "suds", "phases")}
        alerts = [json.loads(p) | {"t_s": round(t - origin, 3)} for t, p in
                  q("SELECT t_s, payload_json FROM events WHERE session_id=? AND kind='SafetyAlert' ORDER BY seq",
                    (sid,))]
        return {
            **row.listing(),
            "end_reason": row.end_reason,
            "sensor": row.sensor,
            "metadata": dict(row.metadata),
            "counts": counts,
            "phases": [{"t_s": round(t - origin, 3), "phase": p, "reason": r} for t, p, r in
                       q("SELECT t_s, phase, reason FROM phases WHERE session_id=? ORDER BY t_s", (sid,))],
            "levels": [{"t_s": round(t - origin, 3), "level": lv, "previous": pv, "cause": c, "reason": r}
                       for t, lv, pv, c, r in
                       q("SELECT t_s, level, previous, cause, reason FROM level_changes WHERE session_id=? "
                         "ORDER BY t_s", (sid,))],
            "suds": [{"t_s": round(t - origin, 3), "value": v, "level": lv, "phase": ph, "source": s, "kind": k}
                     for t, v, lv, ph, s, k in
                     q("SELECT t_s, value, level, phase, source, kind FROM suds WHERE session_id=? ORDER BY t_s",
                       (sid,))],
            "levels_suds": [json.loads(p) | {"t_s": round(t - origin, 3)} for t, p in
                            q("SELECT t_s, payload_json FROM events WHERE session_id=? AND kind='LevelSuds' "
                              "ORDER BY seq", (sid,))],
            "notes": [json.loads(p) | {"t_s": round(t - origin, 3)} for t, p in
                      q("SELECT t_s, payload_json FROM events WHERE session_id=? AND kind='NoteAdded' ORDER BY seq",
                        (sid,))],
            "alerts": alerts,
        }

    # -- crash recovery -------------------------------------------------------------------------

    def lock_path(self, session_id: str) -> Path:
        return self.locks_dir / f"{session_id}.lock"

    def _recover_dead_sessions(self) -> list[str]:
        """Mark ``running`` sessions whose process is gone as ``interrupted``, at the time of their last record."""
        recovered = []
        for sid, started_utc, origin in self._conn.execute(
            "SELECT id, started_utc, clock_origin_s FROM sessions WHERE status='running'"
        ).fetchall():
            lock = self.lock_path(sid)
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # its process is alive and still writing
                last_t = self._conn.execute("SELECT MAX(t_s) FROM events WHERE session_id=?", (sid,)).fetchone()[0]
                elapsed_s = 0.0 if last_t is None else max(0.0, last_t - origin)
                ended = datetime.fromisoformat(started_utc) + timedelta(seconds=elapsed_s)
                with _transaction(self._conn):
                    self._conn.execute(
                        "UPDATE sessions SET status='interrupted', end_reason=?, ended_utc=? WHERE id=? AND "
                        "status='running'",
                        (f"the program recording it stopped unexpectedly; last record {elapsed_s:.1f} s into the "
                         "session", ended.isoformat(timespec="milliseconds"), sid),
                    )
                recovered.append(sid)
                lock.unlink(missing_ok=True)
            finally:
                os.close(fd)
        if recovered:
            log.warning("marked %d session(s) left running by a stopped program as interrupted: %s",
                        len(recovered), ", ".join(recovered))
        return recovered


class SessionWriter:
    """Writes one session's events: a lossless :class:`~therapy.live.LiveSession` subscriber.

    Called on its subscription's thread: ``__call__`` collects, ``flush`` (queue ran empty) commits, ``close``
    finishes. :meth:`finish` is for the owner after the subscription ended (fallback status, lock release).
    """

    #: Most events in one transaction; a batch is also committed whenever the subscriber's queue runs empty.
    batch_max = 200
    #: A failing batch is tried this many more times, waiting these many seconds in between.
    retry_waits_s = (0.05, 0.25, 1.0)

    def __init__(self, store: SqliteStore, info: SessionInfo) -> None:
        self.path = store.path
        self.session_id = uuid.uuid4().hex
        self._lock_path = store.lock_path(self.session_id)
        self._lock_fd: int | None = None
        try:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._conn = _connect(self.path)
            with _transaction(self._conn):
                self._conn.execute(
                    "INSERT INTO sessions (id, started_utc, status, protocol_name, protocol_toml, environment, "
                    "sensor, clock_origin_s, metadata_json, patient_code) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (self.session_id, _utc_now(), "running", info.protocol_name, info.protocol_toml,
                     info.environment, info.sensor, info.clock_origin_s, json.dumps(dict(info.metadata), default=str),
                     info.patient_code),
                )
        except (sqlite3.Error, OSError) as exc:
            self._release_lock()
            raise TherapyError(f"cannot open the session store {self.path}: {exc}; choose another --data-dir") from None
        self._pending: list[Event] = []
        self._seq = 0
        self.end_status: EndStatus | None = None
        self.lost_events = 0
        self.committed_events = 0
        self._closed = False

    # -- the subscriber side --------------------------------------------------------------------

    def __call__(self, item: object) -> None:
        if isinstance(item, Event):
            self._pending.append(item)
            if len(self._pending) >= self.batch_max:
                self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        for attempt, wait_s in enumerate((*self.retry_waits_s, None)):
            try:
                self._commit(batch)
                return
            except sqlite3.Error as exc:
                if wait_s is None:
                    self.lost_events += len(batch)
                    log.error("session store: %d events could not be written to %s after %d tries: %s",
                              len(batch), self.path, attempt + 1, exc)
                    return
                log.warning("session store: writing %d events failed (%s); retrying in %.2f s", len(batch), exc,
                            wait_s)
                time.sleep(wait_s)  # the writer's own thread: the session never waits for this

    def _commit(self, events: list[Event]) -> None:
        seq = self._seq
        ended: SessionEnded | None = None
        with _transaction(self._conn):
            for event in events:
                self._conn.execute(
                    "INSERT INTO events VALUES (?,?,?,?,?)",
                    (self.session_id, seq, event.t_s, event.kind, json.dumps(event.payload(), default=str)),
                )
                seq += 1
                typed = _typed_row(self.session_id, event)
                if typed is not None:
                    self._conn.execute(*typed)
                if isinstance(event, SessionEnded):
                    ended = event
                    status, reason = event.status, event.reason
                    if self.lost_events and status is EndStatus.COMPLETED:
                        status, reason = EndStatus.FAILED, (
                            f"{reason}, but {self.lost_events} events could not be written: the record is incomplete")
                    self._conn.execute("UPDATE sessions SET status=?, end_reason=?, ended_utc=? WHERE id=?",
                                       (status.value, reason, _utc_now(), self.session_id))
        self._seq = seq
        self.committed_events += len(events)
        if ended is not None:
            self.end_status = ended.status

    def close(self) -> None:
        """Subscriber hook: the subscription ended; commit what is left."""
        self.flush()

    # -- the owner side -------------------------------------------------------------------------

    def finish(self, fallback_status: EndStatus = EndStatus.INTERRUPTED, reason: str = "closed") -> None:
        """After the subscription has closed: a session that never ended is marked ``fallback_status``; a
        record that lost events is never left ``completed``. Releases the session's lock."""
        if self._closed:
            return
        self._closed = True
        self.flush()
        try:
            with _transaction(self._conn):
                if self.end_status is None:
                    self._conn.execute(
                        "UPDATE sessions SET status=?, end_reason=?, ended_utc=? WHERE id=? AND status='running'",
                        (fallback_status.value, reason, _utc_now(), self.session_id),
                    )
                elif self.lost_events:
                    self._conn.execute(
                        "UPDATE sessions SET status='failed', end_reason=end_reason || ? WHERE id=? AND "
                        "status='completed'",
                        (f"; {self.lost_events} events could not be written: the record is incomplete",
                         self.session_id),
                    )
        except sqlite3.Error as exc:
            log.error("session store: could not close session %s in %s: %s", self.session_id, self.path, exc)
        self._conn.close()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
            self._lock_path.unlink(missing_ok=True)


def prepare_output_dir(path: Path, *, what: str = "data directory", option: str = "--data-dir") -> Path:
    """Create ``path`` if needed and prove it is writable before anything is read or written; an
    :class:`OutputDirError` names the folder and the option to change otherwise."""
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".vrex-write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputDirError(f"cannot write to {what} {path}: {reason}; pass a writable {option}") from None
    return path.resolve()
