"""Each controller's decisions exactly: action, the therapist's sentence and the code, at every boundary.

The sentences are what a therapist reads on the console and a researcher finds
in the record, so they are checked word for word. Arousal windows are 0 s
(the decision sees each tick's arousal) unless a test is about the window.
"""

from __future__ import annotations

import logging
import math

import pytest

from biofeedback.records import HeartState
from protocols.controller import (
    ArousalHabituationController,
    ArousalWindow,
    Decision,
    ManualController,
    SudsAtLevel,
    TargetBandController,
    build_controller,
    make_controller,
)
from protocols.model import ControllerSpec, load_protocol

REST = 62.0


def heart(t_s: float, z: float | None = 0.5, *, stale: bool = False, hr: float | None = -1.0,
          baseline: float | None = REST, quality: float = 1.0, artifact_rate: float = 0.0) -> HeartState:
    hr_bpm = (REST + 4.0 * (z or 0.0)) if hr == -1.0 else hr
    return HeartState(t_s=t_s, hr_bpm=hr_bpm, last_nn_ms=None, rmssd_ms=30.0, sdnn_ms=40.0, arousal=z,
                      baseline_hr_bpm=baseline, quality=quality, artifact_rate=artifact_rate, stale=stale, beats=100)


def spec(**kw) -> ControllerSpec:
    return ControllerSpec(**({"arousal_window_s": 0.0} | kw))


def habituation(min_hold_s: float = 60.0, rule: str = "hr", **kw) -> ArousalHabituationController:
    return ArousalHabituationController(spec(step_up_rule=rule, **kw), min_hold_s=min_hold_s)


def ticks(ctrl, z_of, t_from: int, t_to: int, level: int = 3, max_level: int = 12) -> dict[float, Decision]:
    """One decision per second from t_from to t_to (inclusive); ``z_of(t)`` is the arousal then."""
    return {float(t): ctrl.decide(float(t), heart(float(t), z_of(t)), level, max_level) for t in range(t_from, t_to + 1)}


def hr_text(z: str, held: str, window: str = "0") -> str:
    return f"arousal {z} SD ({window}-s mean) {held} (needs <= 1.5 SD for 20 s)"


NO_SUDS = "no SUDS rating at this level yet (needs -50% from its peak)"


# -- heart data that cannot be used -----------------------------------------------------------------


@pytest.mark.parametrize("state", [
    heart(5.0, None, stale=True, hr=None),
    heart(5.0, 0.5, stale=True),  # marked stale, whatever HR it still shows
    heart(5.0, 0.5, stale=False, hr=None),  # no HR at all
])
def test_no_fresh_heart_data_holds_and_says_so(state):
    ctrl = habituation(min_hold_s=0)
    ctrl.on_level_changed(0.0, 3)
    assert ctrl.decide(5.0, state, 3, 12) == Decision(
        "hold", "holding level 3: no fresh heart data (never step up on stale data)", "stale")


@pytest.mark.parametrize("state", [heart(5.0, None, hr=70.0), heart(5.0, 2.0, hr=70.0, baseline=None)])
def test_no_baseline_holds_and_says_so(state):
    ctrl = habituation(min_hold_s=0)
    ctrl.on_level_changed(0.0, 3)
    assert ctrl.decide(5.0, state, 3, 12) == Decision(
        "hold", "holding level 3: no baseline yet (HR 70 bpm now, but arousal needs a resting baseline)", "no_baseline")


def test_poor_signal_quality_holds_but_the_minimum_itself_is_good_enough():
    ctrl = habituation(min_hold_s=0, min_quality=0.5)
    ctrl.on_level_changed(0.0, 3)
    assert ctrl.decide(1.0, heart(1.0, quality=0.49, artifact_rate=0.12), 3, 12) == Decision(
        "hold", "holding level 3: heart signal quality 0.49 is below 0.50 (12% artefacts)", "low_quality")
    assert ctrl.decide(2.0, heart(2.0, quality=0.5), 3, 12).code != "low_quality"


# -- SUDS step-downs (every controller) ------------------------------------------------------------


def test_a_suds_at_the_step_down_minimum_steps_down_at_once():
    ctrl = habituation()
    ctrl.on_level_changed(0.0, 3)
    ctrl.on_suds(1.0, 89, 3)
    assert ctrl.decide(2.0, heart(2.0), 3, 12).action == "hold"
    ctrl.on_suds(3.0, 90, 3)
    assert ctrl.decide(4.0, heart(4.0), 3, 12) == Decision(
        "down", "SUDS 90 at level 3 (step down at >= 90): distress too high, stepping down to level 2 at once",
        "suds_high")
    # whatever the heart data says
    assert ctrl.decide(5.0, heart(5.0, None, stale=True, hr=None), 3, 12).code == "suds_high"


def test_a_high_suds_at_the_lowest_level_suggests_the_safe_place():
    ctrl = habituation()
    ctrl.on_level_changed(0.0, 0)
    ctrl.on_suds(1.0, 95, 0)
    assert ctrl.decide(2.0, heart(2.0), 0, 12) == Decision(
        "hold", "SUDS 95 at level 0 (>= 90) and this is the lowest level: consider the safe place", "suds_high_at_lowest")
    ctrl.on_level_changed(10.0, 1)
    ctrl.on_suds(11.0, 95, 1)
    assert ctrl.decide(12.0, heart(12.0), 1, 12) == Decision(
        "down", "SUDS 95 at level 1 (step down at >= 90): distress too high, stepping down to level 0 at once",
        "suds_high")


