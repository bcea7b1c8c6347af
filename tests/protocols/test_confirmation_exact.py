"""The therapist-confirmation gate exactly: what is offered, withdrawn, blocked and accepted, at each boundary."""

from __future__ import annotations

from protocols.confirmation import Declined, GateOutcome, PendingStepUp, StepUpGate
from protocols.controller import Decision
from protocols.model import ControllerSpec

UP = Decision("up", "calm for 20 s: habituated, ready to step up to level 4", "habituated")
UP5 = Decision("up", "calm for 20 s: habituated, ready to step up to level 5", "habituated")
HOLD = Decision("hold", "settling", "settling")
WAITING = Decision("hold", "calm for 20 s: habituated, ready to step up to level 4; waiting for the therapist to confirm",
                   "awaiting_confirmation")


def gate(**kw) -> StepUpGate:
    return StepUpGate(ControllerSpec(step_up="confirm", confirm_expires_s=60.0, decline_blocks_s=120.0, **kw))


def test_an_offer_exactly():
    g = gate()
    assert g.confirm is True and g.pending is None
    out = g.filter(100.0, UP, 3)
    pending = PendingStepUp(3, 4, 100.0, 160.0, UP.reason)
    assert out == GateOutcome(WAITING, offered=pending, withdrawn=None) and g.pending == pending
    assert g.filter(159.0, UP, 3) == GateOutcome(WAITING)  # still pending: not offered again, nothing withdrawn


def test_holds_pass_through_and_withdraw_nothing_when_nothing_is_pending():
    g = gate()
    assert g.filter(1.0, HOLD, 3) == GateOutcome(HOLD, offered=None, withdrawn=None)


def test_a_pending_step_is_withdrawn_with_the_controllers_reason():
    g = gate()
    g.filter(100.0, UP, 3)
    out = g.filter(101.0, HOLD, 3)
    assert out == GateOutcome(HOLD, withdrawn="step up to level 4 no longer recommended: settling")
    assert g.pending is None


def test_an_offer_expires_at_its_time_and_is_offered_again():
    g = gate()
    g.filter(100.0, UP, 3)
    out = g.filter(160.0, UP, 3)
    assert out == GateOutcome(WAITING, offered=PendingStepUp(3, 4, 160.0, 220.0, UP.reason),
                              withdrawn="recommendation to step up to level 4 expired after 60 s without an answer")


def test_an_offer_for_another_step_replaces_the_pending_one():
    g = gate()
    g.filter(100.0, UP, 3)
    out = g.filter(101.0, UP5, 4)
    assert out.offered == PendingStepUp(4, 5, 101.0, 161.0, UP5.reason)
    assert out.withdrawn == "recommendation to step up to level 4 expired after 60 s without an answer"


def test_accept_before_expiry_only_and_once():
    g = gate()
    g.filter(100.0, UP, 3)
    assert g.accept(159.9, "therapist:anna") == Decision("up", f"therapist:anna accepted: {UP.reason}", "accepted")
    assert g.pending is None and g.accept(159.9, "therapist:anna") is None
    assert g.filter(161.0, UP, 3).offered is not None  # a later ready tick offers it afresh
    g = gate()
    g.filter(100.0, UP, 3)
    assert g.accept(160.0, "therapist:anna") is None  # at its expiry time: too late
    assert g.pending is None
    assert g.filter(161.0, UP, 3).offered == PendingStepUp(3, 4, 161.0, 221.0, UP.reason)


def test_accept_with_nothing_pending():
    g = gate()
    assert g.accept(1.0, "t") is None and g.pending is None
    assert g.filter(2.0, UP, 3).offered is not None


def test_a_decline_blocks_that_step_for_its_time_and_says_who_and_why():
    g = gate()
    g.filter(100.0, UP, 3)
    assert g.decline(105.0, "therapist:anna", "patient wants to stay") == Declined(
        105.0, 4, "therapist:anna", "patient wants to stay")
    assert g.pending is None
    assert g.filter(135.0, UP, 3) == GateOutcome(Decision(
        "hold", f"{UP.reason}; but therapist:anna declined level 4 30 s ago (patient wants to stay): "
        "not offered again for 90 s", "declined_recently"))
    assert g.filter(224.9, UP, 3).decision.code == "declined_recently"
    assert g.filter(225.0, UP, 3).offered == PendingStepUp(3, 4, 225.0, 285.0, UP.reason)


def test_a_decline_without_a_reason_and_another_step_is_not_blocked():
    g = gate()
    g.filter(100.0, UP, 3)
    g.decline(100.0, "therapist:bo")
    assert g.filter(110.0, UP, 3).decision.reason == (
        f"{UP.reason}; but therapist:bo declined level 4 10 s ago: not offered again for 110 s")
    assert g.filter(111.0, UP5, 4).offered == PendingStepUp(4, 5, 111.0, 171.0, UP5.reason)


def test_decline_with_nothing_pending_changes_nothing():
    g = gate()
    assert g.decline(1.0, "t", "x") is None
    assert g.filter(2.0, UP, 3).offered is not None


def test_auto_passes_step_ups_through():
    g = StepUpGate(ControllerSpec(step_up="auto"))
    assert g.confirm is False
    assert g.filter(1.0, UP, 3) == GateOutcome(UP) and g.pending is None
