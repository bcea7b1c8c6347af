"""Compatibility name: the displays now live in :mod:`environments.displays` (import from there).

Kept so that code written against the old module (``main.py``'s demo, the
render benchmark) keeps working while it moves over.
"""

from environments.displays import (  # noqa: F401
    DEFAULT_EYE_SIZE,
    DISPLAY_KINDS,
    Display,
    FrameStats,
    FrameTimer,
    Pacer,
    open_display,
    parse_size,
)
