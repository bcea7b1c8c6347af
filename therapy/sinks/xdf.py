"""A small incremental XDF 1.0 writer, and the live-session subscriber that writes ``session.xdf``.

No maintained Python XDF writer exists, and LabRecorder is not always at hand
in a clinic, so vrex writes the format itself (``XDF:`` then chunks of
``VarLen(length) tag [stream id] content``; see REFERENCE.md "XDF 1.0"):
FileHeader, one StreamHeader per stream (the same XML an LSL outlet
announces), Samples, ClockOffset, a Boundary chunk every few seconds so a
reader can resynchronise in a damaged file, and StreamFooters at close.

Crash safety: chunks are assembled in memory and handed to the operating
system with one ``write()`` per flush on an unbuffered file, so a killed
process (SIGKILL, a crash) leaves only whole chunks behind and the file loads
up to its last flush. The subscriber flushes whenever its queue runs empty and
at least once a second of wall time under steady load; ``fsync`` (for power
loss) runs every ``fsync_every_s`` seconds, off the session's thread. (A write cut
short by a full disk or a power loss can still end mid-chunk: pyxdf skips a
damaged Samples chunk, which is where nearly all the bytes are, but fails on a
cut ClockOffset or header chunk; those are tiny and rare.)
"""

from __future__ import annotations

import logging
import os
import struct
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from therapy.sinks.streams import ECG, SessionStreams, StreamSpec, samples_of

log = logging.getLogger(__name__)

MAGIC = b"XDF:"
TAG_FILE_HEADER, TAG_STREAM_HEADER, TAG_SAMPLES, TAG_CLOCK_OFFSET, TAG_BOUNDARY, TAG_STREAM_FOOTER = 1, 2, 3, 4, 5, 6
BOUNDARY = bytes.fromhex("43A546DCCBF5410FB30ED5467383CBE4")
_NUMPY_FORMATS = {"float32": "<f4", "double64": "<f8", "int8": "<i1", "int16": "<i2", "int32": "<i4",
                  "int64": "<i8"}


def varlen(n: int) -> bytes:
    """XDF's variable-length integer: a byte 1, 4 or 8, then ``n`` in that many bytes."""
    if n < 256:
        return bytes((1, n))
    if n < 2**32:
        return b"\x04" + struct.pack("<I", n)
    return b"\x08" + struct.pack("<Q", n)


def chunk(tag: int, content: bytes, stream_id: int | None = None) -> bytes:
    """One chunk: length (tag + stream id + content), tag, optional stream id, content."""
    head = struct.pack("<H", tag) + (struct.pack("<I", stream_id) if stream_id is not None else b"")
    return varlen(len(head) + len(content)) + head + content


def _add(parent: ET.Element, tag: str, value: object) -> None:
    el = ET.SubElement(parent, tag)
    if isinstance(value, Mapping):
        for k, v in value.items():
            _add(el, str(k), v)
    else:
        el.text = "" if value is None else str(value)


def _xml(root: ET.Element) -> bytes:
    return b'<?xml version="1.0"?>' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def stream_header_xml(spec: StreamSpec, *, created_at_s: float, hostname: str = "") -> bytes:
    """The stream's info as LSL announces it (name, type, channel_count, ..., desc/channels/channel/label)."""
    info = ET.Element("info")
    for tag, value in (("name", spec.name), ("type", spec.type), ("channel_count", spec.channel_count),
                       ("channel_format", spec.channel_format), ("source_id", spec.source_id),
                       ("nominal_srate", repr(float(spec.nominal_srate_hz))), ("version", "1.1"),
                       ("created_at", repr(float(created_at_s))), ("hostname", hostname)):
        _add(info, tag, value)
    desc = ET.SubElement(info, "desc")
    channels = ET.SubElement(desc, "channels")
    for ch in spec.channels:
        _add(channels, "channel", {"label": ch.label, "unit": ch.unit, "type": ch.type})
    for k, v in spec.desc.items():
        _add(desc, k, v)
    return _xml(info)


def samples_content(spec: StreamSpec, timestamps_s: np.ndarray, values: object, *, deduce: bool) -> bytes:
    """A Samples chunk's content. With ``deduce`` (regular streams) a sample whose time is the previous one's
    plus 1/rate is written without its timestamp, as the format allows."""
    n = len(timestamps_s)
    out = [varlen(n)]
    period = 1.0 / spec.nominal_srate_hz if spec.regular else 0.0
    if spec.channel_format == "string":
        rows: Sequence[Sequence[str]] = values  # type: ignore[assignment]
        for t, row in zip(timestamps_s, rows):
            out.append(b"\x08" + struct.pack("<d", float(t)))
            for text in row:
                raw = str(text).encode("utf-8")
                out.append(varlen(len(raw)) + raw)
        return b"".join(out)
    arr = np.ascontiguousarray(np.asarray(values).reshape(n, spec.channel_count),
                               dtype=_NUMPY_FORMATS[spec.channel_format])
    prev: float | None = None
    for t, row in zip(timestamps_s, arr):
        t = float(t)
        if deduce and prev is not None and abs(t - (prev + period)) < 1e-9 * max(1.0, abs(t)):
            out.append(b"\x00")
        else:
            out.append(b"\x08" + struct.pack("<d", t))
        prev = t if prev is None or out[-1] != b"\x00" else prev + period
        out.append(row.tobytes())
    return b"".join(out)


