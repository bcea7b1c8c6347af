"""Start any session, and end it on every path: the one way the CLI, the tests and the console run one.

:class:`SessionRunner` owns a session's whole life cycle:

1. check everything a user can get wrong before anything is opened or written
   (patient, protocol, environments, length, sensor spec, data directory);
2. open the store, the sensor and the display;
3. start the session's asyncio thread: wait for a valid heart signal (a live
   sensor may need seconds to connect; nothing is recorded while there is
   none), open the record, create the :class:`~therapy.live.LiveSession`,
   attach the observers, run the runtime and its companions;
4. render on the calling thread (which owns the GL context) until the session
   ends, turning Ctrl-C / SIGTERM / a closed window into an interrupt and a
   render crash into a failed record;
5. drain every lossless observer, close the record and the devices.

With ``display="none"`` (tests, headless services) the session runs on the
calling thread and nothing renders. Clocks: a simulated or replayed sensor
runs on a :class:`~biofeedback.clock.PacedClock` (N x real time, and a busy CPU
never changes a decision); a live sensor runs on the LSL clock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from biofeedback.clock import Clock, LslClock, PacedClock
from biofeedback.pipeline import HeartPipeline
from biofeedback.records import SensorRecord
from biofeedback.sensor import HeartSensor
from environments import registry
from environments.scene_state import SceneState, SceneStateBox
from protocols.model import ProtocolSpec, load_protocol
from therapy import commands as cmd
from therapy.errors import TherapyError
from therapy.events import EndStatus, Phase
from therapy.live import LevelInfo, LiveSession, SessionIdentity, SubscriptionStats
from therapy.session import SessionPlan, SessionRuntime, drive_from_scene, initial_scene
from therapy.store import SessionInfo, SessionSink, SessionStore, open_store

log = logging.getLogger(__name__)

#: The pseudonymous code ``demo`` records its sessions under (created on first use), and its age.
DEMO_PATIENT = "DEMO"
DEMO_AGE_YEARS = 35
#: Sensor kinds whose time the session controls (run on a paced clock); the others are live devices.
CLOCKED_SENSORS = ("sim", "replay")
WAITING_TEXT = "Connecting to the heart sensor\nPlease sit still and breathe normally"

#: An observer attaches to a session as soon as it exists (before its first event): subscribe, start a server...
Observer = Callable[[LiveSession], None]
#: A companion runs on the session's loop and clock beside the runtime (a scripted therapist in a test, a
#: training scenario); it sees the session only through the live session, like any observer.
Companion = Callable[[LiveSession, Clock], Awaitable[None]]


class NoHeartSignalError(TherapyError):
    """The sensor delivered no valid heart signal in time: nothing was recorded."""


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """Everything needed to start a session; validated by :meth:`SessionRunner.prepare`."""

    patient: str
    protocol: str | ProtocolSpec = "heights-graded"
    sensor: str = "sim"
    minutes: float = 20.0
    speed: float = 1.0
    faults: tuple = ()
    display: str = "headless"  # "none" | "headless" | "desktop" | "openvr"
    eye_size: tuple[int, int] = (640, 720)
    fps: float | None = None
    data_dir: Path | None = None
    simulated_patient: bool = False  # answer SUDS prompts like the simulated strap's patient (demo, training)
    simulated_therapist: bool = False  # accept step-up recommendations after a short look (demo, training)
    capture_frames: bool = True
    signal_timeout_s: float = 30.0  # session seconds to wait for a valid heart signal before the baseline
    command: str = "run"
    seed: int = 0  # the simulated patient's (the simulated strap takes its seed from ``sim:SEED``)
    xdf: bool = True  # write DATA_DIR/sessions/<id>/session.xdf beside the record
    lsl: bool = True  # publish the session's LSL outlets (ECG, RR, HR, exposure, markers)
    station: str | None = None  # the station's name in LSL stream names and source ids (default: host name)
    sound: bool = True  # the environments' soundscapes while a display shows them (silent without an audio device)
    metadata: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """A PNG written during the session, with what it shows."""

    label: str
    path: Path
    t_s: float


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    """How a session ended and where its record is."""

    session_id: str
    status: EndStatus
    end_reason: str
    record_path: Path
    frames: tuple[CapturedFrame, ...]
    subscribers: tuple[SubscriptionStats, ...]
    lost_events: int
    max_lag_s: float
    render_error: str | None = None
    xdf_path: Path | None = None

    @property
    def exit_code(self) -> int:
        if self.render_error is not None or self.status is EndStatus.FAILED or self.lost_events:
            return 1
        return 130 if self.status is EndStatus.INTERRUPTED else 0


@dataclass
class _Prepared:
    protocol: ProtocolSpec
    protocol_text: str
    env: registry.EnvironmentInfo
    safe_env: registry.EnvironmentInfo
    plan: SessionPlan
    sensor_kind: str
    patient_age_years: float | None
    resonance_breaths_per_min: float | None
    hierarchy: tuple[int, ...] | None
    store: SessionStore
    metadata: dict[str, object] = field(default_factory=dict)


class SessionRunner:
    """Runs one session from a :class:`SessionRequest`; see the module docstring.

    ``clock`` replaces the clock the sensor kind implies (tests pass a
    :class:`~biofeedback.clock.VirtualClock`); ``sensor_factory(clock, scene)`` replaces the sensor the spec
    names; ``observers`` attach to the live session before its first event; ``ask_retry(message)`` is asked
    whether to keep waiting when no heart signal arrives (``None``: give up at once); ``display_factory()``
    replaces the display ``request.display`` names (an OpenVR display on a stand-in runtime in tests);
    ``on_status(line)`` hears what the operator should see before the session starts (the sensor's link state
    while waiting for its heart signal).
    """

    def __init__(
        self,
        request: SessionRequest,
        *,
        clock: Clock | None = None,
        sensor_factory: Callable[[Clock, SceneStateBox], HeartSensor] | None = None,
        observers: Sequence[Observer] = (),
        companions: Sequence[Companion] = (),
        ask_retry: Callable[[str], bool] | None = None,
        store: SessionStore | None = None,
        display_factory: Callable[[], object] | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.request = request
        self._clock_override = clock
        self._sensor_factory = sensor_factory
        self._observers = tuple(observers)
        self._companions = tuple(companions)
        self._ask_retry = ask_retry
        self._store = store
        self._display_factory = display_factory
        self._on_status = on_status
        self._prepared: _Prepared | None = None
        self.live: LiveSession | None = None
        self.runtime: SessionRuntime | None = None
        self.sensor: HeartSensor | None = None
        self.clock: Clock | None = None
        self.scene: SceneStateBox | None = None
        self.started = threading.Event()  # set once the live session exists
        self.done = threading.Event()
        self._writer: SessionSink | None = None
        self._frames: list[CapturedFrame] = []
        self._status: EndStatus | None = None
        self._error: BaseException | None = None
        self._request_capture: Callable[[Path], concurrent.futures.Future[Path]] | None = None
        self._request_rgb: Callable[[str], concurrent.futures.Future] | None = None
        self._research: dict[str, object] = {}

    # -- 1. checks --------------------------------------------------------------------------------

    def prepare(self) -> _Prepared:
        """Check everything a user can get wrong; opens (and migrates) the store, writes no session."""
        if self._prepared is not None:
            return self._prepared
        req = self.request
        kind = (req.sensor or "").strip().partition(":")[0].lower()
        if kind not in ("sim", "replay", "ble", "polar", "lsl"):
            from biofeedback.sensors import _spec_error

            raise _spec_error(req.sensor, f"unknown sensor kind {kind!r}" if kind else "no sensor given")
        if kind not in CLOCKED_SENSORS and req.speed != 1.0 and self._clock_override is None:
            raise TherapyError(f"--speed {req.speed:g} needs a simulated or replayed sensor: a live sensor "
                               f"({req.sensor}) runs in real time; leave --speed out")
        if isinstance(req.protocol, ProtocolSpec):  # built in code (tests, the console's editor)
            protocol, text = req.protocol, req.protocol.model_dump_json(indent=1)
        else:
            protocol, text = load_protocol(req.protocol)
        env = registry.info(protocol.environment)
        safe_env = registry.info(protocol.safe_environment)
        plan = SessionPlan.for_minutes(protocol, req.minutes)
        store = self._store if self._store is not None else open_store(req.data_dir)
        self._store = store
        if req.patient == DEMO_PATIENT and store.find_patient(DEMO_PATIENT) is None:
            store.add_patient(DEMO_PATIENT, birth_year=datetime.now(UTC).year - DEMO_AGE_YEARS,
                              notes="simulated patient of 'python main.py demo'")
        patient = store.patient(req.patient)
        steps = patient.hierarchies.get(env.name)
        hierarchy = tuple(s.level for s in steps) if steps else None
        if hierarchy:
            top = len(env.levels) - 1
            bad = [lv for lv in hierarchy if not 0 <= lv <= top]
            if bad:
                raise TherapyError(f"patient {patient.code}'s hierarchy for {env.name} names levels {bad} that "
                                   f"{env.name} does not have (0..{top}); set it again with 'python main.py "
                                   f"patients hierarchy {patient.code} {env.name} LEVEL...'")
        self._prepared = _Prepared(protocol, text, env, safe_env, plan, kind, patient.age_years(),
                                   patient.resonance_breaths_per_min, hierarchy, store)
        return self._prepared

    # -- 2.-5. the whole session ------------------------------------------------------------------

    def run(self) -> SessionOutcome:
        """Run the session to its end; user errors raise before anything is recorded."""
        prep = self.prepare()
        req = self.request
        self.clock = self._clock_override or (PacedClock(req.speed) if prep.sensor_kind in CLOCKED_SENSORS
                                              else LslClock())
        self.scene = SceneStateBox(initial_scene(prep.safe_env.name))
        self.sensor = self._open_sensor(prep)
        display = None
        if req.display != "none":
            from environments.displays import open_display

            fps = req.fps or (10.0 if req.display == "headless" else None)
            try:
                display = self._display_factory() if self._display_factory is not None else open_display(
                    req.display, eye_size=req.eye_size, stereo=True, msaa=0, max_fps=fps)
            except BaseException:
                self._close_sensor_now()
                raise
        try:
            if display is None:
                self._session_thread_main()
                render_error = None
            else:
                render_error = self._render_until_done(display)
        finally:
            if display is not None:
                display.close()
        if self._error is not None and self.live is None:
            raise self._error  # e.g. no heart signal, a sensor that cannot open: nothing was recorded
        return self._finish(render_error)

    def _open_sensor(self, prep: _Prepared) -> HeartSensor:
        assert self.clock is not None and self.scene is not None
        if self._sensor_factory is not None:
            return self._sensor_factory(self.clock, self.scene)
        from biofeedback.sensors import open_sensor

        drive = drive_from_scene(self.scene, len(prep.env.levels))
        return open_sensor(self.request.sensor, self.clock, drive=drive, faults=list(self.request.faults) or None,
                           pacer=self.pacer_breaths_per_min)

    def pacer_breaths_per_min(self) -> float | None:
        """The breathing pacer's rate now (the simulated strap's patient breathes with it)."""
        return self.runtime.pacer_breaths_per_min if self.runtime is not None else None

    def _close_sensor_now(self) -> None:
        if self.sensor is not None:
            try:
                asyncio.run(self.sensor.close())
            except Exception:
                log.exception("closing the sensor failed")

    def _render_until_done(self, display) -> str | None:
        """The calling thread renders (it owns the GL context) while the session thread runs."""
        from environments.render_loop import RenderLoop

        assert self.scene is not None
        commands = cmd.CommandQueue()
        self._commands = commands
        loop = RenderLoop(display, self.scene, on_input=lambda ev: cmd.put_patient_input(commands, ev))
        self._request_capture = loop.request_capture
        self._request_rgb = loop.request_rgb
        stop_render = threading.Event()
        signals_seen: list[str] = []  # the handler only appends (no locks in a signal handler)

        def on_signal(signum: int, _frame) -> None:
            signals_seen.append(signal.Signals(signum).name)

        def supervise() -> None:
            """Turns signals into commands; stops rendering once the session is over (or on a second signal)."""
            sent = False
            while not self.done.wait(0.05):
                if signals_seen and not sent:
                    sent = True
                    commands.put(cmd.Interrupt(source="operator", reason=f"{signals_seen[0]} received"))
                if len(signals_seen) > 1:
                    break
            stop_render.set()

        in_main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
        session_thread = threading.Thread(target=self._session_thread_main, name="vrex-session", daemon=True)
        supervisor = threading.Thread(target=supervise, name="vrex-supervise", daemon=True)
        session_thread.start()
        supervisor.start()
        threading.Thread(target=self._pace_rendering, args=(loop,), name="vrex-render-pacing", daemon=True).start()
        render_error: str | None = None
        sound = None
        if self.request.sound:
            try:
                from environments.sound import SoundEngine

                sound = SoundEngine(self.scene)
                sound.start()  # its own thread; a silent no-op where there is no audio device
            except Exception:  # sound is presence, never a reason to stop a session
                log.exception("the sound engine could not start; the session goes on without sound")
                sound = None
        try:
            loop.run(stop_render)
        except Exception as exc:  # rendering died: the session must still end cleanly, recorded as failed
            log.exception("the render loop failed")
            render_error = f"rendering failed: {exc}"
            commands.put(cmd.Abort(source="renderer", reason=render_error))
        finally:
            self._request_rgb = None  # the loop has stopped: no frame will come
            if sound is not None:
                sound.stop()
            if not self.done.wait(30.0):
                log.error("the session thread did not finish within 30 s of the render loop stopping")
            for s, handler in previous.items():
                signal.signal(s, handler)
        return render_error

    def request_rgb(self, eye: str = "left") -> concurrent.futures.Future:
        """The next rendered frame of what the patient sees, as an (H, W, 3) array (the console's patient view).

        Without a display, or once rendering has stopped, the future holds a :class:`RenderError` at once."""
        from environments.errors import RenderError

        request = self._request_rgb
        if request is not None and not self.done.is_set():
            return request(eye)
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_exception(RenderError("no frame: this session renders nothing now (no display, or it ended)"))
        return future

    def _pace_rendering(self, loop) -> None:
        """While the session's paced clock falls behind the wall (a CPU-only renderer starving the session's
        thread), render less often; when it has caught up, render at the display's rate again."""
        gap_s = 0.0
        while not self.done.wait(0.5):
            lag_s = getattr(self.clock, "lag_s", 0.0)
            speed = self.clock.speed if self.clock is not None else 1.0
            behind_wall_s = lag_s / speed if speed and speed != float("inf") else 0.0
            if behind_wall_s > 0.5:
                gap_s = min(1.0, gap_s * 1.5 + 0.05)
            elif behind_wall_s < 0.1:
                gap_s = max(0.0, gap_s * 0.5 - 0.01)
            loop.frame_gap_s = gap_s

    def _session_thread_main(self) -> None:
        try:
            self._status = asyncio.run(self._session())
        except BaseException as exc:  # report, never vanish: the record says failed (or nothing was recorded)
            if not isinstance(exc, TherapyError):
                log.exception("the session thread failed")
            self._error = exc
            self._status = EndStatus.FAILED
        finally:
            self.done.set()

    async def _session(self) -> EndStatus:
        prep = self.prepare()
        req = self.request
        clock, scene, sensor = self.clock, self.scene, self.sensor
        assert clock is not None and scene is not None and sensor is not None
        commands = getattr(self, "_commands", None) or cmd.CommandQueue()
        self._commands = commands
        commands.bind(asyncio.get_running_loop())
        helpers: list[asyncio.Task] = []
        if hasattr(clock, "run"):  # a virtual or paced clock moves only while its driver runs
            helpers.append(asyncio.create_task(clock.run(), name="vrex-clock"))
        records = _RecordStream(sensor.records())
        helpers.append(asyncio.create_task(records.pump(), name="vrex-sensor-pump"))
        pipeline = HeartPipeline()
        try:
            without_physiology = not await self._wait_for_signal(records, pipeline, prep)
            self._open_record(prep, without_physiology)
            assert self.live is not None
            runtime = SessionRuntime(
                clock=clock, sensor=sensor, pipeline=pipeline, protocol=prep.protocol, environment=prep.env,
                safe_environment=prep.safe_env, plan=prep.plan, live=self.live, scene=scene,
                patient_age_years=prep.patient_age_years, hierarchy=prep.hierarchy, records=records,
                resonance_breaths_per_min=prep.resonance_breaths_per_min, initial_link=self._last_link,
            )
            self.runtime = runtime
            if req.capture_frames and self._request_capture is not None:
                policy = FrameCapturePolicy(self.live, clock, self._request_capture, self._frames_dir(),
                                            settle_s=runtime.fade_in_s + prep.protocol.exposure.ramp_s + 1.0,
                                            frames=self._frames)
                helpers.append(asyncio.create_task(_guarded(policy.run), name="vrex-capture"))
            if req.simulated_patient and hasattr(sensor, "fear_bpm"):
                from therapy.simulated_patient import SimulatedPatient

                model = sensor.model  # type: ignore[attr-defined]
                patient = SimulatedPatient(clock, self.live, lambda: sensor.fear_bpm / model.fear_gain_bpm,
                                           seed=req.seed)
                helpers.append(asyncio.create_task(_guarded(patient.run), name="vrex-sim-patient"))
            if req.simulated_therapist:
                from therapy.simulated_patient import SimulatedTherapist

                therapist = SimulatedTherapist(clock, self.live, seed=req.seed)
                helpers.append(asyncio.create_task(_guarded(therapist.run), name="vrex-sim-therapist"))
            for companion in self._companions:
                live = self.live
                helpers.append(asyncio.create_task(_guarded(lambda c=companion: c(live, clock)), name="vrex-companion"))
            self.started.set()
            return await runtime.run()
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if self.runtime is None:  # never started: the runtime did not get to close the sensor
                try:
                    await sensor.close()
                except Exception:
                    log.exception("closing the sensor failed")

    async def _wait_for_signal(self, records: AsyncIterator[SensorRecord], pipeline: HeartPipeline,
                               prep: _Prepared) -> bool:
        """Feed the pipeline until the heart signal is valid (fresh beats); ``False``: go on without one (a
        manual protocol only). Raises :class:`NoHeartSignalError` when none comes and the user gives up."""
        clock, scene = self.clock, self.scene
        assert clock is not None and scene is not None
        scene.put(SceneState(environment=prep.safe_env.name, level=0, t_s=clock.now(), fade=0.0,
                             panel_text=WAITING_TEXT, safe_place=True))
        timeout_s = self.request.signal_timeout_s
        self._last_link = None
        while True:
            deadline = clock.now() + timeout_s
            last_link = "no link event yet"

            async def feed() -> bool:
                nonlocal last_link
                async for record in records:
                    pipeline.feed(record)
                    state_name = getattr(getattr(record, "state", None), "value", None)
                    if state_name is not None:
                        self._last_link = record
                        last_link = f"{state_name}: {getattr(record, 'detail', '')}".rstrip(": ")
                        self._tell(f"heart sensor {last_link}")
                    state = pipeline.state(clock.now())
                    if not state.stale and state.hr_bpm is not None and state.beats >= 3:
                        self._tell(f"valid heart signal (HR {state.hr_bpm:.0f} bpm): the session starts")
                        return True
                return False  # the stream ended

            got = await _until(clock, feed(), deadline)
            if got:
                return True
            if prep.protocol.controller.kind == "manual":
                log.warning("no heart signal within %.0f s: the manual protocol runs without heart data", timeout_s)
                return False
            message = (f"no valid heart signal from {self.sensor.description if self.sensor else self.request.sensor}"
                       f" within {timeout_s:.0f} s ({last_link}): check the strap is moistened, worn and charged, "
                       "and that no other app is connected to it")
            if got is None and self._ask_retry is not None:
                retry = await asyncio.get_running_loop().run_in_executor(None, self._ask_retry, message)
                if retry:
                    continue
            raise NoHeartSignalError(message + "; then run the session again (use --signal-timeout to wait longer)")

    def _tell(self, line: str) -> None:
        log.info("%s", line)
        if self._on_status is not None:
            try:
                self._on_status(line)
            except Exception:
                log.exception("status callback failed")

    def _open_record(self, prep: _Prepared, without_physiology: bool) -> None:
        req = self.request
        clock = self.clock
        assert clock is not None and self.sensor is not None
        metadata = {"command": req.command, "seed": req.seed, "speed": req.speed, "minutes": req.minutes, "display": req.display,
                    "eye_size": list(req.eye_size), "sensor_spec": req.sensor,
                    "faults": [f"{f.kind}@{f.start_s:g}+{f.duration_s:g}" for f in req.faults],
                    "hierarchy": list(prep.hierarchy) if prep.hierarchy else None,
                    "patient_age_known": prep.patient_age_years is not None,
                    "without_physiology": without_physiology, **dict(req.metadata)}
        self._writer = prep.store.begin_session(SessionInfo(
            protocol_name=prep.protocol.name, protocol_toml=prep.protocol_text, environment=prep.env.name,
            sensor=self.sensor.description, clock_origin_s=clock.now(), metadata=metadata, patient_code=req.patient,
        ))
        identity = SessionIdentity(
            session_id=self._writer.session_id, patient=req.patient, protocol_name=prep.protocol.name,
            protocol_toml=prep.protocol_text, environment=prep.env.name, environment_title=prep.env.title,
            safe_environment=prep.safe_env.name,
            levels=tuple(LevelInfo(i, lv.title, getattr(lv, "description", "")) for i, lv in enumerate(prep.env.levels)),
            hierarchy=prep.hierarchy or (), total_s=prep.plan.total_s, baseline_s=prep.plan.baseline_s,
            recovery_s=prep.plan.recovery_s, t0_s=clock.now(), sensor=self.sensor.description,
            controller=prep.protocol.controller.kind, without_physiology=without_physiology,
        )
        live = LiveSession(identity, self._commands, self.scene)
        live.subscribe(self._writer, lossless=True, name="store")
        live.subscribe(_ResonanceSaver(prep.store.path.parent, req.patient), lossless=True, name="resonance")
        if req.xdf or req.lsl:  # every session's research copy and streams, whoever started it
            from therapy.sinks.attach import attach_research

            try:
                self._research = attach_research(live, data_dir=prep.store.path.parent, sensor=self.sensor,
                                                 lsl=req.lsl, station=req.station, xdf=req.xdf)
            except Exception:  # research outputs must never stop a patient's session
                log.exception("the session's XDF file or LSL outlets could not be attached")
        for observer in self._observers:
            try:
                observer(live)
            except Exception:  # an observer that cannot attach must not stop the patient's session
                log.exception("session observer %r could not attach", observer)
        self.live = live

    def _frames_dir(self) -> Path:
        assert self._writer is not None
        folder = self.prepare().store.path.parent / "frames" / self._writer.session_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _finish(self, render_error: str | None) -> SessionOutcome:
        status = self._status or EndStatus.INTERRUPTED
        subscribers: list[SubscriptionStats] = []
        if self.live is not None:
            subscribers = self.live.close()
        lost = 0
        if self._writer is not None:
            fallback = EndStatus.FAILED if render_error or self._error else EndStatus.INTERRUPTED
            why = render_error or (f"the session failed: {self._error}" if self._error else "closed")
            self._writer.finish(fallback, why)
            lost = self._writer.lost_events
        if render_error is not None:
            status = EndStatus.FAILED
        snap = self.live.snapshot() if self.live is not None else None
        return SessionOutcome(
            session_id=self._writer.session_id if self._writer else "",
            status=status,
            end_reason=(snap.end_reason if snap is not None and snap.end_reason else str(self._error or "")),
            record_path=self.prepare().store.path,
            frames=tuple(sorted(self._frames, key=lambda f: f.t_s)),
            subscribers=tuple(subscribers),
            lost_events=lost,
            max_lag_s=getattr(self.clock, "max_lag_s", 0.0),
            render_error=render_error,
            xdf_path=getattr(self._research.get("xdf"), "path", None),
        )


