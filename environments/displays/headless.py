"""``headless``: an offscreen EGL context; frames stay in GPU memory until someone captures them.

Used by tests, CI, screenshots, the benchmark and the console's patient-view
stream. The head stays at a standing patient's eye height; the scene suggests
where to look.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import moderngl

from environments.displays.base import FrameTimer, Pacer, SudsSlider
from environments.errors import DisplayUnavailableError
from environments.renderer import HeadPose
from environments.scene_state import PatientInput

log = logging.getLogger(__name__)


def create_egl_context() -> moderngl.Context:
    """A GL 3.3+ core context without any window system, or a clear error naming the missing piece."""
    try:
        return moderngl.create_standalone_context(backend="egl", require=330)
    except Exception as exc:
        raise DisplayUnavailableError(
            f"cannot create an offscreen EGL OpenGL 3.3 context ({exc}): install Mesa's EGL and GL drivers "
            "(Debian/Ubuntu: apt-get install libegl1 libgl1-mesa-dri) or use --display desktop on a machine with a screen"
        ) from exc


class HeadlessDisplay:
    """Renders into textures only; ``max_fps`` keeps a CPU-only machine from spinning."""

    kind = "headless"

    def __init__(self, *, eye_size: tuple[int, int], stereo: bool = True, msaa: int = 0,
                 max_fps: float | None = None, ctx: moderngl.Context | None = None) -> None:
        self.ctx = ctx or create_egl_context()
        self._own_ctx = ctx is None
        self.eye_size = eye_size
        self.stereo = stereo
        self.msaa = msaa
        self.timer = FrameTimer(self.ctx)
        self.pose = HeadPose.default(eye_size)
        self.suds = SudsSlider()  # no input here, but the panel shows where the marker starts
        self._pacer = Pacer(max_fps)
        self._closed = False

    def begin_frame(self) -> HeadPose | None:
        if self._closed:
            return None
        self._pacer.wait()
        self.timer.begin()
        return self.pose

    def present(self, eye_textures: Sequence[moderngl.Texture]) -> None:
        self.timer.end()

    def poll(self, on_input: Callable[[PatientInput], None]) -> None:
        """A headless display has no patient input of its own."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._own_ctx:
            self.ctx.release()