class XdfWriter:
    """Writes one XDF file incrementally; not thread-safe (one subscriber thread owns it).

    ``add_stream`` may be called at any time before a stream's first samples (ECG starts with the first chunk).
    Nothing reaches the file until :meth:`flush`, which writes all pending chunks with one ``write()``.
    """

    def __init__(self, path: Path, *, file_info: Mapping[str, object] | None = None,
                 boundary_every_s: float = 10.0, clock_offset_every_s: float = 5.0,
                 fsync_every_s: float = 5.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._pending: list[bytes] = []
        self._specs: dict[int, StreamSpec] = {}
        self._ids: dict[str, int] = {}
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._count: dict[int, int] = {}
        self._offsets: dict[int, list[tuple[float, float]]] = {}
        self._boundary_every_s = boundary_every_s
        self._clock_offset_every_s = clock_offset_every_s
        self._fsync_every_s = fsync_every_s
        self._next_boundary_s: float | None = None
        self._next_offset_s: float | None = None
        self._last_fsync = time.monotonic()
        self.bytes_written = 0
        self.closed = False
        header = ET.Element("info")
        _add(header, "version", "1.0")
        _add(header, "datetime", datetime.now(UTC).isoformat(timespec="seconds"))
        _add(header, "writer", "vrex")
        for k, v in (file_info or {}).items():
            _add(header, k, v)
        self._pending.append(MAGIC + chunk(TAG_FILE_HEADER, _xml(header)))
        self.flush()

    def has(self, key: str) -> bool:
        return key in self._ids

    def add_stream(self, spec: StreamSpec, *, created_at_s: float = 0.0, hostname: str = "") -> int:
        """Announce a stream (its StreamHeader chunk); returns its XDF stream id (1, 2, ...)."""
        if spec.key in self._ids:
            raise ValueError(f"stream {spec.key!r} is already in {self.path}")
        sid = len(self._ids) + 1
        self._ids[spec.key] = sid
        self._specs[sid] = spec
        self._count[sid] = 0
        self._offsets[sid] = []
        self._pending.append(chunk(TAG_STREAM_HEADER, stream_header_xml(spec, created_at_s=created_at_s,
                                                                        hostname=hostname), sid))
        return sid

    def write_samples(self, key: str, timestamps_s: np.ndarray, values: object) -> None:
        """Queue one Samples chunk for stream ``key``; periodic ClockOffset and Boundary chunks follow time."""
        sid = self._ids[key]
        spec = self._specs[sid]
        stamps = np.asarray(timestamps_s, dtype=np.float64)
        if len(stamps) == 0:
            return
        self._pending.append(chunk(TAG_SAMPLES, samples_content(spec, stamps, values, deduce=spec.regular), sid))
        self._first.setdefault(sid, float(stamps[0]))
        self._last[sid] = float(stamps[-1])
        self._count[sid] += len(stamps)
        self._periodic(float(stamps[-1]))

    def _periodic(self, t_s: float) -> None:
        if self._next_offset_s is None:
            self._next_offset_s = t_s
            self._next_boundary_s = t_s + self._boundary_every_s
        if t_s >= self._next_offset_s:
            # Every stream is stamped on this process's session clock: its offset to the recording clock is 0.
            for sid in self._specs:
                self.write_clock_offset(sid, t_s, 0.0)
            self._next_offset_s = t_s + self._clock_offset_every_s
        if self._next_boundary_s is not None and t_s >= self._next_boundary_s:
            self._pending.append(chunk(TAG_BOUNDARY, BOUNDARY))
            self._next_boundary_s = t_s + self._boundary_every_s

    def write_clock_offset(self, stream_id: int, collection_s: float, offset_s: float) -> None:
        self._offsets[stream_id].append((collection_s, offset_s))
        self._pending.append(chunk(TAG_CLOCK_OFFSET, struct.pack("<dd", collection_s, offset_s), stream_id))

    def flush(self, *, fsync: bool = False) -> None:
        """Hand every pending chunk to the OS in one ``write()`` (a kill leaves whole chunks only)."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending = []
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            self.bytes_written += len(data)
        now = time.monotonic()
        if fsync or now - self._last_fsync >= self._fsync_every_s:
            os.fsync(self._fd)
            self._last_fsync = now

    def close(self) -> None:
        """Write a StreamFooter for every stream (first/last timestamp, count, clock offsets) and close."""
        if self.closed:
            return
        for sid, spec in self._specs.items():
            footer = ET.Element("info")
            _add(footer, "first_timestamp", repr(self._first.get(sid, 0.0)))
            _add(footer, "last_timestamp", repr(self._last.get(sid, 0.0)))
            _add(footer, "sample_count", self._count[sid])
            offsets = ET.SubElement(footer, "clock_offsets")
            for t, v in self._offsets[sid]:
                _add(offsets, "offset", {"time": repr(t), "value": repr(v)})
            self._pending.append(chunk(TAG_STREAM_FOOTER, _xml(footer), sid))
        self._pending.append(chunk(TAG_BOUNDARY, BOUNDARY))
        try:
            self.flush(fsync=True)
        finally:
            os.close(self._fd)
            self.closed = True


SESSION_XDF = "session.xdf"


def session_folder(data_dir: Path, session_id: str) -> Path:
    """``DATA_DIR/sessions/<id>``: where a session's files live beside its record in the store."""
    return Path(data_dir) / "sessions" / session_id


class XdfSessionSink:
    """A lossless, raw live-session subscriber that writes the session's ``session.xdf``.

    Samples gather per stream and go out as one Samples chunk per stream whenever the subscription's queue runs
    empty (``flush``) or a second of wall time has passed under steady load, so the file trails the session by
    well under a second and never delays it (it runs on its own subscription thread).
    """

    #: Under steady load (the queue never runs empty) write at least this often, in wall seconds.
    max_hold_s = 1.0

    def __init__(self, path: Path, streams: SessionStreams, *, ecg_fs_hz: float | None = None,
                 hostname: str = "", file_info: Mapping[str, object] | None = None) -> None:
        self.streams = streams
        self.hostname = hostname
        info = {"session_id": streams.session_id, "patient_code": streams.patient, "station": streams.station,
                **(file_info or {})}
        self.writer = XdfWriter(path, file_info=info)
        self.path = self.writer.path
        self._buf: dict[str, tuple[list[np.ndarray], list[object]]] = {}
        self._held_since: float | None = None
        for spec in streams.fixed():
            self.writer.add_stream(spec, hostname=hostname)
        if ecg_fs_hz:
            self.writer.add_stream(streams.ecg(ecg_fs_hz), hostname=hostname)
        self.writer.flush()
        self.samples = 0

    def __call__(self, item: object) -> None:
        got = samples_of(item, self.streams.dial_names)
        if got is None:
            return
        if got.key == ECG and not self.writer.has(ECG):
            self.writer.add_stream(self.streams.ecg(item.record.fs_hz), hostname=self.hostname)  # type: ignore[attr-defined]
        stamps, rows = self._buf.setdefault(got.key, ([], []))
        stamps.append(got.timestamps_s)
        rows.append(got.values)
        self.samples += len(got.timestamps_s)
        now = time.monotonic()
        if self._held_since is None:
            self._held_since = now
        elif now - self._held_since >= self.max_hold_s:
            self.flush()

    def flush(self) -> None:
        """Write what has gathered (called by the subscription whenever its queue ran empty)."""
        for key, (stamps, rows) in self._buf.items():
            if not stamps:
                continue
            ts = np.concatenate(stamps)
            if key == "Markers":
                values: object = [r for chunk_rows in rows for r in chunk_rows]
            else:
                values = np.concatenate([np.asarray(r) for r in rows], axis=0)
            self.writer.write_samples(key, ts, values)
        self._buf = {}
        self._held_since = None
        self.writer.flush()

    def close(self) -> None:
        """After the last item: write what is left and the stream footers."""
        try:
            self.flush()
        finally:
            self.writer.close()


def attach_xdf(live, data_dir: Path, *, station: str, ecg_fs_hz: float | None = None) -> XdfSessionSink | None:
    """Subscribe a :class:`XdfSessionSink` writing ``DATA_DIR/sessions/<id>/session.xdf`` (lossless, raw).

    A file that cannot be created is logged and skipped: the patient's session must not stop for it.
    """
    ident = live.identity
    path = session_folder(data_dir, ident.session_id) / SESSION_XDF
    try:
        sink = XdfSessionSink(path, SessionStreams.for_identity(ident, station), ecg_fs_hz=ecg_fs_hz,
                              hostname=station, file_info={"protocol": ident.protocol_name,
                                                           "environment": ident.environment,
                                                           "sensor": ident.sensor})
    except OSError as exc:
        log.error("cannot write %s (%s): the session runs without its XDF file", path, exc.strerror or exc)
        return None
    live.subscribe(sink, lossless=True, raw=True, name="xdf")
    return sink
