"""The live-session seam: the only object outside code needs for a running session.

A :class:`LiveSession` offers three things (DESIGN.md, "One session, as data"):

* ``commands``: the thread-safe :class:`~therapy.commands.CommandQueue`; the
  runtime alone applies what arrives there.
* :meth:`LiveSession.subscribe`: every subscriber gets its own queue and its own
  thread, so a slow or failing one (a browser that stops reading, a disk that
  stalls) never delays the session tick. A *lossy* subscriber (console,
  progress view) has a bounded queue: on overflow the oldest items go and a
  :class:`Dropped` notice with the count is delivered before the next item. A
  *lossless* one (the store, the XDF writer) never loses an item; its backlog is
  measured (:class:`SubscriptionStats`). Subscribers that ask for ``raw=True``
  also get every sensor record as a :class:`RawRecord`, in order.
* :meth:`LiveSession.snapshot`: everything a late joiner needs to draw the
  present at once. The snapshot is the fold of every event published so far,
  so :meth:`subscribe` with ``snapshot=True`` returns a snapshot and a
  subscription that begin at the very same event: nothing is seen twice and
  nothing is missed.

Only the runtime calls :meth:`LiveSession.publish` and
:meth:`LiveSession.publish_raw`; everyone else reads.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from biofeedback.records import SensorRecord
from environments.scene_state import SceneState, SceneStateBox
from therapy.commands import CommandQueue
from therapy.events import (
    BaselineMeasured,
    EndStatus,
    Event,
    HeartSampled,
    LevelChanged,
    LoopLagged,
    Phase,
    PhaseChanged,
    Recommendation,
    SafetyAlert,
    SensorEvent,
    SessionEnded,
    StepUpOffered,
    StepUpResolved,
    SudsMissed,
    SudsPrompted,
    SudsRecorded,
)

log = logging.getLogger(__name__)

#: A subscriber: called with each :class:`~therapy.events.Event`, :class:`RawRecord` (``raw=True`` only) or
#: :class:`Dropped` (lossy only), on the subscription's own thread. It may also have ``flush()`` (called
#: whenever its queue has just run empty: a natural moment to commit a batch) and ``close()`` (called once,
#: on its thread, after the last item).
Sink = Callable[[object], None]

#: How many recent alerts a snapshot keeps.
RECENT_ALERTS = 20


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A sensor record as the runtime received it: ``record.t_s`` is the sensor's time mapped to the
    session clock (for an ECG chunk, the time of its last sample), ``received_s`` the session-clock time the
    runtime took it from the sensor, ``seq`` its position in the session's raw stream."""

    session_id: str
    seq: int
    received_s: float
    record: SensorRecord


@dataclass(frozen=True, slots=True)
class Dropped:
    """Delivered to a lossy subscriber before the next item after its queue overflowed."""

    count: int  # items dropped since the last notice
    total: int  # items dropped since the subscription started


@dataclass(frozen=True, slots=True)
class LevelInfo:
    index: int
    title: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class SessionIdentity:
    """What is fixed for the whole session (the static part of a snapshot)."""

    session_id: str
    patient: str
    protocol_name: str
    protocol_toml: str
    environment: str
    environment_title: str
    safe_environment: str
    levels: tuple[LevelInfo, ...]
    hierarchy: tuple[int, ...]  # the environment levels of this session's steps, in order
    total_s: float
    baseline_s: float
    recovery_s: float
    t0_s: float
    sensor: str
    controller: str
    without_physiology: bool = False  # a manual protocol that runs without heart data


