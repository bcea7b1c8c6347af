"""The pyglet desktop display under Xvfb: a window opens, renders, takes keys, and closes."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from environments.scene_state import InputKind, SceneState, SceneStateBox
from tests.conftest import require

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


def test_no_x_display_is_a_clear_error(monkeypatch):
    from environments.display import open_display
    from environments.errors import DisplayUnavailableError

    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(DisplayUnavailableError, match="--display headless"):
        open_display("desktop")