# -- arousal_habituation: hr rule ------------------------------------------------------------------


def test_calm_arousal_steps_up_after_the_minimum_hold():
    ctrl = habituation(min_hold_s=60)
    ctrl.on_level_changed(0.0, 3)
    got = ticks(ctrl, lambda t: 0.5, 0, 60)
    assert got[0.0] == Decision(
        "hold", hr_text("+0.5", "for 0 s") + ": holding level 3 for its minimum 60 s (0 s so far)", "min_hold")
    assert got[59.0] == Decision(
        "hold", hr_text("+0.5", "for 59 s") + ": holding level 3 for its minimum 60 s (59 s so far)", "min_hold")
    assert got[60.0] == Decision("up", hr_text("+0.5", "for 60 s") + ": habituated, ready to step up to level 4",
                                 "habituated")


def test_arousal_at_the_step_up_threshold_counts_as_calm_and_the_sustain_time_is_inclusive():
    ctrl = habituation(min_hold_s=0)
    ctrl.on_level_changed(0.0, 3)
    got = ticks(ctrl, lambda t: 2.0 if t < 10 else 1.5, 0, 30)
    assert got[5.0] == Decision(
        "hold", hr_text("+2.0", "not yet settled") + ": not ready to step up (hr rule)", "aroused")
    assert got[29.0] == Decision("hold", hr_text("+1.5", "for 19 s") + ": not ready to step up (hr rule)", "settling")
    assert got[30.0].action == "up" and got[30.0].reason.startswith(hr_text("+1.5", "for 20 s"))


def test_the_top_level_holds_even_when_ready():
    ctrl = habituation(min_hold_s=0)
    ctrl.on_level_changed(0.0, 5)
    got = ticks(ctrl, lambda t: 0.5, 0, 25, level=5, max_level=5)
    assert got[25.0] == Decision("hold", hr_text("+0.5", "for 25 s") + ": at the top level 5", "top_level")
    ctrl = habituation(min_hold_s=0)
    ctrl.on_level_changed(0.0, 4)
    assert ticks(ctrl, lambda t: 0.5, 0, 25, level=4, max_level=5)[25.0].action == "up"


def test_a_level_the_controller_was_not_told_about_restarts_its_hold():
    ctrl = habituation(min_hold_s=10)
    ctrl.on_level_changed(0.0, 3)
    ticks(ctrl, lambda t: 0.5, 0, 30)
    got = ticks(ctrl, lambda t: 0.5, 31, 41, level=4)  # the runtime moved to 4 without calling on_level_changed
    assert got[31.0].code == "min_hold" and got[31.0].reason.endswith("holding level 4 for its minimum 10 s (0 s so far)")
    assert got[40.0].code == "min_hold"
    assert got[41.0].code == "settling"  # calm again since 31: 10 s of the 20 needed


def test_decide_without_on_level_changed_starts_the_hold_at_the_first_tick():
    ctrl = habituation(min_hold_s=10)
    got = ticks(ctrl, lambda t: 0.5, 100, 121)
    assert got[100.0].reason.endswith("(0 s so far)") and got[109.0].code == "min_hold"
    assert got[119.0].code == "settling" and got[120.0].action == "up"


def test_high_arousal_right_after_a_change_is_given_time_to_settle_then_steps_down():
    ctrl = habituation()
    ctrl.on_level_changed(0.0, 3)
    got = ticks(ctrl, lambda t: 3.0, 0, 30)
    text = "arousal +3.0 SD (0-s mean; resting HR 62 bpm)"
    assert got[0.0] == Decision("hold", f"{text}: high 0 s after the change to level 3, giving it 30 s to settle",
                                "arousal_settling")
    assert got[29.0] == Decision("hold", f"{text}: high 29 s after the change to level 3, giving it 30 s to settle",
                                 "arousal_settling")
    assert got[30.0] == Decision(
        "down", f"{text} has stayed at or above 3.0 SD for 30 s: arousal too high, stepping down to level 2",
        "arousal_high")


def test_rising_arousal_is_watched_for_the_sustain_time_before_stepping_down():
    ctrl = habituation()
    ctrl.on_level_changed(0.0, 3)
    got = ticks(ctrl, lambda t: 0.5 if t < 35 else 3.2, 0, 45)
    text = "arousal +3.2 SD (0-s mean; resting HR 62 bpm)"
    assert got[35.0] == Decision("hold", f"{text}: high for 0 s, watching", "arousal_rising")
    assert got[44.0] == Decision("hold", f"{text}: high for 9 s, watching", "arousal_rising")
    assert got[45.0] == Decision(
        "down", f"{text} has stayed at or above 3.0 SD for 10 s: arousal too high, stepping down to level 2",
        "arousal_high")
    ctrl = habituation(min_hold_s=0)
    ctrl.on_level_changed(0.0, 3)
    assert ticks(ctrl, lambda t: 2.99, 0, 45)[45.0].code == "aroused"  # below the threshold: never high


