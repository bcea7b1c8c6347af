"""Controllers on scripted heart and SUDS traces: every rule, its reasons, step-downs and target_band."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biofeedback.records import HeartState
from protocols.controller import (
    ArousalHabituationController,
    ManualController,
    TargetBandController,
    build_controller,
    make_controller,
)
from protocols.model import ControllerSpec, load_protocol

REST_BPM = 62.0
SD_BPM = 4.0


def heart(t_s: float, z: float | None, *, stale: bool = False, baseline: bool = True, quality: float = 1.0) -> HeartState:
    hr = None if stale else REST_BPM + (z or 0.0) * SD_BPM
    return HeartState(
        t_s=t_s, hr_bpm=hr, last_nn_ms=None if hr is None else 60000 / hr, rmssd_ms=30.0, sdnn_ms=40.0,
        arousal=z if baseline and not stale else None, baseline_hr_bpm=REST_BPM if baseline else None,
        quality=quality, artifact_rate=0.0, stale=stale, beats=100,
    )


def run(ctrl, arousal_at, *, until_s: float, level: int = 3, max_level: int = 12, suds: dict[float, int] | None = None,
        start_s: float = 0.0, tick_s: float = 0.25):
    """Tick the controller like the runtime (4 Hz); returns the first non-hold decision (or the last hold)."""
    suds = dict(suds or {})
    ctrl.on_level_changed(start_s, level)
    t = start_s
    decision = None
    while t <= until_s:
        for ts in [ts for ts in suds if ts <= t]:
            ctrl.on_suds(ts, suds.pop(ts), level)
        decision = ctrl.decide(t, heart(t, arousal_at(t)), level, max_level)
        if decision.action != "hold":
            return t, decision
        t += tick_s
    return t, decision


def spec(**kw) -> ControllerSpec:
    return ControllerSpec(**kw)


def settles(t_s: float) -> float:
    """Arousal that starts high after a step and settles below 1.5 SD after 50 s."""
    return 2.5 if t_s < 50 else 0.8


def test_suds_70_to_30_while_hr_settles_steps_up_with_both_reasons():
    ctrl = ArousalHabituationController(spec(step_up_rule="suds_and_hr"), min_hold_s=60.0)
    t, d = run(ctrl, settles, until_s=200, suds={5.0: 70, 90.0: 30})
    assert d.action == "up" and d.code == "habituated"
    assert 90 <= t <= 91
    assert "SUDS 70 -> 30 (-57 %, needs -50 %" in d.reason
    assert "arousal +0.8 SD (10-s mean) for" in d.reason and "(needs <= 1.5 SD for 20 s)" in d.reason
    assert "ready to step up to level 4" in d.reason


def test_suds_that_stays_high_blocks_suds_and_hr_even_when_hr_settles():
    ctrl = ArousalHabituationController(spec(step_up_rule="suds_and_hr"), min_hold_s=60.0)
    t, d = run(ctrl, settles, until_s=400, suds={5.0: 70, 120.0: 65, 240.0: 60})
    assert d.action == "hold" and d.code == "suds_high"
    assert "SUDS 70 -> 60 (-14 %, needs -50 %" in d.reason and "not ready to step up (suds_and_hr rule)" in d.reason
    # the hr rule alone would have stepped up long before
    t_hr, d_hr = run(ArousalHabituationController(spec(step_up_rule="hr"), min_hold_s=60.0), settles, until_s=400,
                     suds={5.0: 70})
    assert d_hr.action == "up" and t_hr < 100 and "SUDS" not in d_hr.reason


def test_suds_rule_and_or_rule():
    # suds alone: ready once SUDS halves, even with arousal still raised
    ctrl = ArousalHabituationController(spec(step_up_rule="suds"), min_hold_s=60.0)
    t, d = run(ctrl, lambda t: 2.0, until_s=200, suds={5.0: 60, 100.0: 30})
    assert d.action == "up" and 100 <= t <= 101 and "arousal" not in d.reason
    # suds_or_hr: the heart settles first, SUDS never falls -> up on hr
    ctrl = ArousalHabituationController(spec(step_up_rule="suds_or_hr"), min_hold_s=60.0)
    t, d = run(ctrl, settles, until_s=200, suds={5.0: 70})
    assert d.action == "up" and "SUDS 70 -> 70" in d.reason and "arousal +0.8 SD" in d.reason
    # ready_max: low distress counts whatever the peak
    ctrl = ArousalHabituationController(spec(step_up_rule="suds"), min_hold_s=60.0)
    t, d = run(ctrl, lambda t: 0.0, until_s=200, suds={5.0: 15})
    assert d.action == "up" and "or <= 20" in d.reason


def test_no_suds_at_this_level_holds_a_suds_rule():
    ctrl = ArousalHabituationController(spec(step_up_rule="suds_and_hr"), min_hold_s=60.0)
    _, d = run(ctrl, lambda t: 0.0, until_s=200)
    assert d.action == "hold" and d.code == "suds_missing" and "no SUDS rating at this level yet" in d.reason


@pytest.mark.parametrize("rule", ["suds", "hr", "suds_and_hr", "suds_or_hr"])
def test_suds_95_steps_down_at_once_in_every_rule(rule):
    ctrl = ArousalHabituationController(spec(step_up_rule=rule), min_hold_s=60.0)
    t, d = run(ctrl, lambda t: 0.5, until_s=100, suds={2.0: 95})  # 2 s after entry: no settle time for SUDS
    assert d.action == "down" and d.code == "suds_high" and t == 2.0
    assert "SUDS 95 at level 3 (step down at >= 90)" in d.reason and "level 2" in d.reason


@pytest.mark.parametrize("rule", ["suds", "hr", "suds_and_hr", "suds_or_hr"])
def test_arousal_spike_steps_down_in_every_rule(rule):
    ctrl = ArousalHabituationController(spec(step_up_rule=rule), min_hold_s=60.0)
    t, d = run(ctrl, lambda t: 0.5 if t < 40 else 4.0, until_s=200, suds={1.0: 40})
    assert d.action == "down" and d.code == "arousal_high"
    assert 56 <= t <= 58  # the 10-s mean crosses 3 SD ~7 s after the spike at 40 s, then 10 s sustained
    assert "at or above 3.0 SD for 10 s" in d.reason


def test_manual_and_target_band_also_step_down_on_suds_95():
    s = spec()
    t, d = run(ManualController(s), lambda t: 0.5, until_s=30, suds={2.0: 95})
    assert d.action == "down" and d.code == "suds_high"
    tb = TargetBandController(s, start_level=3.0, max_level=12)
    tb.on_level_changed(0.0, 3)
    tb.on_suds(1.0, 95, 3)
    d = tb.decide(1.0, heart(1.0, 1.5), 3, 12)
    assert d.action == "set" and d.code == "suds_high" and d.target_level == 2.0


def test_suds_95_at_level_0_cannot_step_down_but_says_so():
    ctrl = ArousalHabituationController(spec(), min_hold_s=60.0)
    _, d = run(ctrl, lambda t: 0.5, until_s=10, level=0, suds={1.0: 97})
    assert d.code == "suds_high_at_lowest" and "consider the safe place" in d.reason


def test_no_baseline_yet_is_named_as_the_cause():
    ctrl = ArousalHabituationController(spec(), min_hold_s=60.0)
    ctrl.on_level_changed(0.0, 0)
    d = ctrl.decide(1.0, heart(1.0, 0.0, baseline=False), 0, 12)
    assert d.code == "no_baseline" and "no baseline yet" in d.reason and "no fresh heart data" not in d.reason
    d = ctrl.decide(2.0, heart(2.0, None, stale=True), 0, 12)
    assert d.code == "stale" and "no fresh heart data" in d.reason


def test_reentering_a_level_upwards_is_blocked_after_stepping_down_from_it():
    ctrl = ArousalHabituationController(spec(step_up_rule="hr", reenter_block_s=180.0), min_hold_s=60.0)
    ctrl.on_level_changed(0.0, 4)
    ctrl.on_level_changed(100.0, 3)  # stepped down from 4 at t = 100
    t, d = run(ctrl, lambda t: 0.0, until_s=400, level=3, start_s=100.0)
    assert d.action == "up" and t >= 280.0  # not before 100 + 180 s
    ctrl2 = ArousalHabituationController(spec(step_up_rule="hr", reenter_block_s=180.0), min_hold_s=60.0)
    ctrl2.on_level_changed(0.0, 4)
    ctrl2.on_level_changed(100.0, 3)
    ctrl2.on_level_changed(100.0, 3)
    for k in range(int(150 / 0.25)):
        t = 100.0 + k * 0.25
        d = ctrl2.decide(t, heart(t, 0.0), 3, 12)
    assert d.code == "reenter_blocked" and "level 4 was left downwards" in d.reason and "within 180 s" in d.reason


def test_compat_make_controller_uses_the_hr_rule_until_the_runtime_passes_suds():
    ctrl = make_controller(spec(step_up_rule="suds_and_hr"), min_hold_s=60.0)
    assert isinstance(ctrl, ArousalHabituationController) and ctrl.step_up_rule == "hr"
    protocol, _ = load_protocol("heights-graded")
    full = build_controller(protocol, max_level=12)
    assert isinstance(full, ArousalHabituationController) and full.step_up_rule == "suds_and_hr"


# -- target_band ------------------------------------------------------------------------------------


class SimulatedArousal:
    """A patient whose arousal follows intensity with a lag and habituates slowly (what target_band must track).

    Steady-state arousal = gain * level * (habituating sensitivity) + noise; first-order lag ``tau_s``.
    """

    def __init__(self, seed: int, tau_s: float = 15.0) -> None:
        rng = np.random.default_rng(seed)
        self.gain = float(rng.uniform(0.35, 0.6))
        self.habituation_tau_s = float(rng.uniform(400, 900))
        self.tau_s = tau_s
        self.z = 0.0
        self.rng = rng
        self.exposed_s = 0.0

    def step(self, dt_s: float, level_f: float) -> float:
        self.exposed_s += dt_s * level_f / 4.0
        sensitivity = 0.5 + 0.5 * math.exp(-self.exposed_s / self.habituation_tau_s)
        target = self.gain * level_f * sensitivity
        self.z += (target - self.z) * (1 - math.exp(-dt_s / self.tau_s))
        return self.z + float(self.rng.normal(0, 0.15))


@pytest.mark.parametrize("seed", range(5))
def test_target_band_holds_arousal_in_band_within_its_rate_and_limits(seed):
    s = spec(kind="target_band", band_low_z=1.0, band_high_z=2.0, max_levels_per_min=1.0, band_min_level=0.5,
             band_max_level=10.0)
    ctrl = TargetBandController(s, start_level=0.5, max_level=12)
    patient = SimulatedArousal(seed)
    ctrl.on_level_changed(0.0, 0)
    tick_s, t, level_f, z = 0.25, 0.0, 0.5, 0.0
    inside, counted = 0, 0
    levels = []
    while t < 20 * 60:
        z = patient.step(tick_s, level_f)
        d = ctrl.decide(t, heart(t, z), math.floor(level_f), 12)
        assert d.action == "set" and d.target_level is not None
        assert abs(d.target_level - level_f) <= 1.0 * tick_s / 60.0 + 1e-9, "faster than max_levels_per_min"
        assert 0.5 <= d.target_level <= 10.0, "outside the therapist's limits"
        level_f = d.target_level
        levels.append(level_f)
        if t >= 120.0:
            counted += 1
            inside += 1.0 <= patient.z <= 2.0
        t += tick_s
    assert inside / counted >= 0.8, f"in band {inside / counted:.0%}"


def test_target_band_respects_live_limits_and_session_max():
    s = spec(kind="target_band")
    ctrl = TargetBandController(s, start_level=2.0, max_level=12)
    ctrl.set_limits(1.0, 2.5)
    for k in range(2000):
        t = k * 0.25
        d = ctrl.decide(t, heart(t, 0.0), 2, 12)  # arousal stays low: it wants to climb
    assert d.target_level == 2.5 and "limit" in d.reason
    d = ctrl.decide(600.0, heart(600.0, 0.0), 2, 2)  # the session max is lower still
    assert d.target_level == 2.0
    with pytest.raises(ValueError):
        ctrl.set_limits(3.0, 2.0)
