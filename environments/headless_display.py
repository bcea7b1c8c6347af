"""Compatibility name: the headless display is :mod:`environments.displays.headless` (import from there)."""

from environments.displays.headless import HeadlessDisplay, create_egl_context  # noqa: F401
