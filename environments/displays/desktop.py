"""``desktop``: a pyglet window, mono or side-by-side stereo, for therapists and patients without a headset.

Controls: drag with the mouse to look around, W/A/S/D to walk, Esc pauses
(PatientInput PAUSE), F11 toggles fullscreen, number keys answer the SUDS
prompt (0 = 0, 1..9 = 10..90, ``=`` = 100), or the arrow keys, ``-``/``+`` and
the mouse wheel move the panel's 0-100 marker 5 points and Enter answers with
it; Space asks to stop (STOP), Tab switches mono/stereo.
The only module that imports pyglet.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence

import moderngl
import numpy as np

from environments import shaders
from environments.displays.base import FrameTimer, Pacer, SudsSlider
from environments.errors import DisplayUnavailableError
from environments.renderer import HeadPose, rotation_x, rotation_y, translation
from environments.scene_state import InputKind, PatientInput

log = logging.getLogger(__name__)

WALK_M_PER_S = 1.4
LOOK_RAD_PER_PX = 0.004


def _no_screen_reason() -> str | None:
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        return "no X display (DISPLAY is not set): use --display headless, or run under a desktop session or Xvfb"
    return None


class DesktopDisplay:
    """A resizable pyglet window showing one eye (mono) or both side by side (stereo)."""

    kind = "desktop"

    def __init__(self, *, eye_size: tuple[int, int], stereo: bool = True, msaa: int = 0,
                 max_fps: float | None = None, title: str = "vrex", vsync: bool | None = None) -> None:
        """``vsync`` defaults to on unless ``max_fps`` paces the window; a headset mirror passes ``False``
        so its flip never waits for the desktop monitor's refresh inside the headset's loop."""
        reason = _no_screen_reason()
        self.vsync = (max_fps is None) if vsync is None else bool(vsync)
        if reason:
            raise DisplayUnavailableError(reason)
        try:
            import pyglet

            pyglet.options["debug_gl"] = False  # moderngl owns GL error checks; see REFERENCE.md
            from pyglet.window import key

            config = pyglet.gl.Config(major_version=3, minor_version=3, forward_compatible=True,
                                      double_buffer=True, depth_size=0)
            w, h = eye_size
            scale = min(1.0, 1280 / (2 * w if stereo else w), 800 / h)
            self.window = pyglet.window.Window(
                width=max(64, int((2 * w if stereo else w) * scale)), height=max(64, int(h * scale)),
                caption=title, resizable=True, config=config, vsync=self.vsync,
            )
        except DisplayUnavailableError:
            raise
        except Exception as exc:
            raise DisplayUnavailableError(
                f"cannot open a desktop window ({exc}): use --display headless, or check the X display and GL drivers"
            ) from exc
        self._key = key
        self._keys = key.KeyStateHandler()
        self.window.push_handlers(self._keys)
        self.window.push_handlers(self)  # on_key_press, on_mouse_drag, on_close, on_resize
        self.ctx = moderngl.create_context(require=330)
        self.eye_size = eye_size
        self.stereo = stereo
        self.msaa = msaa
        self.timer = FrameTimer(self.ctx)
        self.pose = HeadPose.default(eye_size)
        self.mono = not stereo
        self.paused = False
        self._pacer = Pacer(max_fps)
        self._closed = False
        self._pending: list[PatientInput] = []
        self._yaw = 0.0
        self._pitch = 0.0
        self._pos = np.array([0.0, self.pose.tracking_from_head[1, 3], 0.0])
        self.suds = SudsSlider()
        self._last_t = time.perf_counter()
        self._blit = self.ctx.program(vertex_shader=shaders.BLIT_VS, fragment_shader=shaders.BLIT_FS)
        self._blit["u_tex"].value = 0
        self._blit_vao = self.ctx.vertex_array(self._blit, [])
        self._rect = self._blit["u_rect"]
        # The window's own (default) framebuffer, taken once. ``detect_framebuffer()`` without an
        # argument returns whatever is bound, which after rendering is the renderer's last eye FBO:
        # blitting there draws the eye into itself and leaves the window black.
        self._screen = self.ctx.screen if self.ctx.screen is not None else self.ctx.detect_framebuffer(0)
        self._fullscreen = False
        self.keep_window_pixels = False
        self.window_rgb: np.ndarray | None = None

    # ------------------------------------------------------------------ pyglet events
    def _emit(self, kind: InputKind, value: float | None = None) -> None:
        self._pending.append(PatientInput(t_s=time.perf_counter(), kind=kind, value=value, source="desktop"))

    def on_key_press(self, symbol: int, modifiers: int):
        k = self._key
        if symbol == k.ESCAPE:
            self.paused = not self.paused
            self._emit(InputKind.PAUSE, 1.0 if self.paused else 0.0)
        elif symbol == k.F11:
            self._fullscreen = not self._fullscreen
            self.window.set_fullscreen(self._fullscreen)
        elif symbol == k.SPACE:
            self._emit(InputKind.STOP)
        elif symbol == k.TAB:
            self.mono = not self.mono if self.stereo else True
        elif k._0 <= symbol <= k._9:
            self._emit(InputKind.SUDS, float(10 * (symbol - k._0)))
        elif symbol == k.EQUAL and not modifiers & k.MOD_SHIFT:
            self._emit(InputKind.SUDS, 100.0)
        elif symbol in (k.PLUS, k.NUM_ADD, k.RIGHT, k.UP) or (symbol == k.EQUAL and modifiers & k.MOD_SHIFT):
            self._step_suds(5)
        elif symbol in (k.MINUS, k.NUM_SUBTRACT, k.LEFT, k.DOWN):
            self._step_suds(-5)
        elif symbol in (k.ENTER, k.NUM_ENTER, k.RETURN):
            self._pending.append(self.suds.confirm(time.perf_counter(), "desktop"))
        return True  # handled: Esc must not close the window

    def _step_suds(self, points: float) -> None:
        self.suds.step(points)
        self.window.set_caption(f"vrex - SUDS {self.suds.value:.0f} (Enter to answer)")

    def on_mouse_scroll(self, x, y, scroll_x, scroll_y) -> None:
        if scroll_y:
            self._step_suds(5 if scroll_y > 0 else -5)

    def on_mouse_drag(self, x, y, dx, dy, buttons, modifiers) -> None:
        self._yaw -= dx * LOOK_RAD_PER_PX
        self._pitch = min(1.4, max(-1.4, self._pitch + dy * LOOK_RAD_PER_PX))

    def on_close(self):
        self._closed = True
        return True

    def on_resize(self, width: int, height: int):
        return True  # the viewport is set per present from the framebuffer size

    # ------------------------------------------------------------------ display protocol
    def begin_frame(self) -> HeadPose | None:
        self.window.dispatch_events()
        if self._closed:
            return None
        self._pacer.wait()
        now = time.perf_counter()
        dt, self._last_t = min(now - self._last_t, 0.1), now
        k = self._key
        fwd = (self._keys[k.W] - self._keys[k.S]) * WALK_M_PER_S * dt
        side = (self._keys[k.D] - self._keys[k.A]) * WALK_M_PER_S * dt
        if (fwd or side) and not self.paused:
            c, s = math.cos(self._yaw), math.sin(self._yaw)
            self._pos[0] += -s * fwd + c * side
            self._pos[2] += -c * fwd - s * side
        self.pose.tracking_from_head[:] = translation(*self._pos) @ rotation_y(self._yaw) @ rotation_x(self._pitch)
        self.timer.begin()
        return self.pose

    def present(self, eye_textures: Sequence[moderngl.Texture]) -> None:
        fb_w, fb_h = self.window.get_framebuffer_size()
        screen = self._screen
        screen.use()
        self.ctx.viewport = (0, 0, fb_w, fb_h)
        self.ctx.enable_only(moderngl.NOTHING)
        screen.clear(0.0, 0.0, 0.0, 1.0)
        eyes = eye_textures[:1] if self.mono or len(eye_textures) == 1 else eye_textures[:2]
        ew, eh = self.eye_size
        slot_w = 2.0 / len(eyes)
        # Letterbox each eye into its half (or the whole window) keeping the eye's aspect ratio.
        aspect_slot = (fb_w / len(eyes)) / max(fb_h, 1)
        aspect_eye = ew / eh
        sx = min(1.0, aspect_eye / aspect_slot)
        sy = min(1.0, aspect_slot / aspect_eye)
        for i, tex in enumerate(eyes):
            cx = -1.0 + slot_w * (i + 0.5)
            self._rect.value = (cx - slot_w / 2 * sx, -sy, cx + slot_w / 2 * sx, sy)
            tex.use(location=0)
            self._blit_vao.render(moderngl.TRIANGLE_FAN, vertices=4)
        self.timer.end()
        if self.keep_window_pixels:  # read before the flip (REFERENCE.md: Xvfb), for tests and screenshots
            data = screen.read(viewport=(0, 0, fb_w, fb_h), components=3)
            self.window_rgb = np.frombuffer(data, np.uint8).reshape(fb_h, fb_w, 3)[::-1].copy()
            # moderngl selects GL_COLOR_ATTACHMENT0 as read buffer, which the default framebuffer
            # rejects (GL_INVALID_OPERATION; the read itself uses GL_BACK and is right). Drain that
            # error here, or pyglet's next GL call raises it (REFERENCE.md).
            err = self.ctx.error
            if err not in ("GL_NO_ERROR", "GL_INVALID_OPERATION"):
                log.warning("GL error after reading the window's pixels: %s", err)
        self.window.flip()

    def poll(self, on_input: Callable[[PatientInput], None]) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            for event in pending:
                on_input(event)

    def close(self) -> None:
        if getattr(self, "_closed_for_good", False):
            return
        self._closed_for_good = True
        self._closed = True
        try:
            self._blit_vao.release()
            self._blit.release()
        finally:
            self.window.close()
