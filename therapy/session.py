"""The session runtime: the one writer of session state.

It runs on the asyncio loop: it feeds sensor records into the heart pipeline,
ticks the protocol's state machine (baseline -> exposure or paced breathing ->
recovery), asks the controller for a decision, lets the safety supervisor veto
it and the therapist confirm it, asks for SUDS when the protocol says, applies
commands, publishes every event (and every raw sensor record) through the
:class:`~therapy.live.LiveSession` and swaps a new :class:`SceneState` into the
box the render loop reads. It never waits for the renderer, an observer or the
disk, and none of them waits for it.

Safety first, in this order: a STOP and the safe place never wait for anyone;
safety step-downs are applied at once; nothing steps up on stale data or
against the supervisor's veto; anything that lowers a safety default (exposure
without heart data, resuming after a safety stop) needs a person's recorded
command unless the protocol says otherwise.

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
from biofeedback.resonance import ResonanceAssessment, ResonanceMonitor, calm_response
from biofeedback.sensor import HeartSensor
from environments.errors import RenderError
from environments.registry import EnvironmentInfo
from environments.scene_state import SceneState, SceneStateBox
from protocols.confirmation import StepUpGate
from protocols.controller import Decision, build_controller
from protocols.model import ProtocolSpec
from therapy import commands as cmd
from therapy.errors import TherapyError
from therapy.events import (
    BaselineMeasured,
    BeatRecorded,
    BreathingSampled,
    DialChanged,
    EndStatus,
    Event,
    ExposureSampled,
    HeartSampled,
    LevelChanged,
    LevelSuds,
    LoopLagged,
    NoteAdded,
    Phase,
    PhaseChanged,
    Recommendation,
    ResonanceAssessed,
    SafetyAlert,
    SensorEvent,
    SessionEnded,
    StepUpOffered,
    StepUpResolved,
    SudsMissed,
    SudsPrompted,
    SudsRecorded,
    TherapistDecision,
)
from therapy.live import LiveSession
from therapy.safety import SafetySupervisor

log = logging.getLogger(__name__)

SUDS_SCALE_TEXT = "0 = completely calm, 100 = the worst imaginable"
SUDS_QUESTION = "How anxious do you feel right now?"
BASELINE_TEXT = "Resting baseline\nSit comfortably and breathe normally"
RECOVERY_TEXT = "Well done\nBreathe with the light: in as it grows, out as it shrinks"
SAFE_TEXT = "You are safe here\nBreathe with the light"
BREATHING_TEXT = "Breathe with the light\nIn as it grows, out as it shrinks"
#: A rating this recent (session seconds) counts as "just asked": no second prompt before a step up.
RECENT_SUDS_S = 30.0


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """How long each part of this session lasts (session-clock seconds).

    ``main_s`` is the middle part: exposure for exposure protocols, paced breathing for the HRV-biofeedback
    and resonance-assessment protocols.
    """

    total_s: float
    baseline_s: float
    recovery_s: float

    @property
    def exposure_end_s(self) -> float:
        return self.total_s - self.recovery_s

    @property
    def main_s(self) -> float:
        return self.total_s - self.baseline_s - self.recovery_s

    @classmethod
    def for_minutes(cls, protocol: ProtocolSpec, minutes: float) -> SessionPlan:
        """Fit the protocol into ``minutes``; too short a session is a user error naming the minimum.

        A resonance assessment takes exactly as long as its rates need (``minutes`` only has to be enough).
        """
        total_s = minutes * 60.0
        kind = protocol.kind
        if kind == "resonance_assessment":
            main_s = len(protocol.assessment.rates_breaths_per_min) * protocol.assessment.segment_s
            what = f"{len(protocol.assessment.rates_breaths_per_min)} paced rates"
        elif kind == "hrv_biofeedback":
            main_s = 60.0
            what = "at least a minute of paced breathing"
        else:
            main_s = 2 * protocol.exposure.min_hold_s
            what = "at least two exposure levels"
        needed_s = protocol.fixed_duration_s + main_s
        if total_s < needed_s - 1e-9:
            raise TherapyError(
                f"--minutes {minutes:g} is too short for protocol {protocol.name!r}: its baseline "
                f"({protocol.baseline.duration_s:.0f} s), recovery ({protocol.recovery.duration_s:.0f} s) and "
                f"{what} need {math.ceil(needed_s / 60)} minutes; use --minutes {math.ceil(needed_s / 60)} or more"
            )
        if kind == "resonance_assessment":
            total_s = needed_s
        return cls(total_s, protocol.baseline.duration_s, protocol.recovery.duration_s)


@dataclass
class _Prompt:
    """The SUDS question on the panel now."""

    kind: str
    level: int
    asked_s: float
    deadline_s: float
    question: str


@dataclass
class _Visit:
    """One stay at a level, for its SUDS story (anticipated, first, peak, end)."""

    level: int
    since_s: float
    anticipated: int | None = None
    first: int | None = None
    peak: int | None = None
    end: int | None = None
    ratings: int = 0
    entry_asked: bool = False

    def add(self, value: int) -> None:
        self.first = value if self.first is None else self.first
        self.peak = value if self.peak is None else max(self.peak, value)
        self.end = value
        self.ratings += 1


class SessionRuntime:
    """Runs one session to its end; :meth:`run` returns how it ended."""

    tick_s = 0.25
    #: a loop this far behind its clock (wall seconds) reports the lag; half of it again ends the report
    lag_report_s = 1.0
    hr_sample_period_s = 1.0

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
        resonance_breaths_per_min: float | None = None,
        initial_link: LinkEvent | None = None,
    ) -> None:
        """``hierarchy``: the environment levels of this patient's steps, in order (default: the protocol's
        ``start_level..max_level``). ``records``: the sensor's record stream when the caller already started
        it (e.g. to wait for a valid signal before the session); else ``sensor.records()``.
        ``resonance_breaths_per_min``: the patient's resonance rate (HRV biofeedback paces at it).
        ``initial_link``: the sensor's link state when the session starts (its record says how it began)."""
        self._initial_link = initial_link
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
        self._controller = build_controller(protocol, max_level=self._max_step)
        self._gate = StepUpGate(protocol.controller)
        self._safety = SafetySupervisor(protocol.safety, age_years=patient_age_years)
        self.fade_in_s = protocol.fade.fade_in_s
        self.closing_s = protocol.fade.closing_s
        self.phase = Phase.STARTING
        self.step = first
        self.level = self._levels[first]
        self._t0 = clock.now()
        self._shown_level = float(self.level)  # what the patient sees: ramps towards the target
        self._continuous: float | None = None  # target_band: the continuous level the controller asks for
        self._scene_t_s = self._t0  # when the ramp last moved
        self._ramp_kick = False  # a level just changed: the ramp takes its first tick's step at once
        self._env_switched_s = self._t0
        self._env_name = safe_environment.name
        self._seq = 0
        self._ended: tuple[EndStatus, str] | None = None
        self._close_at_s = float("inf")
        self._stop_requested: str | None = None  # a patient STOP that arrived during the baseline
        self._exposure_started = False
        self._phase_since_s = self._t0
        self._safe_place_cause: str | None = None  # "safety", "patient ...", "therapist ...", "no_heart_data"
        self._no_heart_alerted_s: float | None = None
        self._without_heart_data = False  # the therapist decided to run exposure without heart data
        self._prompt: _Prompt | None = None
        self._suds_due_s: float | None = None
        self._visit: _Visit | None = None
        self._anticipated_for: tuple[int, int | None] | None = None  # (step, rating) asked before showing it
        self._pending_up: tuple[int, str, str] | None = None  # (step, cause, reason) waiting for an anticipated rating
        self._pre_step_asked: tuple[int, float] | None = None  # (step, t) of the last before-step-up prompt
        self._last_rating_s: float | None = None  # the latest rating at the level shown now
        self._last_recommendation: str | None = None
        self._last_verdict_allows_up = False
        self._next_hr_sample_s = self._t0
        self._baseline_deadline_s = self._t0 + plan.baseline_s
        self._baseline_tries = 0
        self._fade_rgb = (0.0, 0.0, 0.0)
        self._pipeline_errors = 0
        self._last_tick_error: str | None = None
        self._dials: dict[str, tuple[float, bool]] = {}  # therapist overrides: name -> (value, pinned)
        # paced breathing (HRV biofeedback, resonance assessment, recovery, the safe place)
        self._monitor = ResonanceMonitor()
        self._assessment: ResonanceAssessment | None = None
        self._resonance_rate = resonance_breaths_per_min
        self.pacer_breaths_per_min: float | None = None  # what the pacer shows now (the simulated strap follows it)
        self._breath_phase = 0.0
        self._breath_t_s = self._t0
        self._calm = 0.0

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
        # a lag worth reporting: a second of session time, or a wall second on an accelerated clock
        speed = self._clock.speed
        report_s = self.lag_report_s * (speed if math.isfinite(speed) and speed > 1 else 1.0)
        try:
            now = self._clock.now()
            self._set_phase(Phase.BASELINE, "session started: measuring the resting baseline", now)
            if self._initial_link is not None:
                link = self._initial_link
                self._publish(SensorEvent(now, link.state.value, link.detail))
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
                if not lagging and lag_s >= report_s:
                    lagging = True
                    self._publish(LoopLagged(now, lag_s, f"the session loop is {lag_s:.1f} s behind its clock "
                                                          "(busy CPU): decisions wait for it"))
                elif lagging and lag_s < report_s / 2:
                    lagging = False
                    self._publish(LoopLagged(now, 0.0, "the session loop has caught up"))
                if self._ended is None:
                    self._guarded_tick(now)
                else:  # closing: the record is final, the patient still sees the fade finish
                    self._publish_scene(now)
        except asyncio.CancelledError:
            if self._ended is None:
                self._end(EndStatus.INTERRUPTED, "the session was cancelled", self._clock.now())
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
                SafetyAlert(self._clock.now(), "sensor_failed", f"heart sensor stopped: {exc}", "alert", "critical")
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
            except (TherapyError, RenderError) as exc:
                log.warning("command %r refused: %s", command, exc)
                self._publish(SafetyAlert(self._clock.now(), "command_refused",
                                          f"{type(command).__name__} from {command.source} refused: {exc}", "alert",
                                          "info"))
            except Exception:
                log.exception("command %r failed", command)

    def _apply(self, command: cmd.Command, now: float) -> None:
        if self._ended is not None:
            return
        match command:
            case cmd.Stop():
                self._switch_environment(self._safe_env.name, now, white=True)
                self._end(EndStatus.STOPPED, f"{command.reason} ({command.source})", now)
            case cmd.Interrupt():
                self._end(EndStatus.INTERRUPTED, f"{command.reason} ({command.source})", now)
            case cmd.Abort():
                self._switch_environment(self._safe_env.name, now, white=True)
                self._end(EndStatus.FAILED, f"{command.reason} ({command.source})", now)
            case cmd.GoToSafePlace():
                self._request_safe_place(now, command)
            case cmd.ResumeExposure():
                self._resume_command(now, command)
            case cmd.SetLevel():
                self._set_level_command(now, command)
            case cmd.AnswerSuds():
                self._answer_suds(now, command)
            case cmd.RequestSuds():
                if self.phase is not Phase.EXPOSURE:
                    raise TherapyError(f"SUDS can be asked during exposure only (now: {self.phase.value})")
                self._ask_suds(now, "therapist", force=True)
            case cmd.AcceptStepUp():
                self._accept_step_up(now, command)
            case cmd.DeclineStepUp():
                declined = self._gate.decline(now, command.source, command.reason or None)
                if declined is None:
                    raise TherapyError("there is no step-up recommendation to decline")
                self._publish(StepUpResolved(now, self._levels[min(declined.to_level, self._max_step)], "declined",
                                             command.source, command.reason or "no reason given"))
            case cmd.ProceedWithoutHeartData():
                self._proceed_without_heart_data(now, command)
            case cmd.AddNote():
                text = command.text.strip()
                if not text:
                    raise TherapyError("a note needs some text")
                self._publish(NoteAdded(now, command.source, text[:4000]))
            case cmd.SetDial():
                self._set_dial(now, command)
            case _:
                raise TherapyError(f"unknown command {type(command).__name__}")

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
        else:  # recovery or paced breathing: already in the safe place, and no exposure follows
            message, action = f"{who} during {self.phase.value}", "alert"
        self._publish(SafetyAlert(now, "stop_requested", message, action))

    def _resume_command(self, now: float, command: cmd.ResumeExposure) -> None:
        if self.phase is not Phase.SAFE_PLACE:
            raise TherapyError(f"nothing to resume: the session is in {self.phase.value}, not in the safe place")
        if self._safe_place_cause == "no_heart_data":
            raise TherapyError("exposure has not started because there is no heart data: decide to proceed "
                               "without heart data (ProceedWithoutHeartData), or fix the sensor")
        self._resume_exposure(now, f"resumed by {command.source}")

    def _set_level_command(self, now: float, command: cmd.SetLevel) -> None:
        if command.level not in self._levels:
            raise TherapyError(f"level {command.level} is not one of this session's levels of {self._env.name} "
                               f"({_ranges(self._levels)})")
        step = self._levels.index(command.level)
        if step > self._max_step:
            raise TherapyError(f"level {command.level} is above this session's maximum level "
                               f"{self._levels[self._max_step]} (lowered after repeated safety stops)")
        if self.phase is not Phase.EXPOSURE:
            raise TherapyError(f"levels can be set during exposure only (now: {self.phase.value})")
        self._continuous = None
        self._change_step(step, now, "therapist", f"{command.reason} ({command.source})")

    def _accept_step_up(self, now: float, command: cmd.AcceptStepUp) -> None:
        pending = self._gate.pending
        decision = self._gate.accept(now, command.source)
        if decision is None or pending is None:
            raise TherapyError("there is no step-up recommendation to accept (it may have expired or been "
                               "withdrawn)")
        if self.phase is not Phase.EXPOSURE or not self._last_verdict_allows_up or self.step >= self._max_step:
            why = ("the patient is not in exposure" if self.phase is not Phase.EXPOSURE else
                   "the safety supervisor does not allow a step up now" if not self._last_verdict_allows_up else
                   "the session is at its maximum level")
            self._publish(StepUpResolved(now, self._levels[min(pending.to_level, self._max_step)], "withdrawn",
                                         command.source, f"accepted, but not applied: {why}"))
            raise TherapyError(f"step up not applied: {why}")
        self._publish(StepUpResolved(now, self._levels[pending.to_level], "accepted", command.source, pending.reason))
        self._step_up(now, "therapist", decision.reason)

    def _proceed_without_heart_data(self, now: float, command: cmd.ProceedWithoutHeartData) -> None:
        if self.phase is not Phase.SAFE_PLACE or self._safe_place_cause != "no_heart_data":
            raise TherapyError("exposure is not waiting for heart data: nothing to decide")
        self._without_heart_data = True
        self._publish(TherapistDecision(now, "exposure_without_heart_data", command.source,
                                        command.reason or "no reason given"))
        self._resume_exposure(now, f"{command.source} decided to run exposure without heart data")

    def _set_dial(self, now: float, command: cmd.SetDial) -> None:
        from environments.registry import validate_dial

        if command.value is None:
            if self._dials.pop(command.name, None) is None:
                raise TherapyError(f"dial {command.name!r} has no override to reset")
            self._publish(DialChanged(now, command.name, None, False, command.source, command.reason))
            return
        value = validate_dial(self._env.name, command.name, command.value)  # overrides act on the exposure scene
        self._dials[command.name] = (value, command.pinned)
        self._publish(DialChanged(now, command.name, value, command.pinned, command.source, command.reason))

    # -- SUDS ---------------------------------------------------------------------------------

    def _question(self, kind: str, step: int) -> str:
        if kind == "anticipated":
            title = self._env.levels[self._levels[step]].title
            return f"Next: {title}\n{self._protocol.suds.expectancy_question}\n{SUDS_SCALE_TEXT}"
        return f"{SUDS_QUESTION}\n{SUDS_SCALE_TEXT}"

    def _ask_suds(self, now: float, kind: str, *, force: bool = False, step: int | None = None) -> bool:
        """Put a SUDS question on the panel; a pending one is replaced only when ``force`` (therapist)."""
        if self._prompt is not None and not force:
            return False
        if self._prompt is not None:
            self._miss_prompt(now)
        step = self.step if step is None else step
        question = self._question(kind, step)
        self._prompt = _Prompt(kind, self._levels[step], now, now + self._protocol.suds.answer_timeout_s, question)
        self._publish(SudsPrompted(now, self._levels[step], kind, question.split("\n")[0] if kind != "anticipated"
                                   else self._protocol.suds.expectancy_question))
        return True

    def _miss_prompt(self, now: float) -> None:
        p = self._prompt
        if p is None:
            return
        self._prompt = None
        self._publish(SudsMissed(now, p.level, p.kind))
        if p.kind == "end":
            self._finish_visit(now)
        if p.kind == "anticipated" and self._pending_up is not None:
            self._apply_pending_up(now, None)

    def _answer_suds(self, now: float, command: cmd.AnswerSuds) -> None:
        value = command.value
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
            raise TherapyError(f"SUDS {value!r} is outside 0..100")
        value = int(round(value))
        p = self._prompt
        kind = p.kind if p is not None else "unprompted"
        level = p.level if p is not None else self.level
        self._prompt = None
        self._publish(SudsRecorded(now, value, level, self.phase.value, command.source, kind))
        if kind == "anticipated":
            if self._visit is not None and self._pending_up is None:
                self._visit.anticipated = value
            self._apply_pending_up(now, value)
            return
        if kind == "end" and self._visit is not None:  # how the last level felt at its end
            self._visit.add(value)
            self._finish_visit(now)
            return
        if self.phase is Phase.EXPOSURE and level == self.level:
            if self._visit is not None:
                self._visit.add(value)
            self._last_rating_s = now
            self._controller.on_suds(now, value, self.step)
        self._suds_due_s = now + self._protocol.suds.every_s if self._protocol.suds.every_s > 0 else None

    def _suds_tick(self, now: float) -> None:
        if self._prompt is not None and now >= self._prompt.deadline_s:
            self._miss_prompt(now)
        if self.phase is not Phase.EXPOSURE:
            return
        spec = self._protocol.suds
        visit = self._visit
        settled_s = self._protocol.exposure.ramp_s + self.fade_in_s
        if spec.on_entry and visit is not None and not visit.entry_asked and now - visit.since_s >= settled_s:
            if self._ask_suds(now, "entry"):
                visit.entry_asked = True
            return
        if spec.every_s <= 0:
            return
        if self._suds_due_s is None:
            self._suds_due_s = now + spec.every_s
        elif now >= self._suds_due_s and self._prompt is None:
            self._suds_due_s = now + spec.every_s
            self._ask_suds(now, "during")

    def _finish_visit(self, now: float) -> None:
        v = self._visit
        if v is None:
            return
        self._visit = None
        self._publish(LevelSuds(now, v.level, v.anticipated, v.first, v.peak, v.end, v.ratings, now - v.since_s))

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
                self._publish(SafetyAlert(now, "runtime_error", message, "safe_place", "critical"))
            if self.phase is Phase.EXPOSURE:
                self._enter_safe_place(now, "safety", message)
            self._publish_scene(now)

    def _tick(self, now: float) -> None:
        heart = self._pipeline.state(now)
        for beat in self._pipeline.drain_beats():
            self._publish(BeatRecorded(beat.t_s, beat.rr_ms, beat.nn_ms, beat.artifact, beat.gap_before))
            self._monitor.add_beat(beat.t_s, beat.nn_ms, beat.gap_before)
            if self._assessment is not None:
                self._assessment.add_beat(beat.t_s, beat.nn_ms)
        sample = now >= self._next_hr_sample_s
        if sample:
            self._next_hr_sample_s += self.hr_sample_period_s * math.ceil(
                (now - self._next_hr_sample_s + 1e-9) / self.hr_sample_period_s
            )
            self._publish(HeartSampled(now, heart.hr_bpm, heart.arousal, heart.rmssd_ms, heart.quality, heart.stale))
            shown = self._scene.get()
            self._publish(ExposureSampled(now, shown.environment, shown.level, shown.intensity, self.phase,
                                          shown.safe_place, shown.dials))

        elapsed = now - self._t0
        if self.phase is Phase.BASELINE:
            self._watch(now, heart)
            if now >= self._baseline_deadline_s:
                self._finish_baseline(now)
        elif self.phase is Phase.BREATHING:
            self._watch(now, heart)
            self._breathing_tick(now, sample)
        elif self.phase in (Phase.EXPOSURE, Phase.SAFE_PLACE):
            if elapsed >= self._plan.exposure_end_s:
                self._start_recovery(now, "exposure time is over: recovery with paced breathing")
            elif self.phase is Phase.EXPOSURE:
                self._exposure_tick(now, heart)
            else:
                self._safe_place_tick(now, heart)
        elif self.phase is Phase.RECOVERY:
            self._watch(now, heart)
            if elapsed >= self._plan.total_s:
                self._end(EndStatus.COMPLETED, "protocol completed", now)
                return
        self._suds_tick(now)
        self._publish_scene(now)

    def _watch(self, now: float, heart: HeartState) -> None:
        """Outside exposure the supervisor only alerts (nothing phobic is shown to take away)."""
        verdict = self._safety.check(now, heart, exposed=False)
        if verdict.alert_code is not None:
            self._publish(SafetyAlert(now, verdict.alert_code, verdict.message, "alert", verdict.severity))

    def _finish_baseline(self, now: float) -> None:
        spec = self._protocol.baseline
        try:
            baseline = self._pipeline.end_baseline(now)
        except BiofeedbackError as exc:
            self._baseline_tries += 1
            if self._baseline_tries <= spec.retries:
                self._publish(SafetyAlert(now, "baseline_retry",
                                          f"{exc}: extending the baseline by {spec.extend_s:.0f} s", "alert"))
                self._baseline_deadline_s = now + spec.extend_s
                self._pipeline.begin_baseline(now)
                return
            if self._protocol.kind == "exposure" and self._protocol.controller.kind != "manual":
                # No baseline: arousal cannot be judged and no ceiling may be watched. Exposure needs a person.
                self._safe_place_cause = "no_heart_data"
                self._set_phase(Phase.SAFE_PLACE, f"{exc}: exposure waits for the therapist's decision", now)
                self._alert_no_heart_data(now, str(exc))
                return
            self._publish(SafetyAlert(now, "baseline_failed", f"{exc}: no baseline; the session runs without "
                                      "heart-rate adaptation", "alert", "critical"))
        else:
            self._publish(
                BaselineMeasured(now, baseline.hr_mean_bpm, baseline.hr_sd_bpm, baseline.rmssd_ms, baseline.beats)
            )
        if self._protocol.kind != "exposure":
            self._start_breathing(now)
            return
        if self._stop_requested is not None:
            self._safe_place_cause = "patient"
            self._set_phase(Phase.SAFE_PLACE, f"baseline done; exposure waits: {self._stop_requested}", now)
            return
        self._set_phase(Phase.EXPOSURE, f"baseline done: exposure starts at level {self.level}", now)
        self._switch_environment(self._env.name, now)
        self._change_step(self.step, now, "protocol", "first level of the protocol", force=True)

    def _alert_no_heart_data(self, now: float, why: str) -> None:
        repeat = self._no_heart_alerted_s is not None
        self._no_heart_alerted_s = now
        self._publish(SafetyAlert(
            now, "no_heart_data",
            f"{why}: no exposure without heart data unless the therapist decides to proceed without it"
            + (" (still waiting)" if repeat else ""), "hold", "critical"))

    def _exposure_tick(self, now: float, heart: HeartState) -> None:
        verdict = self._safety.check(now, heart, exposed=True)
        self._last_verdict_allows_up = verdict.allow_step_up
        if verdict.alert_code is not None:
            action = "safe_place" if verdict.go_to_safe_place else "veto_step_up"
            self._publish(SafetyAlert(now, verdict.alert_code, verdict.message, action, verdict.severity))
        if verdict.go_to_safe_place:
            breach_step = self.step
            self._enter_safe_place(now, "safety", verdict.message)
            if verdict.escalate:
                self._escalate(now, breach_step)
            return
        if self._without_heart_data and (heart.stale or heart.hr_bpm is None):
            if now - (self._no_heart_alerted_s or now) >= self._protocol.safety.stale_alert_repeat_s:
                self._alert_no_heart_data(now, "exposure runs without heart data (the therapist's decision)")
        if self._pending_up is not None:  # waiting for the anticipated rating before showing the next level
            return
        waiting_for_rating = self._prompt is not None and self._prompt.kind == "before_step_up"
        decision = self._controller.decide(now, heart, self.step, self._max_step)
        if decision.action == "up" and not verdict.allow_step_up:
            decision = Decision("hold", f"safety supervisor vetoed a step up: {decision.reason}", "safety_veto")
        if decision.action == "up" and waiting_for_rating:
            decision = Decision("hold", f"{decision.reason}; waiting for the SUDS rating before stepping up",
                                "asking_suds")
        elif decision.action == "up" and self._wants_rating_before_step_up(now):
            self._ask_suds(now, "before_step_up")
            self._pre_step_asked = (self.step, now)
            decision = Decision("hold", f"{decision.reason}; asking for a SUDS rating before stepping up",
                                "asking_suds")
        outcome = self._gate.filter(now, decision, self.step)
        if outcome.withdrawn is not None:
            self._publish(StepUpResolved(now, self.level, "expired" if "expired" in outcome.withdrawn else
                                         "withdrawn", "controller", outcome.withdrawn))
        if outcome.offered is not None:
            p = outcome.offered
            self._publish(StepUpOffered(now, self._levels[p.from_level], self._levels[min(p.to_level, self._max_step)],
                                        p.expires_s, p.reason))
        decision = outcome.decision
        self._recommend(now, decision)
        if decision.action == "up":
            self._step_up(now, "controller", decision.reason)
        elif decision.action == "down":
            self._continuous = None
            self._change_step(self.step - 1, now, "controller", decision.reason)
        elif decision.action == "set" and decision.target_level is not None:
            target = min(max(decision.target_level, 0.0), float(self._max_step))
            self._continuous = target
            step = min(int(math.floor(target + 1e-9)), self._max_step)
            if step != self.step:
                self._change_step(step, now, "controller", decision.reason)

    def _wants_rating_before_step_up(self, now: float) -> bool:
        spec = self._protocol.suds
        if not spec.before_step_up or self._prompt is not None:
            return False
        if self._pre_step_asked is not None and self._pre_step_asked[0] == self.step:
            return False  # asked at this level already: the answer (or its absence) has been seen
        recent = self._last_rating_s is not None and now - self._last_rating_s < RECENT_SUDS_S
        return not recent

    def _step_up(self, now: float, cause: str, reason: str) -> None:
        """Go one step up, first asking the anticipated (expectancy) rating when the protocol wants one."""
        target = self.step + 1
        if target > self._max_step:
            return
        if self._protocol.suds.anticipated:
            self._pending_up = (target, cause, reason)
            self._ask_suds(now, "anticipated", force=True, step=target)
            return
        self._change_step(target, now, cause, reason)

    def _apply_pending_up(self, now: float, rating: int | None) -> None:
        pending, self._pending_up = self._pending_up, None
        if pending is None or self.phase is not Phase.EXPOSURE:
            return
        target, cause, reason = pending
        if target > self._max_step or not self._last_verdict_allows_up:
            return
        self._anticipated_for = (target, rating)
        self._change_step(target, now, cause, reason)

    def _safe_place_tick(self, now: float, heart: HeartState) -> None:
        verdict = self._safety.check(now, heart, exposed=False)
        if verdict.alert_code is not None and self._safe_place_cause != "no_heart_data":
            self._publish(SafetyAlert(now, verdict.alert_code, verdict.message, "alert", verdict.severity))
        if self._safe_place_cause == "no_heart_data":
            if now - (self._no_heart_alerted_s or now) >= self._protocol.safety.stale_alert_repeat_s:
                self._alert_no_heart_data(now, "still no resting baseline")
            return
        if self._safe_place_cause != "safety" or self._protocol.safety.resume_after_safety != "auto":
            return  # a person decides when to leave the safe place
        calm = (
            not heart.stale
            and heart.arousal is not None
            and heart.arousal <= self._protocol.controller.step_up_below_z
        )
        if now - self._phase_since_s >= self._protocol.safety.auto_resume_after_s and calm:
            self._resume_exposure(now, "HR is back to baseline after the safety stop (the protocol resumes "
                                       "by itself)")

    def _escalate(self, now: float, breach_step: int) -> None:
        """Repeated breaches: from now on the session stays below the level where the last one happened."""
        spec = self._protocol.safety
        new_max = max(0, min(self._max_step, breach_step) - spec.escalation_lowers_max_by)
        if new_max == self._max_step:
            self._publish(SafetyAlert(now, "hr_ceiling_repeated", f"{spec.breaches_to_escalate} HR-ceiling breaches "
                                      f"within {spec.escalation_window_s / 60:.0f} min, already at the lowest level: "
                                      "consider ending the session", "alert", "critical"))
            return
        self._max_step = new_max
        self._publish(SafetyAlert(
            now, "hr_ceiling_repeated",
            f"{spec.breaches_to_escalate} HR-ceiling breaches within {spec.escalation_window_s / 60:.0f} min: the "
            f"session's maximum level is lowered to {self._levels[new_max]}", "lower_max_level", "critical"))

    # -- paced breathing -----------------------------------------------------------------------

    def _start_breathing(self, now: float) -> None:
        kind = self._protocol.kind
        if kind == "resonance_assessment":
            self._assessment = ResonanceAssessment.from_spec(self._protocol.assessment, start_s=now)
            reason = ("baseline done: resonance-rate assessment, "
                      + ", ".join(f"{r:g}" for r in self._protocol.assessment.rates_breaths_per_min)
                      + f" breaths/min for {self._protocol.assessment.segment_s:.0f} s each")
        else:
            rate = self._resonance_rate or self._protocol.breathing.default_breaths_per_min
            source = "the patient's resonance rate" if self._resonance_rate else "the protocol's default rate"
            reason = f"baseline done: paced breathing at {rate:g} breaths/min ({source}) with HRV biofeedback"
        self._set_phase(Phase.BREATHING, reason, now)
        self._switch_environment(self._env.name, now)

    def _breathing_rate(self, now: float) -> float:
        if self.phase is Phase.BREATHING and self._assessment is not None:
            return self._assessment.pacer_rate(now) or self._protocol.recovery.breaths_per_min
        if self.phase is Phase.BREATHING:
            return self._resonance_rate or self._protocol.breathing.default_breaths_per_min
        return self._protocol.recovery.breaths_per_min

    def _breathing_tick(self, now: float, sample: bool) -> None:
        if sample:
            rate = self.pacer_breaths_per_min
            snap = self._monitor.update(now, rate)
            m = snap.measures if snap is not None else None
            if m is not None:
                self._calm = calm_response(m, self._protocol.breathing.calm_measure)
            self._publish(BreathingSampled(
                now, rate or 0.0, m.peak_to_trough_bpm if m else None, m.lf_power_ms2 if m else None,
                m.coherence if m else None, self._calm))
        if now - self._t0 >= self._plan.exposure_end_s:
            if self._assessment is not None:
                self._finish_assessment(now)
            self._start_recovery(now, "paced breathing done: recovery")

    def _finish_assessment(self, now: float) -> None:
        try:
            result = self._assessment.result()  # type: ignore[union-attr]
        except ValueError as exc:
            self._publish(ResonanceAssessed(now, None, str(exc), ()))
            return
        per_rate = tuple((r.breaths_per_min, r.measures.peak_to_trough_bpm if r.measures else None,
                          r.measures.lf_power_ms2 if r.measures else None) for r in result.rates)
        self._publish(ResonanceAssessed(now, result.breaths_per_min, result.explanation, per_rate))

    # -- state changes ------------------------------------------------------------------------

    def _recommend(self, now: float, decision: Decision) -> None:
        if decision.action in ("hold", "set") and decision.code == self._last_recommendation:
            return
        self._last_recommendation = decision.code
        self._publish(Recommendation(now, decision.action, decision.code, decision.reason, self.level))

    def _change_step(self, step: int, now: float, cause: str, reason: str, *, force: bool = False) -> None:
        step = max(0, min(step, self._max_step))
        if step == self.step and not force:
            return
        previous = None if force else self.level
        if not force or self._visit is not None:
            self._finish_visit(now)
        self.step = step
        self.level = self._levels[step]
        self._exposure_started = True
        self._controller.on_level_changed(now, step)
        self._last_recommendation = None
        self._publish(LevelChanged(now, self._env.name, self.level, previous, cause, reason, step=step))
        self._ramp_kick = True
        visit = _Visit(self.level, now)
        if self._anticipated_for is not None and self._anticipated_for[0] == step:
            visit.anticipated = self._anticipated_for[1]
        self._anticipated_for = None
        self._visit = visit
        self._pre_step_asked = None
        self._last_rating_s = None
        if self._prompt is not None and self._prompt.kind in ("during", "before_step_up", "entry"):
            self._miss_prompt(now)  # a question about the previous level is no longer the right one
        if self._protocol.suds.every_s > 0:
            self._suds_due_s = now + self._protocol.suds.every_s
        self._dials = {k: v for k, v in self._dials.items() if v[1]}  # unpinned overrides end with the level

    def _enter_safe_place(self, now: float, source: str, reason: str) -> None:
        self._safe_place_cause = source
        self._finish_visit(now)
        self._pending_up = None
        if self._prompt is not None:
            self._miss_prompt(now)
        self._set_phase(Phase.SAFE_PLACE, f"{reason} ({source})", now)
        self._switch_environment(self._safe_env.name, now, white=True)

    def _resume_exposure(self, now: float, reason: str) -> None:
        self._safe_place_cause = None
        self._stop_requested = None
        was_exposed = self._exposure_started
        resume_step = min(max(0, self.step - 1) if was_exposed else self.step, self._max_step)
        self._set_phase(Phase.EXPOSURE, f"{reason}: exposure resumes at level {self._levels[resume_step]}", now)
        self._switch_environment(self._env.name, now)
        why = "resuming one level lower after the safe place" if was_exposed else "first level of the protocol"
        self._continuous = None
        self._change_step(resume_step, now, "protocol", why, force=True)
        # the SUDS timer starts again: the first thing a resuming patient sees is not an overdue prompt
        self._suds_due_s = now + self._protocol.suds.every_s if self._protocol.suds.every_s > 0 else None

    def _start_recovery(self, now: float, reason: str) -> None:
        was_exposure = self.phase in (Phase.EXPOSURE, Phase.SAFE_PLACE)
        ask_end = was_exposure and self._exposure_started and self._protocol.suds.at_end
        if not ask_end or self.phase is not Phase.EXPOSURE:
            self._finish_visit(now)  # (the last level's visit closes with its end rating otherwise)
        self._pending_up = None
        if self._prompt is not None:
            self._miss_prompt(now)
        self._set_phase(Phase.RECOVERY, reason, now)
        self._switch_environment(self._safe_env.name, now)
        if ask_end:
            self._ask_suds(now, "end")

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

    def _end(self, status: EndStatus, reason: str, now: float) -> None:
        if self._ended is not None:
            return
        self._finish_visit(now)
        if self._prompt is not None:
            self._miss_prompt(now)
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
        # The scene moves towards its target at one level per ramp_s (level + intensity = how far), never in one
        # jump, and by the time elapsed: a scene published between ticks (after a command) does not speed it up.
        ramp_s = self._protocol.exposure.ramp_s
        step = max(0.0, now - self._scene_t_s) / ramp_s if ramp_s > 0 else float("inf")
        if self._ramp_kick:  # the patient (and the console's view) sees a level change start at once
            step = max(step, self.tick_s / ramp_s if ramp_s > 0 else float("inf"))
            self._ramp_kick = False
        self._scene_t_s = max(self._scene_t_s, now)
        target = float(self.level)
        if self._continuous is not None:  # target_band: a continuous position between this step and the next
            lo = self._levels[min(int(math.floor(self._continuous + 1e-9)), self._max_step)]
            hi = self._levels[min(int(math.floor(self._continuous + 1e-9)) + 1, len(self._levels) - 1)]
            target = lo + (self._continuous - math.floor(self._continuous + 1e-9)) * (hi - lo)
        delta = target - self._shown_level
        self._shown_level = target if abs(delta) <= step else self._shown_level + math.copysign(step, delta)
        top = len(self._env.levels) - 1
        shown_level = min(int(math.floor(self._shown_level + 1e-9)), top)
        shown_fraction = min(max(self._shown_level - shown_level, 0.0), 1.0) if shown_level < top else 0.0
        fade = max(0.0, 1.0 - (now - self._env_switched_s) / self.fade_in_s) if self.fade_in_s > 0 else 0.0
        if self.phase is Phase.ENDED and self._ended is not None and self._ended[0] is EndStatus.COMPLETED:
            fade = 1.0
        rate = None
        if self.phase in (Phase.RECOVERY, Phase.SAFE_PLACE, Phase.BREATHING):
            rate = self._breathing_rate(now)
        self.pacer_breaths_per_min = rate
        breath = None
        if rate is not None:
            # the pacer's phase advances by the rate in force (a rate change never jumps the light)
            self._breath_phase = (self._breath_phase + max(0.0, now - self._breath_t_s) * rate / 60.0) % 1.0
            breath = self._breath_phase
        self._breath_t_s = now
        panel, prompt = None, False
        if self.phase is Phase.BASELINE:
            panel = BASELINE_TEXT
        elif self.phase is Phase.RECOVERY:
            panel = RECOVERY_TEXT
        elif self.phase is Phase.SAFE_PLACE:
            panel = SAFE_TEXT
        elif self.phase is Phase.BREATHING:
            panel = f"{BREATHING_TEXT}\n{rate:g} breaths per minute" if rate else BREATHING_TEXT
        if self._prompt is not None and self.phase in (Phase.EXPOSURE, Phase.RECOVERY):
            panel, prompt = self._prompt.question, True
        on_safe = self._env_name != self._env.name
        dials: tuple[tuple[str, float], ...] = ()
        if not on_safe:
            dials = tuple((k, v[0]) for k, v in sorted(self._dials.items()))
            if self.phase is Phase.BREATHING and "calm_response" in self._env.dial_names:
                dials += (("calm_response", round(self._calm, 3)),)
        self._seq += 1
        state = SceneState(
            environment=self._env_name,
            level=0 if on_safe else shown_level,
            t_s=now,
            intensity=0.0 if on_safe else shown_fraction,
            dials=dials,
            fade=fade,
            fade_rgb=self._fade_rgb,
            panel_text=panel,
            suds_prompt=prompt,
            breath_phase=breath,
            safe_place=on_safe or self._env.kind == "safe",
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
