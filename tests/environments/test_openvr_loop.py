"""The OpenVR display's real per-frame code, driven by stand-ins for the SteamVR runtime's objects only.

SteamVR cannot run here, so ``IVRSystem`` and ``IVRCompositor`` are small
stand-in objects that answer with the real ``openvr`` structs (poses in
``TrackedDevicePose_t`` arrays, ``VREvent_t`` events, ``VRControllerState_t``,
``Compositor_FrameTiming``) and raise the real ``openvr.error_code``
exceptions the way pyopenvr's wrappers do. The display is built by its own
constructor through its ``vr`` seam; everything else (the display, its guard,
the render loop, the renderer, GL textures) is the real code.
"""

from __future__ import annotations

import ctypes
import logging
import math
import threading
from types import SimpleNamespace

import numpy as np
import openvr
import pytest

from environments.displays.base import FrameTimer
from environments.displays.openvr import (
    DEFAULT_DISPLAY_HZ,
    CompositorGuard,
    OpenVRDisplay,
    frame_period_s,
)
from environments.scene_state import InputKind, SceneState, SceneStateBox

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
        self.poses: list[np.ndarray | None] = []  # HMD pose per waitGetPoses (3x4 rows; None: not tracked)
        self.timings: list[tuple[int, int, int]] = []  # (frame index, dropped, mis-presented) per getFrameTiming
        self.tracking_space = None
        self.function_table = SimpleNamespace(getFrameTiming=self._get_frame_timing)  # what pyopenvr calls into

    def setTrackingSpace(self, origin) -> None:
        self.tracking_space = origin

    def _get_frame_timing(self, timing_ptr, frames_ago) -> bool:
        """IVRCompositor's C entry: fills the caller's Compositor_FrameTiming (its m_nSize must be set)."""
        timing = timing_ptr.contents
        assert timing.m_nSize == ctypes.sizeof(openvr.Compositor_FrameTiming) and frames_ago == 0
        if not self.timings:
            return False
        timing.m_nFrameIndex, timing.m_nNumDroppedFrames, timing.m_nNumMisPresented = self.timings.pop(0)
        return True

    def submit(self, eye, texture, bounds=None, submitFlags=0) -> None:
        _raise(self.submit_codes.pop(0) if self.submit_codes else 0)
        self.submitted.append(int(eye))

    def waitGetPoses(self, render_poses, game_poses) -> None:
        if self.clock is not None:
            self.clock.t += self.wait_s  # the runtime blocks (or throttles) for this long
        _raise(self.wait_codes.pop(0) if self.wait_codes else 0)
        pose = self.poses.pop(0) if self.poses else None
        hmd = render_poses[openvr.k_unTrackedDeviceIndex_Hmd]
        hmd.bPoseIsValid = pose is not None
        if pose is not None:
            for i in range(3):
                for j in range(4):
                    hmd.mDeviceToAbsoluteTracking.m[i][j] = float(pose[i, j])


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
    with caplog.at_level(logging.DEBUG, logger="environments.displays.openvr"):
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


RIGHT_HAND_DEVICE = 3
LEFT_HAND_DEVICE = 4


