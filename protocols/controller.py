"""Adaptive exposure controllers: heart state and SUDS in, a decision with its reason in words out.

The controller only *recommends*; the therapy runtime applies a decision (after
the therapist confirms a step up when the protocol says ``step_up = "confirm"``),
and the safety supervisor can veto it. Every decision carries a sentence a
therapist can read on the console and a researcher can find in the record, and
that sentence names every criterion the rule uses and its measured state.

The runtime calls, per session:

* ``on_level_changed(t_s, level)`` after every level change (any cause);
* ``on_suds(t_s, value, level)`` for every SUDS rating of distress *now* at a level
  (on entry, timed, before a step up, asked by the therapist); not the
  anticipated (expectancy) rating before a level, which is a prediction, and
  not a missed prompt (never guessed);
* ``decide(t_s, heart, level, max_level)`` each tick of exposure.

Safety step-downs (a SUDS at or above ``suds_step_down_min``, sustained high
arousal) come out of every controller, manual included: the therapist steers
upwards, but a patient's distress is answered at once.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Literal, Protocol

from biofeedback.records import HeartState
from protocols.model import ControllerSpec, ProtocolSpec, StepUpRule

log = logging.getLogger(__name__)

#: ``set`` moves the continuous exposure to ``Decision.target_level`` (target_band); a runtime that does
#: not know it treats it as ``hold``, which is safe.
Action = Literal["hold", "up", "down", "set"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with the exposure level now, and why (a sentence for the therapist)."""

    action: Action
    reason: str
    code: str  # short stable key for reports and tests, e.g. "habituated", "arousal_high", "stale"
    target_level: float | None = None  # continuous level (level + intensity 0..1); target_band only


class ExposureController(Protocol):
    """Recommends level changes from the heart state and SUDS; one instance per session."""

    def on_level_changed(self, t_s: float, level: int) -> None: ...

    def on_suds(self, t_s: float, value: int, level: int) -> None: ...

    def decide(self, t_s: float, heart: HeartState, level: int, max_level: int) -> Decision: ...


# -- shared state -----------------------------------------------------------------------------------


class SudsAtLevel:
    """SUDS ratings at the level now shown: the first, the peak and the latest.

    Ratings given at another level (e.g. answered just after a step) are ignored:
    a rating belongs to the level the patient was looking at when answering.
    """

    def __init__(self) -> None:
        self.level: int | None = None
        self.first: int | None = None
        self.peak: int | None = None
        self.latest: int | None = None
        self.latest_t_s: float | None = None

    def reset(self, level: int) -> None:
        self.level = level
        self.first = self.peak = self.latest = None
        self.latest_t_s = None

    def add(self, t_s: float, value: int, level: int) -> None:
        if not 0 <= value <= 100:
            raise ValueError(f"SUDS {value!r} is outside 0..100")
        if self.level is None:
            self.reset(level)
        if level != self.level:
            log.debug("SUDS %s given for level %s while level %s is shown: not used", value, level, self.level)
            return
        self.first = value if self.first is None else self.first
        self.peak = value if self.peak is None else max(self.peak, value)
        self.latest = value
        self.latest_t_s = t_s


class ArousalWindow:
    """Arousal (baseline SDs) averaged over the last ``window_s`` seconds, and for how long it has been low or high.

    Decisions use the average because the heart state's own HR keeps respiratory
    sinus arrhythmia (as biofeedback needs), which would otherwise make every
    threshold crossing a breathing artefact.
    """

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._recent: deque[tuple[float, float]] = deque()
        self._sum = 0.0
        self.mean: float | None = None

    def add(self, t_s: float, z: float) -> float:
        self._recent.append((t_s, z))
        self._sum += z
        while self._recent and self._recent[0][0] < t_s - self._window_s:
            self._sum -= self._recent.popleft()[1]
        self.mean = self._sum / len(self._recent)
        return self.mean

    def clear(self) -> None:
        self._recent.clear()
        self._sum = 0.0
        self.mean = None


class _Since:
    """When a condition became (and has stayed) true."""

    def __init__(self) -> None:
        self.t_s: float | None = None

    def update(self, t_s: float, condition: bool) -> float | None:
        """Seconds the condition has held, or None when it does not hold now."""
        if not condition:
            self.t_s = None
            return None
        if self.t_s is None:
            self.t_s = t_s
        return t_s - self.t_s

    def clear(self) -> None:
        self.t_s = None


