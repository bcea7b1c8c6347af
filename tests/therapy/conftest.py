"""Run whole sessions on a virtual clock through the real runner: no rendering, no sleeping, same result each time."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from biofeedback.clock import VirtualClock
from biofeedback.simulated import Fault, PatientModel, SimulatedSensor
from environments.scene_state import SceneState
from protocols.model import ProtocolSpec
from therapy import commands as cmd
from therapy.events import EndStatus, Event
from therapy.live import LiveSession
from therapy.runner import SessionOutcome, SessionRequest, SessionRunner
from therapy.session import drive_from_scene
from therapy.store import open_store

PATIENT = "P01"


@dataclass
class VirtualSession:
    status: EndStatus
    db_path: Path
    session_id: str
    events: list[Event]
    scenes: list[SceneState] = field(default_factory=list)
    outcome: SessionOutcome | None = None
    runner: SessionRunner | None = None

    @property
    def t0_s(self) -> float:
        """The session's start on its clock (after the wait for a valid heart signal)."""
        return self.runner.live.identity.t0_s

    def query(self, sql: str, *params: object) -> list[tuple]:
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(sql, params).fetchall()

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


class EventLog:
    """A lossless subscriber that keeps every event (and raw record, when asked) in order."""

    def __init__(self) -> None:
        self.items: list[object] = []

    def __call__(self, item: object) -> None:
        self.items.append(item)

    @property
    def events(self) -> list[Event]:
        return [i for i in self.items if isinstance(i, Event)]


def run_virtual_session(
    tmp_path: Path,
    *,
    minutes: float = 20.0,
    seed: int = 0,
    protocol: ProtocolSpec | str = "heights-graded",
    faults: Sequence[Fault] = (),
    model: PatientModel | None = None,
    script: Sequence[tuple[float, cmd.Command]] = (),
    sensor_factory: Callable | None = None,
    sensor: str | None = None,
    patient: str = PATIENT,
    birth_year: int | None = 1990,
    observers: Sequence[Callable[[LiveSession], None]] = (),
    companions: Sequence[Callable] = (),
    runner_holder: dict | None = None,
    xdf: bool = False,
    lsl: bool = False,
    simulated_patient: bool = True,
    simulated_therapist: bool = True,
    signal_timeout_s: float = 30.0,
) -> VirtualSession:
    """One whole session through the real runner, runtime, pipeline, simulator and SQLite store.

    ``script`` sends commands at given session times (seconds from the start of the session).
    """
    with open_store(tmp_path) as store:
        if store.find_patient(patient) is None:
            store.add_patient(patient, birth_year=birth_year)
    if sensor_factory is None and (faults or model is not None):
        def sensor_factory(clock, scene):
            from environments import registry
            from protocols.model import load_protocol

            spec = protocol if isinstance(protocol, ProtocolSpec) else load_protocol(protocol)[0]
            levels = len(registry.info(spec.environment).levels)
            return SimulatedSensor(clock, seed=seed, drive=drive_from_scene(scene, levels), faults=faults, model=model,
                                   pacer=lambda: runner.pacer_breaths_per_min())
    log = EventLog()
    scenes: list[SceneState] = []

    async def run_script(live: LiveSession, clock) -> None:
        t0 = live.identity.t0_s
        for at_s, command in script:
            await clock.sleep_until(t0 + at_s)
            live.commands.put(command)

    async def watch_scenes(live: LiveSession, clock) -> None:
        while True:
            await clock.sleep(1.0)
            scenes.append(runner.scene.get())

    runner = SessionRunner(
        SessionRequest(patient=patient, protocol=protocol, sensor=sensor or f"sim:{seed}", minutes=minutes,
                       display="none", data_dir=tmp_path, simulated_patient=simulated_patient,
                       simulated_therapist=simulated_therapist, seed=seed,
                       signal_timeout_s=signal_timeout_s, command="test", xdf=xdf, lsl=lsl),
        clock=VirtualClock(start_s=1000.0),
        sensor_factory=sensor_factory,
        observers=[lambda live: live.subscribe(log, lossless=True, name="test-log"), *observers],
        companions=[run_script, watch_scenes, *companions],
    )
    if runner_holder is not None:
        runner_holder["runner"] = runner
    outcome = runner.run()
    return VirtualSession(outcome.status, outcome.record_path, outcome.session_id, log.events, scenes, outcome, runner)


@pytest.fixture
def virtual_session(tmp_path: Path):
    """``virtual_session(**kw)`` runs :func:`run_virtual_session` in a fresh folder."""
    counter = iter(range(1000))

    def run(**kw) -> VirtualSession:
        folder = tmp_path / f"s{next(counter)}"
        folder.mkdir()
        return run_virtual_session(folder, **kw)

    return run
