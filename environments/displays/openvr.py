"""``openvr``: SteamVR through the ``openvr`` package (the only module that imports it).

The compositor paces the loop (``waitGetPoses``), the HMD pose drives the
camera, each eye is rendered at the runtime's recommended size and submitted as
a GL texture; controller trigger, grip and menu become :class:`PatientInput`,
and while a SUDS prompt is shown the thumbstick or trackpad moves the panel's
marker and the trigger answers with it. OpenVR matrices are row-major 3x4 / 4x4
in the usual maths convention (``v' = M v``), as the renderer's are.

The runtime is reached only through ``vr`` (the ``openvr`` module by default:
``init``, ``VRCompositor``, ``shutdown``), so tests can hand in stand-ins for the
runtime's objects while every struct, constant and line of this display is real.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import moderngl
import numpy as np
import openvr

from environments.displays.base import FrameTimer, SudsSlider
from environments.errors import DisplayUnavailableError
from environments.renderer import FAR_M, NEAR_M, HeadPose
from environments.scene_state import InputKind, PatientInput

if TYPE_CHECKING:
    from environments.displays.desktop import DesktopDisplay

log = logging.getLogger(__name__)

_BUTTONS = {
    openvr.k_EButton_SteamVR_Trigger: InputKind.TRIGGER,
    openvr.k_EButton_Grip: InputKind.GRIP,
    openvr.k_EButton_ApplicationMenu: InputKind.MENU,
}


def hmd34_to_numpy(m: openvr.HmdMatrix34_t, out: np.ndarray | None = None) -> np.ndarray:
    """An OpenVR 3x4 rigid transform as a 4x4 maths-convention matrix (bottom row 0 0 0 1)."""
    out = np.eye(4) if out is None else out
    for i in range(3):
        row = m.m[i]
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = row[0], row[1], row[2], row[3]
    out[3, :3] = 0.0
    out[3, 3] = 1.0
    return out


def hmd44_to_numpy(m: openvr.HmdMatrix44_t) -> np.ndarray:
    """An OpenVR 4x4 (projection) matrix as a numpy array, same (row-major, maths) convention."""
    return np.array([[m.m[i][j] for j in range(4)] for i in range(4)], dtype=np.float64)


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Send fds 1 and 2 to /dev/null while native code runs, restoring them in ``finally``.

    libopenvr_api prints its own diagnostics (e.g. "Unable to read VR Path
    Registry from ...") straight to the process's stdout/stderr before raising;
    the user should see only our one-line error that says what to do.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved: list[tuple[int, int]] = []
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
            except OSError:  # that fd is not open: nothing to silence
                continue
            os.dup2(devnull, fd)
        yield
    finally:
        with contextlib.suppress(Exception):
            ctypes.CDLL(None).fflush(None)  # C stdio buffers written during the call go to /dev/null too
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def init_error_message(exc: BaseException) -> str:
    """What to tell the user when ``openvr.init`` fails: what is missing and what to start instead."""
    name = type(exc).__name__
    if "PathRegistryNotFound" in name or "Installation" in name or "VRClientDLLNotFound" in name:
        what = "SteamVR is not installed or has never been run on this account"
    elif "HmdNotFound" in name or "HmdNotFoundPresenceFailed" in name:
        what = "SteamVR cannot find a headset (is it plugged in and switched on?)"
    elif "NoServerForBackgroundApp" in name or "InitCanceledByUser" in name or "Server" in name:
        what = "SteamVR is not running"
    else:
        what = "SteamVR could not be initialised"
    return f"{what} (openvr: {name}): start SteamVR with the headset connected, or use --display desktop"


DEFAULT_DISPLAY_HZ = 90.0


def frame_period_s(system: openvr.IVRSystem) -> float:
    """One headset frame in seconds, from the HMD's reported refresh rate (1/90 s when it reports none).

    Used to pace the loop while the compositor refuses to (``waitGetPoses`` failing returns at once).
    """
    try:
        hz = float(system.getFloatTrackedDeviceProperty(openvr.k_unTrackedDeviceIndex_Hmd,
                                                        openvr.Prop_DisplayFrequency_Float))
    except openvr.error_code.TrackedPropertyError as exc:
        log.info("the headset reports no display frequency (%s): assuming %.0f Hz", type(exc).__name__,
                 DEFAULT_DISPLAY_HZ)
        hz = DEFAULT_DISPLAY_HZ
    if not 20.0 <= hz <= 1000.0:  # 0 (property missing on some drivers) or NaN
        log.info("the headset reports a display frequency of %r Hz: assuming %.0f Hz", hz, DEFAULT_DISPLAY_HZ)
        hz = DEFAULT_DISPLAY_HZ
    return 1.0 / hz


class CompositorGuard:
    """Calls the compositor so that its errors never end the render loop.

    SteamVR refuses frames for ordinary reasons (``DoNotHaveFocus`` while another
    scene app or the dashboard has focus); the loop must carry on and resume when
    focus returns. Each error kind is logged once (per call) and counted; a refused
    submit counts as a missed frame; a failed ``waitGetPoses`` returns without
    waiting, so the guard sleeps out the rest of one frame period instead of
    letting the loop spin at full CPU/GPU. ``clock`` and ``sleep`` are injectable
    so tests can check the pacing without waiting.
    """

    def __init__(self, compositor: openvr.IVRCompositor, timer: FrameTimer, *, period_s: float = 1.0 / DEFAULT_DISPLAY_HZ,
                 clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep) -> None:
        self.compositor = compositor
        self.timer = timer
        self.period_s = period_s
        self.fault_counts: dict[str, int] = {}
        self._clock = clock
        self._sleep = sleep

    def _fault(self, call: str, exc: openvr.error_code.CompositorError) -> None:
        key = f"{call}: {type(exc).__name__}"
        n = self.fault_counts.get(key, 0) + 1
        self.fault_counts[key] = n
        if n == 1:
            log.warning("compositor %s failed with %s; carrying on (logged once, counted in fault_counts)",
                        call, type(exc).__name__)

    def wait_poses(self, poses: ctypes.Array) -> bool:
        """``waitGetPoses`` into ``poses``; on a compositor error keep the last poses and pace one frame."""
        t0 = self._clock()
        try:
            self.compositor.waitGetPoses(poses, None)
            return True
        except openvr.error_code.CompositorError as exc:
            self._fault("waitGetPoses", exc)
        left_s = self.period_s - (self._clock() - t0)  # the runtime may already have throttled the call
        if left_s > 0.0:
            self._sleep(left_s)
        return False

    def submit(self, left: openvr.Texture_t, right: openvr.Texture_t) -> bool:
        """Submit both eyes; a refused frame is logged (once per kind), counted as missed, and dropped."""
        try:
            self.compositor.submit(openvr.Eye_Left, left)
            self.compositor.submit(openvr.Eye_Right, right)
            return True
        except openvr.error_code.CompositorError as exc:
            self._fault("submit", exc)
            self.timer.add_missed(1)
            return False


def open_mirror(eye_size: tuple[int, int]) -> DesktopDisplay:
    """The desktop window that mirrors the left eye: vsync off, so its flip cannot hold up the headset's loop."""
    from environments.displays.desktop import DesktopDisplay

    return DesktopDisplay(eye_size=eye_size, stereo=False, msaa=0, max_fps=None, vsync=False,
                          title="vrex - headset mirror (left eye)")