def test_sustained_high_arousal_at_level_0_can_only_be_watched():
    ctrl = habituation()
    ctrl.on_level_changed(0.0, 0)
    assert ticks(ctrl, lambda t: 0.5 if t < 35 else 3.2, 0, 50, level=0)[50.0].code == "arousal_rising"
    ctrl = habituation()
    ctrl.on_level_changed(0.0, 1)
    assert ticks(ctrl, lambda t: 0.5 if t < 35 else 3.2, 0, 45, level=1)[45.0] .reason.endswith(
        "stepping down to level 0")


def test_high_arousal_restarts_the_calm_time():
    ctrl = habituation(min_hold_s=60)
    ctrl.on_level_changed(0.0, 3)
    got = ticks(ctrl, lambda t: 3.2 if t == 40 else 0.5, 0, 61)
    assert got[60.0].code == "settling" and got[61.0].action == "up"  # calm again only since 41


def test_unusable_heart_data_restarts_the_calm_and_high_times():
    ctrl = habituation(min_hold_s=60)
    ctrl.on_level_changed(0.0, 3)
    ticks(ctrl, lambda t: 0.5, 0, 49)
    assert ctrl.decide(50.0, heart(50.0, None, stale=True, hr=None), 3, 12).code == "stale"
    got = ticks(ctrl, lambda t: 0.5, 51, 71)
    assert got[70.0].code == "settling" and got[71.0].action == "up"
    ctrl = habituation()
    ctrl.on_level_changed(0.0, 3)
    ticks(ctrl, lambda t: 3.2, 30, 35)
    assert ctrl.decide(36.0, heart(36.0, None, stale=True, hr=None), 3, 12).code == "stale"
    got = ticks(ctrl, lambda t: 3.2, 37, 47)
    assert got[46.0].code == "arousal_rising" and got[47.0].action == "down"


def test_a_level_left_downwards_is_not_reentered_within_the_block_time():
    ctrl = habituation(min_hold_s=0)
    ctrl.on_level_changed(0.0, 4)
    ctrl.on_level_changed(100.0, 3)
    got = ticks(ctrl, lambda t: 0.5, 100, 280)
    assert got[120.0] == Decision(
        "hold", hr_text("+0.5", "for 20 s") + ": ready, but level 4 was left downwards 20 s ago "
        "(no re-entry within 180 s)", "reenter_blocked")
    assert got[279.0].code == "reenter_blocked"
    assert got[280.0].action == "up"


def test_every_level_left_by_a_jump_down_is_blocked():
    ctrl = habituation(min_hold_s=0)
    ctrl.on_level_changed(0.0, 6)
    ctrl.on_level_changed(100.0, 3)
    ctrl.on_level_changed(110.0, 5)  # back up by hand: leaving upwards blocks nothing
    got = ticks(ctrl, lambda t: 0.5, 110, 130, level=5)
    assert got[130.0].code == "reenter_blocked" and "level 6 was left downwards 30 s ago" in got[130.0].reason
    ctrl.on_level_changed(140.0, 4)  # down from 5: blocks 5 again, from now
    assert ticks(ctrl, lambda t: 0.5, 140, 160, level=4)[160.0].reason.endswith(
        "level 5 was left downwards 20 s ago (no re-entry within 180 s)")


# -- arousal_habituation: SUDS rules ---------------------------------------------------------------


def _suds_ctrl(rule: str, ratings: list[int], **kw) -> ArousalHabituationController:
    ctrl = habituation(min_hold_s=0, rule=rule, **kw)
    ctrl.on_level_changed(0.0, 3)
    for i, value in enumerate(ratings):
        ctrl.on_suds(1.0 + i, value, 3)
    return ctrl


def test_suds_rule_half_the_peak_steps_up():
    ctrl = _suds_ctrl("suds", [70, 30])
    assert ctrl.decide(10.0, heart(10.0, 2.0), 3, 12) == Decision(
        "up", "SUDS 70 -> 30 (-57 %, needs -50 % or <= 20): habituated, ready to step up to level 4", "habituated")


def test_suds_rule_exactly_half_the_peak_is_enough_and_just_less_is_not():
    assert _suds_ctrl("suds", [60, 30]).decide(10.0, heart(10.0), 3, 12).reason.startswith(
        "SUDS 60 -> 30 (-50 %, needs -50 % or <= 20): habituated")
    assert _suds_ctrl("suds", [60, 31]).decide(10.0, heart(10.0), 3, 12) == Decision(
        "hold", "SUDS 60 -> 31 (-48 %, needs -50 % or <= 20): not ready to step up (suds rule)", "suds_high")


def test_suds_rule_a_low_rating_is_ready_whatever_the_peak():
    assert _suds_ctrl("suds", [30, 20]).decide(10.0, heart(10.0), 3, 12).reason == (
        "SUDS 30 -> 20 (-33 %, needs -50 % or <= 20): habituated, ready to step up to level 4")
    assert _suds_ctrl("suds", [30, 21]).decide(10.0, heart(10.0), 3, 12).code == "suds_high"
    assert _suds_ctrl("suds", [0]).decide(10.0, heart(10.0), 3, 12) == Decision(
        "up", "SUDS 0 -> 0 (needs -50 % or <= 20): habituated, ready to step up to level 4", "habituated")
    assert _suds_ctrl("suds", [21]).decide(10.0, heart(10.0), 3, 12).code == "suds_high"  # a single rating: its own peak


