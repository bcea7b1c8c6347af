"""The OpenVR display's input handling, without GL: runtime events and controllers -> PatientInput.

``OpenVRDisplay.poll`` is called directly, as the render loop calls it once a
frame, on a display built by its own constructor through its ``vr`` seam. Only
the SteamVR runtime's objects are stand-ins (answering with real ``openvr``
structs: ``VREvent_t``, ``VRControllerState_t``); the GL context handed in has no
timer queries, which the display's frame timer tolerates, and is never drawn
with here (the rendering side is in test_openvr_loop.py, under the ``gl`` mark).
"""

from __future__ import annotations

import ctypes

import openvr
import pytest

from environments.displays.base import SudsSlider
from environments.displays.openvr import OpenVRDisplay
from environments.scene_state import InputKind, PatientInput

LEFT_DEVICE, RIGHT_DEVICE = 3, 4
ROLE_OF = {LEFT_DEVICE: openvr.TrackedControllerRole_LeftHand, RIGHT_DEVICE: openvr.TrackedControllerRole_RightHand}
LEFT = float(openvr.TrackedControllerRole_LeftHand)
RIGHT = float(openvr.TrackedControllerRole_RightHand)


class Clock:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t


class StandInSystem:
    """Answers like IVRSystem for what the display asks at start-up and in ``poll``."""

    def __init__(self) -> None:
        self.events: list[openvr.VREvent_t] = []
        self.axis_x: dict[int, float] = {LEFT_DEVICE: 0.0, RIGHT_DEVICE: 0.0}
        self.state_ok: dict[int, bool] = {LEFT_DEVICE: True, RIGHT_DEVICE: True}
        self.device_of_role = {role: dev for dev, role in ROLE_OF.items()}
        self.role_asked: list[int] = []
        self.quit_acknowledged = 0

    def getFloatTrackedDeviceProperty(self, device, prop):
        return 90.0

    def getRecommendedRenderTargetSize(self):
        return 32, 32

    def getEyeToHeadTransform(self, eye) -> openvr.HmdMatrix34_t:
        m = openvr.HmdMatrix34_t()
        for i in range(3):
            m.m[i][i] = 1.0
        return m

    def getProjectionMatrix(self, eye, near, far) -> openvr.HmdMatrix44_t:
        m = openvr.HmdMatrix44_t()
        for i in range(4):
            m.m[i][i] = 1.0
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
        self.role_asked.append(int(index))
        return ROLE_OF.get(index, openvr.TrackedControllerRole_Invalid)

    def getTrackedDeviceIndexForControllerRole(self, role):
        return self.device_of_role.get(role, openvr.k_unTrackedDeviceIndexInvalid)

    def getControllerState(self, index):
        state = openvr.VRControllerState_t()
        state.rAxis[0].x = self.axis_x.get(index, 0.0)
        state.rAxis[0].y = 0.9  # forward/back is not the marker's axis
        state.rAxis[1].y = 0.9  # nor is the trigger's axis
        return self.state_ok.get(index, False), state


class StandInCompositor:
    def setTrackingSpace(self, origin) -> None:
        self.origin = origin


class StandInRuntime:
    def __init__(self, system: StandInSystem) -> None:
        self.system = system
        self.shutdowns = 0

    def init(self, application_type):
        return self.system

    def VRCompositor(self):
        return StandInCompositor()

    def shutdown(self) -> None:
        self.shutdowns += 1


class NoTimerQueries:
    """A GL context the display never draws with here; without timer queries its frame timer counts CPU time."""

    def query(self, **kwargs):
        raise RuntimeError("no timer queries in this context")


class MirrorWindow:
    def __init__(self) -> None:
        self.dispatched = 0

    def dispatch_events(self) -> None:
        self.dispatched += 1


class Mirror:
    """Stands in for the desktop mirror window (a pyglet window needs an X server)."""

    def __init__(self) -> None:
        self.window = MirrorWindow()
        self._closed = False
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def event(kind: int, device: int = RIGHT_DEVICE, button: int | None = None) -> openvr.VREvent_t:
    ev = openvr.VREvent_t()
    ev.eventType = kind
    ev.trackedDeviceIndex = device
    if button is not None:
        ev.data.controller.button = button
    return ev


