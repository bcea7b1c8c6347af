"""Therapist confirmation: a ready step up waits, expires and is re-offered, a decline blocks it for a while."""

from __future__ import annotations

from protocols.confirmation import StepUpGate
from protocols.controller import Decision
from protocols.model import ControllerSpec

UP = Decision("up", "SUDS 70 -> 30 (-57 %, needs -50 %); arousal ...: habituated, ready to step up to level 4", "habituated")
HOLD = Decision("hold", "settling", "settling")
DOWN = Decision("down", "SUDS 95 at level 3: stepping down", "suds_high")


def gate(**kw) -> StepUpGate:
    return StepUpGate(ControllerSpec(step_up="confirm", confirm_expires_s=60.0, decline_blocks_s=120.0, **kw))


def test_ready_step_waits_for_the_therapist_then_applies():
    g = gate()
    out = g.filter(100.0, UP, 3)
    assert out.decision.action == "hold" and out.decision.code == "awaiting_confirmation" and out.offered is not None
    assert out.offered.to_level == 4 and "SUDS 70 -> 30" in out.decision.reason
    out = g.filter(110.0, UP, 3)
    assert out.decision.action == "hold" and out.offered is None  # offered once, not every tick
    accepted = g.accept(115.0, "therapist:anna")
    assert accepted is not None and accepted.action == "up" and accepted.reason.startswith("therapist:anna accepted: SUDS")


def test_expired_recommendation_is_reoffered_while_still_valid():
    g = gate()
    g.filter(100.0, UP, 3)
    out = g.filter(160.0, UP, 3)
    assert out.offered is not None and out.offered.offered_s == 160.0 and "expired after 60 s" in out.withdrawn
    assert g.accept(230.0, "t") is None  # expired again, nothing to accept


def test_declined_step_is_not_offered_again_before_its_time():
    g = gate()
    g.filter(100.0, UP, 3)
    declined = g.decline(105.0, "therapist:anna", "patient wants to stay")
    assert declined is not None and declined.to_level == 4
    for t in (106.0, 200.0, 224.0):
        out = g.filter(t, UP, 3)
        assert out.decision.code == "declined_recently" and out.offered is None
    assert "therapist:anna declined level 4" in out.decision.reason and "(patient wants to stay)" in out.decision.reason
    out = g.filter(226.0, UP, 3)
    assert out.offered is not None


def test_step_downs_never_wait_and_withdraw_a_pending_step():
    g = gate()
    g.filter(100.0, UP, 3)
    out = g.filter(101.0, DOWN, 3)
    assert out.decision is DOWN and "no longer recommended" in out.withdrawn and g.pending is None
    assert g.filter(102.0, HOLD, 3).withdrawn is None


def test_auto_applies_at_once():
    g = StepUpGate(ControllerSpec(step_up="auto"))
    assert g.filter(1.0, UP, 3).decision is UP
