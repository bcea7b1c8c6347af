"""A recorded session as data: its row, events and series from the store, its streams from ``session.xdf``.

The store is read through its own file, read-only (a second connection never
blocks the writer of a session that is running elsewhere). The research
streams are rebuilt from the store with the same mapping the live outlets use
(:mod:`therapy.sinks.streams`), so an export of an old session (recorded before
vrex wrote XDF) has the same streams, minus the raw ECG, which only
``session.xdf`` keeps.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from therapy.errors import TherapyError
from therapy.sinks.streams import (
    ECG,
    EXPOSURE,
    HR,
    MARKERS,
    PHASE_CODES,
    RR,
    SERIES_EVENTS,
    SessionStreams,
    StreamSpec,
    environment_dials,
    shown_dials,
)
from therapy.sinks.xdf import SESSION_XDF, session_folder

log = logging.getLogger(__name__)

_SERIES_KINDS = {cls.__name__ for cls in SERIES_EVENTS}


class SessionRunningError(TherapyError):
    """The session is still being recorded: exporting it now would give a partial file."""


@dataclass(frozen=True, slots=True)
class RecordedStream:
    """One stream of a recorded session: its description, sample times (session clock) and values."""

    spec: StreamSpec
    timestamps_s: np.ndarray
    values: object  # (n, channels) numbers, or a list of string rows for Markers

    def __len__(self) -> int:
        return len(self.timestamps_s)


@dataclass(frozen=True, slots=True)
class SessionData:
    """Everything an export needs about one session."""

    session_id: str
    patient: str | None
    protocol: str
    protocol_toml: str
    environment: str
    sensor: str
    status: str
    end_reason: str
    started_utc: str
    ended_utc: str | None
    clock_origin_s: float
    metadata: dict
    events: list[tuple[float, str, dict]]  # (t_s, kind, payload), in publication order
    hr: np.ndarray  # (n, 6): t_s, hr_bpm, arousal, rmssd_ms, quality, stale (NaN for unknown)
    beats: np.ndarray  # (n, 5): t_s, rr_ms, nn_ms, artifact, gap_before
    xdf_path: Path | None
    dial_names: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def of(self, kind: str) -> list[tuple[float, dict]]:
        return [(t, p) for t, k, p in self.events if k == kind]

    @property
    def t0_s(self) -> float:
        """The session's start on its clock (elapsed times in exports count from here)."""
        return self.clock_origin_s

    @property
    def end_s(self) -> float:
        ts = [t for t, _, _ in self.events]
        return max(ts) if ts else self.clock_origin_s

    def streams_spec(self, station: str) -> SessionStreams:
        return SessionStreams(station, self.session_id, self.patient or "", self.sensor, self.environment,
                              self.dial_names)

    def streams(self, station: str, *, with_ecg: bool = True) -> list[RecordedStream]:
        """The session's research streams: rebuilt from the store, with ECG from ``session.xdf`` if it has one."""
        specs = self.streams_spec(station)
        out = [
            RecordedStream(specs.rr(), self.beats[:, 0].copy(), self.beats[:, 1:].copy()),
            RecordedStream(specs.hr(), self.hr[:, 0].copy(), self.hr[:, 1:].copy()),
        ]
        exp = self.of("ExposureSampled")
        rows = []
        for _, p in exp:
            rows.append([p["level"], p["intensity"], PHASE_CODES[p["phase"]], float(p["safe_place"])]
                        + shown_dials(p["environment"], p["level"], p["intensity"], p.get("dials"), self.dial_names))
        out.append(RecordedStream(specs.exposure(), np.array([t for t, _ in exp], dtype=float),
                                  np.array(rows, dtype=float).reshape(len(rows), 4 + len(self.dial_names))))
        markers = [(t, k, p) for t, k, p in self.events if k not in _SERIES_KINDS]
        out.append(RecordedStream(specs.markers(), np.array([t for t, _, _ in markers], dtype=float),
                                  [[marker_text(t, k, p)] for t, k, p in markers]))
        if with_ecg:
            ecg = self.ecg()
            if ecg is not None:
                t, v, fs = ecg
                out.insert(0, RecordedStream(specs.ecg(fs), t, v))
        return out

    def ecg(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """``(timestamps_s, ecg_uv (n, 1), fs_hz)`` from the session's XDF file, when it has an ECG stream."""
        if self.xdf_path is None:
            return None
        for s in read_xdf(self.xdf_path):
            if s.spec.type == "ECG" and len(s):
                return s.timestamps_s, np.asarray(s.values, dtype=np.float32), s.spec.nominal_srate_hz
        return None


def marker_text(t_s: float, kind: str, payload: dict) -> str:
    """The ``Markers`` sample of a stored event (identical to what the live outlet sent)."""
    from therapy.sinks.streams import marker_text as text

    return text(kind, t_s, payload)


def load_session(store, session_id: str, *, allow_running: bool = False) -> SessionData:
    """Read one session (a unique id prefix is enough); :class:`TherapyError` for an unknown id, and
    :class:`SessionRunningError` for one still being recorded unless ``allow_running``."""
    row = store.session(session_id)
    if row.status == "running" and not allow_running:
        raise SessionRunningError(
            f"session {row.id} is still running (being recorded now): export it after it has ended")
    sid = row.id
    conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True, timeout=10.0)
    try:
        q = conn.execute
        origin, toml, ended, reason = q("SELECT clock_origin_s, protocol_toml, ended_utc, end_reason FROM sessions "
                                        "WHERE id=?", (sid,)).fetchone()
        events = []
        for t, k, p in q("SELECT t_s, kind, payload_json FROM events WHERE session_id=? ORDER BY seq", (sid,)):
            payload = json.loads(p)
            events.append((t, k, payload))
        hr = np.array([[np.nan if v is None else v for v in r] for r in
                       q("SELECT t_s, hr_bpm, arousal, rmssd_ms, quality, stale FROM hr_samples WHERE session_id=? "
                         "ORDER BY rowid", (sid,))], dtype=float).reshape(-1, 6)
        beats = np.array(q("SELECT t_s, rr_ms, nn_ms, artifact, gap_before FROM beats WHERE session_id=? "
                           "ORDER BY rowid", (sid,)).fetchall(), dtype=float).reshape(-1, 5)
    finally:
        conn.close()
    xdf = session_folder(store.path.parent, sid) / SESSION_XDF
    return SessionData(
        session_id=sid, patient=row.patient, protocol=row.protocol, protocol_toml=toml, environment=row.environment,
        sensor=row.sensor, status=row.status, end_reason=reason or "", started_utc=row.started_utc,
        ended_utc=ended, clock_origin_s=float(origin), metadata=dict(row.metadata), events=events, hr=hr,
        beats=beats, xdf_path=xdf if xdf.is_file() else None,
        dial_names=_dials_of(events, row.environment),
        notes=tuple(str(p.get("text") or p.get("note") or "") for _, k, p in events if k == "NoteAdded"),
    )