def test_suds_rule_waits_for_a_rating():
    assert _suds_ctrl("suds", []).decide(10.0, heart(10.0), 3, 12) == Decision(
        "hold", f"{NO_SUDS}: not ready to step up (suds rule)", "suds_missing")


def test_suds_and_hr_needs_both_and_names_both():
    hr_ok = hr_text("+0.5", "for 20 s")
    ctrl = _suds_ctrl("suds_and_hr", [70, 40])
    got = ticks(ctrl, lambda t: 0.5, 0, 20)
    assert got[20.0] == Decision(
        "hold", f"SUDS 70 -> 40 (-43 %, needs -50 % or <= 20); {hr_ok}: not ready to step up (suds_and_hr rule)",
        "suds_high")
    ctrl = _suds_ctrl("suds_and_hr", [70, 30])
    got = ticks(ctrl, lambda t: 0.5, 0, 20)
    assert got[19.0] == Decision(
        "hold", "SUDS 70 -> 30 (-57 %, needs -50 % or <= 20); " + hr_text("+0.5", "for 19 s")
        + ": not ready to step up (suds_and_hr rule)", "settling")
    assert got[20.0] == Decision(
        "up", f"SUDS 70 -> 30 (-57 %, needs -50 % or <= 20); {hr_ok}: habituated, ready to step up to level 4",
        "habituated")
    ctrl = _suds_ctrl("suds_and_hr", [])
    assert ticks(ctrl, lambda t: 0.5, 0, 20)[20.0].code == "suds_missing"
    ctrl = _suds_ctrl("suds_and_hr", [70])
    assert ticks(ctrl, lambda t: 2.0, 0, 20)[20.0].code == "aroused"  # neither: the body is named first


def test_suds_or_hr_needs_either():
    ctrl = _suds_ctrl("suds_or_hr", [70, 30])
    assert ticks(ctrl, lambda t: 2.0, 0, 5)[5.0] == Decision(
        "up", "SUDS 70 -> 30 (-57 %, needs -50 % or <= 20); " + hr_text("+2.0", "not yet settled")
        + ": habituated, ready to step up to level 4", "habituated")
    ctrl = _suds_ctrl("suds_or_hr", [70])
    got = ticks(ctrl, lambda t: 0.5, 0, 20)
    assert got[19.0].code == "settling" and got[20.0].action == "up"
    ctrl = _suds_ctrl("suds_or_hr", [])
    assert ticks(ctrl, lambda t: 2.0, 0, 5)[5.0] == Decision(
        "hold", f"{NO_SUDS}; " + hr_text("+2.0", "not yet settled") + ": not ready to step up (suds_or_hr rule)",
        "aroused")


def test_the_step_up_rule_is_the_specs_unless_given():
    assert ArousalHabituationController(spec(step_up_rule="suds"), min_hold_s=1).step_up_rule == "suds"
    assert ArousalHabituationController(spec(step_up_rule="suds"), min_hold_s=1, step_up_rule="hr").step_up_rule == "hr"


def test_suds_ratings_of_another_level_are_not_used():
    ctrl = habituation(min_hold_s=0, rule="suds")
    ctrl.on_level_changed(0.0, 3)
    ctrl.on_suds(1.0, 95, 2)  # answered for the level before
    assert ctrl.decide(2.0, heart(2.0), 3, 12).code == "suds_missing"


def test_a_window_averages_arousal_over_its_seconds():
    ctrl = habituation(min_hold_s=0, arousal_window_s=10.0)
    ctrl.on_level_changed(0.0, 3)
    got = ticks(ctrl, lambda t: 4.0 if t < 5 else 0.0, 0, 15)
    assert got[4.0].code == "arousal_settling"
    assert got[9.0].reason.startswith("arousal +2.0 SD (10-s mean)")  # 0..9: five at 4, five at 0
    assert got[10.0].reason.startswith("arousal +1.8 SD (10-s mean)")  # 0..10, eleven values
    assert got[15.0].reason.startswith("arousal +0.0 SD (10-s mean)")  # 5..15


# -- manual ----------------------------------------------------------------------------------------


def test_manual_without_a_spec_only_ever_holds():
    ctrl = ManualController()
    ctrl.on_level_changed(0.0, 3)
    ctrl.on_suds(1.0, 100, 3)
    for t in (2.0, 100.0):
        assert ctrl.decide(t, heart(t, 5.0), 3, 12) == Decision(
            "hold", "manual protocol: level 3 stays until the therapist changes it", "manual")


def test_manual_steps_down_for_distress():
    ctrl = ManualController(spec())
    ctrl.on_level_changed(0.0, 3)
    ctrl.on_suds(1.0, 92, 3)
    assert ctrl.decide(2.0, heart(2.0), 3, 12) == Decision(
        "down", "SUDS 92 at level 3 (step down at >= 90): distress too high, stepping down to level 2 at once",
        "suds_high")