class StandInSystem:
    """Answers like IVRSystem, with real openvr structs: scripted events and thumbstick axes."""

    def __init__(self, answer=90.0, size=(64, 72), clock=None) -> None:
        self.answer = answer
        self.clock = clock
        self._stick_until: dict[int, float] = {}
        self.asked: list[tuple[int, int]] = []
        self.size = size
        self.events: list[openvr.VREvent_t] = []
        self.stick_x = {RIGHT_HAND_DEVICE: 0.0, LEFT_HAND_DEVICE: 0.0}
        self.quit_acknowledged = 0

    def getFloatTrackedDeviceProperty(self, device, prop):
        self.asked.append((int(device), int(prop)))
        if isinstance(self.answer, int) and not isinstance(self.answer, bool):
            openvr.error_code.TrackedPropertyError.check_error_value(self.answer)
        return self.answer

    def getRecommendedRenderTargetSize(self):
        return self.size

    def getEyeToHeadTransform(self, eye) -> openvr.HmdMatrix34_t:
        m = openvr.HmdMatrix34_t()
        for i in range(3):
            m.m[i][i] = 1.0
        m.m[0][3] = -0.032 if eye == openvr.Eye_Left else 0.032
        return m

    def getProjectionMatrix(self, eye, near, far) -> openvr.HmdMatrix44_t:
        from environments.renderer import perspective

        w, h = self.size
        p = perspective(math.radians(100.0), w / h, near, far)
        m = openvr.HmdMatrix44_t()
        for i in range(4):
            for j in range(4):
                m.m[i][j] = float(p[i, j])
        return m

    def pollNextEvent(self, event) -> bool:
        if not self.events:
            return False
        src = self.events.pop(0)
        ctypes.memmove(ctypes.addressof(event), ctypes.addressof(src), ctypes.sizeof(openvr.VREvent_t))
        return True

    def acknowledgeQuit_Exiting(self) -> None:
        self.quit_acknowledged += 1

    def getControllerRoleForTrackedDeviceIndex(self, index):
        return {RIGHT_HAND_DEVICE: openvr.TrackedControllerRole_RightHand,
                LEFT_HAND_DEVICE: openvr.TrackedControllerRole_LeftHand}.get(index, openvr.TrackedControllerRole_Invalid)

    def getTrackedDeviceIndexForControllerRole(self, role):
        return {openvr.TrackedControllerRole_RightHand: RIGHT_HAND_DEVICE,
                openvr.TrackedControllerRole_LeftHand: LEFT_HAND_DEVICE}.get(role, openvr.k_unTrackedDeviceIndexInvalid)

    def push_stick(self, index: int, x: float, for_s: float) -> None:
        """Deflect a stick for ``for_s`` seconds of the injected clock, released by the stand-in itself, so the
        span does not depend on when a test thread next wakes up."""
        self._stick_until[index] = self.clock() + for_s
        self.stick_x[index] = x

    def getControllerState(self, index):
        state = openvr.VRControllerState_t()
        if index not in self.stick_x:
            return False, state
        if index in self._stick_until and self.clock() >= self._stick_until[index]:
            del self._stick_until[index]
            self.stick_x[index] = 0.0
        state.rAxis[0].x = self.stick_x[index]
        return True, state


def event(kind: int, device: int = RIGHT_HAND_DEVICE, button: int | None = None) -> openvr.VREvent_t:
    ev = openvr.VREvent_t()
    ev.eventType = kind
    ev.trackedDeviceIndex = device
    if button is not None:
        ev.data.controller.button = button
    return ev


class StandInRuntime:
    """What ``OpenVRDisplay`` calls on the ``openvr`` module: init, VRCompositor, shutdown."""

    def __init__(self, system: StandInSystem, compositor: StandInCompositor) -> None:
        self.system, self.compositor = system, compositor
        self.shutdowns = 0

    def init(self, application_type):
        assert application_type == openvr.VRApplication_Scene
        return self.system

    def VRCompositor(self):
        return self.compositor

    def shutdown(self) -> None:
        self.shutdowns += 1


def open_standin(gl_ctx, system=None, compositor=None, ft=None):
    ft = ft or FakeTime()
    system = system or StandInSystem()
    compositor = compositor or StandInCompositor(clock=ft, wait_s=1 / 90)
    runtime = StandInRuntime(system, compositor)
    display = OpenVRDisplay(msaa=0, vr=runtime, ctx=gl_ctx, clock=ft.clock, sleep=ft.sleep)
    return display, runtime


def run_frames(display, state, frames, got=None):
    from environments.render_loop import RenderLoop

    got = [] if got is None else got
    loop = RenderLoop(display, SceneStateBox(state), got.append)
    stats = loop.run(threading.Event(), max_frames=frames)
    return stats, got, loop


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