@dataclass(frozen=True, slots=True)
class Shown:
    """What the patient sees now (from the scene state the renderer reads)."""

    environment: str
    level: int
    intensity: float
    fade: float
    safe_place: bool
    panel_text: str | None
    suds_prompt: bool
    breath_phase: float | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The present state of a session: what a late joiner draws first, before the next events."""

    identity: SessionIdentity
    events: int  # how many events the snapshot folds (the next event a subscriber sees is number ``events``)
    now_s: float
    phase: Phase
    level: int | None
    step: int | None
    shown: Shown | None
    baseline: BaselineMeasured | None
    heart: HeartSampled | None
    pending_suds: SudsPrompted | None
    last_suds: SudsRecorded | None
    alerts: tuple[SafetyAlert, ...]
    link_state: str
    link_detail: str
    last_recommendation: Recommendation | None
    pending_step_up: StepUpOffered | None
    status: EndStatus | None
    end_reason: str
    lag_s: float

    @property
    def session_id(self) -> str:
        return self.identity.session_id

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (enums by value, events as ``{"kind", "t_s", **payload}``)."""

        def conv(value: object) -> object:
            if isinstance(value, Event):
                return {"kind": value.kind, "t_s": value.t_s, **value.payload()}
            if isinstance(value, Phase | EndStatus):
                return value.value
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                return {f.name: conv(getattr(value, f.name)) for f in dataclasses.fields(value)}
            if isinstance(value, tuple | list):
                return [conv(v) for v in value]
            return value

        out = {f.name: conv(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["session_id"] = self.session_id
        return out


@dataclass(frozen=True, slots=True)
class SubscriptionStats:
    name: str
    lossless: bool
    raw: bool
    delivered: int
    dropped: int
    failures: int
    backlog: int
    max_backlog: int


class _Fold:
    """The snapshot's mutable side, changed only under the session's publish lock."""

    def __init__(self, identity: SessionIdentity) -> None:
        self.identity = identity
        self.events = 0
        self.now_s = identity.t0_s
        self.phase = Phase.STARTING
        self.level: int | None = None
        self.step: int | None = None
        self.baseline: BaselineMeasured | None = None
        self.heart: HeartSampled | None = None
        self.pending_suds: SudsPrompted | None = None
        self.last_suds: SudsRecorded | None = None
        self.alerts: collections.deque[SafetyAlert] = collections.deque(maxlen=RECENT_ALERTS)
        self.link_state = "unknown"
        self.link_detail = ""
        self.last_recommendation: Recommendation | None = None
        self.pending_step_up: StepUpOffered | None = None
        self.status: EndStatus | None = None
        self.end_reason = ""
        self.lag_s = 0.0

    def apply(self, event: Event) -> None:
        self.events += 1
        self.now_s = max(self.now_s, event.t_s)
        match event:
            case PhaseChanged():
                self.phase = event.phase
                self.pending_step_up = None
            case LevelChanged():
                self.level, self.step = event.level, event.step
                self.pending_step_up = None
            case StepUpOffered():
                self.pending_step_up = event
            case StepUpResolved():
                self.pending_step_up = None
            case BaselineMeasured():
                self.baseline = event
            case HeartSampled():
                self.heart = event
            case SudsPrompted():
                self.pending_suds = event
            case SudsRecorded():
                self.last_suds = event
                self.pending_suds = None
            case SudsMissed():
                self.pending_suds = None
            case SafetyAlert():
                self.alerts.append(event)
            case SensorEvent():
                if event.state != "payload_error":
                    self.link_state, self.link_detail = event.state, event.detail
            case Recommendation():
                self.last_recommendation = event
            case LoopLagged():
                self.lag_s = event.lag_s
            case SessionEnded():
                self.status, self.end_reason = event.status, event.reason

    def snapshot(self, scene: SceneState | None) -> Snapshot:
        shown = None
        if scene is not None:
            shown = Shown(scene.environment, scene.level, scene.intensity, scene.fade, scene.safe_place,
                          scene.panel_text, scene.suds_prompt, scene.breath_phase)
        return Snapshot(
            identity=self.identity, events=self.events, now_s=self.now_s, phase=self.phase, level=self.level,
            step=self.step, shown=shown, baseline=self.baseline, heart=self.heart, pending_suds=self.pending_suds,
            last_suds=self.last_suds, alerts=tuple(self.alerts), link_state=self.link_state,
            link_detail=self.link_detail, last_recommendation=self.last_recommendation,
            pending_step_up=self.pending_step_up, status=self.status,
            end_reason=self.end_reason, lag_s=self.lag_s,
        )


_CLOSE = object()


class Subscription:
    """One subscriber's queue and thread. :meth:`close` ends it (a lossless one drains first)."""

    def __init__(self, session: LiveSession, sink: Sink, *, lossless: bool, raw: bool, name: str,
                 max_queue: int) -> None:
        self._session = session
        self._sink = sink
        self.lossless = lossless
        self.raw = raw
        self.name = name
        self._max_queue = max_queue
        self._items: collections.deque[object] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._dropped_pending = 0
        self.dropped = 0
        self.delivered = 0
        self.failures = 0
        self.max_backlog = 0
        self._thread = threading.Thread(target=self._main, name=f"vrex-sub-{name}", daemon=True)

    # -- the publishing side (the runtime's thread, under the session lock) --------------------

    def _offer(self, item: object) -> None:
        with self._cond:
            if self._closing:
                return
            if not self.lossless and len(self._items) >= self._max_queue:
                self._items.popleft()
                self._dropped_pending += 1
                self.dropped += 1
            self._items.append(item)
            self.max_backlog = max(self.max_backlog, len(self._items))
            self._cond.notify()

    # -- the subscriber's thread ----------------------------------------------------------------

    def _main(self) -> None:
        flush = getattr(self._sink, "flush", None)
        try:
            while True:
                with self._cond:
                    while not self._items and not self._closing:
                        self._cond.wait()
                    if not self._items and self._closing:
                        break
                    item = self._items.popleft()
                    dropped, self._dropped_pending = self._dropped_pending, 0
                    empty = not self._items
                if dropped:
                    self._deliver(Dropped(dropped, self.dropped))
                if item is not _CLOSE:
                    self._deliver(item)
                if empty and flush is not None:
                    self._call(flush)
        finally:
            close = getattr(self._sink, "close", None)
            if close is not None:
                self._call(close)

    def _deliver(self, item: object) -> None:
        if self._call(self._sink, item):
            self.delivered += 1

    def _call(self, fn: Callable, *args: object) -> bool:
        try:
            fn(*args)
            return True
        except Exception:  # a broken subscriber is isolated: logged, counted, and the next item still comes
            self.failures += 1
            if self.failures <= 3 or self.failures % 1000 == 0:
                log.exception("live-session subscriber %r failed (%d failures)", self.name, self.failures)
            return False

    # -- public ---------------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        with self._cond:
            return len(self._items)

    def stats(self) -> SubscriptionStats:
        return SubscriptionStats(self.name, self.lossless, self.raw, self.delivered, self.dropped, self.failures,
                                 self.backlog, self.max_backlog)

    def close(self, timeout_s: float | None = 30.0) -> bool:
        """Stop receiving; a lossless subscriber first gets everything already queued. Returns ``True`` when
        the subscriber's thread finished within ``timeout_s``."""
        self._session._remove(self)
        with self._cond:
            if not self._closing:
                if not self.lossless:
                    self._items.clear()
                self._closing = True
                self._cond.notify()
        if threading.current_thread() is self._thread:
            return False
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


class LiveSession:
    """A running session as outside code sees it: ``commands``, :meth:`subscribe`, :meth:`snapshot`."""

    def __init__(self, identity: SessionIdentity, commands: CommandQueue, scene: SceneStateBox | None = None) -> None:
        self.identity = identity
        self.commands = commands
        self._scene = scene
        self._lock = threading.Lock()
        self._fold = _Fold(identity)
        self._subs: list[Subscription] = []
        self._ended: list[Subscription] = []
        self._raw_seq = 0
        self._last_t_s = identity.t0_s
        self._closed = False

    @property
    def session_id(self) -> str:
        return self.identity.session_id

    # -- for everyone ---------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The present state, from any thread."""
        with self._lock:
            return self._fold.snapshot(self._scene.get() if self._scene is not None else None)

    def subscribe(self, sink: Sink, *, lossless: bool = False, raw: bool = False, name: str | None = None,
                  max_queue: int = 2000) -> Subscription:
        """Attach ``sink``; see the module docstring. ``max_queue`` bounds a lossy subscriber's queue."""
        return self._subscribe(sink, lossless=lossless, raw=raw, name=name, max_queue=max_queue)[1]

    def subscribe_with_snapshot(self, sink: Sink, *, lossless: bool = False, raw: bool = False,
                                name: str | None = None, max_queue: int = 2000) -> tuple[Snapshot, Subscription]:
        """Attach ``sink`` and take a snapshot atomically: the first event ``sink`` gets is the first one the
        snapshot does not contain."""
        return self._subscribe(sink, lossless=lossless, raw=raw, name=name, max_queue=max_queue)

    def subscription_stats(self) -> list[SubscriptionStats]:
        with self._lock:
            subs = list(self._subs) + list(self._ended)
        return [s.stats() for s in subs]

    # -- for the runtime ------------------------------------------------------------------------

    def publish(self, event: Event) -> Event:
        """Stamp ``event`` with the session id, fold it into the snapshot and queue it for every subscriber.

        Session events never go back in time: one stamped before the previous event is moved to its time.
        Beats keep their own (measured) time."""
        from therapy.events import BeatRecorded

        if not isinstance(event, BeatRecorded) and event.t_s < self._last_t_s:
            event = dataclasses.replace(event, t_s=self._last_t_s)
        event = dataclasses.replace(event, session_id=self.identity.session_id)
        with self._lock:
            if not isinstance(event, BeatRecorded):
                self._last_t_s = event.t_s
            self._fold.apply(event)
            for sub in self._subs:
                sub._offer(event)
        return event

    def publish_raw(self, record: SensorRecord, received_s: float) -> None:
        """Hand a sensor record, as received, to the subscribers that asked for raw records."""
        with self._lock:
            item = RawRecord(self.identity.session_id, self._raw_seq, received_s, record)
            self._raw_seq += 1
            for sub in self._subs:
                if sub.raw:
                    sub._offer(item)

    def close(self, timeout_s: float = 30.0) -> list[SubscriptionStats]:
        """End every subscription (lossless ones drain first); returns their statistics."""
        with self._lock:
            self._closed = True
            subs = list(self._subs)
        deadline = time.monotonic() + timeout_s
        for sub in subs:
            if not sub.close(max(0.0, deadline - time.monotonic())):
                log.warning("subscriber %r did not finish within %.0f s (backlog %d)", sub.name, timeout_s,
                            sub.backlog)
        return self.subscription_stats()

    # -- internals ------------------------------------------------------------------------------

    def _subscribe(self, sink: Sink, *, lossless: bool, raw: bool, name: str | None,
                   max_queue: int) -> tuple[Snapshot, Subscription]:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        label = name or getattr(sink, "__qualname__", None) or type(sink).__name__
        sub = Subscription(self, sink, lossless=lossless, raw=raw, name=label, max_queue=max_queue)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"session {self.session_id} is closed: nothing more to subscribe to")
            snap = self._fold.snapshot(self._scene.get() if self._scene is not None else None)
            self._subs.append(sub)
        sub._thread.start()
        return snap, sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
                self._ended.append(sub)