def _heart_unusable(heart: HeartState, spec: ControllerSpec, level: int) -> Decision | None:
    """Why the heart state cannot be used now, naming the actual cause (no data, no baseline, poor quality)."""
    if heart.stale or heart.hr_bpm is None:
        return Decision("hold", f"holding level {level}: no fresh heart data (never step up on stale data)", "stale")
    if heart.arousal is None or heart.baseline_hr_bpm is None:
        return Decision(
            "hold",
            f"holding level {level}: no baseline yet (HR {heart.hr_bpm:.0f} bpm now, but arousal needs a resting baseline)",
            "no_baseline",
        )
    if heart.quality < spec.min_quality:
        return Decision(
            "hold",
            f"holding level {level}: heart signal quality {heart.quality:.2f} is below {spec.min_quality:.2f} "
            f"({heart.artifact_rate:.0%} artefacts)",
            "low_quality",
        )
    return None


def _suds_step_down(suds: SudsAtLevel, spec: ControllerSpec, level: int, lowest: float = 0) -> Decision | None:
    """A rating at or above ``suds_step_down_min`` steps down at once, whatever else is true."""
    if suds.latest is None or suds.latest < spec.suds_step_down_min:
        return None
    if level <= lowest:
        return Decision(
            "hold",
            f"SUDS {suds.latest} at level {level} (>= {spec.suds_step_down_min}) and this is the lowest level: "
            "consider the safe place",
            "suds_high_at_lowest",
        )
    return Decision(
        "down",
        f"SUDS {suds.latest} at level {level} (step down at >= {spec.suds_step_down_min}): "
        f"distress too high, stepping down to level {level - 1} at once",
        "suds_high",
    )


# -- controllers ------------------------------------------------------------------------------------


class ManualController:
    """Never steps up by itself: the therapist steers upwards.

    With a spec it still answers distress at once: a SUDS at or above
    ``suds_step_down_min`` or sustained arousal at or above ``step_down_above_z``
    steps down (the same safety step-downs every controller makes).
    """

    def __init__(self, spec: ControllerSpec | None = None) -> None:
        self._spec = spec
        self._suds = SudsAtLevel()
        self._window = ArousalWindow(spec.arousal_window_s) if spec else None
        self._high = _Since()
        self._level_since_s: float | None = None

    def on_level_changed(self, t_s: float, level: int) -> None:
        self._suds.reset(level)
        self._high.clear()
        self._level_since_s = t_s

    def on_suds(self, t_s: float, value: int, level: int) -> None:
        self._suds.add(t_s, value, level)

    def decide(self, t_s: float, heart: HeartState, level: int, max_level: int) -> Decision:
        hold = Decision("hold", f"manual protocol: level {level} stays until the therapist changes it", "manual")
        spec = self._spec
        if spec is None or self._window is None:
            return hold
        if self._level_since_s is None:
            self.on_level_changed(t_s, level)
        if (down := _suds_step_down(self._suds, spec, level)) is not None:
            return down
        if _heart_unusable(heart, spec, level) is not None:
            self._window.clear()
            self._high.clear()
            return hold
        z = self._window.add(t_s, heart.arousal)
        high_s = self._high.update(t_s, z >= spec.step_down_above_z)
        held_s = t_s - (self._level_since_s if self._level_since_s is not None else t_s)
        if high_s is not None and high_s >= spec.step_down_sustain_s and held_s >= spec.step_down_settle_s and level > 0:
            return Decision(
                "down",
                f"arousal {z:+.1f} SD ({spec.arousal_window_s:.0f}-s mean) has stayed at or above "
                f"{spec.step_down_above_z:.1f} SD for {high_s:.0f} s: arousal too high, stepping down to level {level - 1}",
                "arousal_high",
            )
        return hold


