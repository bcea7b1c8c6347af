"""Replay a recorded RR series or ECG file as a live sensor, in real or accelerated time.

Recordings make demos, training and regression runs reproducible with real
physiology. Pacing comes from the injected clock (``ScaledClock(speed)`` for
``--speed``, ``VirtualClock`` in tests), so the sensor itself knows no speed.

Formats:

* RR intervals in ms: ``.npy`` (1-D), ``.csv``/``.txt`` (one value per line or
  comma/whitespace separated; ``#`` comments and a non-numeric header are skipped).
* ECG: ``.npz`` with key ``ecg`` (µV) and ``fs_hz`` (or ``fs``); an ``.npz``
  whose ``ecg`` is uint16 without a rate is the MIT-BIH format of
  ``tests/data/mitbih208`` (360 Hz, mV = (x - 1024) / 200); an OpenSignals
  (BITalino) ``.txt`` export (ECG in the last column, 10-bit ADC).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biofeedback.clock import Clock
from biofeedback.errors import SensorUnavailableError
from biofeedback.records import EcgChunk, HeartSample, LinkEvent, LinkState, SensorRecord
from biofeedback.rr import RRCleanerConfig

log = logging.getLogger(__name__)

MITBIH_FS_HZ = 360.0
_FIX = "give a .npy/.csv/.txt of RR intervals in ms, or an .npz with 'ecg' (µV) and 'fs_hz'"
#: One recorded RR value must lie here (ms). Wider than a heartbeat (the cleaner drops values outside
#: RRCleanerConfig's 250-3000 ms as artefacts, as on a live strap, and replays should exercise that),
#: but anything outside is a units error or a corrupt file (2e6 ms would play 33 minutes of silence).
RECORDED_RR_RANGE_MS = (20.0, 20_000.0)
_NPY_FIX = "save the RR intervals (ms) as plain numbers, e.g. numpy.save(path, numpy.asarray(rr_ms, dtype=float))"
_PICKLED = "it holds pickled Python objects, which vrex never loads (unpickling a file can run its code)"


@dataclass(frozen=True, slots=True)
class Recording:
    """A loaded recording: either RR intervals (ms) or ECG (µV at ``fs_hz``)."""

    path: Path
    rr_ms: np.ndarray | None = None
    ecg_uv: np.ndarray | None = None
    fs_hz: float | None = None

    @property
    def kind(self) -> str:
        return "rr" if self.rr_ms is not None else "ecg"

    @property
    def duration_s(self) -> float:
        if self.rr_ms is not None:
            return float(np.sum(self.rr_ms)) / 1000.0
        assert self.ecg_uv is not None and self.fs_hz
        return len(self.ecg_uv) / self.fs_hz


def load_recording(path: str | Path) -> Recording:
    """Read a recording file; :class:`SensorUnavailableError` names the path and the fix."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise SensorUnavailableError(f"replay file {str(p)!r} not found; check the path ({_FIX})")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            rec = Recording(p, rr_ms=_load_npy(p))
        elif suffix in (".npz", ".dat") or zipfile.is_zipfile(p):
            rec = _load_npz(p)
        elif suffix in (".csv", ".txt", ".tsv", ""):
            rec = _load_text(p)
        else:
            raise ValueError(f"unknown file type {suffix!r}")
    except SensorUnavailableError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        # The file's content is the user's to fix, whatever its parser tripped over.
        if "pickle" in str(exc).lower():  # numpy's own text would suggest allow_pickle, which is unsafe
            raise SensorUnavailableError(f"replay file {str(p)!r} has no numeric arrays: {_PICKLED}; {_FIX}") from exc
        raise SensorUnavailableError(f"cannot read replay file {str(p)!r}: {exc}; {_FIX}") from exc
    _validate(rec)
    return rec


def _load_npy(p: Path) -> np.ndarray:
    """A 1-D float array of RR intervals from a ``.npy``; SensorUnavailableError for anything else.

    numpy's error for a damaged or object ``.npy`` suggests ``allow_pickle=True``,
    which would let a file run code: vrex says what the file is instead.
    """
    with p.open("rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        raise SensorUnavailableError(f"replay file {str(p)!r} is not a numeric .npy array: it has no .npy header; {_NPY_FIX}")
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as exc:
        why = _PICKLED if "pickle" in str(exc).lower() else f"its header or data is damaged ({exc})"
        raise SensorUnavailableError(f"replay file {str(p)!r} is not a numeric .npy array: {why}; {_NPY_FIX}") from exc
    if arr.dtype.kind not in "iuf":
        raise SensorUnavailableError(f"replay file {str(p)!r} is not a numeric .npy array (it holds dtype {arr.dtype}); {_NPY_FIX}")
    if sum(n > 1 for n in arr.shape) > 1:
        raise SensorUnavailableError(
            f"replay file {str(p)!r} holds a {'x'.join(map(str, arr.shape))} array; RR intervals are one column (a 1-D array of ms)"
        )
    return arr.astype(np.float64).ravel()


def _load_npz(p: Path) -> Recording:
    with np.load(p, allow_pickle=False) as data:
        if "ecg" not in data.files:
            if "rr_ms" in data.files:
                return Recording(p, rr_ms=data["rr_ms"].astype(np.float64).ravel())
            raise ValueError(f"no 'ecg' or 'rr_ms' array (keys: {', '.join(data.files) or 'none'})")
        raw = data["ecg"]
        fs = next((_rate(data[k], k) for k in ("fs_hz", "fs") if k in data.files), None)
    if sum(n > 1 for n in raw.shape) > 1:
        raise ValueError(f"'ecg' must be one channel (a 1-D array), got shape {raw.shape}")
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"'ecg' must hold numbers, got dtype {raw.dtype}")
    if fs is None:
        if raw.dtype != np.uint16:
            raise ValueError("'ecg' has no sampling rate: add 'fs_hz' to the .npz")
        ecg_uv = (raw.astype(np.float64) - 1024.0) / 200.0 * 1000.0  # MIT-BIH ADC units -> µV
        return Recording(p, ecg_uv=ecg_uv.ravel(), fs_hz=MITBIH_FS_HZ)
    return Recording(p, ecg_uv=raw.astype(np.float64).ravel(), fs_hz=fs)