def test_the_display_is_built_through_its_runtime_seam(gl_ctx):
    display, runtime = open_standin(gl_ctx)
    try:
        assert display.eye_size == (64, 72) and display.pose.tracked
        assert runtime.compositor.tracking_space == openvr.TrackingUniverseStanding
        np.testing.assert_allclose(display.pose.head_from_eye[:, 0, 3], [-0.032, 0.032])
        assert display.guard.period_s == pytest.approx(1 / 90)
    finally:
        display.close()
        display.close()
    assert runtime.shutdowns == 1  # once, however often close is called
    gl_ctx.buffer(reserve=16).release()  # a context handed in is not released by the display


@pytest.mark.gl
def test_the_head_pose_moves_the_camera(gl_ctx, tmp_path):
    """A pose from waitGetPoses is the camera: the frame equals a render from that pose, not from the last one."""
    from PIL import Image

    from environments.renderer import HeadPose, Renderer
    from environments.render_loop import RenderLoop

    c, s_ = math.cos(math.radians(60)), math.sin(math.radians(60))
    turned = np.array([[c, 0, s_, 0.3], [0, 1, 0, 1.6], [-s_, 0, c, -0.2]])  # 60 degrees left, 30 cm right
    display, runtime = open_standin(gl_ctx)
    runtime.compositor.poses = [turned]
    state = SceneState(environment="spiders", level=3)
    try:
        loop = RenderLoop(display, SceneStateBox(state), lambda e: None)
        shot = loop.request_capture(tmp_path / "hmd.png", "both")
        loop.run(threading.Event(), max_frames=1)
        np.testing.assert_allclose(display.pose.tracking_from_head[:3], turned)
        head_from_eye, proj = display.pose.head_from_eye.copy(), display.pose.proj.copy()
    finally:
        display.close()
    shown = np.asarray(Image.open(shot.result(timeout=30))).astype(int)
    r = Renderer(gl_ctx, (64, 72))
    try:
        refs = []
        for m in (turned, np.array([[1.0, 0, 0, 0], [0, 1, 0, 1.6], [0, 0, 1, 0]])):
            pose = HeadPose(tracking_from_head=np.vstack([m, [0, 0, 0, 1]]), head_from_eye=head_from_eye, proj=proj,
                            tracked=True)
            r.set_state(state)
            r.render(pose, 0.0)
            refs.append(np.concatenate([r.read_rgb(0), r.read_rgb(1)], axis=1).astype(int))
    finally:
        r.release()
    assert np.abs(shown - refs[0]).mean() < 1.5  # the tracked pose
    assert np.abs(shown - refs[1]).mean() > 10  # not the untracked default


@pytest.mark.gl
def test_controller_buttons_become_patient_input_with_the_hand(gl_ctx):
    display, runtime = open_standin(gl_ctx)
    runtime.system.events = [
        event(openvr.VREvent_ButtonPress, RIGHT_HAND_DEVICE, openvr.k_EButton_ApplicationMenu),
        event(openvr.VREvent_ButtonPress, LEFT_HAND_DEVICE, openvr.k_EButton_Grip),
        event(openvr.VREvent_ButtonPress, RIGHT_HAND_DEVICE, openvr.k_EButton_SteamVR_Trigger),
        event(openvr.VREvent_ButtonUnpress, RIGHT_HAND_DEVICE, openvr.k_EButton_SteamVR_Trigger),
        event(openvr.VREvent_ButtonPress, RIGHT_HAND_DEVICE, openvr.k_EButton_A),  # not a vrex button
    ]
    try:
        stats, got, _ = run_frames(display, SceneState(environment="heights", level=2), 2)
    finally:
        display.close()
    assert stats.frames == 2
    assert [(e.kind, e.value, e.source) for e in got] == [
        (InputKind.MENU, float(openvr.TrackedControllerRole_RightHand), "openvr"),
        (InputKind.GRIP, float(openvr.TrackedControllerRole_LeftHand), "openvr"),
        (InputKind.TRIGGER, float(openvr.TrackedControllerRole_RightHand), "openvr"),
    ]


