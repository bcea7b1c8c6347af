"""The clock seam: every part of a session reads time from one injected clock.

* :class:`LslClock` is ``pylsl.local_clock()`` (monotonic seconds): real sessions.
* :class:`ScaledClock` runs N times faster than the wall: ``--speed`` demos.
* :class:`VirtualClock` jumps straight to the next wake-up: tests run whole
  sessions in milliseconds without sleeping and give the same result each time.
* :class:`PacedClock` is a virtual clock held back to N x the wall: simulated
  sessions (``demo``, ``run --sensor sim``) run in real or accelerated time, and
  a busy CPU only slows them down; it never changes what they decide, because
  session time never moves on while a participant still has work due.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """Seconds on the session timeline and a way to wait for them."""

    def now(self) -> float: ...

    async def sleep_until(self, t_s: float) -> None: ...

    async def sleep(self, dt_s: float) -> None: ...

    @property
    def speed(self) -> float:
        """Session seconds per wall second (``inf`` for a virtual clock)."""
        ...


class ScaledClock:
    """Wall-paced time running ``speed`` times faster; ``speed == 1`` is the LSL clock itself."""

    def __init__(self, speed: float = 1.0, *, time_fn=None) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be > 0, got {speed!r}")
        self._speed = float(speed)
        self._time_fn = time_fn or _lsl_time_fn()
        self._origin_s = self._time_fn()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return self._origin_s + (self._time_fn() - self._origin_s) * self._speed

    async def sleep_until(self, t_s: float) -> None:
        while True:
            remaining = t_s - self.now()
            if remaining <= 0:
                # Always yield, even when late: a loop that is behind must let the tasks it starved (the
                # sensor's) run before it goes on, instead of bursting through its backlog.
                await asyncio.sleep(0)
                return
            await asyncio.sleep(remaining / self._speed)

    async def sleep(self, dt_s: float) -> None:
        await self.sleep_until(self.now() + dt_s)


def _lsl_time_fn():
    try:
        from biofeedback.lsl import local_clock
    except Exception:
        return time.monotonic
    return local_clock


class LslClock(ScaledClock):
    """Real time on the LSL clock, shared with every LSL stream vrex pushes."""

    def __init__(self) -> None:
        super().__init__(1.0)


class VirtualClock:
    """Discrete-event time for tests and offline runs.

    Sleepers park on a heap; :meth:`run` (a task on the same loop) lets every
    other task run until they are all parked, then jumps to the earliest wake
    time. Code under test is unchanged: it only ever calls ``sleep_until``.
    """

    #: How many zero-sleeps the driver yields before it decides everyone is parked.
    settle_yields = 8

    def __init__(self, start_s: float = 0.0) -> None:
        self._now = float(start_s)
        self._start_s = float(start_s)
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    @property
    def speed(self) -> float:
        return float("inf")

    def now(self) -> float:
        return self._now

    async def sleep_until(self, t_s: float) -> None:
        if t_s <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (float(t_s), next(self._seq), fut))
        self._pushed()
        await fut

    async def sleep(self, dt_s: float) -> None:
        await self.sleep_until(self._now + dt_s)

    async def run(self) -> None:
        """Drive time forward forever (cancel the task to stop)."""
        while True:
            for _ in range(self.settle_yields):
                await asyncio.sleep(0)
            while self._heap and self._heap[0][2].cancelled():
                heapq.heappop(self._heap)
            if not self._heap:
                await asyncio.sleep(0.001)  # nothing parked: something waits on I/O or a thread
                continue
            if not await self._due(self._heap[0][0]):
                continue  # look again: an earlier sleeper may have arrived meanwhile
            t_s, _, fut = heapq.heappop(self._heap)
            self._now = max(self._now, t_s)
            if not fut.cancelled():
                fut.set_result(None)

    def _pushed(self) -> None:
        """Hook: a sleeper was added."""

    async def _due(self, t_s: float) -> bool:
        """Hook: may time jump to ``t_s`` now? A plain virtual clock never waits."""
        return True


class PacedClock(VirtualClock):
    """A :class:`VirtualClock` whose time runs at most ``speed`` times faster than the wall.

    Every participant of the session waits on this clock, so time only moves on once all of them are parked
    (the sensor has delivered every record due, the tick has run): a stalled interpreter (a render frame
    holding the GIL, another busy thread) delays the whole session instead of starving one part of it.
    :attr:`lag_s` says how far (session seconds) the session is behind where the wall says it should be.
    """

    def __init__(self, speed: float = 1.0, *, time_fn=None) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be > 0, got {speed!r}")
        self._time_fn = time_fn or _lsl_time_fn()
        self._wall0 = self._time_fn()
        super().__init__(start_s=self._wall0)
        self._speed = float(speed)
        self._changed: asyncio.Event | None = None
        self.lag_s = 0.0
        self.max_lag_s = 0.0

    @property
    def speed(self) -> float:
        return self._speed

    def _pushed(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _due(self, t_s: float) -> bool:
        wait_wall = self._wall0 + (t_s - self._start_s) / self._speed - self._time_fn()
        if wait_wall <= 0:
            self.lag_s = -wait_wall * self._speed
            self.max_lag_s = max(self.max_lag_s, self.lag_s)
            return True
        self.lag_s = 0.0
        if self._changed is None:
            self._changed = asyncio.Event()
        self._changed.clear()
        try:  # wake early when a new sleeper arrives (e.g. after a command from another thread)
            await asyncio.wait_for(self._changed.wait(), timeout=wait_wall)
        except TimeoutError:
            pass
        return False