def test_manual_steps_down_for_sustained_high_arousal_after_the_settle_time():
    hold = Decision("hold", "manual protocol: level 3 stays until the therapist changes it", "manual")
    ctrl = ManualController(spec())
    ctrl.on_level_changed(0.0, 3)
    got = ticks(ctrl, lambda t: 3.0, 0, 30)
    assert got[29.0] == hold
    assert got[30.0] == Decision(
        "down", "arousal +3.0 SD (0-s mean) has stayed at or above 3.0 SD for 30 s: arousal too high, stepping down "
        "to level 2", "arousal_high")
    ctrl = ManualController(spec())
    ctrl.on_level_changed(0.0, 3)
    got = ticks(ctrl, lambda t: 0.5 if t < 40 else 3.2, 0, 50)
    assert got[49.0] == hold and got[50.0].reason.endswith("for 10 s: arousal too high, stepping down to level 2")
    ctrl = ManualController(spec())
    ctrl.on_level_changed(0.0, 3)
    assert ticks(ctrl, lambda t: 2.99, 0, 50)[50.0] == hold


def test_manual_holds_at_level_0_and_starts_its_settle_time_at_the_first_tick():
    ctrl = ManualController(spec())
    ctrl.on_level_changed(0.0, 0)
    assert ticks(ctrl, lambda t: 3.5, 0, 60, level=0)[60.0].code == "manual"
    ctrl = ManualController(spec())
    got = ticks(ctrl, lambda t: 3.5, 100, 130, level=1)
    assert got[129.0].code == "manual" and got[130.0].reason.endswith("stepping down to level 0")


def test_manual_forgets_high_arousal_over_unusable_data_and_a_level_change():
    ctrl = ManualController(spec())
    ctrl.on_level_changed(0.0, 3)
    ticks(ctrl, lambda t: 3.2, 30, 35)
    assert ctrl.decide(36.0, heart(36.0, None, stale=True, hr=None), 3, 12).code == "manual"
    got = ticks(ctrl, lambda t: 3.2, 37, 47)
    assert got[46.0].code == "manual" and got[47.0].action == "down"
    ctrl.on_level_changed(50.0, 2)
    got = ticks(ctrl, lambda t: 3.2, 50, 80, level=2)
    assert got[79.0].code == "manual" and got[80.0].reason.endswith("for 30 s: arousal too high, stepping down to level 1")


def test_manual_ignores_ratings_of_another_level():
    ctrl = ManualController(spec())
    ctrl.on_level_changed(0.0, 3)
    ctrl.on_suds(1.0, 99, 2)
    assert ctrl.decide(2.0, heart(2.0), 3, 12).code == "manual"


# -- target_band -----------------------------------------------------------------------------------


def band(start: float = 2.0, max_level: float | None = 5, **kw) -> TargetBandController:
    return TargetBandController(spec(kind="target_band", **kw), start_level=start, max_level=max_level)


BAND = "band 1..2.5 SD"


def test_target_band_rises_below_the_band_at_its_gain_within_the_rate_limit():
    ctrl = band()
    d0 = ctrl.decide(0.0, heart(0.0, 0.0), 2, 5)
    assert d0 == Decision("set", f"arousal +0.0 SD (0-s mean; {BAND}): raising at 1.00 levels/min (max 1); "
                          "intensity 2.00", "below_band", target_level=2.0)  # the first tick has no elapsed time
    d1 = ctrl.decide(6.0, heart(6.0, 0.0), 2, 5)  # 1.375 SD below the target: capped at 1 level/min
    assert d1.target_level == pytest.approx(2.1) and ctrl.level_f == pytest.approx(2.1)
    d2 = ctrl.decide(12.0, heart(12.0, 0.875), 2, 5)  # 0.5 SD below: 0.5 levels/min
    assert d2 == Decision("set", f"arousal +0.9 SD (0-s mean; {BAND}): raising at 0.50 levels/min (max 1); "
                          "intensity 2.15", "below_band", target_level=pytest.approx(2.15))
    d3 = ctrl.decide(24.0, heart(24.0, 1.125), 2, 5)  # inside the band but below its hysteresis edge: still rising
    assert d3.code == "below_band" and "raising at 0.25 levels/min" in d3.reason
    assert d3.target_level == pytest.approx(2.2)
    d4 = ctrl.decide(30.0, heart(30.0, 1.375), 2, 5)  # a quarter of the band inside: stop
    assert d4 == Decision("set", f"arousal +1.4 SD (0-s mean; {BAND}): inside the band, holding; intensity 2.20",
                          "in_band", target_level=pytest.approx(2.2))
    d5 = ctrl.decide(36.0, heart(36.0, 1.2), 2, 5)  # holding: noise inside the band does not restart it
    assert d5.code == "in_band" and d5.target_level == pytest.approx(2.2)


def test_target_band_falls_above_the_band_until_a_quarter_inside():
    ctrl = band(start=3.0)
    ctrl.decide(0.0, heart(0.0, 2.875), 3, 5)
    d = ctrl.decide(12.0, heart(12.0, 2.875), 3, 5)  # 0.75 SD above the target 2.125
    assert d == Decision("set", f"arousal +2.9 SD (0-s mean; {BAND}): lowering at 0.75 levels/min (max 1); "
                         "intensity 2.85", "above_band", target_level=pytest.approx(2.85))
    assert ctrl.decide(18.0, heart(18.0, 2.25), 3, 5).code == "above_band"  # in the band, not yet a quarter inside
    assert ctrl.decide(24.0, heart(24.0, 2.125), 3, 5).code == "in_band"
    assert ctrl.decide(30.0, heart(30.0, 2.5), 3, 5).code == "in_band"  # the edge itself is inside
    assert ctrl.decide(36.0, heart(36.0, 1.0), 3, 5).code == "in_band"


