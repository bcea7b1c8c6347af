"""The safety supervisor, tick by tick: the HR ceiling, the stale-data alert and its repeat, escalation.

These drive :class:`SafetySupervisor` directly on a scripted clock (no session,
no sleeping), so every threshold and boundary of ``check`` is pinned down; the
session tests show the runtime acting on its verdicts.
"""

from __future__ import annotations

import pytest

from biofeedback.records import HeartState
from protocols.model import SafetySpec
from therapy.safety import UNKNOWN_AGE_YEARS, SafetySupervisor, SafetyVerdict, tanaka_hr_max_bpm

SPEC = SafetySpec(hr_ceiling_fraction=0.85, ceiling_sustain_s=5.0, stale_alert_s=15.0, stale_alert_repeat_s=30.0,
                  breaches_to_escalate=2, escalation_window_s=600.0)
AGE = 40.0  # HR max 180 bpm, ceiling 153 bpm
HIGH = 160.0
CALM = 90.0
OK = SafetyVerdict(True, False)
HOLD = SafetyVerdict(False, False)


def heart(t_s: float, hr_bpm: float | None, *, stale: bool = False) -> HeartState:
    return HeartState(t_s=t_s, hr_bpm=hr_bpm, last_nn_ms=None, rmssd_ms=None, sdnn_ms=None, arousal=0.0,
                      baseline_hr_bpm=70.0, quality=1.0, artifact_rate=0.0, stale=stale, beats=100)


def supervisor(spec: SafetySpec = SPEC, age_years: float | None = AGE) -> SafetySupervisor:
    return SafetySupervisor(spec, age_years=age_years)


def run(sup: SafetySupervisor, ticks, *, exposed: bool = True) -> list[tuple[float, SafetyVerdict]]:
    """``ticks``: (t_s, hr_bpm or None for stale); returns the verdicts with their times."""
    return [(t, sup.check(t, heart(t, hr, stale=hr is None), exposed=exposed)) for t, hr in ticks]


def alerts(verdicts) -> list[tuple[float, SafetyVerdict]]:
    return [(t, v) for t, v in verdicts if v.alert_code is not None]


def test_tanaka_age_predicted_maximum():
    assert tanaka_hr_max_bpm(0) == 208.0
    assert tanaka_hr_max_bpm(40) == pytest.approx(180.0)
    assert tanaka_hr_max_bpm(70) == pytest.approx(159.0)


def test_the_ceiling_comes_from_the_patients_age_or_errs_low_without_it():
    sup = supervisor(SafetySpec(hr_ceiling_fraction=0.9), age_years=40)
    assert sup.age_known is True and sup.age_years == 40.0 and isinstance(sup.age_years, float)
    assert sup.hr_max_bpm == pytest.approx(180.0) and sup.ceiling_bpm == pytest.approx(162.0)
    newborn = supervisor(age_years=0)  # a known age of 0 is an age, not "unknown"
    assert newborn.age_known is True and newborn.age_years == 0.0 and newborn.ceiling_bpm == pytest.approx(0.85 * 208)
    unknown = supervisor(age_years=None)
    assert unknown.age_known is False and unknown.age_years == UNKNOWN_AGE_YEARS == 60.0
    assert unknown.ceiling_bpm == pytest.approx(0.85 * (208 - 0.7 * 60))
    assert unknown.breaches == 0


def test_fresh_data_below_the_ceiling_allows_a_step_up_and_says_nothing():
    sup = supervisor()
    for t, v in run(sup, [(0.0, CALM), (1.0, 152.9), (2.0, 60.0)]):
        assert v == OK
        assert (v.allow_step_up, v.go_to_safe_place, v.alert_code, v.message, v.escalate, v.severity) == (
            True, False, None, "", False, "warning")


def test_a_sustained_ceiling_breach_in_exposure_goes_to_the_safe_place():
    sup = supervisor()
    verdicts = run(sup, [(t / 2, HIGH) for t in range(0, 11)])  # 0 .. 5 s above the ceiling
    for t, v in verdicts[:-1]:
        assert v == HOLD, t  # above, but not yet for ceiling_sustain_s: no step up, no safe place yet
    t, v = verdicts[-1]
    assert t == 5.0
    assert v == SafetyVerdict(
        False, True, "hr_ceiling",
        "HR 160 bpm (now) above the safety ceiling 153 bpm (85% of the age-predicted maximum 180, 40 y) "
        "for 5 s: safe place",
        escalate=False, severity="critical",
    )
    assert sup.breaches == 1


