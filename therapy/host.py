"""Runs a session on its own asyncio thread while the calling thread owns the GL context.

DESIGN.md's runtime: the render loop stays on the thread that created the GL
context (the main thread: pyglet and OpenVR want it there); the session runtime,
the sensor and every other coroutine share one asyncio loop on a second thread.
The two meet only through the :class:`SceneStateBox`, the command queue and
thread-safe capture requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from biofeedback.clock import Clock
from therapy.commands import CommandQueue
from therapy.events import EndStatus, Event, Phase, PhaseChanged, LevelChanged
from therapy.session import SessionRuntime

log = logging.getLogger(__name__)

CaptureFn = Callable[[Path], "concurrent.futures.Future[Path]"]


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """A PNG written during the session, with what it shows."""

    label: str
    path: Path
    t_s: float


class FrameCapturePolicy:
    """Asks the renderer for PNG frames at the moments a clinician wants to see afterwards.

    One in the middle of the baseline, one for each level the first time it has
    been shown steadily (after its fade-in and intensity ramp), and one near the
    end of recovery. Captures run on the render thread; this only asks.
    """

    def __init__(self, runtime: SessionRuntime, clock: Clock, capture: CaptureFn, folder: Path, *, settle_s: float):
        self._runtime = runtime
        self._clock = clock
        self._capture = capture
        self._folder = folder
        self._settle_s = settle_s
        self._level_since: tuple[int, float] | None = None
        self._captured_levels: set[int] = set()
        self._pending: list[tuple[str, float, concurrent.futures.Future[Path]]] = []
        self.frames: list[CapturedFrame] = []

    def on_event(self, event: Event) -> None:
        if isinstance(event, LevelChanged):
            self._level_since = (event.level, event.t_s)
        elif isinstance(event, PhaseChanged) and event.phase is not Phase.EXPOSURE:
            self._level_since = None

    def _request(self, label: str, name: str) -> None:
        path = self._folder / name
        try:
            future = self._capture(path)
        except Exception:
            log.exception("could not request frame %s", path)
            return
        self._pending.append((label, self._clock.now(), future))

    async def run(self) -> None:
        rt = self._runtime
        plan = rt.plan
        baseline_done = recovery_done = False
        while True:
            await self._clock.sleep(0.5)
            elapsed = rt.elapsed_s
            if not baseline_done and rt.phase is Phase.BASELINE and elapsed >= plan.baseline_s / 2:
                baseline_done = True
                self._request("baseline (resting, safe place)", "00-baseline.png")
            if self._level_since is not None and rt.phase is Phase.EXPOSURE:
                level, since = self._level_since
                if level not in self._captured_levels and self._clock.now() - since >= self._settle_s:
                    self._captured_levels.add(level)
                    self._request(f"exposure level {level}", f"level-{level:02d}.png")
            if not recovery_done and rt.phase is Phase.RECOVERY and elapsed >= plan.total_s - 5.0:
                recovery_done = True
                self._request("end of recovery (paced breathing)", "99-end.png")
            self._collect()

    def _collect(self) -> None:
        still = []
        for label, t_s, future in self._pending:
            if not future.done():
                still.append((label, t_s, future))
            elif future.exception() is None:
                self.frames.append(CapturedFrame(label, future.result(), t_s))
            else:
                log.warning("frame capture %s failed: %s", label, future.exception())
        self._pending = still

    def finish(self, timeout_s: float = 5.0) -> list[CapturedFrame]:
        """Wait briefly for captures still in flight (called after the render loop has stopped)."""
        for _, _, future in self._pending:
            try:
                future.result(timeout=timeout_s)
            except Exception:
                pass
        self._collect()
        return sorted(self.frames, key=lambda f: f.t_s)


class SessionHost:
    """Owns the session's asyncio thread: start it, wait for it, read how it ended."""

    def __init__(
        self,
        runtime: SessionRuntime,
        commands: CommandQueue,
        *,
        companions: Sequence[Callable[[], Awaitable[None]]] = (),
        clock_driver: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._runtime = runtime
        self._commands = commands
        self._companions = tuple(companions)
        self._clock_driver = clock_driver
        self.done = threading.Event()
        self.status: EndStatus | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="vrex-session", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float | None = None) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _main(self) -> None:
        try:
            self.status = asyncio.run(self._run())
        except BaseException as exc:  # report, never vanish: the caller decides what the record says
            log.exception("the session thread failed")
            self.error = exc
            self.status = EndStatus.FAILED
        finally:
            self.done.set()

    async def _run(self) -> EndStatus:
        self._commands.bind(asyncio.get_running_loop())
        helpers = [asyncio.create_task(_guarded(fn), name=getattr(fn, "__qualname__", "helper")) for fn in self._companions]
        if self._clock_driver is not None:
            helpers.append(asyncio.create_task(self._clock_driver(), name="clock"))
        try:
            return await self._runtime.run()
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)


async def _guarded(fn: Callable[[], Awaitable[None]]) -> None:
    """Run a companion coroutine; its failure is logged and never ends the session."""
    try:
        await fn()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("session companion %r failed", fn)