def test_target_band_fast_gain_is_capped_by_the_rate_limit_and_slow_gain_is_not():
    ctrl = band(start=2.0, gain_levels_per_min_per_z=4.0, max_levels_per_min=2.0)
    ctrl.decide(0.0, heart(0.0, 0.875), 2, 5)
    d = ctrl.decide(3.0, heart(3.0, 0.875), 2, 5)  # 4 x 0.5 = 2 levels/min: exactly the limit
    assert "raising at 2.00 levels/min (max 2)" in d.reason and d.target_level == pytest.approx(2.1)
    d = ctrl.decide(6.0, heart(6.0, 0.0), 2, 5)  # 4 x 1.375 = 5.5: capped
    assert "raising at 2.00 levels/min (max 2)" in d.reason and d.target_level == pytest.approx(2.2)


def test_target_band_stays_inside_its_limits_and_says_so():
    ctrl = band(start=4.95, max_level=5)
    ctrl.decide(0.0, heart(0.0, 0.0), 4, 5)
    d = ctrl.decide(6.0, heart(6.0, 0.0), 4, 5)
    assert d == Decision("set", f"arousal +0.0 SD (0-s mean; {BAND}): raising at 1.00 levels/min (max 1) "
                         "(limit 0..5); intensity 5.00", "below_band", target_level=5.0)
    d = ctrl.decide(12.0, heart(12.0, 0.0), 4, 4)  # the session's max level is lower now
    assert d.target_level == 4.0 and d.reason.endswith("(limit 0..4); intensity 4.00")
    ctrl = band(start=0.05, band_min_level=0.0)
    ctrl.decide(0.0, heart(0.0, 2.875), 0, 5)
    d = ctrl.decide(60.0, heart(60.0, 2.875), 0, 5)
    assert d.target_level == 0.0 and "lowering at 0.75 levels/min (max 1) (limit 0..5)" in d.reason


def test_target_band_in_band_clamps_to_a_lowered_top():
    ctrl = band(start=4.5)
    assert ctrl.decide(0.0, heart(0.0, 1.5), 4, 3).target_level == 3.0
    assert ctrl.decide(6.0, heart(6.0, 1.5), 3, 12).target_level == 3.0  # it does not climb back by itself


def test_target_band_time_going_backwards_moves_nothing():
    ctrl = band()
    ctrl.decide(10.0, heart(10.0, 0.0), 2, 5)
    assert ctrl.decide(4.0, heart(4.0, 0.0), 2, 5).target_level == 2.0
    assert ctrl.decide(10.0, heart(10.0, 0.0), 2, 5).target_level == pytest.approx(2.1)


def test_target_band_high_suds_drops_a_whole_level_at_once_and_forgets_the_rating():
    ctrl = band(start=2.4)
    ctrl.decide(0.0, heart(0.0, 0.0), 2, 5)
    ctrl.on_suds(1.0, 90, 2)
    d = ctrl.decide(2.0, heart(2.0, 0.0), 2, 5)
    assert d == Decision("set", "SUDS at or above 90: one level down at once; intensity 1.40", "suds_high",
                         target_level=pytest.approx(1.4))
    d = ctrl.decide(8.0, heart(8.0, 0.0), 1, 5)  # the rating is not used twice
    assert d.code == "below_band" and d.target_level == pytest.approx(1.5)
    ctrl.on_suds(9.0, 89, 1)
    assert ctrl.decide(10.0, heart(10.0, 1.5), 1, 5).code == "in_band"
    low = band(start=0.5)
    low.on_suds(0.0, 95, 0)
    assert low.decide(1.0, heart(1.0, 0.0), 0, 5).target_level == 0.0  # never below the band's minimum


def test_target_band_sustained_high_arousal_drops_a_whole_level():
    ctrl = band(start=3.5)
    got = [ctrl.decide(float(t), heart(float(t), 3.0), 3, 5) for t in range(0, 11)]
    assert [d.code for d in got[:10]] == ["above_band"] * 10
    assert got[10] == Decision("set", f"arousal +3.0 SD (0-s mean; {BAND}) at or above 3.0 SD for 10 s: "
                               "one level down at once; intensity 2.37", "arousal_high",
                               target_level=pytest.approx(3.5 - 9 * 0.875 / 60 - 1.0))  # 9 s falling, then a level
    assert ctrl.decide(11.0, heart(11.0, 3.0), 2, 5).code == "above_band"  # the high time starts over
    assert ctrl.decide(12.0, heart(12.0, 1.5), 2, 5).code == "in_band"


def test_target_band_unusable_data_holds_where_it_is():
    ctrl = band(start=2.5)
    ctrl.decide(0.0, heart(0.0, 0.0), 2, 5)
    d = ctrl.decide(6.0, heart(6.0, None, stale=True, hr=None), 2, 5)
    assert d == Decision("hold", "holding level 2: no fresh heart data (never step up on stale data)", "stale",
                         target_level=2.5)
    assert ctrl.decide(12.0, heart(12.0, 1.2), 2, 5).code == "in_band"  # the rise was forgotten


