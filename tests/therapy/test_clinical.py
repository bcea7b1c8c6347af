"""Issue 8 through the real runner and runtime on the virtual clock: SUDS as data, step-up rules with both signals,
therapist confirmation, safety a clinician can sign off, resonance breathing.

Patients and therapists here are scripted companions that watch the live session's snapshot and send the same
commands the headset and the console send.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest

from biofeedback.simulated import Fault, PatientModel, SimulatedSensor
from protocols.model import load_protocol
from therapy import commands as cmd
from therapy.events import (
    BreathingSampled,
    EndStatus,
    LevelChanged,
    LevelSuds,
    Phase,
    PhaseChanged,
    Recommendation,
    ResonanceAssessed,
    SafetyAlert,
    StepUpOffered,
    StepUpResolved,
    SudsMissed,
    SudsPrompted,
    SudsRecorded,
    TherapistDecision,
)
from therapy.live import LiveSession
from therapy.session import drive_from_scene
from therapy.store import open_store

AGED_80 = datetime.now(UTC).year - 80


def protocol(name: str = "heights-graded", **sections: dict):
    spec, _ = load_protocol(name)
    update = {key: getattr(spec, key).model_copy(update=values) for key, values in sections.items()}
    return spec.model_copy(update=update)


def scripted_patient(answer: Callable[[SudsPrompted, int], int | None], delay_s: float = 5.0):
    """A patient who answers each prompt (``answer(prompt, n)`` -> value, or None to stay silent)."""

    async def run(live: LiveSession, clock) -> None:
        seen, n = None, 0
        while True:
            await clock.sleep(0.5)
            p = live.snapshot().pending_suds
            if p is None or p.t_s == seen:
                continue
            seen = p.t_s
            value = answer(p, n)
            n += 1
            if value is None:
                continue
            await clock.sleep(delay_s)
            live.commands.put(cmd.AnswerSuds(source="patient (scripted)", value=value))

    return run


def scripted_therapist(on_offer: Callable[[StepUpOffered, int], cmd.Command | None], delay_s: float = 5.0):
    async def run(live: LiveSession, clock) -> None:
        seen, n = None, 0
        while True:
            await clock.sleep(0.5)
            offer = live.snapshot().pending_step_up
            if offer is None or offer.t_s == seen:
                continue
            seen = offer.t_s
            command = on_offer(offer, n)
            n += 1
            if command is not None:
                await clock.sleep(delay_s)
                live.commands.put(command)

    return run


def falling_suds(p: SudsPrompted, n: int) -> int:
    """70 when a level is reached, then 30: distress halves within the level."""
    return 70 if p.suds_kind == "entry" else 30


def test_suds_falling_by_half_while_hr_settles_offers_a_step_up_that_waits_for_the_therapist(virtual_session):
    accepted: list[float] = []

    def accept_first(offer: StepUpOffered, n: int):
        accepted.append(offer.t_s)
        return cmd.AcceptStepUp(source="therapist:alice") if n == 0 else None

    s = virtual_session(minutes=14, seed=2, simulated_patient=False, simulated_therapist=False,
                        companions=[scripted_patient(falling_suds), scripted_therapist(accept_first, delay_s=20.0)])
    offers = s.of(StepUpOffered)
    assert offers, [r.reason for r in s.of(Recommendation)][-5:]
    first = offers[0]
    assert "SUDS 70 -> 30 (-57 %, needs -50 %" in first.reason and "arousal" in first.reason and "SD" in first.reason
    # the level stays until the therapist accepts, 20 s later; then it moves with the therapist as its cause
    ups = [e for e in s.of(LevelChanged) if e.previous is not None and e.level > e.previous]
    assert ups and ups[0].t_s == pytest.approx(first.t_s + 20.0, abs=1.0) and ups[0].cause == "therapist"
    (resolved,) = [e for e in s.of(StepUpResolved) if e.outcome == "accepted"]
    assert resolved.who == "therapist:alice" and resolved.t_s == ups[0].t_s
    # only the first offer was accepted: later ones expire unanswered and the level holds
    later = [e for e in s.of(StepUpResolved) if e.t_s > resolved.t_s]
    assert all(e.outcome in ("expired", "withdrawn") for e in later)
    assert all(not (e.level > (e.previous or 0)) or e.t_s <= ups[0].t_s for e in s.of(LevelChanged))


def test_a_declined_step_is_not_offered_again_before_its_set_time(virtual_session):
    spec = protocol()
    decline_blocks_s = spec.controller.decline_blocks_s

    def decline_all(offer: StepUpOffered, n: int):
        return cmd.DeclineStepUp(source="therapist:bob", reason="patient looks tired")

    s = virtual_session(minutes=16, seed=2, simulated_patient=False, simulated_therapist=False,
                        companions=[scripted_patient(falling_suds), scripted_therapist(decline_all, delay_s=3.0)])
    declines = [e for e in s.of(StepUpResolved) if e.outcome == "declined"]
    assert declines and declines[0].who == "therapist:bob" and declines[0].reason == "patient looks tired"
    offers = s.of(StepUpOffered)
    for d in declines:
        again = [o for o in offers if o.t_s > d.t_s and o.to_level == d.to_level]
        assert not again or again[0].t_s - d.t_s >= decline_blocks_s - 0.25
    assert not [e for e in s.of(LevelChanged) if e.previous is not None and e.level > e.previous]


def test_suds_that_stays_high_blocks_suds_and_hr_even_when_hr_settles(virtual_session):
    s = virtual_session(minutes=14, seed=2, simulated_patient=False, simulated_therapist=True,
                        companions=[scripted_patient(lambda p, n: 70)])
    assert not s.of(StepUpOffered)
    assert not [e for e in s.of(LevelChanged) if e.previous is not None and e.level > e.previous]
    held = [r for r in s.of(Recommendation) if r.code == "suds_high"]
    assert held and "SUDS 70 -> 70" in held[-1].reason and "arousal" in held[-1].reason


@pytest.mark.parametrize("rule", ["hr", "suds", "suds_and_hr", "suds_or_hr"])
@pytest.mark.parametrize("step_up", ["auto", "confirm"])
def test_a_suds_of_95_steps_down_at_once_in_every_mode(virtual_session, rule, step_up):
    spec = protocol(controller={"step_up_rule": rule, "step_up": step_up})
    script = [(240.0, cmd.SetLevel(source="therapist", level=3)), (300.0, cmd.RequestSuds(source="therapist"))]
    s = virtual_session(minutes=10, seed=2, protocol=spec, simulated_patient=False, simulated_therapist=False,
                        script=script,
                        companions=[scripted_patient(lambda p, n: 95 if p.suds_kind == "therapist" else 40, delay_s=4.0)])
    (answer,) = [e for e in s.of(SudsRecorded) if e.value == 95]
    assert answer.suds_kind == "therapist" and answer.level >= 1
    down = [e for e in s.of(LevelChanged) if e.t_s >= answer.t_s]
    assert down and down[0].level == answer.level - 1 and down[0].t_s - answer.t_s <= 0.25
    assert "SUDS 95" in down[0].reason


@pytest.mark.parametrize("step_up", ["auto", "confirm"])
def test_an_arousal_spike_steps_down_at_once_without_waiting_for_anyone(virtual_session, step_up):
    spec = protocol(controller={"step_up": step_up})
    model = PatientModel(fear_gain_bpm=80.0, habituation_tau_s=1e6, fear_floor=1.0)
    s = virtual_session(minutes=12, seed=1, protocol=spec, model=model, simulated_therapist=False,
                        script=[(200.0, cmd.SetLevel(source="therapist", level=4))])
    downs = [e for e in s.of(LevelChanged) if e.previous is not None and e.level < e.previous]
    assert downs and downs[0].cause == "controller" and "arousal" in downs[0].reason
    assert not [e for e in s.of(StepUpResolved) if e.outcome == "accepted"]


def test_anticipated_peak_and_end_suds_per_level_are_in_the_record(virtual_session):
    spec = protocol(suds={"anticipated": True}, controller={"step_up": "auto"})
    ratings = {"anticipated": 50, "entry": 70}

    s = virtual_session(minutes=16, seed=2, protocol=spec, simulated_patient=False,
                        companions=[scripted_patient(lambda p, n: ratings.get(p.suds_kind, 30))])
    visits = [v for v in s.of(LevelSuds) if v.ratings]
    assert len(visits) >= 2
    after_step = [v for v in visits if v.anticipated is not None]
    assert after_step and after_step[0].anticipated == 50 and after_step[0].peak == 70 and after_step[0].end == 30
    kinds = {k for (k,) in s.query("SELECT DISTINCT kind FROM suds")}
    assert {"anticipated", "entry"} <= kinds
    prompts = [p for p in s.of(SudsPrompted) if p.suds_kind == "anticipated"]
    assert prompts and "panic" in prompts[0].question
    # the anticipated rating is asked before the level is shown: the level change follows the answer
    first_ant = [e for e in s.of(SudsRecorded) if e.suds_kind == "anticipated"][0]
    change = [e for e in s.of(LevelChanged) if e.t_s >= first_ant.t_s][0]
    assert change.t_s == pytest.approx(first_ant.t_s, abs=0.3)


def test_a_missed_prompt_is_recorded_as_missed_never_guessed(virtual_session):
    s = virtual_session(minutes=9, seed=2, simulated_patient=False, companions=[scripted_patient(lambda p, n: None)])
    missed = s.of(SudsMissed)
    assert missed and not s.of(SudsRecorded)
    assert s.query("SELECT count(*) FROM suds") == [(0,)]


def test_a_dead_strap_waits_for_the_therapist_repeats_the_alert_and_says_so_in_the_record(virtual_session):
    spec = protocol()
    dead = [Fault("no_contact", 6.0, 10_000.0)]  # valid for the first seconds (the runner's signal check), then dead
    s = virtual_session(minutes=14, seed=0, faults=dead, protocol=spec,
                        script=[(600.0, cmd.ProceedWithoutHeartData(source="therapist:alice",
                                                                    reason="strap broken, patient wants to go on"))])
    t0 = s.t0_s
    phases = [(e.phase, round(e.t_s - t0)) for e in s.of(PhaseChanged)]
    exposure_starts = [t for p, t in phases if p is Phase.EXPOSURE]
    assert exposure_starts and exposure_starts[0] == 600, phases
    no_data = [a for a in s.of(SafetyAlert) if a.code == "no_heart_data" and a.t_s - t0 < 600]
    assert len(no_data) >= 5 and no_data[-1].severity == "critical"  # repeated while it lasts
    (decision,) = s.of(TherapistDecision)
    assert decision.decision == "exposure_without_heart_data" and decision.source == "therapist:alice"
    with open_store(s.db_path.parent) as store:
        details = store.session_details(s.session_id)
    assert any(a["code"] == "no_heart_data" for a in details["alerts"])
    kinds = [k for (k,) in s.query("SELECT kind FROM events WHERE kind='TherapistDecision'")]
    assert kinds == ["TherapistDecision"]


def test_resume_without_heart_data_is_refused_and_never_automatic(virtual_session):
    dead = [Fault("no_contact", 6.0, 10_000.0)]
    s = virtual_session(minutes=10, seed=0, faults=dead,
                        script=[(400.0, cmd.ResumeExposure(source="therapist"))])
    assert Phase.EXPOSURE not in [e.phase for e in s.of(PhaseChanged)]
    refused = [a for a in s.of(SafetyAlert) if a.code == "command_refused"]
    assert refused and "no heart data" in refused[0].message


def _ceiling_model() -> PatientModel:
    return PatientModel(rest_hr_bpm=90.0, fear_gain_bpm=900.0, habituation_tau_s=1e6, fear_floor=1.0)


def test_an_hr_ceiling_breach_never_resumes_exposure_by_itself(virtual_session):
    s = virtual_session(minutes=14, seed=1, model=_ceiling_model(), birth_year=AGED_80)
    phases = [e.phase for e in s.of(PhaseChanged)]
    assert Phase.SAFE_PLACE in phases
    after = phases[phases.index(Phase.SAFE_PLACE):]
    assert after == [Phase.SAFE_PLACE, Phase.RECOVERY, Phase.ENDED]
    assert s.status is EndStatus.COMPLETED


def test_repeated_breaches_lower_the_sessions_maximum_level(virtual_session):
    spec = protocol(controller={"step_up": "auto"})
    resume = [(t, cmd.ResumeExposure(source="therapist")) for t in (300.0, 420.0, 540.0, 660.0)]
    climb = [(t + 60.0, cmd.SetLevel(source="therapist", level=2)) for t, _ in resume]
    script = sorted(resume + climb, key=lambda x: x[0])
    s = virtual_session(minutes=16, seed=1, protocol=spec, model=_ceiling_model(), birth_year=AGED_80,
                        script=[(200.0, cmd.SetLevel(source="therapist", level=2)), *script])
    breaches = [a for a in s.of(SafetyAlert) if a.code == "hr_ceiling" and a.action == "safe_place"]
    assert len(breaches) >= 2
    (lowered, *_) = [a for a in s.of(SafetyAlert) if a.code == "hr_ceiling_repeated"]
    assert lowered.action == "lower_max_level" and lowered.severity == "critical"
    breach_level = [e for e in s.of(LevelChanged) if e.t_s <= lowered.t_s][-1].level
    new_max = int(lowered.message.rsplit(" ", 1)[1])
    assert new_max == breach_level - 1  # below the level where the last breach happened
    # after the escalation the session never shows a higher level again: the therapist's SetLevel is refused
    assert all(e.level <= new_max for e in s.of(LevelChanged) if e.t_s > lowered.t_s)
    refused = [a for a in s.of(SafetyAlert) if a.code == "command_refused" and a.t_s > lowered.t_s]
    assert any(f"above this session's maximum level {new_max}" in a.message for a in refused)


def test_the_hr_ceiling_is_watched_in_the_baseline_too(virtual_session):
    model = PatientModel(rest_hr_bpm=140.0)
    s = virtual_session(minutes=8, seed=1, model=model, birth_year=AGED_80)
    early = [a for a in s.of(SafetyAlert) if a.code == "hr_ceiling" and a.t_s - s.t0_s < 180]
    assert early and early[0].action == "alert" and "no exposure shown" in early[0].message


def _resonance_sensor_factory(seed: int, holder: dict):
    def factory(clock, scene):
        sensor = SimulatedSensor(clock, seed=seed, drive=drive_from_scene(scene, 1),
                                 pacer=lambda: holder["runner"].pacer_breaths_per_min())
        holder["sensor"] = sensor
        return sensor

    return factory


def test_the_resonance_assessment_finds_the_simulated_rate_and_saves_it_for_9_of_10_seeds(tmp_path):
    from tests.therapy.conftest import run_virtual_session

    hits, lines = 0, []
    for seed in range(10):
        holder: dict = {}
        folder = tmp_path / f"s{seed}"
        folder.mkdir()
        s = run_virtual_session(folder, minutes=16, seed=seed, protocol="resonance-assessment",
                                sensor_factory=_resonance_sensor_factory(seed, holder), runner_holder=holder)
        (result,) = s.of(ResonanceAssessed)
        truth = holder["sensor"].model.resonance_breaths_per_min
        hits += result.breaths_per_min is not None and abs(result.breaths_per_min - truth) <= 0.5
        lines.append(f"seed {seed}: true {truth:.2f}, chose {result.breaths_per_min}")
        with open_store(folder) as store:
            assert store.patient("P01").resonance_breaths_per_min == result.breaths_per_min
        assert "breaths/min" in result.explanation and len(result.per_rate) == 5
    assert hits >= 9, lines


def test_hrv_biofeedback_paces_at_the_patients_rate_and_its_calm_response_rises(tmp_path):
    from tests.therapy.conftest import run_virtual_session

    with open_store(tmp_path) as store:
        store.add_patient("P01", birth_year=1990)
        store.set_resonance("P01", 5.5)
    holder: dict = {}
    s = run_virtual_session(tmp_path, minutes=15, seed=4, protocol="hrv-biofeedback",
                            sensor_factory=_resonance_sensor_factory(4, holder), runner_holder=holder)
    samples = s.of(BreathingSampled)
    assert samples and all(b.breaths_per_min == 5.5 for b in samples)
    calm = [b.calm for b in samples]
    first_min, last_min = sum(calm[:60]) / 60, sum(calm[-60:]) / 60
    assert last_min > first_min + 0.1, (first_min, last_min)
    assert s.query("SELECT count(*) FROM events WHERE kind='BreathingSampled'")[0][0] == len(samples)


def test_only_the_safety_supervisor_stops_a_step_up_the_controller_wants(tmp_path):
    """A heart resting at 128 bpm (its own baseline), then 130 bpm: arousal +1 SD, calm enough for the controller,
    but above this 80-year-old's ceiling (85 % of 152 = 129 bpm). The supervisor vetoes every step up until the
    sustained breach sends the patient to the safe place; without its veto the controller would climb."""
    from tests.therapy.conftest import run_virtual_session

    rr = np.concatenate([np.full(int(200 * 128 / 60), 60000 / 128), np.full(int(400 * 130 / 60), 60000 / 130)])
    recording = tmp_path / "rr.npy"
    np.save(recording, rr)
    spec = protocol(exposure={"min_hold_s": 20.0}, safety={"ceiling_sustain_s": 60.0},
                    controller={"step_up_rule": "hr", "step_up": "auto", "step_up_sustain_s": 10.0},
                    suds={"every_s": 0.0, "on_entry": False, "before_step_up": False, "at_end": False})
    s = run_virtual_session(tmp_path / "s", minutes=9, protocol=spec, sensor=f"replay:{recording}",
                            birth_year=AGED_80, simulated_patient=False, simulated_therapist=False)
    vetoes = [r for r in s.of(Recommendation) if r.code == "safety_veto"]
    assert vetoes and "ready to step up" in vetoes[0].reason
    safe = [e for e in s.of(PhaseChanged) if e.phase is Phase.SAFE_PLACE]
    assert safe and "safety ceiling" in safe[0].reason
    ups = [e for e in s.of(LevelChanged) if e.previous is not None and e.level > e.previous]
    assert not [e for e in ups if e.t_s < safe[0].t_s]


def test_every_event_kind_is_its_class_name(virtual_session):
    """A field may never shadow ``Event.kind`` (the store's events.kind column, the console, LSL markers)."""
    s = virtual_session(minutes=9, seed=2)
    assert {type(e).__name__ for e in s.events} >= {"SudsPrompted", "SudsRecorded", "PhaseChanged"}
    assert all(e.kind == type(e).__name__ for e in s.events)
    stored = {k for (k,) in s.query("SELECT DISTINCT kind FROM events")}
    assert "SudsRecorded" in stored and not stored & {"entry", "during", "end", "anticipated"}


@pytest.mark.parametrize("seed", [0, 4])
def test_target_band_through_the_runtime_holds_arousal_in_band_within_its_rate_and_limits(virtual_session, seed):
    """The whole loop: the runtime applies target_band's continuous level to the scene (level + intensity), the
    simulated patient's heart answers what is shown, the controller keeps the 10-s arousal inside its band."""
    spec = protocol(controller={"kind": "target_band", "band_low_z": 1.0, "band_high_z": 2.5,
                                "max_levels_per_min": 1.0, "band_min_level": 0.0, "band_max_level": 8.0},
                    exposure={"ramp_s": 0.0})
    s = virtual_session(minutes=17, seed=seed, protocol=spec, simulated_therapist=False)
    (start,) = [e.t_s for e in s.of(PhaseChanged) if e.phase is Phase.EXPOSURE]
    end = [e.t_s for e in s.of(PhaseChanged) if e.phase is Phase.RECOVERY][0]
    from therapy.events import ExposureSampled, HeartSampled

    shown = [(e.t_s, e.level + e.intensity) for e in s.of(ExposureSampled) if start < e.t_s < end and not e.safe_place]
    heart = [(e.t_s, e.arousal) for e in s.of(HeartSampled) if start + 120.0 <= e.t_s < end and e.arousal is not None]
    means = [np.mean([z for t2, z in heart if t - 10.0 < t2 <= t]) for t, _ in heart]
    in_band = np.mean([1.0 <= z <= 2.5 for z in means])
    assert in_band >= 0.8, f"10-s arousal in band {in_band:.0%} of exposure after its first 2 minutes"
    levels = np.array([lv for _, lv in shown])
    assert levels.min() >= 0.0 and 1.0 <= levels.max() <= 8.0 + 1e-9  # it climbed, within the limits
    rate = np.abs(np.diff(levels)) / np.diff([t for t, _ in shown])
    assert rate.max() <= 1.0 / 60.0 + 1e-6  # never faster than 1 level per minute (no safety drop happened)
    assert not [e for e in s.of(LevelChanged) if "at once" in e.reason]


@pytest.mark.parametrize("name", ["heights-graded", "spiders-graded", "dogs-graded", "enclosed-graded",
                                  "public-speaking-graded", "hrv-biofeedback", "resonance-assessment"])
def test_every_builtin_protocol_runs_a_whole_session(virtual_session, name):
    s = virtual_session(minutes=16, seed=3, protocol=name)
    assert s.status is EndStatus.COMPLETED
    phases = [e.phase for e in s.of(PhaseChanged)]
    middle = Phase.BREATHING if name in ("hrv-biofeedback", "resonance-assessment") else Phase.EXPOSURE
    assert phases[:2] == [Phase.BASELINE, middle] and phases[-2:] == [Phase.RECOVERY, Phase.ENDED]
    if middle is Phase.EXPOSURE:
        assert len({e.level for e in s.of(LevelChanged)}) >= 2  # the simulated patient climbs the hierarchy
