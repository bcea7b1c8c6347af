"""The console's attachment to a running session: only through :class:`~therapy.live.LiveSession`.

:class:`ConsoleHub` holds the live session the console shows (one at a time).
It keeps one lossy subscription, on its own thread (so nothing the console
does can delay the session tick), for two jobs:

* linking every audited control action to the session event it caused (the
  command's ``source`` carries the audit id, so the match is exact), with the
  time from sending the command to seeing its event.

* handing every event, encoded to JSON once, to its listeners: the server's
  :class:`~clinician_console.fanout.Fanout` shares that one copy between all
  browsers, so ten watching browsers cost the session one subscription.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from therapy.events import Event, SafetyAlert
from therapy.live import Dropped, LiveSession, SessionIdentity, Snapshot, Subscription

log = logging.getLogger(__name__)

#: Told about every event, once (see :meth:`ConsoleHub.add_listener`).
Listener = Callable[[str, int, "str | None"], None]
#: Gives the next rendered frame of what the patient sees (e.g. ``RenderLoop.request_rgb``): ``eye`` -> future.
FrameSource = Callable[[str], "concurrent.futures.Future[np.ndarray]"]

PENDING_TIMEOUT_S = 30.0


def event_dict(event: Event) -> dict[str, object]:
    """An event as the page gets it: ``{"kind", "t_s", **payload}`` (the session id is implied)."""
    return {"kind": event.kind, "t_s": event.t_s, **_jsonable(event.payload())}


def _jsonable(value):
    """JSON-safe: tuples as lists, NaN/inf as null (browsers' JSON.parse refuses NaN)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


def session_levels(identity: SessionIdentity) -> list[int]:
    """The environment levels this session may show, in climbing order: the patient's hierarchy when there is
    one, else the protocol's range (``0..exposure.max_level``, capped at the environment's top)."""
    if identity.hierarchy:
        return list(identity.hierarchy)
    top = len(identity.levels) - 1
    max_level = top
    text = identity.protocol_toml or ""
    data: dict = {}
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        try:
            data = json.loads(text)
        except ValueError:
            data = {}
    exposure = data.get("exposure") if isinstance(data, dict) else None
    if isinstance(exposure, dict) and isinstance(exposure.get("max_level"), int):
        max_level = min(exposure["max_level"], top)
    return list(range(0, max_level + 1))


def snapshot_dict(snap: Snapshot) -> dict[str, object]:
    """The snapshot as sent to the page, plus the levels this session may show."""
    d = snap.as_dict()
    d["identity"].pop("protocol_toml", None)  # type: ignore[union-attr]
    d["session_levels"] = session_levels(snap.identity)
    return _jsonable(d)


@dataclass
class _Pending:
    tag: str
    sent_perf: float
    on_effect: Callable[[str, Event, float], None]


class ConsoleHub:
    """The live session the console shows, its history, and the audit links of commands sent to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.live: LiveSession | None = None
        self._frame_source: FrameSource | Callable[[], FrameSource | None] | None = None
        self._subscription: Subscription | None = None
        self._listeners: list[Listener] = []
        self._seq = 0
        self._pending: list[_Pending] = []
        self._attached = threading.Condition(self._lock)
        self._view_cache: tuple[float, bytes] | None = None
        self._view_lock = threading.Lock()

    # -- attaching ------------------------------------------------------------------------------

    def attach(self, live: LiveSession, frame_source: FrameSource | Callable[[], FrameSource | None] | None = None) -> None:
        """Show ``live`` (a runner observer calls this before the session's first event)."""
        old = self._subscription
        snap, sub = live.subscribe_with_snapshot(self._on_item, lossless=False, name="console-hub", max_queue=20000)
        with self._lock:
            self.live = live
            self._frame_source = frame_source
            self._subscription = sub
            self._seq = snap.events
            self._pending.clear()
            self._view_cache = None
            self._attached.notify_all()
        if old is not None:
            old.close(timeout_s=0)

    def set_view(self, frame_source: FrameSource | Callable[[], FrameSource | None] | None) -> None:
        """Share (or stop sharing) the patient's view of the attached session, e.g. once its render loop runs."""
        with self._view_lock:
            self._frame_source = frame_source
            self._view_cache = None

    def observer(self, frame_source: FrameSource | Callable[[], FrameSource | None] | None = None
                 ) -> Callable[[LiveSession], None]:
        """A :class:`~therapy.runner.SessionRunner` observer that attaches each session it starts."""

        def attach(live: LiveSession) -> None:
            self.attach(live, frame_source)

        return attach

    def wait_attached(self, timeout_s: float | None = None) -> LiveSession | None:
        with self._attached:
            self._attached.wait_for(lambda: self.live is not None, timeout_s)
            return self.live

    # -- the hub's own subscription (its thread) ------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(session_id, seq, text)`` on the hub's thread for every event (``text`` is its JSON,
        encoded once for every browser) and, with ``text=None``, when items were dropped (``seq`` is then the
        next event's number). A listener must return at once (hand over to its own thread or loop)."""
        with self._lock:
            self._listeners.append(listener)

    def _tell(self, session_id: str, seq: int, text: str | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(session_id, seq, text)
            except Exception:
                log.exception("console listener %r failed", listener)

    def _on_item(self, item: object) -> None:
        live = self.live
        sid = live.session_id if live is not None else ""
        if isinstance(item, Dropped):
            with self._lock:
                self._seq += item.count
                seq = self._seq
            self._tell(sid, seq, None)
            return
        if not isinstance(item, Event):
            return
        d = event_dict(item)
        text = json.dumps(d, allow_nan=False)
        now = time.perf_counter()
        with self._lock:
            seq = self._seq
            self._seq += 1
            matched: list[tuple[_Pending, float]] = []
            keep: list[_Pending] = []
            refused = isinstance(item, SafetyAlert) and item.code == "command_refused"
            for p in self._pending:
                hit = any(isinstance(v, str) and p.tag in v for v in d.values())
                if not hit and refused and not matched:
                    hit = True  # a refused command's alert does not name its sender: the oldest pending one
                if hit:
                    matched.append((p, (now - p.sent_perf) * 1000.0))
                elif now - p.sent_perf < PENDING_TIMEOUT_S:
                    keep.append(p)
            self._pending = keep
        self._tell(sid, seq, text)
        for p, latency_ms in matched:
            try:
                p.on_effect(p.tag, item, latency_ms)
            except Exception:
                log.exception("could not record the effect of the command tagged %s", p.tag)

    def expect_effect(self, tag: str, on_effect: Callable[[str, Event, float], None]) -> None:
        """Call ``on_effect(tag, event, latency_ms)`` when an event naming ``tag`` (or refusing the command)
        arrives; register *before* sending the command."""
        with self._lock:
            self._pending.append(_Pending(tag, time.perf_counter(), on_effect))

    # -- the patient's view ---------------------------------------------------------------------

    def view_available(self) -> bool:
        return self._source() is not None

    def _source(self) -> FrameSource | None:
        src = self._frame_source
        if src is None:
            return None
        if getattr(src, "_vrex_factory", False):
            return src()  # type: ignore[call-arg,return-value]
        return src  # type: ignore[return-value]

    def view_jpeg(self, *, max_age_s: float = 0.2, timeout_s: float = 2.0, width: int = 480) -> bytes | None:
        """A JPEG of the patient's view, at most ``max_age_s`` old: one render-thread readback serves every
        browser that asks within that time, so ten observers cost the renderer what one does."""
        with self._view_lock:
            cached = self._view_cache
            if cached is not None and time.monotonic() - cached[0] <= max_age_s:
                return cached[1]
            source = self._source()
            if source is None:
                return None
            rgb = source("left").result(timeout=timeout_s)
            data = encode_jpeg(rgb, width)
            self._view_cache = (time.monotonic(), data)
            return data

    def close(self) -> None:
        with self._lock:
            sub, self._subscription = self._subscription, None
        if sub is not None:
            sub.close(timeout_s=0)


def runner_view(runner: object) -> Callable[[], FrameSource | None]:
    """The patient's view of a :class:`~therapy.runner.SessionRunner`, looked up when asked (its render loop
    exists only once the session renders): ``runner.request_rgb(eye)`` when the runner offers it."""

    def source() -> FrameSource | None:
        return getattr(runner, "request_rgb", None)

    source._vrex_factory = True  # type: ignore[attr-defined]
    return source


def encode_jpeg(rgb: np.ndarray, width: int = 480) -> bytes:
    """Scale to ``width`` pixels wide and encode (off the render thread)."""
    import io

    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if img.width > width:
        img = img.resize((width, max(1, round(img.height * width / img.width))), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()

