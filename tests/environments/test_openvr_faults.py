"""SteamVR refusing frames must not stop or unpace the headset loop (the mirror window test is in test_desktop).

The OpenVR runtime (SteamVR) cannot run here, so the compositor and system are
small stand-in objects that raise the real ``openvr.error_code`` exceptions the
way pyopenvr's wrappers do (``CompositorError.check_error_value`` on a return
code). Everything else (the guard, ``OpenVRDisplay.present`` and
``begin_frame``, the render loop, the renderer, GL textures) is the real code.
"""

from __future__ import annotations

import logging
import threading

import pytest

openvr = pytest.importorskip("openvr")

from environments.display import FrameTimer
from environments.openvr_display import (
    DEFAULT_DISPLAY_HZ,
    CompositorGuard,
    OpenVRDisplay,
    frame_period_s,
)
from environments.scene_state import SceneState, SceneStateBox

DO_NOT_HAVE_FOCUS = 101  # EVRCompositorError values, as the runtime returns them
INVALID_TEXTURE = 102
IS_NOT_SCENE_APP = 103


def _raise(code: int) -> None:
    openvr.error_code.CompositorError.check_error_value(code)  # how pyopenvr turns a return code into an exception


class StandInCompositor:
    """Answers like IVRCompositor: each call takes the next return code from a script (0 = success)."""

    def __init__(self, submit_codes=(), wait_codes=(), clock=None, wait_s: float = 0.0) -> None:
        self.submit_codes = list(submit_codes)
        self.wait_codes = list(wait_codes)
        self.submitted: list[int] = []
        self.clock = clock
        self.wait_s = wait_s

    def submit(self, eye, texture, bounds=None, submitFlags=0) -> None:
        _raise(self.submit_codes.pop(0) if self.submit_codes else 0)
        self.submitted.append(int(eye))

    def waitGetPoses(self, render_poses, game_poses) -> None:
        if self.clock is not None:
            self.clock.t += self.wait_s  # the runtime blocks (or throttles) for this long
        _raise(self.wait_codes.pop(0) if self.wait_codes else 0)


class FakeTime:
    """An injected clock and sleep: records the sleeps instead of waiting."""

    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def _texture() -> openvr.Texture_t:
    return openvr.Texture_t(handle=1, eType=openvr.TextureType_OpenGL, eColorSpace=openvr.ColorSpace_Gamma)


