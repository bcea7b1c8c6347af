"""One copy of the live session for every browser, on the console server's event loop.

The hub's single subscription encodes each event to JSON once and hands it
here (one thread-safe call per event, whatever the number of browsers). The
fan-out keeps the last minutes for late joiners' charts and gives every
WebSocket its own bounded queue, flushed in batches (:data:`BATCH_S`): a
browser that stops reading loses its own oldest items (and is told how many)
while the session and the other browsers carry on. The patient's view is read
once per interval and offered to every browser as its latest image (a slow
browser skips images, it never queues them).

A new browser gets the session's snapshot, then exactly the events after it:
the snapshot says how many events it folds (``events``), every event carries
its number, and the fan-out waits until it has seen up to that number before
sending the history, so nothing is seen twice and nothing is missed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading

from clinician_console.hub import ConsoleHub
from therapy.live import Snapshot

log = logging.getLogger(__name__)

HISTORY_ITEMS = 30000  # ~10 min of beats, HR, exposure samples and the timeline at 1x
QUEUE_ITEMS = 4000  # per browser
BATCH_S = 0.02  # events go out to the browsers at most 50 times a second, batched
VIEW_INTERVAL_S = 0.25  # the patient's view: 4 images a second


class Connection:
    """One browser's queue (on the loop)."""

    def __init__(self, start_seq: int, max_items: int = QUEUE_ITEMS) -> None:
        self.start_seq = start_seq
        self._items: collections.deque[str] = collections.deque()
        self._max = max_items
        self._wake = asyncio.Event()
        self.dropped = 0
        self._dropped_pending = 0
        self.view: bytes | None = None
        self.closed = False

    def put(self, text: str) -> None:
        """Queue an event; the fan-out wakes the sender (:meth:`wake`) once per batch, not per event."""
        if len(self._items) >= self._max:
            self._items.popleft()
            self._lost(1)
        self._items.append(text)

    def wake(self) -> None:
        if self._items:
            self._wake.set()

    def _lost(self, count: int) -> None:
        self.dropped += count
        self._dropped_pending += count
        self._wake.set()

    def offer_view(self, jpeg: bytes) -> None:
        self.view = jpeg
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next_message(self, max_items: int = 500) -> str | bytes | None:
        """The next thing to send: a batch of events (text), the latest view (bytes), or None once closed."""
        while True:
            if self.closed:
                return None
            if self._items or self._dropped_pending:
                parts = []
                if self._dropped_pending:
                    parts.append(f'{{"kind":"Dropped","count":{self._dropped_pending},"total":{self.dropped}}}')
                    self._dropped_pending = 0
                while self._items and len(parts) < max_items:
                    parts.append(self._items.popleft())
                return '{"type":"events","items":[' + ",".join(parts) + "]}"
            if self.view is not None:
                view, self.view = self.view, None
                return view
            self._wake.clear()
            await self._wake.wait()


class Fanout:
    """The server side of the hub: history, browsers and the shared patient view (all on one event loop)."""

    def __init__(self, hub: ConsoleHub, *, history_items: int = HISTORY_ITEMS) -> None:
        self.hub = hub
        self.loop: asyncio.AbstractEventLoop | None = None
        self.session_id: str | None = None
        self.next_seq = 0
        self.recent: collections.deque[tuple[int, str]] = collections.deque(maxlen=history_items)
        self.connections: set[Connection] = set()
        self._advanced: asyncio.Event | None = None
        self._view_task: asyncio.Task | None = None
        # until the server's loop is known (its first browser), events wait here, so the first browser's
        # charts still start at the beginning of the session
        self._early: collections.deque[tuple[str, int, str | None]] = collections.deque(maxlen=history_items)
        self._bind_lock = threading.Lock()
        self._flush_due = False
        hub.add_listener(self._from_hub)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver on ``loop`` (the server's; called from it) from now on, beginning with what came before."""
        with self._bind_lock:
            if self.loop is loop:
                return
            self.loop = loop
            self._advanced = asyncio.Event()
            early, self._early = list(self._early), collections.deque(maxlen=self._early.maxlen)
        for item in early:
            self._push(*item)

    def _from_hub(self, session_id: str, seq: int, text: str | None) -> None:
        """The hub's thread: one hand-over per event, whatever the number of browsers."""
        with self._bind_lock:
            loop = self.loop
            if loop is None:
                self._early.append((session_id, seq, text))
                return
        try:
            loop.call_soon_threadsafe(self._push, session_id, seq, text)
        except RuntimeError:  # the server's loop is gone (console stopped or crashed): the session goes on
            pass

    def _reset(self, session_id: str) -> None:
        self.session_id = session_id
        self.recent.clear()
        self.next_seq = 0
        for conn in list(self.connections):  # browsers of the previous session reconnect to the new one
            conn.close()

    def _push(self, session_id: str, seq: int, text: str | None) -> None:
        if session_id != self.session_id:
            self._reset(session_id)
        if text is None:  # the hub dropped items: its next event is number ``seq``
            lost = max(0, seq - self.next_seq)
            self.next_seq = max(self.next_seq, seq)
            for conn in self.connections:
                conn._lost(lost)
        else:
            self.recent.append((seq, text))
            self.next_seq = seq + 1
            for conn in self.connections:
                if seq >= conn.start_seq:
                    conn.put(text)
            if self.connections and not self._flush_due:
                # One flush per batch for every browser, a moment later: a therapist's control request that
                # caused these events gets its response out first, and each browser gets one message per batch.
                self._flush_due = True
                asyncio.get_running_loop().call_later(BATCH_S, self._flush)
        assert self._advanced is not None
        self._advanced.set()
        self._advanced = asyncio.Event()

    def _flush(self) -> None:
        self._flush_due = False
        for conn in self.connections:
            conn.wake()

    async def open(self, snap: Snapshot, *, wait_s: float = 2.0) -> tuple[Connection, list[str]]:
        """Register a browser that has ``snap``; returns its queue and the history before the snapshot."""
        if snap.session_id != self.session_id:
            self._reset(snap.session_id)
        conn = Connection(snap.events)
        self.connections.add(conn)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while self.next_seq < snap.events and loop.time() < deadline:  # the hub is a moment behind
            assert self._advanced is not None
            try:
                await asyncio.wait_for(self._advanced.wait(), deadline - loop.time())
            except TimeoutError:
                break
        history = [text for seq, text in self.recent if seq < snap.events]
        self._ensure_view_task()
        return conn, history

    def close(self, conn: Connection) -> None:
        conn.close()
        self.connections.discard(conn)

    def _ensure_view_task(self) -> None:
        if self._view_task is None or self._view_task.done():
            self._view_task = asyncio.get_running_loop().create_task(self._share_view())

    async def _share_view(self) -> None:
        """While browsers watch and the session shares its view: one image per interval, for all of them."""
        loop = asyncio.get_running_loop()
        while self.connections:
            if self.hub.live is not None and self.hub.view_available():
                try:
                    jpeg = await loop.run_in_executor(None, self.hub.view_jpeg)
                except Exception as exc:  # the renderer stopped, or is slow: try again next interval
                    log.debug("no patient view: %s", exc)
                    jpeg = None
                if jpeg:
                    for conn in self.connections:
                        conn.offer_view(jpeg)
            await asyncio.sleep(VIEW_INTERVAL_S)
