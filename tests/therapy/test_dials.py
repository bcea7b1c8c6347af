"""A therapist's dials through the runtime: range-checked, recorded, shown, reset on a level change unless pinned."""

from __future__ import annotations

from therapy import commands as cmd
from therapy.events import DialChanged, LevelChanged, SafetyAlert


def test_set_dial_is_checked_recorded_shown_and_reset_unless_pinned(virtual_session):
    script = [
        (200.0, cmd.SetDial(source="therapist:alice", name="wind", value=0.9, reason="more wind")),
        (201.0, cmd.SetDial(source="therapist:alice", name="wind", value=7.0, reason="too much")),
        (202.0, cmd.SetDial(source="therapist:alice", name="dragons", value=1.0, reason="no such dial")),
        (203.0, cmd.SetDial(source="therapist:alice", name="wind", value=None, reason="back to the level")),
        (204.0, cmd.SetDial(source="therapist:alice", name="wind", value=0.8, pinned=True, reason="keep it")),
        (205.0, cmd.SetDial(source="therapist:alice", name="railing_m", value=1.2, reason="just now")),
        (210.0, cmd.SetLevel(source="therapist:alice", level=3)),
    ]
    s = virtual_session(minutes=8, seed=1, script=script)
    changes = s.of(DialChanged)
    assert [(c.name, c.value, c.pinned) for c in changes] == [
        ("wind", 0.9, False), ("wind", None, False), ("wind", 0.8, True), ("railing_m", 1.2, False)]
    assert changes[0].source == "therapist:alice" and changes[0].reason == "more wind"
    refused = [a.message for a in s.of(SafetyAlert) if a.code == "command_refused"]
    assert any("= 7.0 is out of range: use 0..1" in m and "valid dials" in m for m in refused)
    assert any("no dial 'dragons'" in m and "valid dials are" in m and "wind" in m for m in refused)
    # the scene carries the overrides; after the level change only the pinned one is left
    t_level = [e.t_s for e in s.of(LevelChanged) if e.cause == "therapist"][0]
    before = [sc for sc in s.scenes if s.t0_s + 205.5 < sc.t_s < t_level]
    after = [sc for sc in s.scenes if sc.t_s > t_level + 1.0 and not sc.safe_place]
    assert before and dict(before[-1].dials) == {"wind": 0.8, "railing_m": 1.2}
    assert after and dict(after[0].dials) == {"wind": 0.8}
    rows = s.query("SELECT count(*) FROM events WHERE kind='DialChanged'")
    assert rows == [(4,)]