class ArousalHabituationController:
    """Climb when the protocol's step-up rule is met at a level, step back when distress is too high.

    * up (``step_up_rule``): ``hr`` - arousal has stayed at or below
      ``step_up_below_z`` for ``step_up_sustain_s`` (within-session habituation
      of the body); ``suds`` - the latest SUDS at this level fell at least
      ``suds_drop_fraction`` below the peak at this level, or is at or below
      ``suds_ready_max`` (the classic "half the peak" rule); ``suds_and_hr``
      both; ``suds_or_hr`` either. Always after ``min_hold_s`` at the level, on
      fresh, good-quality heart data, and never into a level left downwards less
      than ``reenter_block_s`` ago (hysteresis against 3-4-3-4 cycling).
    * down, at once: a SUDS at or above ``suds_step_down_min``; or arousal at
      or above ``step_down_above_z`` for ``step_down_sustain_s``, at least
      ``step_down_settle_s`` after the last level change (the heart needs time to
      answer the previous step, or one spike would cascade down the hierarchy).
    * otherwise hold, saying what it is waiting for.
    """

    def __init__(self, spec: ControllerSpec, *, min_hold_s: float, step_up_rule: StepUpRule | None = None) -> None:
        self._spec = spec
        self._rule: StepUpRule = step_up_rule or spec.step_up_rule
        self._min_hold_s = min_hold_s
        self._level: int | None = None
        self._level_since_s: float | None = None
        self._window = ArousalWindow(spec.arousal_window_s)
        self._calm = _Since()
        self._high = _Since()
        self._suds = SudsAtLevel()
        self._left_down_at_s: dict[int, float] = {}

    @property
    def step_up_rule(self) -> StepUpRule:
        return self._rule

    def on_level_changed(self, t_s: float, level: int) -> None:
        if self._level is not None and level < self._level:
            for left in range(level + 1, self._level + 1):
                self._left_down_at_s[left] = t_s
        self._level = level
        self._level_since_s = t_s
        self._calm.clear()
        self._high.clear()
        self._suds.reset(level)

    def on_suds(self, t_s: float, value: int, level: int) -> None:
        self._suds.add(t_s, value, level)

    # -- criteria --------------------------------------------------------------------------------

    def _suds_criterion(self) -> tuple[bool, str]:
        spec, s = self._spec, self._suds
        if s.latest is None or s.peak is None:
            return False, f"no SUDS rating at this level yet (needs -{spec.suds_drop_fraction:.0%} from its peak)"
        if s.peak > 0:
            change = (s.latest - s.peak) / s.peak
            text = f"SUDS {s.peak} -> {s.latest} ({change * 100:+.0f} %, needs -{spec.suds_drop_fraction * 100:.0f} %"
        else:
            change = 0.0
            text = f"SUDS {s.peak} -> {s.latest} (needs -{spec.suds_drop_fraction * 100:.0f} %"
        text += f" or <= {spec.suds_ready_max})"
        dropped = s.peak > 0 and -change >= spec.suds_drop_fraction - 1e-9
        return dropped or s.latest <= spec.suds_ready_max, text

    def _hr_criterion(self, z: float, calm_s: float | None) -> tuple[bool, str]:
        spec = self._spec
        held = f"for {calm_s:.0f} s" if calm_s is not None else "not yet settled"
        text = (
            f"arousal {z:+.1f} SD ({spec.arousal_window_s:.0f}-s mean) {held} "
            f"(needs <= {spec.step_up_below_z:.1f} SD for {spec.step_up_sustain_s:.0f} s)"
        )
        return calm_s is not None and calm_s >= spec.step_up_sustain_s, text

    # -- decision --------------------------------------------------------------------------------

    def decide(self, t_s: float, heart: HeartState, level: int, max_level: int) -> Decision:
        spec = self._spec
        if self._level_since_s is None or self._level != level:
            self.on_level_changed(t_s, level)
        held_s = t_s - (self._level_since_s if self._level_since_s is not None else t_s)
        if (down := _suds_step_down(self._suds, spec, level)) is not None:
            return down
        if (unusable := _heart_unusable(heart, spec, level)) is not None:
            self._window.clear()
            self._calm.clear()
            self._high.clear()
            return unusable
        z = self._window.add(t_s, heart.arousal)
        arousal_text = f"arousal {z:+.1f} SD ({spec.arousal_window_s:.0f}-s mean; resting HR {heart.baseline_hr_bpm:.0f} bpm)"

        high_s = self._high.update(t_s, z >= spec.step_down_above_z)
        if high_s is not None:
            self._calm.clear()
            if held_s < spec.step_down_settle_s:
                return Decision(
                    "hold",
                    f"{arousal_text}: high {held_s:.0f} s after the change to level {level}, "
                    f"giving it {spec.step_down_settle_s:.0f} s to settle",
                    "arousal_settling",
                )
            if high_s >= spec.step_down_sustain_s and level > 0:
                return Decision(
                    "down",
                    f"{arousal_text} has stayed at or above {spec.step_down_above_z:.1f} SD for {high_s:.0f} s: "
                    f"arousal too high, stepping down to level {level - 1}",
                    "arousal_high",
                )
            return Decision("hold", f"{arousal_text}: high for {high_s:.0f} s, watching", "arousal_rising")

        calm_s = self._calm.update(t_s, z <= spec.step_up_below_z)
        hr_ok, hr_text = self._hr_criterion(z, calm_s)
        suds_ok, suds_text = self._suds_criterion()
        if self._rule == "hr":
            ready, texts = hr_ok, [hr_text]
        elif self._rule == "suds":
            ready, texts = suds_ok, [suds_text]
        elif self._rule == "suds_and_hr":
            ready, texts = hr_ok and suds_ok, [suds_text, hr_text]
        else:
            ready, texts = hr_ok or suds_ok, [suds_text, hr_text]
        criteria = "; ".join(texts)
        if level >= max_level:
            return Decision("hold", f"{criteria}: at the top level {level}", "top_level")
        if held_s < self._min_hold_s:
            return Decision(
                "hold",
                f"{criteria}: holding level {level} for its minimum {self._min_hold_s:.0f} s ({held_s:.0f} s so far)",
                "min_hold",
            )
        if not ready:
            code = "settling" if calm_s is not None else "aroused"
            if self._rule != "hr" and (not suds_ok) and (hr_ok or self._rule == "suds"):
                code = "suds_high" if self._suds.latest is not None else "suds_missing"
            return Decision("hold", f"{criteria}: not ready to step up ({self._rule} rule)", code)
        left_at = self._left_down_at_s.get(level + 1)
        if left_at is not None and t_s - left_at < spec.reenter_block_s:
            return Decision(
                "hold",
                f"{criteria}: ready, but level {level + 1} was left downwards {t_s - left_at:.0f} s ago "
                f"(no re-entry within {spec.reenter_block_s:.0f} s)",
                "reenter_blocked",
            )
        return Decision("up", f"{criteria}: habituated, ready to step up to level {level + 1}", "habituated")