def _dials_of(events, environment: str) -> tuple[str, ...]:
    names = environment_dials(environment)
    if names:
        return names
    for _, k, p in events:  # an environment this installation lacks: the dials the session showed
        if k == "ExposureSampled" and p.get("dials"):
            return tuple(name for name, _ in p["dials"])
    return ()


def read_xdf(path: Path) -> list[RecordedStream]:
    """The streams of an XDF file (vrex's own or LabRecorder's) with their LSL descriptions, via pyxdf."""
    import pyxdf

    try:
        streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=False, synchronize_clocks=True)
    except Exception as exc:  # a file that is not XDF: the user's to fix
        raise TherapyError(f"cannot read XDF file {str(path)!r}: {exc}; give a .xdf written by vrex or "
                           "LabRecorder") from None
    return [_recorded(s) for s in streams]


def _first(d: dict, key: str, default: str = "") -> str:
    v = d.get(key)
    if isinstance(v, list) and v:
        v = v[0]
    return default if v is None else v if isinstance(v, str) else default


def _desc_dict(node) -> object:
    """pyxdf's list-of-dicts XML back into nested mappings (the first of repeated elements)."""
    if isinstance(node, list):
        node = node[0] if node else None
    if isinstance(node, dict):
        return {k: _desc_dict(v) for k, v in node.items() if k != "channels"}
    return "" if node is None else node


def _recorded(s: dict) -> RecordedStream:
    from therapy.sinks.streams import Channel

    info = s["info"]
    desc = (info.get("desc") or [None])[0] or {}
    channels = []
    try:
        for ch in desc["channels"][0]["channel"]:
            channels.append(Channel(_first(ch, "label"), _first(ch, "unit"), _first(ch, "type")))
    except (KeyError, IndexError, TypeError):
        pass
    count = int(_first(info, "channel_count", "1"))
    if len(channels) != count:
        channels = [Channel(f"ch{i + 1}", "", "") for i in range(count)]
    stype = _first(info, "type")
    key = stype if stype in (ECG, RR, HR, EXPOSURE, MARKERS) else _first(info, "name", stype)
    spec = StreamSpec(key, _first(info, "name"), stype, _first(info, "source_id"), _first(info, "channel_format"),
                      float(_first(info, "nominal_srate", "0") or 0), tuple(channels),
                      _desc_dict(desc) if isinstance(desc, dict) else {})
    values = s["time_series"]
    if spec.channel_format != "string":
        values = np.asarray(values).reshape(len(s["time_stamps"]), count)
    return RecordedStream(spec, np.asarray(s["time_stamps"], dtype=float), values)
