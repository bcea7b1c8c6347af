"""What a therapist can do to a live session, one table row per action.

Each :class:`Control` names its request body (a strict pydantic model: unknown
keys and wrong types are 422 with the key named), checks the request against
the session's present state (so a mistake is a clear 4xx now, not a silent
no-op in the runtime later), and builds the :class:`~therapy.commands.Command`
it sends. Adding a command to the console is one line in :func:`controls`.

Safety rules live here, server-side, so no page bug can bypass them:

* anything that raises exposure (a higher level, resuming from the safe place,
  accepting a step-up) needs ``confirm: true`` — the page asks first;
* a raise of more than one step also needs ``jump: true`` (a deliberate "jump
  to level"), so no single stray click climbs several levels;
* going down, the safe place and STOP never wait for a confirmation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from clinician_console.hub import session_levels
from therapy import commands as cmd
from therapy.events import Phase
from therapy.live import Snapshot


class ControlError(Exception):
    """The request does not fit the session's present state; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Empty(_Body):
    pass


class Confirmed(_Body):
    confirm: bool = Field(False, description="true once the therapist confirmed (raising exposure, ending)")


class Reason(_Body):
    reason: str = Field("", max_length=200, description="optional, recorded with the command")


class LevelBody(_Body):
    level: int = Field(..., ge=0, le=1000, description="an environment level of this session (see session_levels)")
    confirm: bool = Field(False, description="required (true) when the level is higher than the present one")
    jump: bool = Field(False, description="required (true) when raising by more than one step")


class SudsBody(_Body):
    value: int = Field(..., ge=0, le=100, description="the patient's SUDS rating, 0 (calm) to 100 (worst)")


class NoteBody(_Body):
    text: str = Field(..., min_length=1, max_length=4000)


@dataclass(frozen=True)
class Control:
    name: str
    summary: str
    body: type[BaseModel]
    build: Callable[[BaseModel, Snapshot, str], cmd.Command]


def _not_ended(snap: Snapshot) -> None:
    if snap.status is not None or snap.phase is Phase.ENDED:
        raise ControlError(f"the session has ended ({snap.status.value if snap.status else 'ended'}): "
                           "nothing more can be sent to it")


def _in_exposure(snap: Snapshot, what: str) -> None:
    _not_ended(snap)
    if snap.phase is not Phase.EXPOSURE:
        raise ControlError(f"{what} needs the exposure phase; the session is in {snap.phase.value}")


def _safe_place(body: Reason, snap: Snapshot, source: str) -> cmd.Command:
    _not_ended(snap)
    return cmd.GoToSafePlace(source=source, reason=body.reason or "the therapist pressed STOP")


def _pause(body: Empty, snap: Snapshot, source: str) -> cmd.Command:
    _in_exposure(snap, "pausing")
    return cmd.GoToSafePlace(source=source, reason="paused by the therapist")


def _resume(body: Confirmed, snap: Snapshot, source: str) -> cmd.Command:
    _not_ended(snap)
    if snap.phase is not Phase.SAFE_PLACE:
        raise ControlError(f"resuming needs the safe place (paused); the session is in {snap.phase.value}")
    if not body.confirm:
        raise ControlError("resuming raises exposure: send confirm=true after the therapist confirmed", 428)
    return cmd.ResumeExposure(source=source)


def check_level(body: LevelBody, snap: Snapshot) -> None:
    """The level rules (also used by the page's preview): in range, confirmed when higher, one step at a time."""
    _in_exposure(snap, "changing the level")
    levels = session_levels(snap.identity)
    if body.level not in levels:
        raise ControlError(f"level {body.level} is not one of this session's levels ({_ranges(levels)})", 422)
    current = snap.level if snap.level is not None else levels[0]
    here = levels.index(current) if current in levels else 0
    there = levels.index(body.level)
    if there > here:
        if not body.confirm:
            raise ControlError(f"raising exposure to level {body.level} needs confirm=true after the therapist "
                               "confirmed", 428)
        if there - here > 1 and not body.jump:
            raise ControlError(f"level {body.level} is {there - here} steps above the present level {current}: "
                               "a jump of several steps needs jump=true (the page's 'jump to level')", 428)