HANDS = (openvr.TrackedControllerRole_LeftHand, openvr.TrackedControllerRole_RightHand)


class OpenVRDisplay:
    """A SteamVR headset; optionally mirrors the left eye to a desktop window.

    ``vr`` is where the runtime comes from (the ``openvr`` module: ``init``,
    ``VRCompositor``, ``shutdown``); ``ctx`` an existing GL context to render in
    (not released here); ``clock``/``sleep`` pace the loop while the compositor
    refuses frames. All default to the real thing.
    """

    kind = "openvr"

    def __init__(self, *, msaa: int = 4, mirror: bool = False, vr=openvr, ctx: moderngl.Context | None = None,
                 clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep) -> None:
        self._vr = vr
        try:
            with quiet_native_output():
                self.system = vr.init(openvr.VRApplication_Scene)
        except openvr.error_code.InitError as exc:
            raise DisplayUnavailableError(init_error_message(exc)) from exc
        except OSError as exc:  # the bundled libopenvr_api could not be loaded
            raise DisplayUnavailableError(
                f"the OpenVR library cannot be loaded ({exc}): reinstall the 'openvr' package, or use --display desktop"
            ) from exc
        self._shut = False
        self._own_ctx = ctx is None
        self._mirror = None
        self.ctx = ctx
        try:
            self.compositor = vr.VRCompositor()
            self.compositor.setTrackingSpace(openvr.TrackingUniverseStanding)
            w, h = self.system.getRecommendedRenderTargetSize()
            self.eye_size = (int(w), int(h))
            self.stereo = True
            self.msaa = msaa
            if mirror:
                self._mirror = open_mirror(self.eye_size)
                self.ctx = self._mirror.ctx
                self._own_ctx = False  # the mirror window owns it
            elif ctx is None:
                from environments.displays.headless import create_egl_context

                self.ctx = create_egl_context()
            self.timer = FrameTimer(self.ctx)
            self.guard = CompositorGuard(self.compositor, self.timer, period_s=frame_period_s(self.system),
                                         clock=clock, sleep=sleep)
            eye_to_head = np.stack([hmd34_to_numpy(self.system.getEyeToHeadTransform(e))
                                    for e in (openvr.Eye_Left, openvr.Eye_Right)])
            proj = np.stack([hmd44_to_numpy(self.system.getProjectionMatrix(e, NEAR_M, FAR_M))
                             for e in (openvr.Eye_Left, openvr.Eye_Right)])
            self.pose = HeadPose(tracking_from_head=np.eye(4), head_from_eye=eye_to_head, proj=proj, tracked=True)
            self.suds = SudsSlider()
            self._clock = clock
            self._last_poll_s = clock()
            self._poses = (openvr.TrackedDevicePose_t * openvr.k_unMaxTrackedDeviceCount)()
            self._event = openvr.VREvent_t()
            self._textures: list[openvr.Texture_t] = []
            self._timing = openvr.Compositor_FrameTiming()  # sets m_nSize, as the runtime requires
            self._timing_ptr = ctypes.pointer(self._timing)
            self._last_frame_index = -1
            self._quit = False
        except Exception:
            self.close()
            raise

    def begin_frame(self) -> HeadPose | None:
        if self._quit:
            return None
        self.guard.wait_poses(self._poses)  # on failure: last pose kept, one frame period slept
        self.timer.begin()
        hmd = self._poses[openvr.k_unTrackedDeviceIndex_Hmd]
        if hmd.bPoseIsValid:
            hmd34_to_numpy(hmd.mDeviceToAbsoluteTracking, self.pose.tracking_from_head)
        return self.pose

    def present(self, eye_textures: Sequence[moderngl.Texture]) -> None:
        if len(self._textures) != len(eye_textures) or any(
            t.handle != tex.glo for t, tex in zip(self._textures, eye_textures)
        ):
            self._textures = [
                openvr.Texture_t(handle=tex.glo, eType=openvr.TextureType_OpenGL, eColorSpace=openvr.ColorSpace_Gamma)
                for tex in eye_textures
            ]
        submitted = self.guard.submit(self._textures[0], self._textures[-1])
        self.timer.end()
        if submitted:  # a refused frame was counted by the guard already
            self._count_missed()
        if self._mirror is not None:
            self._mirror.present(eye_textures[:1])

    def _count_missed(self) -> None:
        """Dropped and mis-presented frames from the compositor's timing of the last frame.

        Called through the function table with a struct and pointer made once
        (pyopenvr's ``getFrameTiming`` wrapper allocates a new struct per call).
        """
        timing = self._timing
        ok = self.compositor.function_table.getFrameTiming(self._timing_ptr, 0)
        if ok and timing.m_nFrameIndex != self._last_frame_index:
            self._last_frame_index = timing.m_nFrameIndex
            self.timer.add_missed(timing.m_nNumDroppedFrames + timing.m_nNumMisPresented)

    def poll(self, on_input: Callable[[PatientInput], None]) -> None:
        """Runtime events (quit, buttons) and, while SUDS is asked, the thumbsticks moving the marker."""
        now = self._clock()
        dt_s, self._last_poll_s = now - self._last_poll_s, now
        while self.system.pollNextEvent(self._event):
            ev = self._event
            if ev.eventType == openvr.VREvent_Quit:
                self._quit = True
                self.system.acknowledgeQuit_Exiting()
            elif ev.eventType == openvr.VREvent_ButtonPress:
                button = ev.data.controller.button
                if button == openvr.k_EButton_SteamVR_Trigger and self.suds.active:
                    on_input(self.suds.confirm(now, "openvr"))
                    continue
                kind = _BUTTONS.get(button)
                if kind is not None:
                    role = self.system.getControllerRoleForTrackedDeviceIndex(ev.trackedDeviceIndex)
                    on_input(PatientInput(t_s=now, kind=kind, value=float(role), source="openvr"))
        if self.suds.active:
            self.suds.move(self._thumbstick_x(), dt_s)
        if self._mirror is not None:
            self._mirror.window.dispatch_events()
            if self._mirror._closed:
                self._mirror.close()
                self._mirror = None

    def _thumbstick_x(self) -> float:
        """The larger sideways deflection of the two hands' thumbstick or trackpad (axis 0), -1..1."""
        best = 0.0
        for role in HANDS:  # two controllers at most
            index = self.system.getTrackedDeviceIndexForControllerRole(role)
            if index == openvr.k_unTrackedDeviceIndexInvalid:
                continue
            ok, state = self.system.getControllerState(index)
            if ok and abs(state.rAxis[0].x) > abs(best):
                best = float(state.rAxis[0].x)
        return best

    def close(self) -> None:
        if self._shut:
            return
        self._shut = True
        if self._mirror is not None:
            self._mirror.close()
        elif self._own_ctx and self.ctx is not None:
            self.ctx.release()
        self._vr.shutdown()