class TargetBandController:
    """Keeps arousal inside a band above baseline by moving the continuous exposure intensity.

    For patients who cannot rate SUDS reliably, and for research. The exposure
    is a float level (3.4 = level 3 at intensity 0.4). Each tick, with arousal
    averaged over ``arousal_window_s``:

    * below ``band_low_z`` the intensity rises, above ``band_high_z`` it falls,
      at ``gain_levels_per_min_per_z`` per SD outside the band, never faster than
      ``max_levels_per_min``;
    * hysteresis: once moving, it keeps moving until arousal is a quarter of the
      band inside it, so noise at an edge does not make it dither;
    * it never leaves the therapist's limits (``band_min_level``..``band_max_level``,
      changeable live with :meth:`set_limits`, and never above the session's max level);
    * a SUDS at or above ``suds_step_down_min`` or sustained arousal at or above
      ``step_down_above_z`` drops one whole level at once (safety, not rate-limited).

    Decisions have action ``set`` and the level in ``target_level``.
    """

    def __init__(self, spec: ControllerSpec, *, start_level: float, max_level: float | None = None) -> None:
        self._spec = spec
        self._min = spec.band_min_level
        top = spec.band_max_level if spec.band_max_level is not None else max_level
        self._max = float(top) if top is not None else math.inf
        self.level_f = min(max(float(start_level), self._min), self._max)
        self._window = ArousalWindow(spec.arousal_window_s)
        self._suds = SudsAtLevel()
        self._high = _Since()
        self._last_t_s: float | None = None
        self._moving = 0  # +1 rising, -1 falling, 0 holding
        self._hyst_z = 0.25 * (spec.band_high_z - spec.band_low_z)

    @property
    def limits(self) -> tuple[float, float]:
        return self._min, self._max

    def set_limits(self, min_level: float, max_level: float) -> None:
        """The therapist's live limits; the intensity is moved inside them at once."""
        if not 0 <= min_level <= max_level:
            raise ValueError(f"target band limits need 0 <= min_level <= max_level, got {min_level}, {max_level}")
        self._min, self._max = float(min_level), float(max_level)
        self.level_f = min(max(self.level_f, self._min), self._max)

    def on_level_changed(self, t_s: float, level: int) -> None:
        if math.floor(self.level_f + 1e-9) != level:  # someone else (the therapist) moved the level
            self.level_f = min(max(float(level), self._min), self._max)
        self._suds.reset(level)

    def on_suds(self, t_s: float, value: int, level: int) -> None:
        self._suds.add(t_s, value, level)

    def _set(self, action_code: str, reason: str) -> Decision:
        return Decision("set", f"{reason}; intensity {self.level_f:.2f}", action_code, target_level=self.level_f)

    def decide(self, t_s: float, heart: HeartState, level: int, max_level: int) -> Decision:
        spec = self._spec
        top = min(self._max, float(max_level))
        dt_s = 0.0 if self._last_t_s is None else max(0.0, t_s - self._last_t_s)
        self._last_t_s = t_s
        if self._suds.latest is not None and self._suds.latest >= spec.suds_step_down_min:
            self.level_f = max(self._min, self.level_f - 1.0)
            self._suds.reset(math.floor(self.level_f + 1e-9))
            self._moving = 0
            return self._set("suds_high", f"SUDS at or above {spec.suds_step_down_min}: one level down at once")
        if (unusable := _heart_unusable(heart, spec, level)) is not None:
            self._window.clear()
            self._high.clear()
            self._moving = 0
            return Decision("hold", unusable.reason, unusable.code, target_level=self.level_f)
        z = self._window.add(t_s, heart.arousal)
        text = f"arousal {z:+.1f} SD ({spec.arousal_window_s:.0f}-s mean; band {spec.band_low_z:g}..{spec.band_high_z:g} SD)"
        high_s = self._high.update(t_s, z >= spec.step_down_above_z)
        if high_s is not None and high_s >= spec.step_down_sustain_s:
            self.level_f = max(self._min, self.level_f - 1.0)
            self._high.clear()
            self._window.clear()
            self._moving = 0
            return self._set("arousal_high", f"{text} at or above {spec.step_down_above_z:.1f} SD for {high_s:.0f} s: "
                             "one level down at once")
        if z < spec.band_low_z:
            self._moving = 1
        elif z > spec.band_high_z:
            self._moving = -1
        elif self._moving == 1 and z >= spec.band_low_z + self._hyst_z:
            self._moving = 0
        elif self._moving == -1 and z <= spec.band_high_z - self._hyst_z:
            self._moving = 0
        if self._moving == 0:
            self.level_f = min(max(self.level_f, self._min), top)
            return self._set("in_band", f"{text}: inside the band, holding")
        target_z = spec.band_low_z + self._hyst_z if self._moving > 0 else spec.band_high_z - self._hyst_z
        rate = min(spec.max_levels_per_min, spec.gain_levels_per_min_per_z * abs(target_z - z))
        step = self._moving * rate * dt_s / 60.0
        new = min(max(self.level_f + step, self._min), top)
        limited = "" if new == self.level_f + step else f" (limit {self._min:g}..{top:g})"
        self.level_f = new
        verb = "raising" if self._moving > 0 else "lowering"
        return self._set(
            "below_band" if self._moving > 0 else "above_band",
            f"{text}: {verb} at {rate:.2f} levels/min (max {spec.max_levels_per_min:g}){limited}",
        )


