"""The live-session seam: observers never change a session, lossless ones lose nothing, late joiners see it all.

Sessions run through the real runner on the virtual clock; subscribers run on their own threads, exactly as the
store, the console and the LSL outlets do.
"""

from __future__ import annotations

import threading

import pytest

from therapy.events import (
    BeatRecorded,
    Event,
    ExposureSampled,
    HeartSampled,
    LevelChanged,
    PhaseChanged,
    SessionEnded,
)
from therapy.live import Dropped, LiveSession, RawRecord
from tests.therapy.conftest import EventLog

HANG_GUARD_S = 60.0


def decisions(events: list[Event]) -> list[tuple]:
    """What a session decided and measured, in order: comparable between runs."""
    out = []
    for e in events:
        if isinstance(e, LevelChanged | PhaseChanged | HeartSampled | ExposureSampled | SessionEnded):
            out.append((e.kind, round(e.t_s, 6), tuple(sorted(e.payload().items()))))
    return out


class BlockingSink:
    """A subscriber that stops reading at its first item until released (a browser that stops reading, a stalled
    disk): as slow as a subscriber can be. It also records what it gets."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.items: list[object] = []
        self.flushes = 0
        self.closed = False

    def __call__(self, item: object) -> None:
        if not self.release.wait(HANG_GUARD_S):
            raise AssertionError("never released")
        self.items.append(item)

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True


def test_a_stalled_or_failing_subscriber_changes_nothing_and_a_lossless_one_still_gets_every_event(virtual_session):
    reference = virtual_session(minutes=10, seed=4)

    stalled, stalled_lossy = BlockingSink(), BlockingSink()
    failures = []

    def broken(item: object) -> None:
        failures.append(item)
        raise RuntimeError("a broken observer")

    subs = {}

    def attach(live: LiveSession) -> None:
        subs["stalled"] = live.subscribe(stalled, lossless=True, name="stalled")
        subs["lossy"] = live.subscribe(stalled_lossy, lossless=False, name="lossy", max_queue=10)
        subs["broken"] = live.subscribe(broken, lossless=True, name="broken")

    done = threading.Event()

    def release_after_the_session(live: LiveSession) -> None:
        def wait_and_release() -> None:
            done.wait(HANG_GUARD_S)
            stalled.release.set()
            stalled_lossy.release.set()

        threading.Thread(target=wait_and_release, daemon=True).start()

    async def mark_done(live, clock) -> None:  # a companion: runs until the session ends, then is cancelled
        try:
            while True:
                await clock.sleep(60.0)
        finally:
            done.set()

    s = virtual_session(minutes=10, seed=4, observers=[attach, release_after_the_session], companions=[mark_done])
    assert decisions(s.events) == decisions(reference.events)  # the same ticks, decisions and measurements
    # the stalled lossless subscriber got every event, in order, after being released
    got = [i for i in stalled.items if isinstance(i, Event)]
    assert [(e.kind, e.t_s) for e in got] == [(e.kind, e.t_s) for e in s.events]
    assert stalled.closed and stalled.flushes >= 1
    by_name = {st.name: st for st in s.outcome.subscribers}
    assert by_name["stalled"].max_backlog >= len(s.events) - 2 and by_name["stalled"].dropped == 0
    # the lossy one was told how many it lost, and kept the newest
    notices = [i for i in stalled_lossy.items if isinstance(i, Dropped)]
    assert notices and notices[0].count > 0 and by_name["lossy"].dropped == notices[-1].total
    assert [i for i in stalled_lossy.items if isinstance(i, Event)][-1].kind == "SessionEnded"
    # the broken one was isolated: it was called for every event and the session never noticed
    assert len(failures) == len(s.events) and by_name["broken"].failures == len(s.events)


def test_a_late_subscribers_snapshot_is_exactly_what_the_next_events_build_on(virtual_session):
    late = EventLog()
    taken = {}

    async def join_late(live: LiveSession, clock) -> None:
        await clock.sleep_until(live.identity.t0_s + 400.0)
        taken["snapshot"], taken["sub"] = live.subscribe_with_snapshot(late, lossless=True, name="late")

    s = virtual_session(minutes=12, seed=4, companions=[join_late])
    snap = taken["snapshot"]
    assert snap.session_id == s.session_id and snap.identity.patient == "P01"
    assert snap.identity.protocol_name == "heights-graded" and "[controller]" in snap.identity.protocol_toml
    assert [lv.title for lv in snap.identity.levels][:2] and snap.identity.environment == "heights"
    # nothing seen twice, nothing missed: the late log starts at event number snap.events of the full log
    full = s.events
    assert [(e.kind, e.t_s) for e in late.events] == [(e.kind, e.t_s) for e in full[snap.events:]]
    before = full[:snap.events]
    assert snap.phase is [e for e in before if isinstance(e, PhaseChanged)][-1].phase
    assert snap.level == [e for e in before if isinstance(e, LevelChanged)][-1].level
    assert snap.heart == [e for e in before if isinstance(e, HeartSampled)][-1]
    assert snap.baseline is not None and snap.shown is not None and snap.link_state != ""
    assert snap.as_dict()["identity"]["patient"] == "P01"  # JSON-ready for the console


def test_raw_records_reach_raw_subscribers_in_order_with_the_session_id(virtual_session):
    raw = EventLog()
    s = virtual_session(minutes=8, seed=1, observers=[lambda live: live.subscribe(raw, lossless=True, raw=True)])
    records = [i for i in raw.items if isinstance(i, RawRecord)]
    assert records and [r.seq for r in records] == list(range(len(records)))
    assert {r.session_id for r in records} == {s.session_id}
    # every beat the session recorded came from a notification the tap delivered
    rr_values = [rr for r in records for rr in getattr(r.record, "rr_ms", ())]
    assert len(rr_values) >= len(s.of(BeatRecorded)) * 0.95
    # events and raw records keep their own order, interleaved as published
    assert all(i.session_id == s.session_id for i in raw.items if isinstance(i, Event))


def test_events_never_go_back_in_time_and_carry_the_session_id(virtual_session):
    s = virtual_session(minutes=10, seed=3)
    stamps = [e.t_s for e in s.events if not isinstance(e, BeatRecorded)]
    assert stamps == sorted(stamps)
    assert {e.session_id for e in s.events} == {s.session_id}
    rows = s.query("SELECT t_s FROM events WHERE kind != 'BeatRecorded' ORDER BY seq")
    assert [t for (t,) in rows] == sorted(t for (t,) in rows)


def test_subscribing_to_a_closed_session_is_refused(virtual_session):
    s = virtual_session(minutes=7, seed=0)
    with pytest.raises(RuntimeError, match="closed"):
        s.runner.live.subscribe(EventLog())