def test_a_refused_submit_is_counted_as_missed_and_logged_once_per_kind(caplog):
    comp = StandInCompositor(submit_codes=[DO_NOT_HAVE_FOCUS] * 3 + [INVALID_TEXTURE])
    timer = FrameTimer()
    guard = CompositorGuard(comp, timer)
    tex = _texture()
    with caplog.at_level(logging.DEBUG, logger="environments.openvr_display"):
        results = [guard.submit(tex, tex) for _ in range(5)]
    assert results == [False, False, False, False, True]
    assert timer.missed_frames == 4 and timer.stats().missed_frames == 4
    assert guard.fault_counts == {"submit: CompositorError_DoNotHaveFocus": 3,
                                  "submit: CompositorError_InvalidTexture": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "DoNotHaveFocus" in warnings[0] and "InvalidTexture" in warnings[1]
    assert comp.submitted == [openvr.Eye_Left, openvr.Eye_Right]  # focus back: both eyes go out again


def test_other_errors_are_not_swallowed():
    class Broken(StandInCompositor):
        def submit(self, eye, texture, bounds=None, submitFlags=0):
            raise ValueError("a bug, not the runtime saying no")

    with pytest.raises(ValueError):
        CompositorGuard(Broken(), FrameTimer()).submit(_texture(), _texture())


def test_a_failed_wait_sleeps_out_one_frame_period_instead_of_spinning():
    ft = FakeTime()
    comp = StandInCompositor(wait_codes=[IS_NOT_SCENE_APP, 0], clock=ft, wait_s=0.002)
    guard = CompositorGuard(comp, FrameTimer(), period_s=1 / 120, clock=ft.clock, sleep=ft.sleep)
    poses = (openvr.TrackedDevicePose_t * openvr.k_unMaxTrackedDeviceCount)()
    assert guard.wait_poses(poses) is False
    assert ft.sleeps == [pytest.approx(1 / 120 - 0.002)]  # the rest of the frame after the failed call
    assert guard.wait_poses(poses) is True
    assert len(ft.sleeps) == 1  # a working compositor paces the loop itself
    assert guard.fault_counts == {"waitGetPoses: CompositorError_IsNotSceneApplication": 1}


def test_a_wait_the_runtime_already_throttled_adds_no_sleep():
    ft = FakeTime()  # DoNotHaveFocus: SteamVR throttles waitGetPoses to 10 Hz before failing
    comp = StandInCompositor(wait_codes=[DO_NOT_HAVE_FOCUS], clock=ft, wait_s=0.1)
    guard = CompositorGuard(comp, FrameTimer(), period_s=1 / 90, clock=ft.clock, sleep=ft.sleep)
    assert guard.wait_poses((openvr.TrackedDevicePose_t * openvr.k_unMaxTrackedDeviceCount)()) is False
    assert ft.sleeps == []


class StandInSystem:
    def __init__(self, answer) -> None:
        self.answer = answer
        self.asked: list[tuple[int, int]] = []

    def getFloatTrackedDeviceProperty(self, device, prop):
        self.asked.append((int(device), int(prop)))
        if isinstance(self.answer, int) and not isinstance(self.answer, bool):
            openvr.error_code.TrackedPropertyError.check_error_value(self.answer)
        return self.answer

    def pollNextEvent(self, event) -> bool:
        return False


@pytest.mark.parametrize(("answer", "period"), [
    (120.0, 1 / 120),
    (144.0, 1 / 144),
    (0.0, 1 / DEFAULT_DISPLAY_HZ),  # some drivers report nothing
    (float("nan"), 1 / DEFAULT_DISPLAY_HZ),
    (3, 1 / DEFAULT_DISPLAY_HZ),  # TrackedProp_WrongDeviceClass, raised as pyopenvr does
])
def test_frame_period_comes_from_the_headset_display_frequency(answer, period):
    system = StandInSystem(answer)
    assert frame_period_s(system) == pytest.approx(period)
    assert system.asked == [(openvr.k_unTrackedDeviceIndex_Hmd, openvr.Prop_DisplayFrequency_Float)]


@pytest.mark.gl
def test_render_loop_keeps_running_while_steamvr_refuses_every_frame(gl_ctx, caplog):
    """Before the fix the first refused submit escaped ``present`` and ended the loop.

    ``OpenVRDisplay.__init__`` needs SteamVR, so the display is assembled from the
    same parts __init__ builds (the real guard, timer and pose arrays) around the
    stand-in compositor; ``begin_frame``/``present``/``poll`` are the real methods.
    """
    from environments.render_loop import RenderLoop
    from environments.renderer import HeadPose

    ft = FakeTime()
    frames = 4
    comp = StandInCompositor(submit_codes=[DO_NOT_HAVE_FOCUS] * frames, wait_codes=[DO_NOT_HAVE_FOCUS] * frames)
    display = OpenVRDisplay.__new__(OpenVRDisplay)
    display.system = StandInSystem(90.0)
    display.compositor = comp
    display.ctx = gl_ctx
    display.eye_size = (64, 64)
    display.stereo = True
    display.msaa = 0
    display._mirror = None
    display._shut = True  # nothing to shut down: openvr.init was never called
    display.timer = FrameTimer(gl_ctx)
    display.guard = CompositorGuard(comp, display.timer, period_s=frame_period_s(display.system),
                                    clock=ft.clock, sleep=ft.sleep)
    display.pose = HeadPose.default((64, 64))
    display._poses = (openvr.TrackedDevicePose_t * openvr.k_unMaxTrackedDeviceCount)()
    display._event = openvr.VREvent_t()
    display._textures = []
    display._last_frame_index = -1
    display._quit = False
    display._pending = []

    loop = RenderLoop(display, SceneStateBox(SceneState(environment="heights", level=3)), lambda e: None)
    with caplog.at_level(logging.WARNING, logger="environments.openvr_display"):
        stats = loop.run(threading.Event(), max_frames=frames)
    assert stats.frames == frames and loop.frames == frames
    assert stats.missed_frames == frames
    assert len(ft.sleeps) == frames and all(s == pytest.approx(1 / 90) for s in ft.sleeps)
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 2  # one per (call, kind)
    assert len(display._textures) == 2 and comp.submitted == []  # textures built, nothing accepted
