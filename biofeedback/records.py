"""Immutable, timestamped records that flow from sensors through the pipeline.

Every timestamp ``t_s`` is on the session clock: ``pylsl.local_clock()`` seconds
for real sessions, the simulated clock's seconds in accelerated runs. Sensors
never hand out mutable state: one record is one observation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class HeartSample:
    """One heart-rate observation: a BLE notification or a simulated/replayed beat batch.

    ``t_s`` is the arrival time of the notification (BLE straps and the
    simulated strap, which sends ~1 Hz notifications like a real one) or the
    time of the last beat (replayed beat series). ``rr_ms`` holds the RR intervals carried, oldest first (may be
    empty). ``hr_bpm`` is the sensor's own averaged value, for display only: the
    pipeline computes HR from RR.
    """

    t_s: float
    rr_ms: tuple[float, ...]
    hr_bpm: float | None = None
    sensor_contact: bool | None = None
    source: str = ""


@dataclass(frozen=True, slots=True)
class EcgChunk:
    """A block of ECG samples in microvolts; ``t_s`` is the time of the *last* sample."""

    t_s: float
    fs_hz: float
    ecg_uv: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        arr = np.asarray(self.ecg_uv, dtype=np.float64)
        arr.setflags(write=False)
        object.__setattr__(self, "ecg_uv", arr)


class LinkState(enum.Enum):
    """Life cycle of a sensor link, reported as :class:`LinkEvent`."""

    SEARCHING = "searching"
    CONNECTED = "connected"
    LOST = "lost"
    RECONNECTED = "reconnected"
    GIVEN_UP = "given_up"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """A change of a sensor link's state, with a human-readable detail."""

    t_s: float
    state: LinkState
    detail: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class PayloadError:
    """A payload the sensor could not parse; counted and logged, never fatal."""

    t_s: float
    payload_hex: str
    problem: str
    source: str = ""


SensorRecord = HeartSample | EcgChunk | LinkEvent | PayloadError


@dataclass(frozen=True, slots=True)
class HeartState:
    """What the pipeline knows about the heart at ``t_s``: the input of every controller.

    ``arousal`` is HR relative to the resting baseline as a z-score
    ((hr - baseline mean) / baseline SD, SD floored at 2 bpm); ``None`` until a
    baseline exists. ``quality`` is 0..1 (1 = clean, recent, in contact).
    ``stale`` is true when no valid beat arrived within the staleness window;
    nothing may step exposure up on stale data.
    """

    t_s: float
    hr_bpm: float | None
    last_nn_ms: float | None
    rmssd_ms: float | None
    sdnn_ms: float | None
    arousal: float | None
    baseline_hr_bpm: float | None
    quality: float
    artifact_rate: float
    stale: bool
    beats: int
