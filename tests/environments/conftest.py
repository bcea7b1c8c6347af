"""Fixtures for renderer tests: one offscreen EGL context per session, small eye sizes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two images, in 8-bit levels per channel: how different two frames look."""
    return float(np.abs(np.asarray(a, int) - np.asarray(b, int)).mean())


def _assert_egl_is_current() -> None:
    """glcontext does not check eglMakeCurrent: with a GLX context current on this thread (a pyglet
    window made here) it fails, and every "EGL" draw silently lands in the GLX context instead."""
    import ctypes
    import ctypes.util

    egl = ctypes.CDLL(ctypes.util.find_library("EGL") or "libEGL.so.1")
    egl.eglGetCurrentContext.restype = ctypes.c_void_p
    if not egl.eglGetCurrentContext():
        pytest.fail("the offscreen EGL context is not current on the test thread (a GLX context from a pyglet "
                    "window made on this thread is): open windows with tests.environments.xwindow.on_own_thread")


@pytest.fixture(scope="session")
def gl_ctx():
    """A GL 3.3+ core EGL context (Mesa llvmpipe here, the GPU's EGL elsewhere)."""
    try:
        import moderngl

        ctx = moderngl.create_standalone_context(backend="egl", require=330)
    except Exception as exc:  # pragma: no cover - depends on the machine
        require(False, f"no EGL OpenGL 3.3 context: {exc}")
    _assert_egl_is_current()
    yield ctx
    ctx.release()


@pytest.fixture
def render(gl_ctx):
    """render(state, size=(w, h), msaa=0, t_s=0.0) -> (left, right) RGB arrays; releases GL objects after.

    A still of ``state``: with a reused ``renderer`` the dials are settled (no ease from the previous state).
    """
    from environments.renderer import HeadPose, Renderer

    made = []

    def _render(state, size=(128, 128), msaa=0, t_s=0.0, renderer=None):
        r = renderer or Renderer(gl_ctx, size, msaa=msaa, stereo=True)
        if renderer is None:
            made.append(r)
        r.set_state(state)
        r.settle()
        r.render(HeadPose.default(size), t_s)
        return r.read_rgb(0), r.read_rgb(1)

    yield _render
    for r in made:
        r.release()