def test_target_band_limits_come_from_the_spec_then_the_session_and_can_change_live():
    assert band(max_level=7).limits == (0.0, 7.0)
    assert band(max_level=7, band_max_level=4.0).limits == (0.0, 4.0)
    assert band(max_level=None).limits == (0.0, math.inf)
    assert band(start=0.0, band_min_level=1.5).level_f == 1.5  # started inside its limits
    assert band(start=9.0, max_level=6).level_f == 6.0
    ctrl = band(start=4.0)
    ctrl.set_limits(1.0, 3.0)
    assert ctrl.limits == (1.0, 3.0) and ctrl.level_f == 3.0
    ctrl.set_limits(3.5, 3.5)
    assert ctrl.level_f == 3.5
    ctrl.set_limits(0.0, 6.0)
    assert ctrl.level_f == 3.5
    for bad in ((-1.0, 2.0), (3.0, 2.0)):
        with pytest.raises(ValueError, match=r"target band limits need 0 <= min_level <= max_level, got "):
            ctrl.set_limits(*bad)


def test_target_band_follows_a_level_the_therapist_set():
    ctrl = band(start=2.4)
    ctrl.on_level_changed(5.0, 2)  # its own level: the intensity stays
    assert ctrl.level_f == 2.4
    ctrl.on_level_changed(6.0, 4)
    assert ctrl.level_f == 4.0
    ctrl.on_level_changed(7.0, 9)  # above its limit (5): clamped
    assert ctrl.level_f == 5.0
    low = band(start=1.0, band_min_level=1.0)
    low.on_level_changed(1.0, 0)
    assert low.level_f == 1.0
    exact = band(start=2.9999999999)  # 2.9999999999 is level 3 for the runtime's floor with tolerance
    exact.on_level_changed(1.0, 3)
    assert exact.level_f == 2.9999999999


def test_target_band_a_rating_given_for_the_level_before_is_not_used():
    ctrl = band(start=2.0)
    ctrl.on_level_changed(0.0, 2)
    ctrl.on_suds(1.0, 95, 1)
    assert ctrl.decide(2.0, heart(2.0, 1.5), 2, 5).code == "in_band"
    ctrl.on_suds(3.0, 95, 2)
    assert ctrl.decide(4.0, heart(4.0, 1.5), 2, 5).code == "suds_high"


# -- building controllers --------------------------------------------------------------------------


def _protocol(**controller):
    proto, _ = load_protocol("heights-graded")
    exposure = proto.exposure.model_copy(update={"start_level": 2, "min_hold_s": 45.0})
    return proto.model_copy(update={"controller": proto.controller.model_copy(update=controller),
                                    "exposure": exposure})


def test_build_controller_gives_each_kind_its_settings():
    manual = build_controller(_protocol(kind="manual"), max_level=8)
    assert isinstance(manual, ManualController)
    manual.on_level_changed(0.0, 3)
    manual.on_suds(1.0, 95, 3)
    assert manual.decide(2.0, heart(2.0), 3, 8).code == "suds_high"  # built with its spec: safety step-downs
    tb = build_controller(_protocol(kind="target_band", band_max_level=None), max_level=8)
    assert isinstance(tb, TargetBandController) and tb.limits == (0.0, 8.0) and tb.level_f == 2.0
    ah = build_controller(_protocol(kind="arousal_habituation", step_up_rule="suds_or_hr"), max_level=8)
    assert isinstance(ah, ArousalHabituationController) and ah.step_up_rule == "suds_or_hr"
    ah.on_level_changed(0.0, 3)
    assert ah.decide(1.0, heart(1.0), 3, 8).reason.endswith("holding level 3 for its minimum 45 s (1 s so far)")


def test_make_controller_is_arousal_only_and_says_so(caplog):
    assert isinstance(make_controller(spec(kind="manual"), min_hold_s=10), ManualController)
    m = make_controller(spec(kind="manual"), min_hold_s=10)
    m.on_suds(0.0, 99, 3)
    assert m.decide(1.0, heart(1.0), 3, 8).code == "manual"  # the compatibility manual has no spec
    tb = make_controller(spec(kind="target_band"), min_hold_s=10)
    assert isinstance(tb, TargetBandController) and tb.level_f == 0.0 and tb.limits == (0.0, math.inf)
    with caplog.at_level(logging.INFO, logger="protocols.controller"):
        hr = make_controller(spec(step_up_rule="hr"), min_hold_s=10)
        assert caplog.records == []
        ah = make_controller(spec(step_up_rule="suds"), min_hold_s=10)
    assert isinstance(hr, ArousalHabituationController) and ah.step_up_rule == "hr"
    assert [r.getMessage() for r in caplog.records] == [
        "step_up_rule 'suds' needs SUDS; this runtime does not pass SUDS yet, using the hr rule"]
    ah.on_level_changed(0.0, 3)
    assert ah.decide(1.0, heart(1.0), 3, 8).reason.endswith("holding level 3 for its minimum 10 s (1 s so far)")


# -- the shared pieces -----------------------------------------------------------------------------


