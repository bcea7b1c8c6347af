"""The session runtime: the one writer of session state.

It runs on the asyncio loop: it feeds sensor records into the heart pipeline,
ticks the protocol's state machine (baseline -> exposure -> recovery), asks the
controller for a decision, lets the safety supervisor veto it, applies commands,
publishes every event (and every raw sensor record) through the
:class:`~therapy.live.LiveSession` and swaps a new :class:`SceneState` into the
box the render loop reads. It never waits for the renderer, an observer or the
disk, and none of them waits for it.

A busy CPU never changes a decision: before each tick the loop yields until
every task whose time has come (the sensor's above all) has run, so the tick
reads a pipeline that has every record due; a loop that is behind skips the
ticks it missed instead of bursting through them on stale data, and reports
the lag (:class:`~therapy.events.LoopLagged`). On a paced clock (simulated
sensors) time itself waits for the session, so nothing is ever skipped.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from biofeedback.clock import Clock
from biofeedback.errors import BiofeedbackError
from biofeedback.pipeline import HeartPipeline
from biofeedback.records import HeartState, LinkEvent, PayloadError, SensorRecord
from biofeedback.sensor import HeartSensor
from environments.registry import EnvironmentInfo
from environments.scene_state import SceneState, SceneStateBox
from protocols.controller import Decision, make_controller
from protocols.model import ProtocolSpec
from therapy import commands as cmd
from therapy.errors import TherapyError
from therapy.events import (
    BaselineMeasured,
    BeatRecorded,
    EndStatus,
    Event,
    ExposureSampled,
    HeartSampled,
    LevelChanged,
    LoopLagged,
    Phase,
    PhaseChanged,
    Recommendation,
    SafetyAlert,
    SensorEvent,
    SessionEnded,
    SudsMissed,
    SudsPrompted,
    SudsRecorded,
)
from therapy.live import LiveSession
from therapy.safety import SafetySupervisor

log = logging.getLogger(__name__)

SUDS_PROMPT_TEXT = "How anxious do you feel right now?\n0 = completely calm, 100 = the worst imaginable"
BASELINE_TEXT = "Resting baseline\nSit comfortably and breathe normally"
RECOVERY_TEXT = "Well done\nBreathe with the light: in as it grows, out as it shrinks"


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """How long each part of this session lasts (session-clock seconds)."""

    total_s: float
    baseline_s: float
    recovery_s: float

    @property
    def exposure_end_s(self) -> float:
        return self.total_s - self.recovery_s

    @classmethod
    def for_minutes(cls, protocol: ProtocolSpec, minutes: float) -> SessionPlan:
        """Fit the protocol into ``minutes``; too short a session is a user error naming the minimum."""
        total_s = minutes * 60.0
        min_exposure_s = 2 * protocol.exposure.min_hold_s
        needed_s = protocol.fixed_duration_s + min_exposure_s
        if total_s < needed_s:
            raise TherapyError(
                f"--minutes {minutes:g} is too short for protocol {protocol.name!r}: its baseline "
                f"({protocol.baseline.duration_s:.0f} s), recovery ({protocol.recovery.duration_s:.0f} s) and at "
                f"least two exposure levels need {math.ceil(needed_s / 60)} minutes; use --minutes "
                f"{math.ceil(needed_s / 60)} or more"
            )
        return cls(total_s, protocol.baseline.duration_s, protocol.recovery.duration_s)


class SessionRuntime:
    """Runs one session to its end; :meth:`run` returns how it ended."""

    tick_s = 0.25
    #: a loop this far behind its clock (session seconds) reports the lag; half of it again ends the report
    lag_report_s = 1.0
    hr_sample_period_s = 1.0
    fade_in_s = 1.5
    safety_resume_after_s = 60.0
    closing_s = 3.0  # after the end, keep showing the (safe place) scene while its fade completes
    baseline_retries = 2

    def __init__(
        self,
        *,
        clock: Clock,
        sensor: HeartSensor,
        pipeline: HeartPipeline,
        protocol: ProtocolSpec,
        environment: EnvironmentInfo,
        safe_environment: EnvironmentInfo,
        plan: SessionPlan,
        live: LiveSession,
        scene: SceneStateBox,
        patient_age_years: float | None = None,
        hierarchy: Sequence[int] | None = None,
        records: AsyncIterator[SensorRecord] | None = None,
    ) -> None:
        """``hierarchy``: the environment levels of this patient's steps, in order (default: the protocol's
        ``start_level..max_level``). ``records``: the sensor's record stream when the caller already started
        it (e.g. to wait for a valid signal before the session); else ``sensor.records()``."""
        self._clock = clock
        self._sensor = sensor
        self._records = records
        self._pipeline = pipeline
        self._protocol = protocol
        self._env = environment
        self._safe_env = safe_environment
        self._plan = plan
        self._live = live
        self._commands = live.commands
        self._scene = scene
        top = len(environment.levels) - 1
        if hierarchy:
            self._levels = tuple(int(v) for v in hierarchy)
            bad = [v for v in self._levels if not 0 <= v <= top]
            if bad:
                raise TherapyError(f"hierarchy levels {bad} are outside {environment.name}'s levels 0..{top}")
            first = 0
        else:
            max_level = min(protocol.exposure.max_level if protocol.exposure.max_level is not None else top, top)
            self._levels = tuple(range(0, max_level + 1))
            first = min(protocol.exposure.start_level, max_level)
        self._max_step = len(self._levels) - 1
        self._controller = make_controller(protocol.controller, min_hold_s=protocol.exposure.min_hold_s)
        self._safety = SafetySupervisor(protocol.safety, age_years=patient_age_years)
        self.phase = Phase.STARTING
        self.step = first
        self.level = self._levels[first]
        self._t0 = clock.now()
        self._shown_level = float(self.level)  # what the patient sees: ramps towards self.level
        self._scene_t_s = self._t0  # when the ramp last moved
        self._env_switched_s = self._t0
        self._env_name = safe_environment.name
        self._seq = 0
        self._ended: tuple[EndStatus, str] | None = None
        self._close_at_s = float("inf")
        self._stop_requested: str | None = None  # a patient STOP that arrived during the baseline
        self._exposure_started = False
        self._phase_since_s = self._t0
        self._safe_place_cause: str | None = None
        self._suds_due_s: float | None = None
        self._suds_deadline_s: float | None = None
        self._last_recommendation: str | None = None
        self._next_hr_sample_s = self._t0
        self._baseline_deadline_s = self._t0 + plan.baseline_s
        self._baseline_tries = 0
        self._fade_rgb = (0.0, 0.0, 0.0)
        self._pipeline_errors = 0
        self._last_tick_error: str | None = None

    # -- public -------------------------------------------------------------------------------

    @property
    def elapsed_s(self) -> float:
        return self._clock.now() - self._t0

    @property
    def plan(self) -> SessionPlan:
        return self._plan

    @property
    def hierarchy(self) -> tuple[int, ...]:
        """The environment levels of this session's steps, in order."""
        return self._levels

    async def run(self) -> EndStatus:
        """Run the whole session; cancel-safe (a cancelled run ends as interrupted)."""
        sensor_task = asyncio.create_task(self._pump_sensor(), name="vrex-sensor")
        command_task = asyncio.create_task(self._pump_commands(), name="vrex-commands")
        lagging = False
        try:
            now = self._clock.now()
            self._set_phase(Phase.BASELINE, "session started: measuring the resting baseline", now)
            self._pipeline.begin_baseline(now)
            next_tick = now
            while self._ended is None or self._clock.now() < self._close_at_s:
                next_tick += self.tick_s
                await self._clock.sleep_until(next_tick)
                now = self._clock.now()
                lag_s = now - next_tick
                if lag_s >= self.tick_s:
                    # Behind (a busy CPU): let every starved task run first, so the tick reads a pipeline that
                    # has the records queued meanwhile, and skip the missed ticks instead of bursting them.
                    for _ in range(4):
                        await asyncio.sleep(0)
                    now = self._clock.now()
                    lag_s = now - next_tick
                    next_tick += self.tick_s * math.floor(lag_s / self.tick_s)
                lag_s = max(lag_s, getattr(self._clock, "lag_s", 0.0))
                if not lagging and lag_s >= self.lag_report_s:
                    lagging = True
                    self._publish(LoopLagged(now, lag_s, f"the session loop is {lag_s:.1f} s behind its clock "
                                                          "(busy CPU): decisions wait for it"))
                elif lagging and lag_s < self.lag_report_s / 2:
                    lagging = False
                    self._publish(LoopLagged(now, 0.0, "the session loop has caught up"))
                if self._ended is None:
                    self._guarded_tick(now)
                else:  # closing: the record is final, the patient still sees the fade finish
                    self._publish_scene(now)
        except asyncio.CancelledError:
            if self._ended is None:
                self._end(EndStatus.INTERRUPTED, "the session was cancelled")
        finally:
            for task in (sensor_task, command_task):
                task.cancel()
            await asyncio.gather(sensor_task, command_task, return_exceptions=True)
            try:
                await self._sensor.close()
            except Exception:
                log.exception("closing the sensor failed")
        assert self._ended is not None
        return self._ended[0]

    # -- inputs -------------------------------------------------------------------------------

    async def _pump_sensor(self) -> None:
        try:
            records = self._records if self._records is not None else self._sensor.records()
            async for record in records:
                self._live.publish_raw(record, self._clock.now())
                try:
                    self._pipeline.feed(record)
                except Exception:  # one record the pipeline cannot take must not stop the stream
                    log.exception("the heart pipeline rejected %r", record)
                    self._pipeline_errors += 1
                    if self._pipeline_errors == 1:
                        self._publish(SafetyAlert(self._clock.now(), "pipeline_error",
                                                  f"a sensor record could not be processed: {record!r}", "alert"))
                if isinstance(record, LinkEvent):
                    self._publish(SensorEvent(record.t_s, record.state.value, record.detail))
                elif isinstance(record, PayloadError):
                    self._publish(SensorEvent(record.t_s, "payload_error", f"{record.problem} [{record.payload_hex}]"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a sensor failure must never end the patient's session
            log.exception("the heart sensor failed")
            self._publish(
                SafetyAlert(self._clock.now(), "sensor_failed", f"heart sensor stopped: {exc}", "alert")
            )
        else:
            self._publish(SensorEvent(self._clock.now(), "ended", "the sensor's stream ended"))

    async def _pump_commands(self) -> None:
        while True:
            command = await self._commands.get()
            try:
                self._apply(command, self._clock.now())
                if self._ended is None:
                    self._publish_scene(self._clock.now())  # the renderer shows a command's effect at once
            except TherapyError as exc:
                log.warning("command %r refused: %s", command, exc)
                self._publish(SafetyAlert(self._clock.now(), "command_refused", str(exc), "alert"))
            except Exception:
                log.exception("command %r failed", command)

    def _apply(self, command: cmd.Command, now: float) -> None:
        if self._ended is not None:
            return
        match command:
            case cmd.Stop():
                self._switch_environment(self._safe_env.name, now, white=True)
                self._end(EndStatus.STOPPED, f"{command.reason} ({command.source})")
            case cmd.Interrupt():
                self._end(EndStatus.INTERRUPTED, f"{command.reason} ({command.source})")
            case cmd.Abort():
                self._switch_environment(self._safe_env.name, now, white=True)
                self._end(EndStatus.FAILED, f"{command.reason} ({command.source})")
            case cmd.GoToSafePlace():
                self._request_safe_place(now, command)
            case cmd.ResumeExposure():
                if self.phase is Phase.SAFE_PLACE:
                    self._resume_exposure(now, f"resumed by the {command.source}")
            case cmd.SetLevel():
                if command.level not in self._levels:
                    raise TherapyError(
                        f"level {command.level} is not one of this session's levels of {self._env.name} "
                        f"({_ranges(self._levels)})"
                    )
                if self.phase is Phase.EXPOSURE:
                    self._change_step(self._levels.index(command.level), now, "therapist",
                                      f"{command.reason} ({command.source})")
            case cmd.AnswerSuds():
                if not 0 <= command.value <= 100:
                    raise TherapyError(f"SUDS {command.value} is outside 0..100")
                self._publish(SudsRecorded(now, int(command.value), self.level, self.phase.value, command.source))
                self._suds_deadline_s = None
                self._publish_scene(now)

    def _request_safe_place(self, now: float, command: cmd.GoToSafePlace) -> None:
        """A STOP from the patient or therapist is never lost, whatever the phase."""
        who = f"{command.reason} ({command.source})"
        if self.phase is Phase.EXPOSURE:
            self._enter_safe_place(now, command.source, command.reason)
            return
        if self.phase is Phase.SAFE_PLACE:
            # already there (e.g. sent by the safety supervisor): now only a person may resume exposure
            self._safe_place_cause = command.source
            message, action = f"{who}: staying in the safe place until resumed", "safe_place"
        elif self.phase is Phase.BASELINE:
            self._stop_requested = who
            message, action = f"{who} during the baseline: exposure will not start until resumed", "safe_place"
        else:  # recovery: already in the safe place, and no more exposure follows
            message, action = f"{who} during {self.phase.value}", "alert"
        self._publish(SafetyAlert(now, "stop_requested", message, action))

    # -- the tick -----------------------------------------------------------------------------

    def _guarded_tick(self, now: float) -> None:
        """A failing tick drives the session to its safe state and is reported once; the session goes on."""
        try:
            self._tick(now)
        except Exception as exc:
            log.exception("session tick failed")
            message = f"internal error in the session runtime: {exc!r}"
            if message != self._last_tick_error:
                self._last_tick_error = message
                self._publish(SafetyAlert(now, "runtime_error", message, "safe_place"))
            if self.phase is Phase.EXPOSURE:
                self._enter_safe_place(now, "safety", message)
            self._publish_scene(now)

    def _tick(self, now: float) -> None:
        heart = self._pipeline.state(now)
        for beat in self._pipeline.drain_beats():
            self._publish(BeatRecorded(beat.t_s, beat.rr_ms, beat.nn_ms, beat.artifact, beat.gap_before))
        if now >= self._next_hr_sample_s:
            self._next_hr_sample_s += self.hr_sample_period_s * math.ceil(
                (now - self._next_hr_sample_s + 1e-9) / self.hr_sample_period_s
            )
            self._publish(HeartSampled(now, heart.hr_bpm, heart.arousal, heart.rmssd_ms, heart.quality, heart.stale))
            shown = self._scene.get()
            self._publish(ExposureSampled(now, shown.environment, shown.level, shown.intensity, self.phase,
                                          shown.safe_place, shown.dials))

        elapsed = now - self._t0
        if self.phase is Phase.BASELINE:
            if now >= self._baseline_deadline_s:
                self._finish_baseline(now)
        elif self.phase in (Phase.EXPOSURE, Phase.SAFE_PLACE):
            if elapsed >= self._plan.exposure_end_s:
                self._set_phase(Phase.RECOVERY, "exposure time is over: recovery with paced breathing", now)
                self._switch_environment(self._safe_env.name, now)
            elif self.phase is Phase.EXPOSURE:
                self._exposure_tick(now, heart)
            else:
                self._safe_place_tick(now, heart)
        elif self.phase is Phase.RECOVERY and elapsed >= self._plan.total_s:
            self._end(EndStatus.COMPLETED, "protocol completed")
            return
        self._suds_tick(now)
        self._publish_scene(now)

    def _finish_baseline(self, now: float) -> None:
        try:
            baseline = self._pipeline.end_baseline(now)
        except BiofeedbackError as exc:
            self._baseline_tries += 1
            if self._baseline_tries <= self.baseline_retries:
                self._publish(SafetyAlert(now, "baseline_retry", f"{exc}: extending the baseline by 60 s", "alert"))
                self._baseline_deadline_s = now + 60.0
                self._pipeline.begin_baseline(now)
                return
            self._publish(
                SafetyAlert(now, "baseline_failed", f"{exc}: no baseline, the controller will hold every level", "alert")
            )
        else:
            self._publish(
                BaselineMeasured(now, baseline.hr_mean_bpm, baseline.hr_sd_bpm, baseline.rmssd_ms, baseline.beats)
            )
        if self._stop_requested is not None:
            self._safe_place_cause = "patient"
            self._set_phase(Phase.SAFE_PLACE, f"baseline done; exposure waits: {self._stop_requested}", now)
            return
        self._set_phase(Phase.EXPOSURE, f"baseline done: exposure starts at level {self.level}", now)
        self._switch_environment(self._env.name, now)
        self._change_step(self.step, now, "protocol", "first level of the protocol", force=True)

    def _exposure_tick(self, now: float, heart: HeartState) -> None:
        verdict = self._safety.check(now, heart, exposed=True)
        if verdict.alert_code is not None:
            action = "safe_place" if verdict.go_to_safe_place else "veto_step_up"
            self._publish(SafetyAlert(now, verdict.alert_code, verdict.message, action))
        if verdict.go_to_safe_place:
            self._enter_safe_place(now, "safety", verdict.message)
            return
        decision = self._controller.decide(now, heart, self.step, self._max_step)
        if decision.action == "up" and not verdict.allow_step_up:
            decision = Decision("hold", f"safety supervisor vetoed a step up: {decision.reason}", "safety_veto")
        self._recommend(now, decision)
        if decision.action == "up":
            self._change_step(self.step + 1, now, "controller", decision.reason)
        elif decision.action == "down":
            self._change_step(self.step - 1, now, "controller", decision.reason)

    def _safe_place_tick(self, now: float, heart: HeartState) -> None:
        self._safety.check(now, heart, exposed=False)
        if self._safe_place_cause != "safety":
            return  # the patient or therapist decides when to leave the safe place
        calm = (
            not heart.stale
            and heart.arousal is not None
            and heart.arousal <= self._protocol.controller.step_up_below_z
        )
        if now - self._phase_since_s >= self.safety_resume_after_s and calm:
            self._resume_exposure(now, "HR is back to baseline after the safety stop")

    def _suds_tick(self, now: float) -> None:
        if self.phase is not Phase.EXPOSURE:
            return
        if self._suds_deadline_s is not None and now >= self._suds_deadline_s:
            self._suds_deadline_s = None
            self._publish(SudsMissed(now, self.level))
        if self._suds_due_s is None:
            self._suds_due_s = now + self._protocol.suds.every_s
        elif now >= self._suds_due_s and self._suds_deadline_s is None:
            self._suds_due_s = now + self._protocol.suds.every_s
            self._suds_deadline_s = now + self._protocol.suds.answer_timeout_s
            self._publish(SudsPrompted(now, self.level))

    # -- state changes ------------------------------------------------------------------------

    def _recommend(self, now: float, decision: Decision) -> None:
        if decision.action == "hold" and decision.code == self._last_recommendation:
            return
        self._last_recommendation = decision.code
        self._publish(Recommendation(now, decision.action, decision.code, decision.reason, self.level))

    def _change_step(self, step: int, now: float, cause: str, reason: str, *, force: bool = False) -> None:
        step = max(0, min(step, self._max_step))
        if step == self.step and not force:
            return
        previous = None if force else self.level
        self.step = step
        self.level = self._levels[step]
        self._exposure_started = True
        self._controller.on_level_changed(now, step)
        self._last_recommendation = None
        self._publish(LevelChanged(now, self._env.name, self.level, previous, cause, reason, step=step))

    def _enter_safe_place(self, now: float, source: str, reason: str) -> None:
        self._safe_place_cause = source
        self._set_phase(Phase.SAFE_PLACE, f"{reason} ({source})", now)
        self._switch_environment(self._safe_env.name, now, white=True)
        self._suds_deadline_s = None

    def _resume_exposure(self, now: float, reason: str) -> None:
        self._safe_place_cause = None
        self._stop_requested = None
        was_exposed = self._exposure_started
        resume_step = max(0, self.step - 1) if was_exposed else self.step
        self._set_phase(Phase.EXPOSURE, f"{reason}: exposure resumes at level {self._levels[resume_step]}", now)
        self._switch_environment(self._env.name, now)
        why = "resuming one level lower after the safe place" if was_exposed else "first level of the protocol"
        self._change_step(resume_step, now, "protocol", why, force=True)

    def _set_phase(self, phase: Phase, reason: str, now: float) -> None:
        previous, self.phase = self.phase, phase
        self._phase_since_s = now
        self._publish(PhaseChanged(now, phase, previous, reason))

    def _switch_environment(self, name: str, now: float, *, white: bool = False) -> None:
        if name != self._env_name:
            self._env_name = name
            self._env_switched_s = now
            self._shown_level = float(self.level)
            self._fade_rgb = (1.0, 1.0, 1.0) if white else (0.0, 0.0, 0.0)

    def _end(self, status: EndStatus, reason: str) -> None:
        if self._ended is not None:
            return
        now = self._clock.now()
        self._ended = (status, reason)
        self._close_at_s = now + self.closing_s
        if self.phase is not Phase.ENDED:
            self._set_phase(Phase.ENDED, reason, now)
        self._publish(SessionEnded(now, status, reason))
        self._publish_scene(now)

    # -- outputs ------------------------------------------------------------------------------

    def _publish(self, event: Event) -> None:
        self._live.publish(event)

    def _publish_scene(self, now: float) -> None:
        # The scene moves towards a new level at one level per ramp_s (level + intensity = how far), never in one
        # jump, and by the time elapsed: a scene published between ticks (after a command) does not speed it up.
        ramp_s = self._protocol.exposure.ramp_s
        step = max(0.0, now - self._scene_t_s) / ramp_s if ramp_s > 0 else float("inf")
        self._scene_t_s = max(self._scene_t_s, now)
        delta = self.level - self._shown_level
        self._shown_level = float(self.level) if abs(delta) <= step else self._shown_level + math.copysign(step, delta)
        shown_level = min(int(math.floor(self._shown_level)), len(self._env.levels) - 1)
        shown_fraction = self._shown_level - shown_level
        fade = max(0.0, 1.0 - (now - self._env_switched_s) / self.fade_in_s)
        if self.phase is Phase.ENDED and self._ended is not None and self._ended[0] is EndStatus.COMPLETED:
            fade = 1.0
        panel, prompt, breath = None, False, None
        if self.phase is Phase.BASELINE:
            panel = BASELINE_TEXT
        elif self.phase in (Phase.RECOVERY, Phase.SAFE_PLACE):
            rate = self._protocol.recovery.breathing_rate_bpm
            breath = ((now - self._phase_since_s) * rate / 60.0) % 1.0
            panel = RECOVERY_TEXT if self.phase is Phase.RECOVERY else "You are safe here\nBreathe with the light"
        if self._suds_deadline_s is not None and self.phase is Phase.EXPOSURE:
            panel, prompt = SUDS_PROMPT_TEXT, True
        on_safe = self._env_name != self._env.name
        self._seq += 1
        state = SceneState(
            environment=self._env_name,
            level=0 if on_safe else shown_level,
            t_s=now,
            intensity=0.0 if on_safe else shown_fraction,
            fade=fade,
            fade_rgb=self._fade_rgb,
            panel_text=panel,
            suds_prompt=prompt,
            breath_phase=breath,
            safe_place=on_safe,
            seq=self._seq,
        )
        self._scene.put(state)


def drive_from_scene(scene: SceneStateBox, levels: int) -> Callable[[], float]:
    """What the simulated patient 'sees': how far up the ``levels``-step hierarchy the scene is (0..1),
    dimmed while a fade covers it; 0 in the safe place."""
    top = max(1, levels - 1)

    def drive() -> float:
        s = scene.get()
        return 0.0 if s.safe_place else min(1.0, (s.level + s.intensity) / top) * (1.0 - s.fade)

    return drive


def initial_scene(safe_environment: str) -> SceneState:
    """The scene shown before the session publishes its first state."""
    return SceneState(environment=safe_environment, level=0, fade=1.0, safe_place=True)


def _ranges(levels: Sequence[int]) -> str:
    """``(0, 1, 2, 5)`` -> ``"0-2, 5"``: valid levels in an error message."""
    out: list[str] = []
    start = prev = None
    for v in list(levels) + [None]:
        if start is not None and (v is None or v != prev + 1):
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = None
        if v is not None and start is None:
            start = v
        prev = v
    return ", ".join(out)
