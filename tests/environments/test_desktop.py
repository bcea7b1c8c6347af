"""The pyglet desktop display under Xvfb: a window opens, shows the scene, takes keys, and closes.

Every pyglet window test of the suite lives in this module: pyglet keeps its
first X connection for the process, and each module gets its own Xvfb server.
Window work runs on its own thread (see ``xwindow.on_own_thread``); reference
frames come from the offscreen EGL context on the test thread.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import subprocess
import threading

import numpy as np
import pytest

from environments.scene_state import InputKind, SceneState, SceneStateBox
from tests.conftest import require
from tests.environments.conftest import mean_abs_diff
from tests.environments.xwindow import on_own_thread, x_window_rgb

pytestmark = [pytest.mark.xvfb, pytest.mark.gl]


def test_window_renders_takes_keys_and_closes(xvfb_display):
    from environments.displays import open_display
    from environments.render_loop import RenderLoop

    box = SceneStateBox(SceneState(environment="heights", level=5))
    got = []

    def body():
        from pyglet.window import key

        display = open_display("desktop", eye_size=(96, 108))
        try:
            display.keep_window_pixels = True
            loop = RenderLoop(display, box, got.append)
            # Keys arrive through the window's own event dispatch, as from a keyboard.
            display.window.dispatch_event("on_key_press", key._4, 0)
            display.window.dispatch_event("on_key_press", key.SPACE, 0)
            display.window.dispatch_event("on_key_press", key.ESCAPE, 0)
            stats = loop.run(threading.Event(), max_frames=3)
            kinds = [(e.kind, e.value) for e in got]
            closed_after_esc = display._closed
            rgb = display.window_rgb
            display.window.dispatch_event("on_close")
            got.clear()
            loop2 = RenderLoop(display, box, got.append)
            loop2.run(threading.Event())
            return stats, kinds, closed_after_esc, rgb, loop2.frames
        finally:
            display.close()

    stats, kinds, closed_after_esc, rgb, frames_after_close = on_own_thread(body)
    assert stats.frames == 3
    assert (InputKind.SUDS, 40.0) in kinds and (InputKind.STOP, None) in kinds
    assert (InputKind.PAUSE, 1.0) in kinds
    assert not closed_after_esc  # Esc pauses, it does not close the window
    assert rgb is not None and rgb.std() > 15
    w = rgb.shape[1]
    assert np.abs(rgb[:, : w // 2].astype(int) - rgb[:, w // 2 :].astype(int)).mean() > 0.5  # two eyes
    assert frames_after_close == 0 and got[-1].kind is InputKind.QUIT


def test_window_shows_the_scene_and_leaves_the_eye_textures_alone(xvfb_display, render, tmp_path):
    """The window's own framebuffer gets the eyes, not the renderer's last eye FBO.

    Regression: presenting into ``detect_framebuffer()`` (whatever was bound: the
    right eye's FBO) left the window black and overwrote the right eye's texture.
    The window is read back from the X server, independently of the display's GL state.
    """
    from PIL import Image

    from environments.displays import open_display
    from environments.render_loop import RenderLoop, write_png

    state = SceneState(environment="heights", level=5)
    size = (96, 108)

    def body():
        display = open_display("desktop", eye_size=size)
        try:
            display.keep_window_pixels = True
            loop = RenderLoop(display, SceneStateBox(state), lambda e: None)
            capture = loop.request_capture(tmp_path / "eyes.png", "both")  # served in frame 1, after present
            loop.run(threading.Event(), max_frames=1)
            return capture, x_window_rgb(display.window), display.window_rgb
        finally:
            display.close()

    capture, shown, gl_read = on_own_thread(body)
    write_png(tmp_path / "window.png", shown)  # to look at when this fails
    eyes = np.asarray(Image.open(capture.result(timeout=30)))
    ref_left, ref_right = render(state, size=size)  # the same state on the offscreen EGL context
    ref = np.concatenate([ref_left, ref_right], axis=1)

    assert mean_abs_diff(ref_left, ref_right) > 5  # the eyes differ enough for the checks below to tell them apart
    eyes_off = mean_abs_diff(eyes, ref)
    assert eyes_off < 1.5, f"eye captures differ from the offscreen render by {eyes_off:.2f} on average"
    # The window is 2x96 by 108 here, one window pixel per eye texel: it shows exactly the eyes.
    assert shown.shape == ref.shape, shown.shape
    assert shown.std() > 15 and shown.mean() > 30, "the window is black or flat"
    off = (mean_abs_diff(shown[:, :96], ref_left), mean_abs_diff(shown[:, 96:], ref_right))
    assert max(off) < 1.5, f"the window's halves differ from the eyes by {off}"
    # The display's own pre-flip read (used for screenshots) reads the window too.
    assert gl_read is not None and mean_abs_diff(gl_read, shown) < 0.5


def test_the_headset_mirror_window_has_vsync_off_and_shows_the_left_eye(xvfb_display, render):
    """A vsync'd mirror flip waits for the 60 Hz monitor inside the 90 Hz headset loop: judder.

    The mirror is built by ``open_mirror``, the function ``OpenVRDisplay`` uses
    (SteamVR itself cannot run here), and presented to as ``OpenVRDisplay.present`` does.
    """
    from environments.displays.openvr import open_mirror
    from environments.renderer import Renderer

    state = SceneState(environment="heights", level=5)
    size = (96, 108)

    def body():
        mirror = open_mirror(size)
        try:
            renderer = Renderer(mirror.ctx, size, stereo=True)
            try:
                renderer.set_state(state)
                mirror.begin_frame()
                renderer.render(mirror.pose, 0.0)
                mirror.present(renderer.eye_textures[:1])
                return mirror.vsync, mirror.window.vsync, mirror.stereo, x_window_rgb(mirror.window)
            finally:
                renderer.release()
        finally:
            mirror.close()

    vsync, window_vsync, stereo, shown = on_own_thread(body)
    assert vsync is False and window_vsync is False
    assert stereo is False
    ref_left, _ = render(state, size=size)
    assert shown.shape == ref_left.shape
    assert mean_abs_diff(shown, ref_left) < 1.5


@pytest.mark.parametrize(("kwargs", "want"), [({}, True), ({"max_fps": 30.0}, False), ({"vsync": False}, False)])
def test_a_desktop_window_keeps_vsync_unless_capped_or_told(xvfb_display, kwargs, want):
    from environments.displays.desktop import DesktopDisplay

    def body():
        d = DesktopDisplay(eye_size=(64, 64), **kwargs)
        try:
            return d.vsync, d.window.vsync
        finally:
            d.close()

    assert on_own_thread(body) == (want, want)


def test_no_x_display_is_a_clear_error(monkeypatch):
    from environments.displays import open_display
    from environments.errors import DisplayUnavailableError

    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(DisplayUnavailableError, match="--display headless"):
        open_display("desktop")


def _xdotool(*args: str) -> None:
    subprocess.run(["xdotool", *args], check=True, capture_output=True, timeout=30)


def _run_window_until(box, until, tmp_path, max_frames=900):
    """Open a desktop window on its own thread and run the real render loop until ``until(event)`` is true.

    Returns (window id future, result future): the first resolves once a frame is on screen.
    """
    from environments.displays import open_display
    from environments.render_loop import RenderLoop

    window_id: concurrent.futures.Future[int] = concurrent.futures.Future()
    result: concurrent.futures.Future[list] = concurrent.futures.Future()

    def body():
        got = []
        stop = threading.Event()

        def on_input(event):
            got.append(event)
            if until(event):
                stop.set()

        try:
            display = open_display("desktop", eye_size=(96, 108), max_fps=60)
            try:
                loop = RenderLoop(display, box, on_input)
                shown = loop.request_capture(tmp_path / "first.png")  # resolved after the first frame
                shown.add_done_callback(lambda f: window_id.set_result(int(display.window._window)))
                loop.run(stop, max_frames=max_frames)  # the bound only guards against a hang
            finally:
                display.close()
            result.set_result(got)
        except BaseException as exc:  # noqa: BLE001 - surfaced on the test thread
            if not window_id.done():
                window_id.set_exception(exc)
            result.set_exception(exc)

    threading.Thread(target=body, name="test-window", daemon=True).start()
    return window_id, result


def test_a_real_key_press_reaches_the_render_loop_as_stop(xvfb_display, tmp_path):
    """Space typed on the X server (XTEST, as a keyboard does) arrives at ``on_input`` as the patient's STOP."""
    require(shutil.which("xdotool") is not None, "xdotool is not installed (apt-get install xdotool)")
    box = SceneStateBox(SceneState(environment="heights", level=3))
    window_id, result = _run_window_until(box, lambda e: e.kind is InputKind.STOP, tmp_path)
    wid = str(window_id.result(timeout=60))
    _xdotool("windowfocus", "--sync", wid)
    _xdotool("key", "space")
    got = result.result(timeout=60)
    stops = [e for e in got if e.kind is InputKind.STOP]
    assert len(stops) == 1 and stops[0].source == "desktop"


def test_suds_is_answered_with_arrow_keys_and_enter_on_the_real_window(xvfb_display, tmp_path):
    """While the scene asks for SUDS the arrow keys and the mouse wheel move the panel's marker 5 points a step;
    Enter answers with it."""
    require(shutil.which("xdotool") is not None, "xdotool is not installed (apt-get install xdotool)")
    box = SceneStateBox(SceneState(environment="heights", level=3, suds_prompt=True))
    window_id, result = _run_window_until(box, lambda e: e.kind is InputKind.SUDS, tmp_path)
    wid = str(window_id.result(timeout=60))
    _xdotool("windowfocus", "--sync", wid)
    _xdotool("key", "Right", "Right", "Right", "Left")
    _xdotool("mousemove", "--window", wid, "20", "20", "click", "4")  # the wheel: one notch up
    _xdotool("key", "Return")
    got = result.result(timeout=60)
    assert [(e.kind, e.value) for e in got] == [(InputKind.SUDS, 65.0)]