def build_controller(protocol: ProtocolSpec, *, max_level: int) -> ExposureController:
    """The controller a protocol names, with every setting it declares (SUDS rules included).

    ``max_level`` is the session's top level (the environment's, or the protocol's ``max_level``).
    """
    spec = protocol.controller
    if spec.kind == "manual":
        return ManualController(spec)
    if spec.kind == "target_band":
        return TargetBandController(spec, start_level=protocol.exposure.start_level, max_level=max_level)
    return ArousalHabituationController(spec, min_hold_s=protocol.exposure.min_hold_s)


def make_controller(spec: ControllerSpec, *, min_hold_s: float) -> ExposureController:
    """Compatibility entry for a runtime that does not yet pass SUDS to the controller.

    It builds the arousal-only (``hr``) rule whatever ``step_up_rule`` says, because a
    SUDS rule never fed a rating would hold every level for ever. Use
    :func:`build_controller` and call ``on_suds`` instead.
    """
    if spec.kind == "manual":
        return ManualController()
    if spec.kind == "target_band":
        return TargetBandController(spec, start_level=0.0)
    if spec.step_up_rule != "hr":
        log.info("step_up_rule %r needs SUDS; this runtime does not pass SUDS yet, using the hr rule", spec.step_up_rule)
    return ArousalHabituationController(spec, min_hold_s=min_hold_s, step_up_rule="hr")