def _rate(value: object, key: str) -> float:
    """One sampling rate in Hz from a file; anything else is the file's fault, said so."""
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iuf":
        what = f"shape {arr.shape}" if arr.size != 1 else f"dtype {arr.dtype}"
        raise ValueError(f"{key!r} must be one number (the sampling rate in Hz), got {what}")
    return float(arr.reshape(()))


def _load_text(p: Path) -> Recording:
    text = p.read_text(encoding="utf-8", errors="replace")
    if text.startswith("# OpenSignals"):
        return _load_opensignals(p, text)
    values: list[float] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(",", " ").replace(";", " ").split()
        try:
            values.extend(float(x) for x in parts)
        except ValueError:
            if values:
                raise ValueError(f"line {lineno} is not numeric: {line[:40]!r}") from None
            continue  # a header line
    return Recording(p, rr_ms=np.asarray(values, dtype=np.float64))


def _load_opensignals(p: Path, text: str) -> Recording:
    header_line = next((line for line in text.splitlines()[:3] if line.startswith("# {")), None)
    if header_line is None:
        raise ValueError("OpenSignals header has no '# {...}' JSON line among its first 3 lines (export it again from OpenSignals)")
    devices = json.loads(header_line[2:])
    header = next(iter(devices.values()), None) if isinstance(devices, dict) else None
    if not isinstance(header, dict):
        raise ValueError("OpenSignals header names no device (expected {\"MAC\": {...}})")
    if "sampling rate" not in header:
        raise ValueError("OpenSignals header has no 'sampling rate'")
    fs = _rate(header["sampling rate"], "sampling rate")
    resolution = header.get("resolution", [10])
    bits_value = resolution[-1] if isinstance(resolution, list) and resolution else resolution
    if isinstance(bits_value, bool) or not isinstance(bits_value, int) or not 1 <= bits_value <= 24:
        raise ValueError(f"OpenSignals header 'resolution' {resolution!r} gives no ADC bit count (expected e.g. [4, 1, 1, 1, 1, 10])")
    bits = bits_value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data": said below, in one line
        rows = np.loadtxt(p, comments="#", ndmin=2)
    if rows.size == 0:
        raise ValueError("OpenSignals file has a header but no sample rows")
    adc = rows[:, -1]
    # BITalino ECG sensor: mV = (ADC / 2^n - 1/2) * VCC / G, VCC = 3.3 V, G = 1100.
    ecg_uv = (adc / 2**bits - 0.5) * 3.3 / 1100.0 * 1e6
    return Recording(p, ecg_uv=ecg_uv, fs_hz=fs)


