"""Adaptive exposure controllers: heart state in, a decision with its reason in words out.

The controller only *recommends*; the therapy runtime applies a decision, and
the safety supervisor can veto it. Every decision carries a sentence a
therapist can read on the console and a researcher can find in the record.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Literal, Protocol

from biofeedback.records import HeartState
from protocols.model import ControllerSpec

log = logging.getLogger(__name__)

Action = Literal["hold", "up", "down"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with the exposure level now, and why (a sentence for the therapist)."""

    action: Action
    reason: str
    code: str  # short stable key for reports and tests, e.g. "habituated", "arousal_high", "stale"


class ExposureController(Protocol):
    """Recommends level changes from the heart state; one instance per session."""

    def on_level_changed(self, t_s: float, level: int) -> None: ...

    def decide(self, t_s: float, heart: HeartState, level: int, max_level: int) -> Decision: ...


class ManualController:
    """Never moves the level by itself: the therapist steers everything."""

    def on_level_changed(self, t_s: float, level: int) -> None:
        return None

    def decide(self, t_s: float, heart: HeartState, level: int, max_level: int) -> Decision:
        return Decision("hold", f"manual protocol: level {level} stays until the therapist changes it", "manual")


class ArousalHabituationController:
    """Climb when arousal has settled at a level, step back when it is too high.

    * up: the level has been held for ``min_hold_s``, and HR arousal has stayed
      at or below ``step_up_below_z`` baseline SDs for ``step_up_sustain_s``
      (within-session habituation), on fresh, good-quality data only;
    * down: arousal has stayed at or above ``step_down_above_z`` for
      ``step_down_sustain_s``, at least ``step_down_settle_s`` after the last
      level change (the heart needs time to answer the previous step, or one
      spike would cascade down the whole hierarchy);
    * otherwise hold, saying what it is waiting for.

    Decisions use arousal averaged over ``arousal_window_s``: the heart state's
    own HR keeps respiratory sinus arrhythmia (as biofeedback needs), which
    would otherwise make every threshold crossing a breathing artefact.
    """

    def __init__(self, spec: ControllerSpec, *, min_hold_s: float) -> None:
        self._spec = spec
        self._min_hold_s = min_hold_s
        self._level_since_s: float | None = None
        self._calm_since_s: float | None = None
        self._high_since_s: float | None = None
        self._peak_z = float("-inf")
        self._recent: deque[tuple[float, float]] = deque()
        self._recent_sum = 0.0

    def _mean_arousal(self, t_s: float, z: float) -> float:
        self._recent.append((t_s, z))
        self._recent_sum += z
        while self._recent and self._recent[0][0] < t_s - self._spec.arousal_window_s:
            self._recent_sum -= self._recent.popleft()[1]
        return self._recent_sum / len(self._recent)

    def _forget_arousal(self) -> None:
        self._recent.clear()
        self._recent_sum = 0.0
        self._calm_since_s = self._high_since_s = None

    def on_level_changed(self, t_s: float, level: int) -> None:
        self._level_since_s = t_s
        self._calm_since_s = None
        self._high_since_s = None
        self._peak_z = float("-inf")

    def decide(self, t_s: float, heart: HeartState, level: int, max_level: int) -> Decision:
        spec = self._spec
        if self._level_since_s is None:
            self.on_level_changed(t_s, level)
        held_s = t_s - (self._level_since_s or t_s)
        if heart.stale or heart.arousal is None or heart.hr_bpm is None:
            self._forget_arousal()
            return Decision("hold", f"holding level {level}: no fresh heart data (never step up on stale data)", "stale")
        if heart.quality < spec.min_quality:
            self._forget_arousal()
            return Decision(
                "hold",
                f"holding level {level}: heart signal quality {heart.quality:.2f} is below {spec.min_quality:.2f} "
                f"({heart.artifact_rate:.0%} artefacts)",
                "low_quality",
            )
        z = self._mean_arousal(t_s, heart.arousal)
        self._peak_z = max(self._peak_z, z)
        hr_text = (
            f"HR {heart.hr_bpm:.0f} bpm (arousal {z:+.1f} SD over {spec.arousal_window_s:.0f} s, "
            f"resting {heart.baseline_hr_bpm or 0:.0f} bpm)"
        )

        if z >= spec.step_down_above_z:
            self._high_since_s = self._high_since_s if self._high_since_s is not None else t_s
            self._calm_since_s = None
            high_s = t_s - self._high_since_s
            if held_s < spec.step_down_settle_s:
                return Decision(
                    "hold",
                    f"{hr_text}: high arousal {held_s:.0f} s after the change to level {level}, "
                    f"giving it {spec.step_down_settle_s:.0f} s to settle",
                    "arousal_settling",
                )
            if high_s >= spec.step_down_sustain_s and level > 0:
                return Decision(
                    "down",
                    f"{hr_text} has stayed above {spec.step_down_above_z:.1f} SD for {high_s:.0f} s: "
                    f"arousal too high, stepping down to level {level - 1}",
                    "arousal_high",
                )
            return Decision("hold", f"{hr_text}: high arousal for {high_s:.0f} s, watching", "arousal_rising")
        self._high_since_s = None

        if z <= spec.step_up_below_z:
            self._calm_since_s = self._calm_since_s if self._calm_since_s is not None else t_s
            calm_s = t_s - self._calm_since_s
            if level >= max_level:
                return Decision("hold", f"{hr_text}: settled at the top level {level}", "top_level")
            if held_s < self._min_hold_s:
                return Decision(
                    "hold",
                    f"{hr_text}: settled, holding level {level} for its minimum "
                    f"{self._min_hold_s:.0f} s ({held_s:.0f} s so far)",
                    "min_hold",
                )
            if calm_s >= spec.step_up_sustain_s:
                peak = f"; peak at this level {self._peak_z:+.1f} SD" if self._peak_z > z else ""
                return Decision(
                    "up",
                    f"{hr_text} has stayed below {spec.step_up_below_z:.1f} SD for {calm_s:.0f} s after "
                    f"{held_s:.0f} s at level {level}{peak}: habituated, stepping up to level {level + 1}",
                    "habituated",
                )
            return Decision("hold", f"{hr_text}: settling ({calm_s:.0f} of {spec.step_up_sustain_s:.0f} s)", "settling")

        self._calm_since_s = None
        return Decision(
            "hold",
            f"{hr_text}: still aroused at level {level}, waiting for it to fall below {spec.step_up_below_z:.1f} SD",
            "aroused",
        )


def make_controller(spec: ControllerSpec, *, min_hold_s: float) -> ExposureController:
    """The controller a protocol names."""
    if spec.kind == "manual":
        return ManualController()
    return ArousalHabituationController(spec, min_hold_s=min_hold_s)
