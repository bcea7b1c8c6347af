"""The research streams of a session: their descriptions and how session items become their samples.

One mapping serves the LSL outlets, the XDF writer, the XDF export and the LSL
player, so a stream looks the same wherever a researcher meets it:

* ``ECG`` (float32, µV, the sensor's rate): raw sensor chunks, each sample at
  its own time (the chunk's last sample is at ``EcgChunk.t_s``);
* ``RR`` (irregular, double): one sample per beat, at the beat: raw RR ms,
  corrected NN ms, artefact flag, gap flag;
* ``HR`` (1 Hz, double): HR from RR, arousal in baseline SD, RMSSD ms, signal
  quality 0..1, stale flag (NaN where the pipeline has no value yet);
* ``Exposure`` (1 Hz, double): level, shown intensity, phase code, safe-place
  flag and the environment's dials;
* ``Markers`` (string, irregular): every other session event as compact JSON.

Stream identity is stable: ``source_id`` is ``vrex.<station>.<stream>``, so a
recorder that lost an outlet reconnects when the next session on the same
station publishes it again. Nothing here imports pylsl.
"""

from __future__ import annotations

import json
import math
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from therapy.events import BeatRecorded, Event, ExposureSampled, HeartSampled, Phase

#: Stream keys, in the order streams are announced.
ECG, RR, HR, EXPOSURE, MARKERS = "ECG", "RR", "HR", "Exposure", "Markers"
STREAM_KEYS = (ECG, RR, HR, EXPOSURE, MARKERS)
#: Phase -> number in the exposure stream (documented in its ``desc/phase_codes``).
PHASE_CODES: dict[str, int] = {p.value: i for i, p in enumerate(Phase)}
#: The rate of the HR and exposure streams (the runtime samples both once a second of session time).
STATE_RATE_HZ = 1.0
#: Events with a numeric stream of their own; every other event goes to ``Markers``.
SERIES_EVENTS = (BeatRecorded, HeartSampled, ExposureSampled)
APP = "vrex"


@dataclass(frozen=True, slots=True)
class Channel:
    label: str
    unit: str
    type: str


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """Everything an LSL outlet or an XDF stream header says about one stream.

    ``desc`` is nested metadata (mappings become elements, other values text) placed beside
    ``desc/channels``; ``channel_format`` is LSL's name (``float32``, ``double64``, ``string``).
    """

    key: str
    name: str
    type: str
    source_id: str
    channel_format: str
    nominal_srate_hz: float
    channels: tuple[Channel, ...]
    desc: Mapping[str, object] = field(default_factory=dict)

    @property
    def channel_count(self) -> int:
        return len(self.channels)

    @property
    def regular(self) -> bool:
        return self.nominal_srate_hz > 0


@dataclass(frozen=True, slots=True)
class Acquisition:
    """``desc/acquisition`` from the sensor's description (what a lab needs to cite the device)."""

    manufacturer: str
    model: str
    serial_number: str


def default_station() -> str:
    """The station name used when ``--station`` is not given: the host name, made id-safe."""
    return station_name(socket.gethostname() or "station")


def station_name(text: str) -> str:
    """A station name safe inside source ids and XPath predicates (letters, digits, ``-``, ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", text.strip()).strip("-")
    if not cleaned:
        raise ValueError(f"station name {text!r} has no letters or digits")
    return cleaned[:64]


def source_id(station: str, key: str) -> str:
    """Stable per station and stream: a recorder resolving it finds the next session's outlet too."""
    return f"{APP}.{station}.{key}"


def acquisition_from(sensor_description: str) -> Acquisition:
    """Manufacturer, model and serial number as far as the sensor's description tells them.

    BLE straps advertise e.g. ``Polar H10 A1B2C3D4``; simulated and replayed sources say what they are.
    Unknown parts are empty strings (BIDS and LSL both treat them as "not given").
    """
    text = sensor_description.strip()
    low = text.lower()
    if low.startswith("simulated"):
        return Acquisition(APP, "simulated strap", "")
    if low.startswith("replay"):
        return Acquisition(APP, "replayed recording", "")
    m = re.match(r"(Polar)\s+(\S+)\s+([0-9A-Fa-f]{6,})", text)
    if m:
        return Acquisition("Polar Electro Oy", f"{m.group(1)} {m.group(2)}", m.group(3).upper())
    m = re.match(r"(Polar|Garmin|Wahoo|Suunto|Coospo|Movesense)\s+(\S+)", text, re.IGNORECASE)
    if m:
        return Acquisition(m.group(1), m.group(2), "")
    return Acquisition("", text.split(" (")[0], "")