def _validate(rec: Recording) -> None:
    if rec.rr_ms is not None:
        rr = rec.rr_ms
        if rr.size == 0:
            raise SensorUnavailableError(f"replay file {str(rec.path)!r} holds no RR intervals; {_FIX}")
        bad = np.flatnonzero(~np.isfinite(rr) | (rr <= 0))
        if bad.size:
            raise SensorUnavailableError(
                f"replay file {str(rec.path)!r}: RR value {rr[bad[0]]:.10g} (number {bad[0] + 1}){_and_more(bad)} is not a "
                f"positive, finite number of ms; {_FIX}"
            )
        # the middle value without arithmetic: np.median would overflow on values like 1e308
        median = float(np.partition(rr, rr.size // 2)[rr.size // 2])
        if median < 5.0:
            raise SensorUnavailableError(f"replay file {str(rec.path)!r}: RR values look like seconds (median {median:.3f}); convert to ms")
        lo, hi = RECORDED_RR_RANGE_MS
        bad = np.flatnonzero((rr < lo) | (rr > hi))
        if bad.size:
            i = int(bad[0])
            raise SensorUnavailableError(
                f"replay file {str(rec.path)!r}: RR value {rr[i]:.10g} ms (number {i + 1}){_and_more(bad)} is outside the plausible "
                f"{lo:g}-{hi:g} ms; RR intervals must be milliseconds between beats - fix or remove that value"
            )
        cfg = RRCleanerConfig()
        if not cfg.min_rr_ms <= median <= cfg.max_rr_ms:
            raise SensorUnavailableError(
                f"replay file {str(rec.path)!r}: median RR {median:.10g} ms is outside the {cfg.min_rr_ms:g}-{cfg.max_rr_ms:g} ms "
                f"of a beating heart ({60000 / cfg.max_rr_ms:g}-{60000 / cfg.min_rr_ms:g} bpm), so most beats would be dropped "
                "as artefacts and the replay would play silence; check the file's units (ms)"
            )
    else:
        if rec.ecg_uv is None or rec.ecg_uv.size == 0:
            raise SensorUnavailableError(f"replay file {str(rec.path)!r} holds no ECG samples; {_FIX}")
        if rec.fs_hz is None or not math.isfinite(rec.fs_hz) or rec.fs_hz <= 0:
            raise SensorUnavailableError(
                f"replay file {str(rec.path)!r} has sampling rate {rec.fs_hz!r} Hz; it needs a finite rate > 0 (e.g. fs_hz=130.0)"
            )
        if not np.all(np.isfinite(rec.ecg_uv)):
            n = int(np.count_nonzero(~np.isfinite(rec.ecg_uv)))
            raise SensorUnavailableError(
                f"replay file {str(rec.path)!r} has {n} non-finite ECG sample(s) (nan/inf); the R-peak detector needs finite µV values"
            )


def _and_more(bad: np.ndarray) -> str:
    return f" (and {bad.size - 1} more)" if bad.size > 1 else ""


class ReplaySensor:
    """A :class:`~biofeedback.sensor.HeartSensor` that plays a recording back on the session clock.

    RR recordings yield one :class:`HeartSample` per beat at the beat's time; ECG
    recordings yield :class:`EcgChunk` blocks of ``chunk_s`` stamped with their
    last sample. A CONNECTED event opens the stream and a CLOSED one ("end of
    file") ends it.
    """

    def __init__(self, path: str | Path, clock: Clock, *, chunk_s: float = 0.25, loop: bool = False) -> None:
        self.recording = load_recording(path)
        self.clock = clock
        self.chunk_s = chunk_s
        self.loop = loop
        self._closed = False

    @property
    def description(self) -> str:
        rec = self.recording
        what = "RR" if rec.kind == "rr" else f"ECG {rec.fs_hz:g} Hz"
        return f"replay {rec.path.name} ({what}, {rec.duration_s:.0f} s)"

    async def close(self) -> None:
        self._closed = True

    async def records(self) -> AsyncIterator[SensorRecord]:
        src = self.description
        yield LinkEvent(t_s=self.clock.now(), state=LinkState.CONNECTED, detail=f"playing {self.recording.path.name}", source=src)
        while True:
            start_s = self.clock.now()
            if self.recording.kind == "rr":
                gen = self._rr(start_s, src)
            else:
                gen = self._ecg(start_s, src)
            async for record in gen:
                if self._closed:
                    break
                yield record
            if self._closed or not self.loop:
                break
        detail = "closed by vrex" if self._closed else "end of file"
        yield LinkEvent(t_s=self.clock.now(), state=LinkState.CLOSED, detail=detail, source=src)

    async def _rr(self, start_s: float, src: str) -> AsyncIterator[SensorRecord]:
        assert self.recording.rr_ms is not None
        beat_s = start_s + np.cumsum(self.recording.rr_ms) / 1000.0
        for rr, t_s in zip(self.recording.rr_ms.tolist(), beat_s.tolist()):
            await self.clock.sleep_until(t_s)
            if self._closed:
                return
            yield HeartSample(t_s=t_s, rr_ms=(rr,), hr_bpm=60000.0 / rr, source=src)

    async def _ecg(self, start_s: float, src: str) -> AsyncIterator[SensorRecord]:
        ecg, fs = self.recording.ecg_uv, self.recording.fs_hz
        assert ecg is not None and fs
        n = max(1, int(round(self.chunk_s * fs)))
        for i in range(0, len(ecg), n):
            block = ecg[i : i + n]
            t_last = start_s + (i + len(block)) / fs  # sample k is at start + (k+1)/fs
            await self.clock.sleep_until(t_last)
            if self._closed:
                return
            yield EcgChunk(t_s=t_last, fs_hz=fs, ecg_uv=block.copy(), source=src)


def recording_summary(path: str | Path) -> str:
    """One line for CLI output: what a replay file holds."""
    rec = load_recording(path)
    if rec.kind == "rr":
        assert rec.rr_ms is not None
        return f"{rec.path.name}: {rec.rr_ms.size} RR intervals, {rec.duration_s:.0f} s, mean HR {60000 / np.mean(rec.rr_ms):.0f} bpm"
    return f"{rec.path.name}: ECG {rec.fs_hz:g} Hz, {rec.duration_s:.0f} s"


__all__ = ["ReplaySensor", "Recording", "load_recording", "recording_summary", "MITBIH_FS_HZ"]
