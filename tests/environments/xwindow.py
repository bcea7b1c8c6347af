"""Helpers for window tests under Xvfb: read what the X server shows, keep GLX off the EGL thread."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import pyglet

T = TypeVar("T")


def x_window_rgb(window: pyglet.window.Window) -> np.ndarray:
    """What the X server shows in the window, read with XGetImage after the flip: independent of GL state.

    Under Xvfb (Mesa's software GLX) a buffer swap copies the back buffer into the
    X window, so this is the picture a patient would see on the monitor.
    """
    from pyglet.libs.x11 import xlib

    w, h = window.get_framebuffer_size()
    xlib.XSync(window._x_display, False)
    img = xlib.XGetImage(window._x_display, window._window, 0, 0, w, h, xlib.XAllPlanes(), xlib.ZPixmap)
    assert img, "XGetImage returned nothing"
    im = img.contents
    # ``data`` is declared c_char_p (NUL-terminated): read the raw pointer instead.
    data_ptr = ctypes.c_void_p.from_address(ctypes.addressof(im) + type(im).data.offset).value
    try:
        assert im.bits_per_pixel == 32 and im.byte_order == 0, "expected a 24-bit TrueColor little-endian screen"
        assert (im.red_mask, im.green_mask, im.blue_mask) == (0xFF0000, 0x00FF00, 0x0000FF)
        raw = np.frombuffer(ctypes.string_at(data_ptr, h * im.bytes_per_line), np.uint8)
        bgrx = raw.reshape(h, im.bytes_per_line)[:, : w * 4].reshape(h, w, 4)
        return bgrx[:, :, [2, 1, 0]].copy()
    finally:
        xlib.XFree(data_ptr)
        xlib.XFree(img)


def on_own_thread(fn: Callable[[], T], timeout_s: float = 120.0) -> T:
    """Run ``fn`` on a fresh thread and return its result (or raise its exception) here.

    A thread can have one current GL context across EGL and GLX (libglvnd): once
    the session's offscreen EGL context is current on the test thread, a pyglet
    window made there gets no GLX context, and an EGL context made on a thread
    with a current GLX context silently draws into the GLX one. Windows live on
    their own thread, as they do in the product (the render thread owns the GL context).
    """
    out: dict[str, object] = {}

    def body() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test thread
            out["error"] = exc

    t = threading.Thread(target=body, name="test-window")
    t.start()
    t.join(timeout_s)
    assert not t.is_alive(), f"the window thread did not finish within {timeout_s} s"
    if "error" in out:
        raise out["error"]
    return out["value"]