def _common_desc(session_id: str, patient: str, sensor: str, station: str) -> dict[str, object]:
    acq = acquisition_from(sensor)
    return {
        "manufacturer": APP,
        "acquisition": {"manufacturer": acq.manufacturer, "model": acq.model, "serial_number": acq.serial_number,
                        "description": sensor},
        "session": {"session_id": session_id, "patient_code": patient, "station": station},
        "clock": "LSL local_clock seconds (monotonic); simulated sessions use a paced session clock",
    }


@dataclass(frozen=True, slots=True)
class SessionStreams:
    """The stream descriptions of one session on one station."""

    station: str
    session_id: str
    patient: str
    sensor: str
    environment: str
    dial_names: tuple[str, ...]
    dial_units: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.dial_units) != len(self.dial_names):
            object.__setattr__(self, "dial_units", environment_dial_units(self.environment, self.dial_names))

    @classmethod
    def for_identity(cls, identity, station: str, dial_names: Sequence[str] | None = None) -> SessionStreams:
        """From a :class:`~therapy.live.SessionIdentity`; the dials come from the environment registry."""
        if dial_names is None:
            dial_names = environment_dials(identity.environment)
        return cls(station, identity.session_id, identity.patient, identity.sensor, identity.environment,
                   tuple(dial_names))

    def _spec(self, key: str, stype: str, fmt: str, rate: float, channels: Sequence[Channel],
              extra: Mapping[str, object] | None = None) -> StreamSpec:
        desc = _common_desc(self.session_id, self.patient, self.sensor, self.station)
        if extra:
            desc.update(extra)
        return StreamSpec(key, f"{APP} {self.station} {key}", stype, source_id(self.station, key), fmt, rate,
                          tuple(channels), desc)

    def ecg(self, fs_hz: float) -> StreamSpec:
        return self._spec(ECG, "ECG", "float32", float(fs_hz), [Channel("ECG", "microvolts", "ECG")],
                          {"placement": "chest strap (lead approximately CM5)"})

    def rr(self) -> StreamSpec:
        return self._spec(RR, "RR", "double64", 0.0, [
            Channel("RR", "ms", "RR"), Channel("NN", "ms", "NN"),
            Channel("artifact", "boolean", "flag"), Channel("gap_before", "boolean", "flag"),
        ], {"note": "one sample per beat, stamped at the beat; NN is RR corrected for artefacts"})

    def hr(self) -> StreamSpec:
        return self._spec(HR, "HR", "double64", STATE_RATE_HZ, [
            Channel("HR", "bpm", "HR"), Channel("arousal", "SD", "misc"), Channel("RMSSD", "ms", "HRV"),
            Channel("quality", "fraction", "misc"), Channel("stale", "boolean", "flag"),
        ], {"note": "HR from RR; arousal = (HR - baseline mean) / baseline SD; NaN where not yet known"})

    def exposure(self) -> StreamSpec:
        channels = [Channel("level", "level", "state"), Channel("intensity", "fraction", "state"),
                    Channel("phase", "code", "state"), Channel("safe_place", "boolean", "flag")]
        channels += [Channel(f"dial_{name}", unit, "state") for name, unit in zip(self.dial_names, self.dial_units)]
        return self._spec(EXPOSURE, "Exposure", "double64", STATE_RATE_HZ, channels,
                          {"environment": self.environment,
                           "phase_codes": {f"code{v}": k for k, v in PHASE_CODES.items()}})

    def markers(self) -> StreamSpec:
        return self._spec(MARKERS, "Markers", "string", 0.0, [Channel("event", "json", "Marker")],
                          {"note": 'one compact JSON object per session event: {"event", "t_s", ...its fields}'})

    def fixed(self) -> list[StreamSpec]:
        """The streams every session has (ECG joins when the sensor gives ECG)."""
        return [self.rr(), self.hr(), self.exposure(), self.markers()]


