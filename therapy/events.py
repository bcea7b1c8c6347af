"""Session events: everything that happens in a session, as immutable records.

Every event has a session-clock timestamp ``t_s`` and, once published through
the :class:`~therapy.live.LiveSession`, the session's id. Observers (the store,
the progress view, the console, LSL outlets, the XDF writer) receive them in
publication order through the live session, each on its own thread.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields


class Phase(enum.Enum):
    """Where a session is in its protocol."""

    STARTING = "starting"
    BASELINE = "baseline"
    EXPOSURE = "exposure"
    SAFE_PLACE = "safe_place"  # exposure paused: the patient or therapist asked for the safe place
    RECOVERY = "recovery"
    ENDED = "ended"


class EndStatus(enum.Enum):
    COMPLETED = "completed"
    STOPPED = "stopped"  # the therapist (or patient) ended the session early
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM / window closed
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every session event."""

    t_s: float
    #: set by the live session when the event is published (events are built without it)
    session_id: str = field(default="", kw_only=True)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def payload(self) -> dict[str, object]:
        """Fields other than ``t_s`` and ``session_id`` as JSON-ready values (enums by value)."""
        out: dict[str, object] = {}
        for f in fields(self):
            if f.name in ("t_s", "session_id"):
                continue
            value = getattr(self, f.name)
            out[f.name] = value.value if isinstance(value, enum.Enum) else value
        return out


@dataclass(frozen=True, slots=True)
class PhaseChanged(Event):
    phase: Phase
    previous: Phase
    reason: str


@dataclass(frozen=True, slots=True)
class LevelChanged(Event):
    environment: str
    level: int
    previous: int | None
    cause: str  # "protocol" | "controller" | "therapist" | "safety"
    reason: str
    step: int | None = None  # position in this session's hierarchy (``level`` is the environment's level)


@dataclass(frozen=True, slots=True)
class Recommendation(Event):
    """A controller decision (also the holds, when their reason changes)."""

    action: str
    code: str
    reason: str
    level: int


@dataclass(frozen=True, slots=True)
class HeartSampled(Event):
    """The pipeline's heart state, once a second: the record's HR series."""

    hr_bpm: float | None
    arousal: float | None
    rmssd_ms: float | None
    quality: float
    stale: bool


@dataclass(frozen=True, slots=True)
class ExposureSampled(Event):
    """What the patient was shown, once a second beside :class:`HeartSampled`: the exposure-state series."""

    environment: str
    level: int
    intensity: float
    phase: Phase
    safe_place: bool
    dials: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class BeatRecorded(Event):
    rr_ms: float
    nn_ms: float
    artifact: bool
    gap_before: bool


@dataclass(frozen=True, slots=True)
class BaselineMeasured(Event):
    hr_mean_bpm: float
    hr_sd_bpm: float
    rmssd_ms: float | None
    beats: int


@dataclass(frozen=True, slots=True)
class SudsPrompted(Event):
    level: int


@dataclass(frozen=True, slots=True)
class SudsRecorded(Event):
    value: int
    level: int
    phase: str
    source: str


@dataclass(frozen=True, slots=True)
class SudsMissed(Event):
    level: int


@dataclass(frozen=True, slots=True)
class SafetyAlert(Event):
    code: str
    message: str
    action: str  # what the supervisor did: "veto_step_up", "safe_place", "alert"


@dataclass(frozen=True, slots=True)
class SensorEvent(Event):
    """A sensor link change or a malformed payload, as seen by the runtime."""

    state: str
    detail: str


@dataclass(frozen=True, slots=True)
class LoopLagged(Event):
    """The session loop fell behind its clock (a busy CPU): reported, never decided on.

    On a paced clock (simulated sensors) the session slows down instead of skipping, so every decision is the
    one an idle machine makes; on the real clock, missed ticks are skipped after the sensor records queued
    meanwhile have reached the pipeline. ``lag_s`` is in session seconds; ``0`` when it has recovered.
    """

    lag_s: float
    detail: str


@dataclass(frozen=True, slots=True)
class SessionEnded(Event):
    status: EndStatus
    reason: str
