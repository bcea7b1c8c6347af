"""The fan-out batches events per browser: one wake-up and one WebSocket message per batch, not per event."""

from __future__ import annotations

import asyncio
import json

from clinician_console.fanout import BATCH_S, Connection, Fanout
from clinician_console.hub import ConsoleHub


def test_events_arriving_together_reach_each_browser_as_one_batch_after_the_control_response_had_its_turn():
    async def scenario() -> tuple[bool, list[dict], list[dict]]:
        fanout = Fanout(ConsoleHub())
        fanout.bind(asyncio.get_running_loop())
        fanout.session_id = "S1"
        browsers = [Connection(start_seq=0), Connection(start_seq=0)]
        fanout.connections.update(browsers)
        for seq in range(5):  # what one command causes: a burst of events in the same moment
            fanout._push("S1", seq, json.dumps({"kind": "E", "n": seq}))
        woken_at_once = any(b._wake.is_set() for b in browsers)
        first = json.loads(await asyncio.wait_for(browsers[0].next_message(), 5 * BATCH_S + 1))
        second = json.loads(await asyncio.wait_for(browsers[1].next_message(), 1))
        return woken_at_once, first["items"], second["items"]

    woken_at_once, first, second = asyncio.run(scenario())
    assert not woken_at_once  # nothing is sent in the same loop turn: a pending HTTP response goes first
    assert [e["n"] for e in first] == [0, 1, 2, 3, 4] and first == second  # one message each, nothing lost


def test_a_browser_that_joined_later_gets_only_its_events_in_the_batch():
    async def scenario() -> list[int]:
        fanout = Fanout(ConsoleHub())
        fanout.bind(asyncio.get_running_loop())
        fanout.session_id = "S1"
        late = Connection(start_seq=3)
        fanout.connections.add(late)
        for seq in range(5):
            fanout._push("S1", seq, json.dumps({"kind": "E", "n": seq}))
        msg = json.loads(await asyncio.wait_for(late.next_message(), 5 * BATCH_S + 1))
        return [e["n"] for e in msg["items"]]

    assert asyncio.run(scenario()) == [3, 4]
