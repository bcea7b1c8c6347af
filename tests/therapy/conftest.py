"""Run whole sessions on a virtual clock: no rendering, no sleeping, the same result every time."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from biofeedback.clock import VirtualClock
from biofeedback.pipeline import HeartPipeline
from biofeedback.simulated import Fault, PatientModel, SimulatedSensor
from environments import registry
from environments.scene_state import SceneState, SceneStateBox
from protocols.model import ProtocolSpec, load_protocol
from therapy import commands as cmd
from therapy.events import EndStatus, Event, EventBus
from therapy.session import SessionPlan, SessionRuntime, drive_from_scene, initial_scene
from therapy.simulated_patient import SimulatedPatient
from therapy.store import SessionInfo, SqliteSessionStore


@dataclass
class VirtualSession:
    status: EndStatus
    db_path: Path
    session_id: str
    events: list[Event]
    scenes: list[SceneState] = field(default_factory=list)

    def query(self, sql: str, *params: object) -> list[tuple]:
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(sql, params).fetchall()

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def run_virtual_session(
    tmp_path: Path,
    *,
    minutes: float = 20.0,
    seed: int = 0,
    protocol: ProtocolSpec | None = None,
    faults: Sequence[Fault] = (),
    model: PatientModel | None = None,
    script: Sequence[tuple[float, cmd.Command]] = (),
    sensor_factory: Callable | None = None,
) -> VirtualSession:
    """One whole session through the real runtime, pipeline, simulator and SQLite store.

    ``script`` sends commands at given session times (seconds from the start).
    """
    if protocol is None:
        protocol, text = load_protocol("heights-graded")
    else:
        text = protocol.model_dump_json()
    clock = VirtualClock(start_s=1000.0)
    env_info = registry.info(protocol.environment)
    safe_info = registry.info(protocol.safe_environment)
    scene = SceneStateBox(initial_scene(safe_info.name))
    if sensor_factory is not None:
        sensor = sensor_factory(clock, scene)
    else:
        sensor = SimulatedSensor(
            clock, seed=seed, drive=drive_from_scene(scene, len(env_info.levels)), faults=faults, model=model
        )
    bus = EventBus()
    commands = cmd.CommandQueue()
    events: list[Event] = []
    scenes: list[SceneState] = []
    runtime = SessionRuntime(
        clock=clock, sensor=sensor, pipeline=HeartPipeline(), protocol=protocol, environment=env_info,
        safe_environment=safe_info, plan=SessionPlan.for_minutes(protocol, minutes), bus=bus,
        commands=commands, scene=scene,
    )
    store = SqliteSessionStore(
        tmp_path / "vrex.sqlite3",
        SessionInfo(protocol.name, text, env_info.name, sensor.description, clock.now(), {"seed": seed}),
    )
    bus.subscribe(store)
    bus.subscribe(events.append)
    t0 = clock.now()

    async def main() -> EndStatus:
        commands.bind(asyncio.get_running_loop())
        helpers = [asyncio.create_task(clock.run())]
        if isinstance(sensor, SimulatedSensor):
            patient = SimulatedPatient(clock, commands, lambda: sensor.fear_bpm / sensor.model.fear_gain_bpm, seed=seed)
            bus.subscribe(patient.on_event)
            helpers.append(asyncio.create_task(patient.run()))

        async def run_script() -> None:
            for at_s, command in script:
                await clock.sleep_until(t0 + at_s)
                commands.put(command)

        async def watch_scenes() -> None:
            while True:
                await clock.sleep(1.0)
                scenes.append(scene.get())

        helpers += [asyncio.create_task(run_script()), asyncio.create_task(watch_scenes())]
        try:
            return await asyncio.wait_for(runtime.run(), timeout=120)
        finally:
            for h in helpers:
                h.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    try:
        status = asyncio.run(main())
    finally:
        store.close()
    return VirtualSession(status, store.path, store.session_id, events, scenes)


@pytest.fixture
def virtual_session(tmp_path: Path):
    """``virtual_session(**kw)`` runs :func:`run_virtual_session` in a fresh folder."""
    counter = iter(range(1000))

    def run(**kw) -> VirtualSession:
        folder = tmp_path / f"s{next(counter)}"
        folder.mkdir()
        return run_virtual_session(folder, **kw)

    return run