def press(button: int, device: int = RIGHT_DEVICE) -> openvr.VREvent_t:
    return event(openvr.VREvent_ButtonPress, device, button)


@pytest.fixture
def headset():
    system = StandInSystem()
    runtime = StandInRuntime(system)
    clock = Clock()
    display = OpenVRDisplay(msaa=0, vr=runtime, ctx=NoTimerQueries(), clock=clock, sleep=lambda s: None)
    yield display, system, clock
    display.close()
    assert runtime.shutdowns == 1


def poll(display: OpenVRDisplay) -> list[PatientInput]:
    got: list[PatientInput] = []
    display.poll(got.append)
    return got


def test_each_vrex_button_becomes_patient_input_with_its_hand_and_time(headset):
    display, system, clock = headset
    clock.t = 61.5
    system.events = [
        press(openvr.k_EButton_ApplicationMenu, RIGHT_DEVICE),
        press(openvr.k_EButton_Grip, LEFT_DEVICE),
        press(openvr.k_EButton_SteamVR_Trigger, RIGHT_DEVICE),
    ]
    assert poll(display) == [
        PatientInput(61.5, InputKind.MENU, RIGHT, "openvr"),
        PatientInput(61.5, InputKind.GRIP, LEFT, "openvr"),
        PatientInput(61.5, InputKind.TRIGGER, RIGHT, "openvr"),
    ]
    assert system.role_asked == [RIGHT_DEVICE, LEFT_DEVICE, RIGHT_DEVICE]
    assert system.events == [] and poll(display) == []  # every queued event is read, each once


def test_other_buttons_releases_and_events_are_not_patient_input(headset):
    display, system, _ = headset
    system.events = [
        press(openvr.k_EButton_A),
        press(openvr.k_EButton_System),
        event(openvr.VREvent_ButtonUnpress, RIGHT_DEVICE, openvr.k_EButton_ApplicationMenu),
        event(openvr.VREvent_ButtonTouch, RIGHT_DEVICE, openvr.k_EButton_SteamVR_Trigger),
        event(openvr.VREvent_TrackedDeviceActivated, RIGHT_DEVICE),
        press(openvr.k_EButton_ApplicationMenu, LEFT_DEVICE),  # after all of those: still read
    ]
    assert poll(display) == [PatientInput(50.0, InputKind.MENU, LEFT, "openvr")]
    assert system.role_asked == [LEFT_DEVICE]
    assert system.quit_acknowledged == 0 and display._quit is False


def test_a_button_on_an_unknown_device_still_counts(headset):
    display, system, _ = headset
    system.events = [press(openvr.k_EButton_ApplicationMenu, 9)]
    assert poll(display) == [PatientInput(50.0, InputKind.MENU, float(openvr.TrackedControllerRole_Invalid), "openvr")]


def test_the_runtimes_quit_is_acknowledged_and_ends_the_frames(headset):
    display, system, _ = headset
    system.events = [event(openvr.VREvent_Quit, 0), press(openvr.k_EButton_Grip, LEFT_DEVICE)]
    assert poll(display) == [PatientInput(50.0, InputKind.GRIP, LEFT, "openvr")]  # events after it still count
    assert system.quit_acknowledged == 1
    assert display.begin_frame() is None  # the render loop ends on this (and reports quit)


def test_without_quit_frames_go_on(headset):
    display, system, _ = headset
    system.events = [press(openvr.k_EButton_Grip, LEFT_DEVICE)]
    poll(display)
    assert display._quit is False and system.quit_acknowledged == 0


def test_while_suds_is_asked_the_thumbstick_moves_the_marker_by_the_time_since_the_last_poll(headset):
    display, system, clock = headset
    display.suds.set_active(True)
    clock.t += 0.05
    system.axis_x[RIGHT_DEVICE] = 1.0
    assert poll(display) == []
    assert display.suds.value == pytest.approx(SudsSlider.START + 0.05 * SudsSlider.POINTS_PER_S)  # 52
    clock.t += 0.025
    system.axis_x[RIGHT_DEVICE] = -0.5
    poll(display)
    assert display.suds.value == pytest.approx(52.0 - 0.5 * 40 * 0.025)  # 51.5
    clock.t += 0.05
    system.axis_x[RIGHT_DEVICE] = 0.0
    system.axis_x[LEFT_DEVICE] = -1.0  # the other hand works too
    poll(display)
    assert display.suds.value == pytest.approx(49.5)