class _ResonanceSaver:
    """Saves a resonance assessment's choice as the patient's resonance rate (HRV biofeedback paces at it)."""

    def __init__(self, data_dir: Path, patient: str) -> None:
        self._data_dir = data_dir
        self._patient = patient

    def __call__(self, item: object) -> None:
        from therapy.events import ResonanceAssessed
        from therapy.store import open_store

        if isinstance(item, ResonanceAssessed) and item.breaths_per_min is not None:
            with open_store(self._data_dir) as store:
                store.set_resonance(self._patient, item.breaths_per_min)
            log.info("patient %s: resonance rate %.1f breaths/min saved", self._patient, item.breaths_per_min)


class _RecordStream:
    """The sensor's records through a queue, so waiting for them can time out and resume without closing the
    sensor's generator (cancelling a generator's ``__anext__`` would end it)."""

    _END = object()

    def __init__(self, source: AsyncIterator[SensorRecord]) -> None:
        self._source = source
        self._queue: asyncio.Queue[object] = asyncio.Queue()

    async def pump(self) -> None:
        try:
            async for record in self._source:
                self._queue.put_nowait(record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the consumer (the runtime) reports it as a sensor failure
            self._queue.put_nowait(exc)
        self._queue.put_nowait(self._END)

    def __aiter__(self) -> _RecordStream:
        return self

    async def __anext__(self) -> SensorRecord:
        item = await self._queue.get()
        if item is self._END:
            self._queue.put_nowait(item)
            raise StopAsyncIteration
        if isinstance(item, Exception):
            raise item
        return item  # type: ignore[return-value]


async def _until(clock: Clock, work, deadline_s: float):
    """Run ``work`` until it returns or the session clock reaches ``deadline_s`` (then ``None``)."""
    task = asyncio.ensure_future(work)

    async def alarm() -> None:
        await clock.sleep_until(deadline_s)

    timer = asyncio.ensure_future(alarm())
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        return None
    finally:
        for t in (task, timer):
            t.cancel()
        await asyncio.gather(task, timer, return_exceptions=True)


async def _guarded(fn: Callable) -> None:
    """Run a companion coroutine; its failure is logged and never ends the session."""
    try:
        await fn()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("session companion %r failed", fn)


class FrameCapturePolicy:
    """Asks the renderer for PNG frames at the moments a clinician wants to see afterwards.

    One in the middle of the baseline, one for each level the first time it has been shown steadily (after
    its fade-in and intensity ramp), one late in paced breathing (HRV biofeedback), and one near the end of
    recovery. It watches the session only through its live snapshot; captures run on the render thread, this
    only asks.
    """

    def __init__(self, live: LiveSession, clock: Clock, capture: Callable[[Path], concurrent.futures.Future[Path]],
                 folder: Path, *, settle_s: float, frames: list[CapturedFrame]) -> None:
        self._live = live
        self._clock = clock
        self._capture = capture
        self._folder = folder
        self._settle_s = settle_s
        self._pending: list[tuple[str, float, concurrent.futures.Future[Path]]] = []
        self.frames = frames

    def _request(self, label: str, name: str) -> None:
        try:
            future = self._capture(self._folder / name)
        except Exception:
            log.exception("could not request frame %s", name)
            return
        self._pending.append((label, self._clock.now(), future))

    async def run(self) -> None:
        ident = self._live.identity
        captured: set[int] = set()
        baseline_done = recovery_done = breathing_done = False
        level_since: tuple[int, float] | None = None
        try:
            while True:
                await self._clock.sleep(0.5)
                snap = self._live.snapshot()
                now = self._clock.now()
                elapsed = now - ident.t0_s
                if not baseline_done and snap.phase is Phase.BASELINE and elapsed >= ident.baseline_s / 2:
                    baseline_done = True
                    self._request("baseline (resting, safe place)", "00-baseline.png")
                if snap.phase is Phase.EXPOSURE and snap.level is not None:
                    if level_since is None or level_since[0] != snap.level:
                        level_since = (snap.level, now)
                    elif snap.level not in captured and now - level_since[1] >= self._settle_s:
                        captured.add(snap.level)
                        self._request(f"exposure level {snap.level}", f"level-{snap.level:02d}.png")
                else:
                    level_since = None
                if not breathing_done and snap.phase is Phase.BREATHING and \
                        elapsed >= ident.baseline_s + (ident.total_s - ident.baseline_s - ident.recovery_s) * 0.75:
                    breathing_done = True
                    self._request("paced breathing (HRV biofeedback, late)", "50-breathing.png")
                if not recovery_done and snap.phase is Phase.RECOVERY and elapsed >= ident.total_s - 5.0:
                    recovery_done = True
                    self._request("end of recovery (paced breathing)", "99-end.png")
                self._collect()
        finally:
            self._finish()

    def _collect(self) -> None:
        still = []
        for label, t_s, future in self._pending:
            if not future.done():
                still.append((label, t_s, future))
            elif future.exception() is None:
                self.frames.append(CapturedFrame(label, future.result(), t_s))
            else:
                log.warning("frame capture %s failed: %s", label, future.exception())
        self._pending = still

    def _finish(self, timeout_s: float = 5.0) -> None:
        """Wait briefly for captures still in flight (the render loop serves them on its next frame)."""
        for _, _, future in self._pending:
            try:
                future.result(timeout=timeout_s)
            except Exception:
                pass
        self._collect()


def default_ask_retry(message: str) -> bool:
    """Ask on the terminal whether to keep waiting for the heart signal (only when stdin is a terminal)."""
    if not sys.stdin or not sys.stdin.isatty():
        return False
    try:
        answer = input(f"vrex: {message}.\n  [r]etry or [e]xit? ").strip().lower()
    except EOFError:
        return False
    return answer.startswith("r")
