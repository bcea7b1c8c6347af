"""The pyglet desktop display under Xvfb: a window opens, renders, takes keys, and closes."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from environments.scene_state import InputKind, SceneState, SceneStateBox
from tests.conftest import require
from tests.environments.xwindow import x_window_rgb

pytestmark = [pytest.mark.xvfb, pytest.mark.gl]


def test_window_renders_takes_keys_and_closes(xvfb_display):
    from pyglet.window import key

    from environments.display import open_display
    from environments.render_loop import RenderLoop

    box = SceneStateBox(SceneState(environment="heights", level=5))
    display = open_display("desktop", eye_size=(96, 108))
    got = []
    try:
        display.keep_window_pixels = True
        loop = RenderLoop(display, box, got.append)
        # Keys arrive through the window's own event dispatch, as from a keyboard.
        display.window.dispatch_event("on_key_press", key._4, 0)
        display.window.dispatch_event("on_key_press", key.SPACE, 0)
        display.window.dispatch_event("on_key_press", key.ESCAPE, 0)
        stats = loop.run(threading.Event(), max_frames=3)
        assert stats.frames == 3
        kinds = [(e.kind, e.value) for e in got]
        assert (InputKind.SUDS, 40.0) in kinds and (InputKind.STOP, None) in kinds
        assert (InputKind.PAUSE, 1.0) in kinds
        assert not display._closed  # Esc pauses, it does not close the window
        rgb = display.window_rgb
        assert rgb is not None and rgb.std() > 15
        h, w, _ = rgb.shape
        assert np.abs(rgb[:, : w // 2].astype(int) - rgb[:, w // 2 :].astype(int)).mean() > 0.5  # two eyes
        display.window.dispatch_event("on_close")
        got.clear()
        loop2 = RenderLoop(display, box, got.append)
        loop2.run(threading.Event())
        assert loop2.frames == 0 and got[-1].kind is InputKind.QUIT
    finally:
        display.close()


def test_window_shows_the_scene_and_leaves_the_eye_textures_alone(xvfb_display, render, tmp_path):
    """The window's own framebuffer gets the eyes, not the renderer's last eye FBO.

    Regression: presenting into ``detect_framebuffer()`` (whatever was bound: the
    right eye's FBO) left the window black and overwrote the right eye's texture.
    """
    from environments.display import open_display
    from environments.render_loop import RenderLoop, write_png

    state = SceneState(environment="heights", level=5)
    size = (96, 108)
    display = open_display("desktop", eye_size=size)
    try:
        display.keep_window_pixels = True
        loop = RenderLoop(display, SceneStateBox(state), lambda e: None)
        capture = loop.request_capture(tmp_path / "eyes.png", "both")  # served in frame 1, after present
        loop.run(threading.Event(), max_frames=1)
        shown = x_window_rgb(display.window)
        write_png(tmp_path / "window.png", shown)  # look at it when this fails
        gl_read = display.window_rgb
    finally:
        display.close()
    from PIL import Image

    eyes = np.asarray(Image.open(capture.result(timeout=30)))
    ref_left, ref_right = render(state, size=size)  # the same state on the offscreen EGL context
    ref = np.concatenate([ref_left, ref_right], axis=1).astype(int)

    def diff(a, b):
        return float(np.abs(np.asarray(a, int) - np.asarray(b, int)).mean())

    left_vs_right = diff(ref_left, ref_right)
    assert left_vs_right > 5  # the eyes differ enough for the checks below to tell them apart
    # Eye captures from the frame the window showed are the scene, both eyes intact.
    eyes_off = diff(eyes, ref)
    assert eyes_off < 1.5, f"eye captures differ from the offscreen render by {eyes_off:.2f} on average"
    # The window is 2x96 by 108 here, one window pixel per eye texel: it shows exactly the eyes.
    assert shown.shape == ref.shape, shown.shape
    assert shown.std() > 15 and shown.mean() > 30, "the window is black or flat"
    off = (diff(shown[:, :96], ref_left), diff(shown[:, 96:], ref_right))
    assert max(off) < 1.5, f"the window's halves differ from the eyes by {off}"
    # The display's own pre-flip read (used for screenshots) reads the window too.
    assert gl_read is not None and diff(gl_read, shown) < 0.5


def test_no_x_display_is_a_clear_error(monkeypatch):
    from environments.display import open_display
    from environments.errors import DisplayUnavailableError

    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(DisplayUnavailableError, match="--display headless"):
        open_display("desktop")