def test_the_ceiling_itself_counts_as_above_it():
    sup = supervisor()
    ceiling = sup.ceiling_bpm
    verdicts = run(sup, [(0.0, ceiling), (5.0, ceiling)])
    assert verdicts[0][1] == HOLD and verdicts[1][1].go_to_safe_place
    assert run(supervisor(), [(0.0, ceiling - 0.01), (5.0, ceiling - 0.01)])[1][1] == OK


def test_an_unknown_age_is_named_in_the_alert():
    sup = supervisor(age_years=None)  # ceiling 0.85 x 166 = 141 bpm
    (_, v), = alerts(run(sup, [(0.0, 150.0), (5.0, 150.0)]))
    assert v.message == ("HR 150 bpm (now) above the safety ceiling 141 bpm (85% of the age-predicted maximum 166, "
                         "age unknown, 60 y assumed) for 5 s: safe place")


def test_a_dip_below_the_ceiling_restarts_the_sustain_time():
    sup = supervisor()
    verdicts = run(sup, [(0.0, HIGH), (3.0, HIGH), (3.5, CALM), (4.0, HIGH), (5.0, HIGH), (8.5, HIGH), (9.0, HIGH)])
    assert verdicts[2][1] == OK
    assert [t for t, v in verdicts if v.go_to_safe_place] == [9.0]  # 5 s after it rose again, not after it first rose
    assert "for 5 s" in verdicts[-1][1].message


def test_after_a_breach_the_next_needs_its_own_sustained_time_and_the_second_escalates():
    sup = supervisor()
    verdicts = run(sup, [(t * 0.5, HIGH) for t in range(0, 41)])  # 20 s above the ceiling, exposed
    breaches = [(t, v.escalate) for t, v in verdicts if v.go_to_safe_place]
    # each breach restarts the sustain clock; every second breach in the window escalates (then counting restarts)
    assert breaches == [(5.0, False), (10.5, True), (16.0, False)]
    assert sup.breaches == 3
    assert all(v.severity == "critical" and v.alert_code == "hr_ceiling" for t, v in verdicts if v.go_to_safe_place)
    assert all(v == HOLD for t, v in verdicts if not v.go_to_safe_place)


def _breach_at(sup: SafetySupervisor, t_s: float) -> SafetyVerdict:
    """Drive one breach that completes at ``t_s`` (HR above the ceiling from ``t_s - 5``), after a calm tick."""
    assert sup.check(t_s - 5.5, heart(t_s - 5.5, CALM), exposed=True) == OK
    assert sup.check(t_s - 5.0, heart(t_s - 5.0, HIGH), exposed=True) == HOLD
    v = sup.check(t_s, heart(t_s, HIGH), exposed=True)
    assert v.go_to_safe_place
    return v


def test_breaches_escalate_only_within_the_escalation_window():
    sup = supervisor()
    assert _breach_at(sup, 10.0).escalate is False
    assert _breach_at(sup, 610.0).escalate is True  # exactly escalation_window_s later: still inside
    sup = supervisor()
    assert _breach_at(sup, 10.0).escalate is False
    assert _breach_at(sup, 610.5).escalate is False  # the first one has left the window
    assert _breach_at(sup, 700.0).escalate is True
    assert sup.breaches == 3


def test_one_breach_escalates_when_the_protocol_says_so():
    sup = supervisor(SPEC.model_copy(update={"breaches_to_escalate": 1}))
    assert _breach_at(sup, 10.0).escalate is True
    assert _breach_at(sup, 20.0).escalate is True
    sup = supervisor(SPEC.model_copy(update={"breaches_to_escalate": 3}))
    assert [_breach_at(sup, t).escalate for t in (10.0, 20.0, 30.0, 40.0)] == [False, False, True, False]


