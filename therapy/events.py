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
    BREATHING = "breathing"  # paced breathing with HRV biofeedback (or the resonance-rate assessment)
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


#: Why a SUDS rating was asked: ``anticipated`` (before a level is shown, an expectancy rating), ``entry`` (on
#: reaching a level), ``during`` (the protocol's timer), ``before_step_up``, ``therapist`` (asked from the console),
#: ``end`` (at the end of exposure); ``unprompted`` for a rating entered without a prompt.
SUDS_KINDS = ("anticipated", "entry", "during", "before_step_up", "therapist", "end", "unprompted")


@dataclass(frozen=True, slots=True)
class SudsPrompted(Event):
    level: int
    suds_kind: str = "during"  # one of SUDS_KINDS (not ``kind``: that is every event's class name)
    question: str = ""


@dataclass(frozen=True, slots=True)
class SudsRecorded(Event):
    value: int
    level: int
    phase: str
    source: str
    suds_kind: str = "during"


@dataclass(frozen=True, slots=True)
class SudsMissed(Event):
    """A prompt that got no answer in time: recorded as missed, never guessed."""

    level: int
    suds_kind: str = "during"


@dataclass(frozen=True, slots=True)
class LevelSuds(Event):
    """The SUDS story of one visit to a level, published when the patient leaves it."""

    level: int
    anticipated: int | None
    first: int | None
    peak: int | None
    end: int | None  # the last rating given at the level
    ratings: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class StepUpOffered(Event):
    """A ready step up waiting for the therapist (``step_up = "confirm"``)."""

    from_level: int
    to_level: int
    expires_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class StepUpResolved(Event):
    """What became of an offered step up: ``accepted``, ``declined``, ``expired`` or ``withdrawn``."""

    to_level: int
    outcome: str
    who: str
    reason: str


@dataclass(frozen=True, slots=True)
class TherapistDecision(Event):
    """A recorded clinical decision that lowers a safety default (e.g. exposure without heart data)."""

    decision: str
    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class NoteAdded(Event):
    source: str
    text: str


@dataclass(frozen=True, slots=True)
class DialChanged(Event):
    """A therapist's dial override (``value`` None: back to the level's own setting)."""

    name: str
    value: float | None
    pinned: bool
    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class BreathingSampled(Event):
    """Paced breathing with HRV biofeedback, once a second: the pacer and the measured heart response."""

    breaths_per_min: float
    swing_bpm: float | None  # mean peak-to-trough HR per breath cycle
    lf_power_ms2: float | None
    coherence: float | None
    calm: float  # 0..1, drives the scene's calm-response dial


@dataclass(frozen=True, slots=True)
class ResonanceAssessed(Event):
    """The resonance-frequency assessment's choice, explained."""

    breaths_per_min: float | None
    explanation: str
    per_rate: tuple[tuple[float, float | None, float | None], ...]  # (rate, swing_bpm, lf_power_ms2)


@dataclass(frozen=True, slots=True)
class SafetyAlert(Event):
    code: str
    message: str
    action: str  # what was done: "veto_step_up", "safe_place", "alert", "lower_max_level", "hold"
    severity: str = "warning"  # "info" | "warning" | "critical" (a louder alert on the console)


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