def _set_level(body: LevelBody, snap: Snapshot, source: str) -> cmd.Command:
    check_level(body, snap)
    return cmd.SetLevel(source=source, level=body.level, reason="therapist's choice")


def _suds(body: SudsBody, snap: Snapshot, source: str) -> cmd.Command:
    _not_ended(snap)
    return cmd.AnswerSuds(source=source, value=body.value)


def _end(body: Confirmed, snap: Snapshot, source: str) -> cmd.Command:
    _not_ended(snap)
    if not body.confirm:
        raise ControlError("ending the session needs confirm=true after the therapist confirmed", 428)
    return cmd.Stop(source=source, reason="ended by the therapist")


def _accept_step_up(body: Confirmed, snap: Snapshot, source: str) -> cmd.Command:
    _in_exposure(snap, "accepting a step-up")
    if not body.confirm:
        raise ControlError("accepting a step-up raises exposure: send confirm=true after the therapist confirmed",
                           428)
    if hasattr(cmd, "AcceptStepUp"):
        if hasattr(snap, "pending_step_up") and snap.pending_step_up is None:
            raise ControlError("no step-up is waiting for confirmation: the controller has not offered one")
        return cmd.AcceptStepUp(source=source)  # type: ignore[attr-defined]
    rec = snap.last_recommendation
    if rec is None or rec.action != "step_up":
        raise ControlError("no step-up is pending: the controller has not recommended one")
    levels = session_levels(snap.identity)
    current = snap.level if snap.level is not None else levels[0]
    if rec.level not in levels or rec.level <= current:
        raise ControlError(f"the recommended step-up to level {rec.level} is no longer above the present level "
                           f"{current}")
    return cmd.SetLevel(source=source, level=rec.level, reason=f"step-up accepted ({rec.reason})")


def _decline_step_up(body: Reason, snap: Snapshot, source: str) -> cmd.Command:
    _in_exposure(snap, "declining a step-up")
    if not hasattr(cmd, "DeclineStepUp"):
        raise ControlError("this engine cannot record a declined step-up yet (no DeclineStepUp command)", 501)
    return cmd.DeclineStepUp(source=source, **({"reason": body.reason} if body.reason else {}))  # type: ignore[attr-defined]


def _request_suds(body: Empty, snap: Snapshot, source: str) -> cmd.Command:
    _in_exposure(snap, "asking for a SUDS rating")
    if not hasattr(cmd, "RequestSuds"):
        raise ControlError("this engine cannot prompt for SUDS on request yet (no RequestSuds command)", 501)
    return cmd.RequestSuds(source=source)  # type: ignore[attr-defined]


def controls() -> dict[str, Control]:
    """Every control, by the name in its URL (``POST /api/live/{name}``). One line per command."""
    rows = [
        Control("safe_place", "STOP: send the patient to the safe place now (any phase)", Reason, _safe_place),
        Control("pause", "pause exposure (the patient waits in the safe place)", Empty, _pause),
        Control("resume", "resume exposure from the safe place (one level below; confirm)", Confirmed, _resume),
        Control("set_level", "set the exposure level (confirm to raise; jump for several steps)", LevelBody,
                _set_level),
        Control("accept_step_up", "accept the controller's pending step-up (confirm)", Confirmed, _accept_step_up),
        Control("decline_step_up", "decline the controller's pending step-up", Reason, _decline_step_up),
        Control("request_suds", "ask the patient for a SUDS rating now", Empty, _request_suds),
        Control("suds", "enter the patient's SUDS rating (0-100) for them", SudsBody, _suds),
        Control("end", "end the session now (the record closes as stopped; confirm)", Confirmed, _end),
    ]
    return {c.name: c for c in rows}


def available(name: str) -> bool:
    """Whether the engine has what a control needs (the page greys out the rest)."""
    return {"decline_step_up": hasattr(cmd, "DeclineStepUp"),
            "request_suds": hasattr(cmd, "RequestSuds")}.get(name, True)


def _ranges(levels: list[int]) -> str:
    if levels and levels == list(range(levels[0], levels[-1] + 1)):
        return f"{levels[0]}..{levels[-1]}"
    return ", ".join(map(str, levels))