def environment_dials(environment: str) -> tuple[str, ...]:
    """The dial names of an environment (empty when the registry does not know it, e.g. a replayed file)."""
    try:
        from environments import registry

        return registry.info(environment).dial_names
    except Exception:  # an environment this installation lacks: the exposure stream has no dial channels
        return ()


def shown_dials(environment: str, level: int, intensity: float, overrides, names: Sequence[str]) -> list[float]:
    """The dial values the renderer shows for this state (the level's, moved ``intensity`` towards the next
    level's, then the therapist's overrides), in ``names`` order; NaN for a dial the environment lacks (the safe
    place shown in a phobia session, an environment this installation does not know)."""
    overrides = tuple((str(k), float(v)) for k, v in (overrides or ()))
    try:
        from environments import registry

        values = registry.dial_values(environment, level, intensity, overrides)
    except Exception:  # unknown environment: only what the session said
        values = dict(overrides)
    return [float(values[n]) if n in values else math.nan for n in names]


def environment_dial_units(environment: str, names: Sequence[str]) -> tuple[str, ...]:
    """Each dial's unit (``m``, ``fraction``...); ``dial`` where the environment does not say."""
    try:
        from environments import registry

        units = {d.name: d.unit for d in registry.info(environment).dials}
    except Exception:
        units = {}
    return tuple(units.get(n) or "dial" for n in names)


def _num(value: float | None) -> float:
    return math.nan if value is None else float(value)


def event_type(event: Event) -> str:
    """The event's class name (``Event.kind``)."""
    return event.kind


def marker_json(event: Event) -> str:
    """An event as one compact JSON line (the ``Markers`` sample): ``{"event", "t_s", ...its fields}``."""
    return marker_text(event_type(event), event.t_s, event.payload())


def marker_text(event: str, t_s: float, payload: Mapping[str, object]) -> str:
    return json.dumps({"event": event, "t_s": round(t_s, 6), **payload}, separators=(",", ":"), default=str,
                      ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Samples:
    """Samples of one stream: ``values`` is (n, channels) numbers, or a list of string rows for Markers."""

    key: str
    timestamps_s: np.ndarray
    values: object


def samples_of(item: object, dial_names: Sequence[str]) -> Samples | None:
    """The samples one live-session item contributes, or ``None`` (raw BLE notifications, link records: the
    runtime reports those as events, and RR comes from the pipeline's beats)."""
    from biofeedback.records import EcgChunk

    record = getattr(item, "record", None)
    if isinstance(record, EcgChunk):
        n = len(record.ecg_uv)
        if n == 0 or not record.fs_hz > 0:
            return None
        stamps = record.t_s - (np.arange(n)[::-1] / record.fs_hz)
        return Samples(ECG, stamps, np.asarray(record.ecg_uv, dtype=np.float32).reshape(n, 1))
    if not isinstance(item, Event):
        return None
    stamp = np.array([item.t_s])
    match item:
        case BeatRecorded():
            row = [item.rr_ms, item.nn_ms, float(item.artifact), float(item.gap_before)]
            return Samples(RR, stamp, np.array([row], dtype=np.float64))
        case HeartSampled():
            row = [_num(item.hr_bpm), _num(item.arousal), _num(item.rmssd_ms), float(item.quality), float(item.stale)]
            return Samples(HR, stamp, np.array([row], dtype=np.float64))
        case ExposureSampled():
            row = [float(item.level), float(item.intensity), float(PHASE_CODES[item.phase.value]),
                   float(item.safe_place)] + shown_dials(item.environment, item.level, item.intensity, item.dials,
                                                         dial_names)
            return Samples(EXPOSURE, stamp, np.array([row], dtype=np.float64))
    return Samples(MARKERS, stamp, [[marker_json(item)]])


def sensor_ecg_rate_hz(sensor: object) -> float | None:
    """The ECG rate a sensor will deliver, when it says so before its first chunk (``None``: unknown, e.g. an
    RR-only strap; the ECG stream then starts with the first chunk, if one comes)."""
    for attr in ("ecg_fs_hz", "fs_hz"):
        value = getattr(sensor, attr, None)
        if isinstance(value, int | float) and value > 0 and getattr(sensor, "kind", "ecg") in ("ecg", "polar"):
            return float(value)
    recording = getattr(sensor, "recording", None)
    if recording is not None and getattr(recording, "kind", None) == "ecg":
        return float(recording.fs_hz)
    return None
