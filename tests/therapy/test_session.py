"""Whole sessions through the real runtime, pipeline, simulator and SQLite store, on a virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from biofeedback.simulated import Fault, PatientModel
from protocols.model import load_protocol
from therapy import commands as cmd
from therapy.events import (
    EndStatus,
    LevelChanged,
    Phase,
    PhaseChanged,
    Recommendation,
    SafetyAlert,
    SessionEnded,
)



@pytest.mark.parametrize("seed", [0, 3])
def test_twenty_minute_session_climbs_steps_down_and_is_recorded(virtual_session, seed):
    s = virtual_session(minutes=20, seed=seed)
    assert s.status is EndStatus.COMPLETED
    (status, ended, reason), = s.query("SELECT status, ended_utc, end_reason FROM sessions")
    assert status == "completed" and ended is not None and reason == "protocol completed"

    phases = [p for (p,) in s.query("SELECT phase FROM phases ORDER BY t_s")]
    assert phases == ["baseline", "exposure", "recovery", "ended"]
    (t_exposure,), = s.query("SELECT t_s FROM phases WHERE phase='exposure'")
    assert t_exposure - s.t0_s == pytest.approx(180.0, abs=0.5)  # the protocol's 3-minute baseline

    levels = s.query("SELECT level, previous, cause, reason FROM level_changes ORDER BY t_s")
    assert len({lvl for lvl, *_ in levels}) >= 3
    downs = [r for r in levels if r[1] is not None and r[0] < r[1]]
    assert downs and all(cause == "controller" and "arousal too high" in why for _, _, cause, why in downs)
    ups = [r for r in levels if r[1] is not None and r[0] > r[1]]
    assert ups and all("habituated" in why for *_, why in ups)
    assert all(abs(lvl - prev) == 1 for lvl, prev, *_ in levels if prev is not None)

    # HR samples once a second across the whole session, with a baseline-relative arousal after the baseline.
    n, t_first, t_last = s.query("SELECT count(*), min(t_s), max(t_s) FROM hr_samples")[0]
    assert n == pytest.approx(1200, abs=3)
    assert t_first - s.t0_s < 1.5 and t_last - s.t0_s > 1198
    (with_arousal,), = s.query("SELECT count(*) FROM hr_samples WHERE arousal IS NOT NULL")
    assert with_arousal >= 1000
    (hr_min, hr_max), = s.query("SELECT min(hr_bpm), max(hr_bpm) FROM hr_samples WHERE hr_bpm IS NOT NULL")
    assert 45 < hr_min < hr_max < 140

    (beats, artifacts), = s.query("SELECT count(*), sum(artifact) FROM beats")
    assert beats > 1200 and 0 < artifacts < beats * 0.05
    (suds,), = s.query("SELECT count(*) FROM suds WHERE phase='exposure'")
    assert suds >= 5
    # the full event history is there too, in order
    kinds = [k for (k,) in s.query("SELECT kind FROM events ORDER BY seq")]
    assert kinds[0] == "PhaseChanged" and kinds[-1] == "SessionEnded"

AGED_80 = datetime.now(UTC).year - 80  # the patient's age gives the HR ceiling (Tanaka)


def test_same_seed_same_session(virtual_session):
    a = virtual_session(minutes=12, seed=5)
    b = virtual_session(minutes=12, seed=5)
    la = a.query("SELECT t_s, level, cause FROM level_changes ORDER BY t_s")
    lb = b.query("SELECT t_s, level, cause FROM level_changes ORDER BY t_s")
    assert la == lb


def test_never_steps_up_on_stale_data(virtual_session):
    # the strap freezes for two minutes in the middle of exposure
    s = virtual_session(minutes=20, seed=0, faults=[Fault("stall", 400.0, 120.0)])
    assert s.status is EndStatus.COMPLETED
    stall_start, stall_end = s.t0_s + 400.0, s.t0_s + 520.0
    ups_during = [
        e for e in s.of(LevelChanged)
        if stall_start + 5.0 <= e.t_s <= stall_end and e.previous is not None and e.level > e.previous
    ]
    assert ups_during == []
    assert any(e.code == "stale" for e in s.of(Recommendation) if stall_start <= e.t_s <= stall_end)
    assert any(e.code == "heart_data_stale" for e in s.of(SafetyAlert))
    (stale_rows,), = s.query("SELECT count(*) FROM hr_samples WHERE stale=1 AND t_s BETWEEN ? AND ?",
                             stall_start + 10, stall_end)
    assert stale_rows > 90


def test_dropouts_and_bad_payloads_never_end_the_session(virtual_session):
    faults = [Fault("dropout", 300.0, 30.0), Fault("bad_payload", 500.0, 20.0), Fault("implausible", 700.0, 10.0)]
    s = virtual_session(minutes=15, seed=2, faults=faults)
    assert s.status is EndStatus.COMPLETED
    states = [state for (state,) in s.query("SELECT json_extract(payload_json, '$.state') FROM events "
                                            "WHERE kind='SensorEvent'")]
    assert "lost" in states and "reconnected" in states and states.count("payload_error") >= 15


def test_hr_ceiling_sends_the_patient_to_the_safe_place(virtual_session):
    # an older patient (80 y: 85 % of Tanaka's 152 bpm = 129 bpm) whose heart races at the first height
    spec, _ = load_protocol("heights-graded")
    model = PatientModel(rest_hr_bpm=90.0, fear_gain_bpm=900.0, habituation_tau_s=1e6, fear_floor=1.0)
    s = virtual_session(minutes=12, seed=1, model=model, protocol=spec, birth_year=AGED_80)
    alerts = [e for e in s.of(SafetyAlert) if e.code == "hr_ceiling"]
    assert alerts and alerts[0].action == "safe_place" and "ceiling" in alerts[0].message
    safe = [e for e in s.of(PhaseChanged) if e.phase is Phase.SAFE_PLACE]
    assert safe and safe[0].t_s == pytest.approx(alerts[0].t_s)
    # the scene really switched to the safe place
    assert any(sc.safe_place and sc.environment == "safe_place" and sc.t_s > safe[0].t_s for sc in s.scenes)
    assert s.status is EndStatus.COMPLETED


def test_therapist_stop_ends_in_the_safe_place(virtual_session):
    s = virtual_session(minutes=20, seed=0, script=[(400.0, cmd.Stop(source="therapist", reason="patient unwell"))])
    assert s.status is EndStatus.STOPPED
    (status, reason), = s.query("SELECT status, end_reason FROM sessions")
    assert status == "stopped" and "patient unwell" in reason
    end = s.of(SessionEnded)[0]
    assert end.t_s - s.t0_s == pytest.approx(400.0, abs=0.01)  # applied at once, not at the next tick
    assert s.scenes[-1].safe_place and s.scenes[-1].environment == "safe_place"


def test_patient_stop_pauses_in_the_safe_place_until_resumed(virtual_session):
    script = [
        (500.0, cmd.GoToSafePlace(source="patient", reason="the patient asked to stop")),
        (620.0, cmd.ResumeExposure(source="therapist")),
    ]
    s = virtual_session(minutes=20, seed=0, script=script)
    phases = [(e.phase, round(e.t_s - s.t0_s)) for e in s.of(PhaseChanged)]
    assert (Phase.SAFE_PLACE, 500) in phases and (Phase.EXPOSURE, 620) in phases
    in_safe = [e for e in s.of(LevelChanged) if s.t0_s + 500 < e.t_s < s.t0_s + 620]
    assert in_safe == []  # no exposure change while the patient is in the safe place
    resumed = [e for e in s.of(LevelChanged) if e.t_s == pytest.approx(s.t0_s + 620)]
    assert resumed and "one level lower" in resumed[0].reason
    assert s.status is EndStatus.COMPLETED


def test_therapist_level_out_of_range_is_refused_not_fatal(virtual_session):
    s = virtual_session(minutes=10, seed=0, script=[(300.0, cmd.SetLevel(source="therapist", level=99))])
    assert s.status is EndStatus.COMPLETED
    assert any(e.code == "command_refused" and "99" in e.message for e in s.of(SafetyAlert))


def test_level_changes_are_shown_gradually(virtual_session):
    s = virtual_session(minutes=12, seed=0)
    up = next(e for e in s.of(LevelChanged) if e.previous is not None and e.level > e.previous)
    during = [sc for sc in s.scenes if up.t_s < sc.t_s < up.t_s + 5.5]  # the protocol's ramp is 6 s
    after = [sc for sc in s.scenes if up.t_s + 7 <= sc.t_s <= up.t_s + 10]
    assert during and all(sc.level == up.previous and 0 < sc.intensity < 1 for sc in during)
    assert [sc.intensity for sc in during] == sorted(sc.intensity for sc in during)
    assert after and all(sc.level == up.level and sc.intensity == 0 for sc in after)


def test_a_failing_pipeline_never_ends_the_session(virtual_session, monkeypatch):
    from biofeedback.pipeline import HeartPipeline

    calls = {"n": 0}
    real_state = HeartPipeline.state

    def flaky_state(self, now_s):  # a fault injected into a collaborator: ten ticks of a broken pipeline
        calls["n"] += 1
        if 2000 <= calls["n"] < 2010:
            raise RuntimeError("pipeline bug")
        return real_state(self, now_s)

    monkeypatch.setattr(HeartPipeline, "state", flaky_state)
    s = virtual_session(minutes=15, seed=0)
    assert s.status is EndStatus.COMPLETED
    alerts = [e for e in s.of(SafetyAlert) if e.code == "runtime_error"]
    assert len(alerts) == 1 and "pipeline bug" in alerts[0].message  # reported once, not every tick
    assert any(e.phase is Phase.SAFE_PLACE for e in s.of(PhaseChanged))


def test_spiders_protocol_runs_a_whole_session(virtual_session):
    spec, _ = load_protocol("spiders-graded")
    s = virtual_session(minutes=12, seed=4, protocol=spec)
    assert s.status is EndStatus.COMPLETED
    envs = {env for (env,) in s.query("SELECT DISTINCT environment FROM level_changes")}
    assert envs == {"spiders"} and len(s.of(LevelChanged)) >= 3
    assert any(sc.environment == "spiders" and not sc.safe_place for sc in s.scenes)


def test_patient_stop_during_the_baseline_holds_exposure_until_resumed(virtual_session):
    script = [
        (60.0, cmd.GoToSafePlace(source="patient", reason="the patient asked to stop")),
        (400.0, cmd.ResumeExposure(source="therapist")),
    ]
    s = virtual_session(minutes=15, seed=0, script=script)
    assert any(e.code == "stop_requested" and abs(e.t_s - s.t0_s - 60) < 0.01 for e in s.of(SafetyAlert))
    phases = [(e.phase, round(e.t_s - s.t0_s)) for e in s.of(PhaseChanged)]
    assert phases[:3] == [(Phase.BASELINE, 0), (Phase.SAFE_PLACE, 180), (Phase.EXPOSURE, 400)]
    first = s.of(LevelChanged)[0]
    assert round(first.t_s - s.t0_s) == 400 and first.level == 0 and first.reason == "first level of the protocol"
    assert not any(sc.environment == "heights" for sc in s.scenes if sc.t_s < s.t0_s + 400)


def test_patient_stop_in_a_safety_safe_place_cancels_the_automatic_resume(virtual_session):
    spec, _ = load_protocol("heights-graded")  # a protocol that lets exposure resume by itself after a safety stop
    spec = spec.model_copy(update={"safety": spec.safety.model_copy(update={"resume_after_safety": "auto"})})
    model = PatientModel(rest_hr_bpm=90.0, fear_gain_bpm=900.0, habituation_tau_s=1e6, fear_floor=1.0)
    probe = virtual_session(minutes=12, seed=1, model=model, protocol=spec, birth_year=AGED_80)
    t_safety = next(e.t_s for e in probe.of(PhaseChanged) if e.phase is Phase.SAFE_PLACE) - probe.t0_s
    resumed = [e for e in probe.of(PhaseChanged) if e.phase is Phase.EXPOSURE and e.t_s - probe.t0_s > t_safety]
    assert resumed  # without a STOP, the supervisor resumes exposure once HR is back down

    stop = cmd.GoToSafePlace(source="patient", reason="the patient asked to stop")
    s = virtual_session(minutes=12, seed=1, model=model, protocol=spec, birth_year=AGED_80, script=[(t_safety + 5.0, stop)])
    after = [e for e in s.of(PhaseChanged) if e.t_s - s.t0_s > t_safety]
    assert [e.phase for e in after] == [Phase.RECOVERY, Phase.ENDED]  # stays in the safe place


def test_after_a_stop_the_safe_place_keeps_showing_while_it_fades_in(virtual_session):
    s = virtual_session(minutes=20, seed=0, script=[(400.0, cmd.Stop(source="therapist"))])
    end = s.of(SessionEnded)[0]
    closing = [sc for sc in s.scenes if sc.t_s > end.t_s]
    assert closing and all(sc.safe_place for sc in closing)
    assert closing[-1].fade == 0.0 and closing[-1].fade_rgb == (1.0, 1.0, 1.0)  # faded in from white, then clear
