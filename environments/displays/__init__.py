"""Displays: where frames go (SteamVR, a desktop window, or nowhere but memory).

``base`` holds what they share (the :class:`Display` protocol, frame timing,
pacing, the SUDS slider) and imports none of them; ``headless``, ``desktop``
and ``openvr`` each wrap one library (EGL, pyglet, openvr) and are imported
only when opened, so choosing a display never loads the others' libraries.
"""

from __future__ import annotations

from environments.displays.base import Display, FrameStats, FrameTimer, Pacer, SudsSlider
from environments.errors import DisplayUnavailableError, RenderError

__all__ = ["DEFAULT_EYE_SIZE", "DISPLAY_KINDS", "Display", "FrameStats", "FrameTimer", "Pacer", "SudsSlider",
           "open_display", "parse_size"]

DISPLAY_KINDS = ("headless", "desktop", "openvr")
DEFAULT_EYE_SIZE = (640, 720)


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
    "Cannot open" becomes a :class:`DisplayUnavailableError` that says what to start or use.
    """
    if kind not in DISPLAY_KINDS:
        raise DisplayUnavailableError(f"unknown display {kind!r}: use one of {', '.join(DISPLAY_KINDS)}")
    if max_fps is not None and not max_fps > 0:
        raise DisplayUnavailableError(f"max_fps must be > 0, got {max_fps!r}: leave it out for no cap")
    w, h = (int(eye_size[0]), int(eye_size[1]))
    if w < 16 or h < 16 or w > 8192 or h > 8192:
        raise DisplayUnavailableError(f"eye size {w}x{h} is out of range: use 16..8192 per side, e.g. --size 640x720")
    if kind == "headless":
        from environments.displays.headless import HeadlessDisplay

        return HeadlessDisplay(eye_size=(w, h), stereo=stereo, msaa=msaa, max_fps=max_fps)
    if kind == "desktop":
        from environments.displays.desktop import DesktopDisplay

        return DesktopDisplay(eye_size=(w, h), stereo=stereo, msaa=msaa, max_fps=max_fps)
    from environments.displays.openvr import OpenVRDisplay

    return OpenVRDisplay(msaa=msaa, mirror=mirror)


def parse_size(text: str) -> tuple[int, int]:
    """``"640x720"`` -> ``(640, 720)``; a clear error otherwise (for ``--size``)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise RenderError(f"size {text!r} is not WIDTHxHEIGHT: use e.g. --size 640x720") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise RenderError(f"size {text!r} is out of range: use 16..8192 per side, e.g. --size 640x720")
    return w, h