def test_suds_at_level_keeps_first_peak_and_latest_of_the_level_shown():
    s = SudsAtLevel()
    assert (s.level, s.first, s.peak, s.latest, s.latest_t_s) == (None, None, None, None, None)
    s.add(1.0, 40, 3)  # the first rating sets the level
    s.add(2.0, 70, 3)
    s.add(3.0, 55, 3)
    s.add(4.0, 99, 2)  # another level: ignored
    assert (s.level, s.first, s.peak, s.latest, s.latest_t_s) == (3, 40, 70, 55, 3.0)
    s.add(5.0, 0, 3)
    s.add(6.0, 100, 3)
    assert (s.first, s.peak, s.latest) == (40, 100, 100)
    for bad in (-1, 101):
        with pytest.raises(ValueError, match=rf"^SUDS {bad} is outside 0\.\.100$"):
            s.add(7.0, bad, 3)
    s.reset(4)
    assert (s.level, s.first, s.peak, s.latest, s.latest_t_s) == (4, None, None, None, None)


def test_arousal_window_mean_over_its_seconds_and_clear():
    w = ArousalWindow(10.0)
    assert w.mean is None
    assert w.add(0.0, 1.0) == 1.0
    assert w.add(10.0, 3.0) == 2.0  # 0 is exactly 10 s old: still inside
    assert w.add(10.5, 5.0) == 4.0  # now it is out
    assert w.mean == 4.0
    w.clear()
    assert w.mean is None
    assert w.add(11.0, -2.0) == -2.0


# -- what the remaining mutants showed -------------------------------------------------------------


def test_suds_texts_follow_the_protocols_drop_fraction():
    assert _suds_ctrl("suds", [70, 30], suds_drop_fraction=0.6).decide(10.0, heart(10.0), 3, 12).reason == (
        "SUDS 70 -> 30 (-57 %, needs -60 % or <= 20): not ready to step up (suds rule)")
    assert _suds_ctrl("suds", [0], suds_drop_fraction=0.6).decide(10.0, heart(10.0), 3, 12).reason == (
        "SUDS 0 -> 0 (needs -60 % or <= 20): habituated, ready to step up to level 4")


def test_a_peak_of_1_is_a_peak():
    assert _suds_ctrl("suds", [1, 1]).decide(10.0, heart(10.0), 3, 12).reason == (
        "SUDS 1 -> 1 (+0 %, needs -50 % or <= 20): habituated, ready to step up to level 4")


def test_a_jump_down_blocks_only_the_levels_it_left():
    ctrl = habituation(min_hold_s=0)
    ctrl.on_level_changed(0.0, 6)
    ctrl.on_level_changed(100.0, 3)
    ctrl.on_level_changed(101.0, 6)  # the therapist goes straight back up
    assert ticks(ctrl, lambda t: 0.5, 101, 121, level=6)[121.0].action == "up"  # 7 was never left


def test_manual_started_by_decide_uses_the_shown_level_for_ratings():
    ctrl = ManualController(spec())
    assert ctrl.decide(0.0, heart(0.0), 3, 12).code == "manual"
    ctrl.on_suds(1.0, 95, 2)  # given for the level before: not used
    assert ctrl.decide(2.0, heart(2.0), 3, 12).code == "manual"


def test_a_rating_for_another_level_is_logged_as_not_used(caplog):
    s = SudsAtLevel()
    s.reset(3)
    with caplog.at_level(logging.DEBUG, logger="protocols.controller"):
        s.add(1.0, 40, 2)
    assert [r.getMessage() for r in caplog.records] == ["SUDS 40 given for level 2 while level 3 is shown: not used"]


def test_target_band_starts_at_rest_inside_the_band():
    ctrl = band(start=2.0)
    assert ctrl.decide(0.0, heart(0.0, 1.2), 2, 5).code == "in_band"


def test_target_band_after_a_safety_drop_it_rests_and_listens_to_the_new_level():
    ctrl = band(start=2.4)
    ctrl.on_suds(0.0, 95, 2)
    assert ctrl.decide(1.0, heart(1.0, 1.2), 2, 5).code == "suds_high"
    assert ctrl.decide(2.0, heart(2.0, 1.2), 1, 5).code == "in_band"  # not still moving
    ctrl.on_suds(3.0, 95, 2)  # for the level it left: not used
    assert ctrl.decide(4.0, heart(4.0, 1.2), 1, 5).code == "in_band"
    ctrl.on_suds(5.0, 95, 1)  # for the level it is at now (1.4 shows level 1): used
    assert ctrl.decide(6.0, heart(6.0, 1.2), 1, 5).target_level == pytest.approx(0.4)
    whole = band(start=3.0)
    whole.on_suds(0.0, 95, 3)
    assert whole.decide(1.0, heart(1.0, 1.2), 3, 5).target_level == 2.0
    whole.on_suds(2.0, 95, 2)  # 2.0 is level 2
    assert whole.decide(3.0, heart(3.0, 1.2), 2, 5).target_level == 1.0
    ctrl = band(start=3.5)
    for t in range(0, 11):
        d = ctrl.decide(float(t), heart(float(t), 3.0), 3, 5)
    assert d.code == "arousal_high"
    assert ctrl.decide(11.0, heart(11.0, 1.2), 2, 5).code == "in_band"
