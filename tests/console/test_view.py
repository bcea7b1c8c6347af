"""The patient's view: ``RenderLoop.request_rgb`` hands the next rendered frame over as an array (read back on
the render thread), and the hub turns it into one JPEG shared by every browser."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

from clinician_console.hub import ConsoleHub
from environments.errors import RenderError
from environments.scene_state import SceneState, SceneStateBox
from tests.console.conftest import gl_available
from tests.conftest import require

pytestmark = pytest.mark.gl


def test_request_rgb_returns_the_next_frame_and_the_hub_encodes_it():
    require(gl_available(), "no EGL for the headless renderer")
    from PIL import Image

    from environments.displays import open_display
    from environments.render_loop import RenderLoop

    scene = SceneStateBox(SceneState(environment="heights", level=2))
    ready, stop = threading.Event(), threading.Event()
    holder: dict[str, object] = {}

    def render() -> None:  # the thread that opens the display owns its GL context
        display = open_display("headless", eye_size=(64, 72), stereo=True, msaa=0, max_fps=30)
        try:
            holder["loop"] = loop = RenderLoop(display, scene, on_input=lambda ev: None)
            ready.set()
            loop.run(stop)
        finally:
            display.close()

    thread = threading.Thread(target=render, daemon=True)
    thread.start()
    assert ready.wait(60)
    loop = holder["loop"]
    try:
        left = loop.request_rgb("left").result(timeout=60)
        both = loop.request_rgb("both").result(timeout=60)
        assert left.shape == (72, 64, 3) and left.dtype == np.uint8 and left.std() > 0  # a real picture
        assert both.shape == (72, 128, 3)
        with pytest.raises(RenderError, match="eye 'middle'"):
            loop.request_rgb("middle")
        hub = ConsoleHub()
        hub.set_view(loop.request_rgb)
        assert hub.view_available()
        jpeg = hub.view_jpeg(width=32)
        img = Image.open(io.BytesIO(jpeg))
        assert img.format == "JPEG" and img.size == (32, 36)
        assert hub.view_jpeg(width=32) is jpeg  # a second browser within 0.2 s gets the same image
    finally:
        stop.set()
        thread.join(30)
