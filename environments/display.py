"""The display seam: where frames go (SteamVR, a desktop window, or nowhere but memory).

Every display owns its GL context (created on the render thread), gives the
renderer a head pose each frame, presents or submits the eye textures, turns
its own input into :class:`PatientInput` records and records frame timing.
``open_display`` picks one by name and turns "cannot open" into a
:class:`DisplayUnavailableError` that says what to start or which display to use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from environments.errors import DisplayUnavailableError
from environments.scene_state import PatientInput

if TYPE_CHECKING:
    import moderngl

    from environments.renderer import HeadPose

log = logging.getLogger(__name__)

DISPLAY_KINDS = ("headless", "desktop", "openvr")
DEFAULT_EYE_SIZE = (640, 720)


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


def open_display(
    kind: str,
    *,
    eye_size: tuple[int, int] = DEFAULT_EYE_SIZE,
    stereo: bool = True,
    msaa: int = 0,
    mirror: bool = False,
    max_fps: float | None = None,
) -> Display:
    """Open a display by name (``headless``, ``desktop`` or ``openvr``) on the calling thread.

    ``eye_size`` is ignored by OpenVR, which renders at the runtime's
    recommended size. ``mirror`` shows the left eye in a desktop window (OpenVR).
    ``max_fps`` caps the frame rate (headless and desktop; the compositor paces OpenVR).
    """
    if kind not in DISPLAY_KINDS:
        raise DisplayUnavailableError(f"unknown display {kind!r}: use one of {', '.join(DISPLAY_KINDS)}")
    if max_fps is not None and not max_fps > 0:
        raise DisplayUnavailableError(f"max_fps must be > 0, got {max_fps!r}: leave it out for no cap")
    w, h = (int(eye_size[0]), int(eye_size[1]))
    if w < 16 or h < 16 or w > 8192 or h > 8192:
        raise DisplayUnavailableError(f"eye size {w}x{h} is out of range: use 16..8192 per side, e.g. --size 640x720")
    if kind == "headless":
        from environments.headless_display import HeadlessDisplay

        return HeadlessDisplay(eye_size=(w, h), stereo=stereo, msaa=msaa, max_fps=max_fps)
    if kind == "desktop":
        from environments.desktop_display import DesktopDisplay

        return DesktopDisplay(eye_size=(w, h), stereo=stereo, msaa=msaa, max_fps=max_fps)
    from environments.openvr_display import OpenVRDisplay

    return OpenVRDisplay(msaa=msaa, mirror=mirror)


def parse_size(text: str) -> tuple[int, int]:
    """``"640x720"`` -> ``(640, 720)``; a clear error otherwise (for ``--size``)."""
    from environments.errors import RenderError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise RenderError(f"size {text!r} is not WIDTHxHEIGHT: use e.g. --size 640x720") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise RenderError(f"size {text!r} is out of range: use 16..8192 per side, e.g. --size 640x720")
    return w, h


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
