"""The terminal view of a running session: phase, level, HR, elapsed and remaining time.

On a terminal it is a live ``rich`` panel; when output is a file or a pipe (CI,
logs) it prints one plain line per phase or level change instead, so logs stay
readable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from therapy.events import (
    BaselineMeasured,
    Event,
    HeartSampled,
    LevelChanged,
    LoopLagged,
    Phase,
    PhaseChanged,
    SafetyAlert,
    SessionEnded,
    SudsRecorded,
)

log = logging.getLogger(__name__)


def _mmss(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


@dataclass
class SessionTally:
    """What the view (and the end summary) knows, built from events alone."""

    t0_s: float
    total_s: float
    phase: Phase = Phase.STARTING
    level: int | None = None
    hr_bpm: float | None = None
    arousal: float | None = None
    quality: float = 0.0
    stale: bool = True
    now_s: float = 0.0
    baseline_hr_bpm: float | None = None
    last_reason: str = ""
    last_suds: int | None = None
    levels_reached: set[int] = field(default_factory=set)
    steps_down_arousal: int = 0
    suds_count: int = 0
    alerts: int = 0
    end_status: str | None = None
    end_reason: str = ""

    def on_event(self, event: Event) -> None:
        self.now_s = max(self.now_s, event.t_s)
        match event:
            case PhaseChanged():
                self.phase = event.phase
                self.last_reason = event.reason
            case LevelChanged():
                if event.previous is not None and event.level < event.previous and event.cause == "controller":
                    self.steps_down_arousal += 1
                self.level = event.level
                self.levels_reached.add(event.level)
                self.last_reason = event.reason
            case HeartSampled():
                self.hr_bpm, self.arousal, self.quality, self.stale = (
                    event.hr_bpm,
                    event.arousal,
                    event.quality,
                    event.stale,
                )
            case BaselineMeasured():
                self.baseline_hr_bpm = event.hr_mean_bpm
            case SudsRecorded():
                self.suds_count += 1
                self.last_suds = event.value
            case SafetyAlert():
                self.alerts += 1
                self.last_reason = event.message
            case SessionEnded():
                self.end_status = event.status.value
                self.end_reason = event.reason

    @property
    def max_level(self) -> int | None:
        return max(self.levels_reached, default=None)

    @property
    def elapsed_s(self) -> float:
        return self.now_s - self.t0_s

    def table(self) -> Table:
        t = Table(title="vrex session", show_header=False, expand=False, min_width=60)
        t.add_column(style="bold")
        t.add_column()
        hr = "--" if self.hr_bpm is None or self.stale else f"{self.hr_bpm:.0f} bpm"
        z = "" if self.arousal is None or self.stale else f"  ({self.arousal:+.1f} SD)"
        t.add_row("phase", self.phase.value)
        t.add_row("level", "--" if self.level is None else f"{self.level} (max reached {self.max_level})")
        t.add_row("heart", f"{hr}{z}  quality {self.quality:.2f}")
        t.add_row("time", f"{_mmss(self.elapsed_s)} elapsed, {_mmss(self.total_s - self.elapsed_s)} remaining")
        t.add_row("SUDS", "--" if self.last_suds is None else str(self.last_suds))
        t.add_row("last", self.last_reason[:110])
        return t

    def line(self, event: Event) -> str | None:
        """A plain log line for the events worth one (non-terminal output)."""
        stamp = _mmss(event.t_s - self.t0_s)
        match event:
            case PhaseChanged():
                return f"[{stamp}] phase {event.phase.value}: {event.reason}"
            case LevelChanged():
                return f"[{stamp}] level {event.level} ({event.cause}): {event.reason}"
            case SafetyAlert():
                return f"[{stamp}] SAFETY {event.code}: {event.message}"
            case LoopLagged():
                return f"[{stamp}] {event.detail}"
            case SessionEnded():
                return f"[{stamp}] session {event.status.value}: {event.reason}"
        return None


class ProgressPrinter:
    """Prints :meth:`SessionTally.line` for each event when the output is not a terminal."""

    def __init__(self, tally: SessionTally, console: Console) -> None:
        self._tally = tally
        self._console = console

    def on_event(self, event: Event) -> None:
        line = self._tally.line(event)
        if line is not None:
            self._console.print(line, markup=False, highlight=False, soft_wrap=True)