def test_the_larger_deflection_of_the_two_hands_wins(headset):
    display, system, clock = headset
    display.suds.set_active(True)
    system.axis_x.update({LEFT_DEVICE: 0.4, RIGHT_DEVICE: -0.8})
    clock.t += 0.05
    poll(display)
    assert display.suds.value == pytest.approx(50.0 - 0.8 * 40 * 0.05)
    system.axis_x.update({LEFT_DEVICE: 0.9, RIGHT_DEVICE: -0.3})
    clock.t += 0.05
    poll(display)
    assert display.suds.value == pytest.approx(48.4 + 0.9 * 40 * 0.05)


def test_equal_deflections_of_both_hands_use_the_first_found_the_left(headset):
    display, system, clock = headset
    display.suds.set_active(True)
    system.axis_x.update({LEFT_DEVICE: -0.5, RIGHT_DEVICE: 0.5})
    clock.t += 0.05
    poll(display)
    assert display.suds.value == pytest.approx(49.0)


def test_a_hand_that_is_missing_or_not_answering_does_not_move_the_marker(headset):
    display, system, clock = headset
    display.suds.set_active(True)
    system.axis_x.update({LEFT_DEVICE: -1.0, RIGHT_DEVICE: 0.5})
    system.state_ok[LEFT_DEVICE] = False  # its state could not be read: its axis is not used
    clock.t += 0.05
    poll(display)
    assert display.suds.value == pytest.approx(51.0)
    del system.device_of_role[openvr.TrackedControllerRole_LeftHand]  # left controller switched off
    system.axis_x[RIGHT_DEVICE] = 1.0
    system.axis_x[openvr.k_unTrackedDeviceIndexInvalid] = -1.0  # what asking the invalid index would read
    system.state_ok[openvr.k_unTrackedDeviceIndexInvalid] = True
    clock.t += 0.05
    poll(display)
    assert display.suds.value == pytest.approx(53.0)  # the right hand is still read after the missing left one


def test_no_prompt_no_marker_movement(headset):
    display, system, clock = headset
    system.axis_x[RIGHT_DEVICE] = 1.0
    clock.t += 0.05
    poll(display)
    assert display.suds.value == SudsSlider.START and display.suds.marker() is None


def test_the_trigger_answers_suds_while_asked_and_is_a_trigger_otherwise(headset):
    display, system, clock = headset
    display.suds.set_active(True)
    clock.t += 0.05
    system.axis_x[LEFT_DEVICE] = 1.0
    system.events = [press(openvr.k_EButton_SteamVR_Trigger, LEFT_DEVICE), press(openvr.k_EButton_Grip, LEFT_DEVICE)]
    got = poll(display)
    now = clock.t
    # the answer is the marker as it was when the trigger was pressed (the stick moves it after the events)
    assert got == [PatientInput(now, InputKind.SUDS, 50.0, "openvr"), PatientInput(now, InputKind.GRIP, LEFT, "openvr")]
    assert system.role_asked == [LEFT_DEVICE]  # the answer does not ask for the hand
    display.suds.set_active(False)
    system.events = [press(openvr.k_EButton_SteamVR_Trigger, LEFT_DEVICE)]
    assert poll(display) == [PatientInput(now, InputKind.TRIGGER, LEFT, "openvr")]


def test_the_mirror_window_is_served_each_poll_and_let_go_when_closed(headset):
    display, system, _ = headset
    mirror = Mirror()
    display._mirror = mirror
    poll(display)
    poll(display)
    assert mirror.window.dispatched == 2 and mirror.closed == 0 and display._mirror is mirror
    mirror._closed = True  # the user closed the mirror window: the headset goes on without it
    poll(display)
    assert mirror.closed == 1 and display._mirror is None
    poll(display)
    assert mirror.window.dispatched == 3
