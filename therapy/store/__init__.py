"""The session store: patients, sessions and their complete records, behind one small interface.

The runtime never touches a store: a session's :class:`SessionWriter`-like sink
is a lossless subscriber of its :class:`~therapy.live.LiveSession`. Commands and
the console use :class:`SessionStore` to manage patients and browse sessions.
SQLite (:mod:`therapy.store.sqlite`) is the embedded default; a PostgreSQL
implementation for clinics with several stations implements the same protocol.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from therapy.events import EndStatus
from therapy.store.sqlite import (
    DB_NAME,
    SCHEMA_VERSION,
    HierarchyStep,
    PatientRecord,
    SessionInfo,
    SessionRow,
    SessionWriter,
    SqliteStore,
    prepare_output_dir,
    validate_patient_code,
)

__all__ = [
    "DB_NAME", "SCHEMA_VERSION", "HierarchyStep", "PatientRecord", "SessionInfo", "SessionRow", "SessionSink",
    "SessionStore", "SessionWriter", "SqliteStore", "default_data_dir", "open_store", "prepare_output_dir",
    "validate_patient_code",
]


class SessionSink(Protocol):
    """A session's writer: called with every live-session item on its own thread."""

    session_id: str
    lost_events: int
    end_status: EndStatus | None

    def __call__(self, item: object) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def finish(self, fallback_status: EndStatus = EndStatus.INTERRUPTED, reason: str = "closed") -> None: ...


class SessionStore(Protocol):
    """What commands, the runner and the console need from a store."""

    path: Path

    def add_patient(self, code: str, *, birth_year: int | None = None, notes: str = "") -> PatientRecord: ...

    def patient(self, code: str) -> PatientRecord: ...

    def find_patient(self, code: str) -> PatientRecord | None: ...

    def patients(self) -> list[PatientRecord]: ...

    def set_hierarchy(self, code: str, environment: str, steps: Sequence[HierarchyStep]) -> PatientRecord: ...

    def set_resonance(self, code: str, breaths_per_min: float) -> None: ...

    def begin_session(self, info: SessionInfo) -> SessionSink: ...

    def sessions(self, patient: str | None = None) -> list[SessionRow]: ...

    def session(self, session_id: str) -> SessionRow: ...

    def session_details(self, session_id: str) -> dict[str, object]: ...

    def close(self) -> None: ...


def default_data_dir() -> Path:
    """``VREX_DATA_DIR`` when set, else the per-user data directory (e.g. ``~/.local/share/vrex``)."""
    env = os.environ.get("VREX_DATA_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("vrex", appauthor=False))


def open_store(data_dir: Path | None = None) -> SqliteStore:
    """Open (creating, migrating and recovering as needed) the store in ``data_dir`` or the default one."""
    return SqliteStore(data_dir if data_dir is not None else default_data_dir())
