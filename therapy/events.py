"""Session events and the one bus they travel on.

Everything that happens in a session is an immutable event with a session-clock
timestamp ``t_s``. Subscribers (the session store, the progress view, later the
LSL marker outlet, the XDF writer and the console) receive every event in order,
on the runtime's asyncio thread; a subscriber that fails is logged and dropped
from that delivery, never allowed to break the session.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields

log = logging.getLogger(__name__)


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

    @property
    def kind(self) -> str:
        return type(self).__name__

    def payload(self) -> dict[str, object]:
        """Fields other than ``t_s`` as JSON-ready values (enums by value)."""
        out: dict[str, object] = {}
        for f in fields(self):
            if f.name == "t_s":
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
class SessionEnded(Event):
    status: EndStatus
    reason: str


Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out of events to subscribers, in publication order."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> None:
        self._subscribers.append(fn)

    def publish(self, event: Event) -> None:
        for fn in self._subscribers:
            try:
                fn(event)
            except Exception:  # a broken subscriber must not break the session
                log.exception("event subscriber %r failed on %s", fn, event.kind)
