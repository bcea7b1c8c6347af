"""What every display shares: the :class:`Display` protocol, frame timing, pacing and the SUDS slider.

Every display owns its GL context (created on the render thread), gives the
renderer a head pose each frame, presents or submits the eye textures, turns
its own input into :class:`PatientInput` records and records frame timing.
This module imports no display library, so the three displays import it and
it never imports them (``environments.displays.open_display`` picks one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from environments.scene_state import InputKind, PatientInput

if TYPE_CHECKING:
    import moderngl

    from environments.renderer import HeadPose

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FrameStats:
    """Timing of the frames a display showed (medians over the recorded window)."""

    frames: int
    cpu_ms_median: float | None
    cpu_ms_p95: float | None
    gpu_ms_median: float | None
    missed_frames: int
    draw_calls_per_eye: int = 0
    instances: int = 0


class FrameTimer:
    """Per-frame CPU time, GPU time (timer queries, read one frame late) and missed frames, in fixed arrays."""

    WINDOW = 4096

    def __init__(self, ctx: moderngl.Context | None = None) -> None:
        self._cpu_ms = np.zeros(self.WINDOW)
        self._gpu_ms = np.zeros(self.WINDOW)
        self._gpu_n = 0
        self.frames = 0
        self.missed_frames = 0
        self._t0 = 0.0
        self._queries = []
        self._q_started = [False, False]
        if ctx is not None:
            try:
                self._queries = [ctx.query(time=True), ctx.query(time=True)]
            except Exception as exc:  # a context without timer queries: CPU time only
                log.info("no GPU timer queries (%s): recording CPU time only", exc)
                self._queries = []

    def begin(self) -> None:
        self._t0 = time.perf_counter()
        if self._queries:
            i = self.frames & 1
            q = self._queries[i]
            if self._q_started[i]:
                self._gpu_ms[self._gpu_n % self.WINDOW] = q.elapsed / 1e6
                self._gpu_n += 1
            q.mglo.begin()
            self._q_started[i] = True

    def end(self) -> None:
        if self._queries:
            self._queries[self.frames & 1].mglo.end()
        self._cpu_ms[self.frames % self.WINDOW] = (time.perf_counter() - self._t0) * 1e3
        self.frames += 1

    def add_missed(self, n: int) -> None:
        self.missed_frames += int(n)

    def stats(self, draw_calls_per_eye: int = 0, instances: int = 0) -> FrameStats:
        n = min(self.frames, self.WINDOW)
        g = min(self._gpu_n, self.WINDOW)
        cpu = self._cpu_ms[:n]
        return FrameStats(
            frames=self.frames,
            cpu_ms_median=float(np.median(cpu)) if n else None,
            cpu_ms_p95=float(np.percentile(cpu, 95)) if n else None,
            gpu_ms_median=float(np.median(self._gpu_ms[:g])) if g else None,
            missed_frames=self.missed_frames,
            draw_calls_per_eye=draw_calls_per_eye,
            instances=instances,
        )


@runtime_checkable
class Display(Protocol):
    """One place frames go. All methods run on the render thread, which owns ``ctx``."""

    kind: str
    ctx: moderngl.Context
    eye_size: tuple[int, int]
    stereo: bool
    msaa: int
    timer: FrameTimer
    suds: SudsSlider

    def begin_frame(self) -> HeadPose | None:
        """Wait for the next frame slot and return the head pose; ``None`` once the display was closed."""
        ...

    def present(self, eye_textures: Sequence[moderngl.Texture]) -> None:
        """Show or submit the eye textures of the frame begun last."""
        ...

    def poll(self, on_input: Callable[[PatientInput], None]) -> None:
        """Deliver the patient's actions since the last call."""
        ...

    def close(self) -> None:
        """Release the window / runtime / context; safe to call twice."""
        ...


class Pacer:
    """Sleeps to hold a maximum frame rate (headless and desktop displays); no drift, no catch-up bursts."""

    def __init__(self, max_fps: float | None) -> None:
        self.period_s = 0.0 if not max_fps else 1.0 / max_fps
        self._next = 0.0

    def wait(self) -> None:
        if not self.period_s:
            return
        now = time.perf_counter()
        if self._next > now:
            time.sleep(self._next - now)
            now = self._next
        self._next = max(self._next + self.period_s, now) if self._next else now + self.period_s


class SudsSlider:
    """The patient's SUDS answer in the making: a 0-100 marker moved by thumbstick, trackpad or keys.

    A patient in a headset cannot type a number: while the prompt is shown the
    world panel draws this marker on its 0-100 scale, the thumbstick (or arrow
    keys) moves it and the trigger (or Enter) confirms it, which emits one
    ``PatientInput(kind=SUDS)``. The marker starts in the middle at each new
    prompt so the previous answer does not anchor the next one.
    """

    START = 50.0
    POINTS_PER_S = 40.0  # full thumbstick deflection: the whole scale in 2.5 s
    DEAD_ZONE = 0.2  # a resting thumbstick drifts a little

    def __init__(self) -> None:
        self.value = self.START
        self.active = False

    def set_active(self, active: bool) -> None:
        """Follow the scene's ``suds_prompt``; a new prompt puts the marker back in the middle."""
        if active and not self.active:
            self.value = self.START
        self.active = bool(active)

    def step(self, points: float) -> None:
        """Move the marker by ``points`` (a key press, a scroll notch), clamped to 0..100."""
        self.value = min(100.0, max(0.0, self.value + float(points)))

    def move(self, deflection: float, dt_s: float) -> None:
        """Move by a thumbstick ``deflection`` (-1..1) held for ``dt_s`` seconds (dead zone ignored)."""
        if abs(deflection) > self.DEAD_ZONE:
            self.step(deflection * self.POINTS_PER_S * min(max(dt_s, 0.0), 0.1))

    def marker(self) -> float | None:
        """Where the panel draws the marker (0..100), or ``None`` while no answer is asked for."""
        return self.value if self.active else None

    def confirm(self, t_s: float, source: str) -> PatientInput:
        """The answer, rounded to a whole point, as the record the runtime turns into a SUDS answer."""
        return PatientInput(t_s=t_s, kind=InputKind.SUDS, value=float(round(self.value)), source=source)
