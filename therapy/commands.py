"""Commands into a running session, from the console, the patient's controller or the CLI.

Commands from any thread go through one :class:`CommandQueue` and are applied by
the therapy runtime alone, on its own loop, so session state has one writer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass

from environments.scene_state import InputKind, PatientInput

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Command:
    """Base of every command; ``source`` says who sent it (``therapist``, ``patient``, ``cli``...)."""

    source: str


@dataclass(frozen=True, slots=True)
class Stop(Command):
    """End the session now: fade to the safe place, close the record as stopped."""

    reason: str = "stop requested"


@dataclass(frozen=True, slots=True)
class Interrupt(Command):
    """End the session because the program is being shut down (Ctrl-C, SIGTERM, window closed)."""

    reason: str = "interrupted"


@dataclass(frozen=True, slots=True)
class Abort(Command):
    """End the session because a part it cannot run without failed (e.g. rendering); recorded as failed."""

    reason: str = "failed"


@dataclass(frozen=True, slots=True)
class GoToSafePlace(Command):
    """Pause exposure and show the safe place (the patient's STOP button does this)."""

    reason: str = "safe place requested"


@dataclass(frozen=True, slots=True)
class ResumeExposure(Command):
    """Leave the safe place; exposure resumes one level below where it paused."""


@dataclass(frozen=True, slots=True)
class SetLevel(Command):
    """The therapist sets the exposure level directly."""

    level: int = 0
    reason: str = "therapist's choice"


@dataclass(frozen=True, slots=True)
class AnswerSuds(Command):
    """A SUDS rating (0-100): the patient's answer to the pending prompt, or one the therapist enters."""

    value: int = 0


@dataclass(frozen=True, slots=True)
class RequestSuds(Command):
    """The therapist asks the patient for a SUDS rating now (shown in the headset)."""


@dataclass(frozen=True, slots=True)
class AcceptStepUp(Command):
    """The therapist accepts the pending step-up recommendation (``step_up = "confirm"``)."""


@dataclass(frozen=True, slots=True)
class DeclineStepUp(Command):
    """The therapist declines the pending step up; it is not offered again for the protocol's set time."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class ProceedWithoutHeartData(Command):
    """The therapist's explicit decision to run exposure without heart data (recorded; the alert repeats)."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class AddNote(Command):
    """A therapist's note, stored in the record at the moment it was written."""

    text: str = ""


@dataclass(frozen=True, slots=True)
class SetDial(Command):
    """Override one dial of the shown environment on top of its level (``value`` None resets it).

    The override is eased in, recorded, and reset when the level changes unless ``pinned``.
    """

    name: str = ""
    value: float | None = None
    pinned: bool = False
    reason: str = ""


class CommandQueue:
    """Thread-safe hand-off of commands to the runtime's asyncio loop."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Command] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._early: list[Command] = []
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the runtime's loop (called once, on that loop)."""
        with self._lock:
            self._loop = loop
            self._queue = asyncio.Queue()
            for cmd in self._early:
                self._queue.put_nowait(cmd)
            self._early.clear()

    def put(self, command: Command) -> None:
        """Send a command from any thread; never blocks."""
        with self._lock:
            loop, queue = self._loop, self._queue
            if loop is None or queue is None:
                self._early.append(command)
                return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            queue.put_nowait(command)
        else:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, command)
            except RuntimeError:  # the loop has closed: the session is over
                pass

    async def get(self) -> Command:
        assert self._queue is not None, "CommandQueue.bind() must be called on the runtime loop first"
        return await self._queue.get()


def command_for_input(event: PatientInput) -> Command | None:
    """What a patient action in the headset or window asks of the session (``None``: nothing)."""
    source = f"patient ({event.source})" if event.source else "patient"
    if event.kind is InputKind.SUDS and event.value is not None:
        return AnswerSuds(source=source, value=int(round(event.value)))
    if event.kind in (InputKind.STOP, InputKind.MENU):  # the headset's menu button is the patient's STOP
        return GoToSafePlace(source=source, reason="the patient asked to stop")
    if event.kind is InputKind.PAUSE:  # pausing asks for the safe place; un-pausing is the therapist's call
        return GoToSafePlace(source=source, reason="paused from the display") if event.value != 0 else None
    if event.kind is InputKind.QUIT:
        return Interrupt(source=source, reason="the display was closed")
    return None  # trigger and grip: reserved for in-headset SUDS answering


def put_patient_input(queue: CommandQueue, event: PatientInput) -> None:
    """Render-thread callback: translate a patient action and queue it (never blocks)."""
    command = command_for_input(event)
    if command is None:
        log.debug("patient input %s has no command", event)
        return
    queue.put(command)
