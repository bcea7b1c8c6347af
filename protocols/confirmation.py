"""Therapist confirmation of step-ups (``[controller] step_up = "confirm"``), as a pure state machine.

Exposure therapists decide when a patient climbs; the engine recommends. With
``confirm`` a ready step up becomes a *pending recommendation* that the
therapist accepts or declines; it expires after ``confirm_expires_s`` and is
offered again while it is still valid; after a decline the same step is not
offered again for ``decline_blocks_s``. Step-downs, target_band moves and holds
pass straight through: safety never waits for anyone.

The runtime puts every controller decision through :meth:`StepUpGate.filter`
each tick, applies the returned decision, publishes ``offered`` / ``withdrawn``
when set, and calls :meth:`accept` / :meth:`decline` from the therapist's
commands (each with who sent it).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.controller import Decision
from protocols.model import ControllerSpec


@dataclass(frozen=True, slots=True)
class PendingStepUp:
    """A step up waiting for the therapist."""

    from_level: int
    to_level: int
    offered_s: float
    expires_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """What the runtime applies now, and what changed about the pending recommendation."""

    decision: Decision
    offered: PendingStepUp | None = None  # newly offered (or re-offered) this tick
    withdrawn: str | None = None  # why a pending recommendation ended without an answer


@dataclass(frozen=True, slots=True)
class Declined:
    """A declined step, kept for the record and to block re-offers."""

    t_s: float
    to_level: int
    who: str
    reason: str | None


class StepUpGate:
    """Holds ready step-ups for the therapist when the protocol says ``step_up = "confirm"``."""

    def __init__(self, spec: ControllerSpec) -> None:
        self._spec = spec
        self.pending: PendingStepUp | None = None
        self._last_decline: Declined | None = None

    @property
    def confirm(self) -> bool:
        return self._spec.step_up == "confirm"

    def filter(self, t_s: float, decision: Decision, level: int) -> GateOutcome:
        """The decision to apply now, given the controller's decision at ``level``."""
        if decision.action != "up":
            withdrawn = None
            if self.pending is not None:
                withdrawn = f"step up to level {self.pending.to_level} no longer recommended: {decision.reason}"
                self.pending = None
            return GateOutcome(decision, withdrawn=withdrawn)
        if not self.confirm:
            return GateOutcome(decision)
        to_level = level + 1
        d = self._last_decline
        if d is not None and d.to_level == to_level and t_s - d.t_s < self._spec.decline_blocks_s:
            wait_s = self._spec.decline_blocks_s - (t_s - d.t_s)
            return GateOutcome(Decision(
                "hold",
                f"{decision.reason}; but {d.who} declined level {to_level} {t_s - d.t_s:.0f} s ago"
                f"{f' ({d.reason})' if d.reason else ''}: not offered again for {wait_s:.0f} s",
                "declined_recently",
            ))
        withdrawn = None
        if self.pending is not None and (self.pending.to_level != to_level or t_s >= self.pending.expires_s):
            withdrawn = (f"recommendation to step up to level {self.pending.to_level} expired after "
                         f"{self._spec.confirm_expires_s:.0f} s without an answer")
            self.pending = None
        if self.pending is None:
            self.pending = PendingStepUp(level, to_level, t_s, t_s + self._spec.confirm_expires_s, decision.reason)
            return GateOutcome(
                Decision("hold", f"{decision.reason}; waiting for the therapist to confirm", "awaiting_confirmation"),
                offered=self.pending,
                withdrawn=withdrawn,
            )
        return GateOutcome(Decision("hold", f"{decision.reason}; waiting for the therapist to confirm",
                                    "awaiting_confirmation"))

    def accept(self, t_s: float, who: str) -> Decision | None:
        """The therapist accepts: the step up to apply now, or None when nothing valid is pending."""
        p = self.pending
        if p is None or t_s >= p.expires_s:
            self.pending = None
            return None
        self.pending = None
        return Decision("up", f"{who} accepted: {p.reason}", "accepted")

    def decline(self, t_s: float, who: str, reason: str | None = None) -> Declined | None:
        """The therapist declines; the same step is not offered again for ``decline_blocks_s``."""
        p = self.pending
        if p is None:
            return None
        self.pending = None
        self._last_decline = Declined(t_s, p.to_level, who, reason)
        return self._last_decline