@pytest.mark.gl
def test_the_runtimes_quit_event_ends_the_loop_with_quit(gl_ctx):
    display, runtime = open_standin(gl_ctx)
    runtime.system.events = [event(openvr.VREvent_Quit, 0)]
    try:
        stats, got, loop = run_frames(display, SceneState(environment="heights", level=2), 10)
    finally:
        display.close()
    assert loop.frames == 1 and stats.frames == 1  # the frame that saw Quit, then no more
    assert runtime.system.quit_acknowledged == 1
    assert [e.kind for e in got] == [InputKind.QUIT]


@pytest.mark.gl
def test_dropped_mispresented_and_refused_frames_are_counted_once_each(gl_ctx):
    display, runtime = open_standin(gl_ctx)
    comp = runtime.compositor
    comp.timings = [(10, 0, 0), (11, 2, 1), (11, 2, 1), (12, 0, 1)]  # frame 11 reported twice: counted once
    comp.submit_codes = [0, 0, 0, 0, DO_NOT_HAVE_FOCUS]  # left and right eye of four frames, then refused
    try:
        stats, _, _ = run_frames(display, SceneState(environment="heights", level=2), 5)
    finally:
        display.close()
    assert stats.frames == 5
    assert stats.missed_frames == 3 + 1 + 1
    assert display.guard.fault_counts == {"submit: CompositorError_DoNotHaveFocus": 1}


@pytest.mark.gl
def test_suds_is_answered_with_the_thumbstick_and_the_trigger(gl_ctx):
    """While SUDS is asked, the thumbstick moves the panel's marker and the trigger answers with it."""
    ft = FakeTime()
    display, runtime = open_standin(gl_ctx, ft=ft)
    system = runtime.system
    asking = SceneState(environment="heights", level=2, suds_prompt=True)
    try:
        system.stick_x[RIGHT_HAND_DEVICE] = 1.0  # fully right for 45 frames of 1/90 s: +40 points/s * 0.5 s
        stats, got, loop = run_frames(display, asking, 45)
        assert got == [] and display.suds.active
        assert display.suds.value == pytest.approx(50 + 20, abs=1.0)
        system.stick_x[RIGHT_HAND_DEVICE] = 0.0
        system.stick_x[LEFT_HAND_DEVICE] = -0.1  # inside the dead zone: the marker stays
        run_frames(display, asking, 10)
        assert display.suds.value == pytest.approx(70, abs=1.0)
        system.events = [event(openvr.VREvent_ButtonPress, LEFT_HAND_DEVICE, openvr.k_EButton_SteamVR_Trigger)]
        _, answered, _ = run_frames(display, asking, 1)
        assert [(e.kind, e.value) for e in answered] == [(InputKind.SUDS, 70.0)]
        # No prompt: the trigger is a trigger again, and the next prompt starts in the middle.
        system.events = [event(openvr.VREvent_ButtonPress, LEFT_HAND_DEVICE, openvr.k_EButton_SteamVR_Trigger)]
        _, plain, _ = run_frames(display, SceneState(environment="heights", level=2), 1)
        assert [e.kind for e in plain] == [InputKind.TRIGGER] and display.suds.marker() is None
        run_frames(display, asking, 1)
        assert display.suds.marker() == 50.0
    finally:
        display.close()


@pytest.mark.gl
def test_render_loop_keeps_running_while_steamvr_refuses_every_frame(gl_ctx, caplog):
    """Before the fix the first refused submit escaped ``present`` and ended the loop."""
    ft = FakeTime()
    frames = 4
    comp = StandInCompositor(submit_codes=[DO_NOT_HAVE_FOCUS] * frames, wait_codes=[DO_NOT_HAVE_FOCUS] * frames)
    display, _ = open_standin(gl_ctx, compositor=comp, ft=ft)
    try:
        with caplog.at_level(logging.WARNING, logger="environments.displays.openvr"):
            stats, _, loop = run_frames(display, SceneState(environment="heights", level=3), frames)
    finally:
        display.close()
    assert stats.frames == frames and loop.frames == frames
    assert stats.missed_frames == frames
    assert len(ft.sleeps) == frames and all(s == pytest.approx(1 / 90) for s in ft.sleeps)
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 2  # one per (call, kind)
    assert len(display._textures) == 2 and comp.submitted == []  # textures built, nothing accepted