def test_outside_exposure_a_breach_alerts_once_per_episode_and_never_sends_to_the_safe_place():
    sup = supervisor()
    ticks = [(float(t), HIGH) for t in range(0, 12)] + [(12.0, CALM)] + [(float(t), HIGH) for t in range(13, 19)]
    verdicts = run(sup, ticks, exposed=False)
    assert not any(v.go_to_safe_place or v.allow_step_up for t, v in verdicts if t != 12.0)
    assert verdicts[12][1] == OK
    assert all(v == HOLD for t, v in verdicts if t not in (5.0, 12.0, 18.0))  # above the ceiling, alerted or not yet
    got = alerts(verdicts)
    assert [t for t, _ in got] == [5.0, 18.0]  # once per episode above the ceiling
    assert got[0][1] == SafetyVerdict(
        False, False, "hr_ceiling",
        "HR 160 bpm (now) above the safety ceiling 153 bpm (85% of the age-predicted maximum 180, 40 y) "
        "for 5 s (no exposure shown): alert only",
    )
    assert got[0][1].severity == "warning" and not got[0][1].escalate
    assert sup.breaches == 0


def test_an_alert_outside_exposure_does_not_delay_the_safe_place_when_exposure_starts():
    sup = supervisor()
    run(sup, [(0.0, HIGH), (5.0, HIGH)], exposed=False)
    v = sup.check(6.0, heart(6.0, HIGH), exposed=True)  # still above since t=0: 6 s sustained
    assert v.go_to_safe_place and v.message.endswith("for 6 s: safe place")


def test_stale_data_in_exposure_alerts_after_stale_alert_s_and_repeats_louder():
    sup = supervisor()
    verdicts = run(sup, [(100.0 + t, None) for t in range(0, 80)])
    assert all(not v.allow_step_up and not v.go_to_safe_place for _, v in verdicts)
    got = alerts(verdicts)
    assert [t for t, _ in got] == [115.0, 145.0, 175.0]  # after 15 s, then every 30 s while it lasts
    assert got[0][1] == SafetyVerdict(False, False, "heart_data_stale",
                                      "no fresh heart data for 15 s: exposure held, check the sensor",
                                      severity="warning")
    assert got[1][1] == SafetyVerdict(False, False, "heart_data_stale",
                                      "no fresh heart data for 45 s: exposure held, check the sensor (still)",
                                      severity="critical")
    assert got[2][1].message.startswith("no fresh heart data for 75 s") and got[2][1].severity == "critical"
    assert all(v == HOLD for t, v in verdicts if v.alert_code is None)


def test_no_heart_rate_at_all_is_stale_data_too():
    sup = supervisor()
    verdicts = [(t, sup.check(t, heart(t, None, stale=False), exposed=True)) for t in (0.0, 10.0, 15.0)]
    assert [t for t, _ in alerts(verdicts)] == [15.0]


def test_stale_data_outside_exposure_is_timed_and_alerted_when_exposure_starts():
    sup = supervisor()
    assert alerts(run(sup, [(0.0, None), (10.0, None), (20.0, None)], exposed=False)) == []
    (t, v), = alerts(run(sup, [(21.0, None)]))
    assert v.message == "no fresh heart data for 21 s: exposure held, check the sensor"


def test_fresh_data_ends_the_stale_episode_and_the_next_one_starts_over():
    sup = supervisor()
    first = run(sup, [(0.0, None), (15.0, None)])
    assert [t for t, _ in alerts(first)] == [15.0]
    assert sup.check(16.0, heart(16.0, CALM), exposed=True) == OK
    second = run(sup, [(17.0, None), (31.0, None), (32.0, None), (46.0, None), (47.0, None)])
    got = alerts(second)
    assert [t for t, _ in got] == [32.0]  # 15 s after the new episode began (not 30 s after the old alert)
    assert got[0][1].severity == "warning" and "(still)" not in got[0][1].message


def test_stale_data_restarts_the_ceiling_sustain_time():
    sup = supervisor()
    verdicts = run(sup, [(0.0, HIGH), (3.0, HIGH), (4.0, None), (4.5, HIGH), (5.0, HIGH), (9.0, HIGH), (9.5, HIGH)])
    assert [t for t, v in verdicts if v.go_to_safe_place] == [9.5]


def test_stale_alert_repeat_follows_the_protocol():
    spec = SPEC.model_copy(update={"stale_alert_s": 5.0, "stale_alert_repeat_s": 10.0})
    sup = supervisor(spec)
    got = alerts(run(sup, [(float(t), None) for t in range(0, 30)]))
    assert [t for t, _ in got] == [5.0, 15.0, 25.0]
