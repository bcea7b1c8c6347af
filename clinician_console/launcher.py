"""Starting sessions from the standalone console (``python main.py console``).

A session started here runs through the same :class:`~therapy.runner.SessionRunner`
as ``run`` and ``demo``, on its own thread (which also renders, when it has a
display), with the console's hub attached as its observer. One session at a
time: the console shows one live session. Everything a user can get wrong
(patient, protocol, length, sensor) is checked before the thread starts, so a
mistake is a 4xx answer, never a half-started session.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from clinician_console.hub import ConsoleHub, runner_view

log = logging.getLogger(__name__)


class StartRequest(BaseModel):
    """What the page's start form sends."""

    model_config = ConfigDict(extra="forbid", strict=True)

    patient: str = Field(..., max_length=64, description="an existing patient code")
    protocol: str = Field("heights-graded", max_length=200, description="a built-in protocol name")
    minutes: float = Field(20.0, gt=0, le=180)
    sensor: str = Field("sim", max_length=200, description="sim[:SEED], ble:ADDR, polar:ADDR, lsl:NAME")
    speed: float = Field(1.0, gt=0, le=100, description="simulated sensor only: session time runs N times faster")
    simulated_patient: bool = Field(False, description="a simulated patient answers SUDS (training, demos)")
    display: str = Field("headless", pattern="^(headless|none)$",
                         description="headless renders the patient's view offscreen; none renders nothing")


class LaunchError(Exception):
    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class Launcher:
    """Runs at most one session at a time for the console."""

    def __init__(self, hub: ConsoleHub, data_dir: Path) -> None:
        self.hub = hub
        self.data_dir = Path(data_dir)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.runner = None
        self.last_error: str | None = None
        self.last_outcome: dict[str, object] | None = None

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, req: StartRequest, who: str) -> dict[str, object]:
        """Check the request (raises the package's user errors), then start the session's thread."""
        from therapy.runner import SessionRequest, SessionRunner

        with self._lock:
            if self.running() or (self.hub.live is not None and self.hub.live.snapshot().status is None):
                raise LaunchError("a session is already running: end it before starting another")
            if req.speed != 1.0 and not req.sensor.startswith("sim"):
                raise LaunchError(f"speed {req.speed:g} needs the simulated sensor (sim), not {req.sensor!r}", 422)
            request = SessionRequest(
                patient=req.patient, protocol=req.protocol, sensor=req.sensor, minutes=req.minutes,
                speed=req.speed, display=req.display, data_dir=self.data_dir,
                simulated_patient=req.simulated_patient, command="console", seed=0,
                metadata=(("started_by", who),))

            def attach(live) -> None:  # the hub shows the session from its first event
                self.hub.attach(live, runner_view(runner))

            runner = SessionRunner(request, observers=[attach])
            prep = runner.prepare()  # user errors surface here, before anything opens
            self.runner, self.last_error, self.last_outcome = runner, None, None
            self._thread = threading.Thread(target=self._run, args=(runner,), name="vrex-console-session",
                                            daemon=True)
            self._thread.start()
        return {"starting": True, "patient": req.patient, "protocol": prep.protocol.name,
                "environment": prep.env.name, "minutes": req.minutes}

    def _run(self, runner) -> None:
        try:
            outcome = runner.run()
            self.last_outcome = {"session_id": outcome.session_id, "status": outcome.status.value,
                                 "end_reason": outcome.end_reason}
        except Exception as exc:  # e.g. no heart signal: nothing was recorded; the page shows why
            log.warning("the session started from the console did not run: %s", exc)
            self.last_error = str(exc)

    def state(self) -> dict[str, object]:
        return {"running": self.running(), "last_error": self.last_error, "last_outcome": self.last_outcome}

    def wait(self, timeout_s: float | None = None) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        return not self.running()
