"""A patient's STOP and SUDS answer travel the whole way: the headset's button or the window's key, the display's
input code, the render loop, the command queue, the session runtime, the record and the scene.

Nothing in between is replaced: the session runs through the real runner; the only stand-ins are for the OpenVR
*runtime* objects (SteamVR is not installable here), which answer with real ``openvr`` structs, and the X server
is Xvfb with real key events (XTEST through xdotool).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import threading

import numpy as np
import openvr
import pytest

from biofeedback.clock import PacedClock
from protocols.model import load_protocol
from tests.conftest import require
from tests.environments.test_openvr_loop import RIGHT_HAND_DEVICE, FakeTime, StandInCompositor, StandInSystem, event
from tests.therapy.conftest import EventLog
from therapy import commands as cmd
from therapy.events import Phase, PhaseChanged, SudsRecorded
from therapy.live import LiveSession
from therapy.runner import SessionRequest, SessionRunner
from therapy.store import open_store

pytestmark = pytest.mark.gl

HANG_GUARD_S = 120.0


def short_protocol(**controller):
    """heights-graded with a 30-s baseline, so the session reaches exposure within seconds at 20x."""
    spec, _ = load_protocol("heights-graded")
    return spec.model_copy(update={
        "baseline": spec.baseline.model_copy(update={"duration_s": 30.0}),
        "controller": spec.controller.model_copy(update=controller or {"step_up": "auto"}),
    })


def when_phase(phase: Phase, then) -> callable:
    """An observer that calls ``then(live)`` (on a thread of its own) once the session reaches ``phase``."""

    def attach(live: LiveSession) -> None:
        fired = threading.Event()

        def on_event(item) -> None:
            if isinstance(item, PhaseChanged) and item.phase is phase and not fired.is_set():
                fired.set()
                threading.Thread(target=then, args=(live,), daemon=True).start()

        live.subscribe(on_event, lossless=True, name=f"when-{phase.value}")

    return attach


def run_session(tmp_path, request_kw: dict, *, display_factory=None, observers=()) -> tuple[EventLog, SessionRunner]:
    with open_store(tmp_path) as store:
        if store.find_patient("P01") is None:
            store.add_patient("P01", birth_year=1990)
    log = EventLog()
    scenes = []

    def keep_scenes(live: LiveSession) -> None:
        def on_event(item) -> None:
            if isinstance(item, PhaseChanged):
                scenes.append(live.snapshot().shown)

        live.subscribe(on_event, lossless=True, name="scenes")

    runner = SessionRunner(
        SessionRequest(patient="P01", sensor="sim:2", minutes=8, data_dir=tmp_path, capture_frames=False, xdf=False, lsl=False,
                       simulated_patient=False, **request_kw),
        clock=PacedClock(20.0), display_factory=display_factory,
        observers=[lambda live: live.subscribe(log, lossless=True, name="log"), keep_scenes, *observers],
    )
    runner.scenes = scenes
    runner.run()
    return log, runner


def stop_after_safe_place(live: LiveSession) -> None:
    live.commands.put(cmd.Stop(source="test", reason="done"))


def assert_patient_stop_reached_the_session(log: EventLog, runner: SessionRunner, source: str) -> None:
    phases = [e for e in log.events if isinstance(e, PhaseChanged)]
    safe = [e for e in phases if e.phase is Phase.SAFE_PLACE]
    assert safe, [(e.phase, e.reason) for e in phases]
    assert f"the patient asked to stop (patient ({source}))" in safe[0].reason
    assert phases[phases.index(safe[0]) - 1].phase is Phase.EXPOSURE
    # the scene the renderer was given when the safe place began shows the safe place, not the heights
    shown = runner.scenes[[e.phase for e in phases].index(Phase.SAFE_PLACE)]
    assert shown.safe_place and shown.environment == "safe_place"
    with open_store(runner.prepare().store.path.parent) as store:
        rows = store.session_details(runner.live.session_id)["phases"]
    assert [p["phase"] for p in rows][:3] == ["baseline", "exposure", "safe_place"]


def test_the_headset_menu_button_sends_the_patient_to_the_safe_place(gl_ctx, tmp_path):
    from environments.displays.openvr import OpenVRDisplay
    from tests.environments.test_openvr_loop import StandInRuntime

    ft = FakeTime()
    system = StandInSystem(size=(48, 54))
    runtime = StandInRuntime(system, StandInCompositor(clock=ft, wait_s=1 / 90))

    def press_menu(live: LiveSession) -> None:  # the patient presses the controller's menu button
        system.events.append(event(openvr.VREvent_ButtonPress, RIGHT_HAND_DEVICE, openvr.k_EButton_ApplicationMenu))

    log, runner = run_session(
        tmp_path, {"display": "openvr", "protocol": short_protocol()},
        display_factory=lambda: OpenVRDisplay(msaa=0, vr=runtime, ctx=gl_ctx, clock=ft.clock, sleep=ft.sleep),
        observers=[when_phase(Phase.EXPOSURE, press_menu), when_phase(Phase.SAFE_PLACE, stop_after_safe_place)],
    )
    assert_patient_stop_reached_the_session(log, runner, "openvr")
    assert runtime.shutdowns == 1


def test_the_headset_suds_panel_is_answered_with_thumbstick_and_trigger(gl_ctx, tmp_path):
    """The prompt shows in the headset; the patient pushes the stick right for half a second (+20 from the middle)
    and pulls the trigger: the session records that rating, from the headset."""
    from environments.displays.openvr import OpenVRDisplay
    from tests.environments.test_openvr_loop import StandInRuntime

    ft = FakeTime()
    system = StandInSystem(size=(48, 54), clock=ft.clock)
    runtime = StandInRuntime(system, StandInCompositor(clock=ft, wait_s=1 / 90))
    answered = threading.Event()

    def answer_when_asked(live: LiveSession) -> None:
        while not (live.snapshot().shown and live.snapshot().shown.suds_prompt):
            if answered.wait(0.05):  # the hang guard below ends this loop if the session never asks
                return
        system.push_stick(RIGHT_HAND_DEVICE, 1.0, for_s=0.5)  # half a second of headset frames (display clock)
        while system.stick_x[RIGHT_HAND_DEVICE] != 0.0 and not answered.wait(0.01):
            pass
        system.events.append(event(openvr.VREvent_ButtonPress, RIGHT_HAND_DEVICE, openvr.k_EButton_SteamVR_Trigger))

    def stop_on_answer(live: LiveSession) -> None:
        def on_event(item) -> None:
            if isinstance(item, SudsRecorded):
                answered.set()
                live.commands.put(cmd.Stop(source="test", reason="answered"))

        live.subscribe(on_event, lossless=True, name="stop-on-answer")

    log, runner = run_session(
        tmp_path, {"display": "openvr", "protocol": short_protocol()},
        display_factory=lambda: OpenVRDisplay(msaa=0, vr=runtime, ctx=gl_ctx, clock=ft.clock, sleep=ft.sleep),
        observers=[when_phase(Phase.EXPOSURE, answer_when_asked), stop_on_answer],
    )
    (rating,) = [e for e in log.events if isinstance(e, SudsRecorded)]
    assert rating.source == "patient (openvr)" and rating.suds_kind == "entry"
    assert rating.value == pytest.approx(70, abs=1.5)  # 45 frames of 1/90 s, one frame either way
    with open_store(tmp_path) as store:
        (row,) = store.session_details(runner.live.session_id)["suds"]
    assert row["kind"] == "entry" and row["source"] == "patient (openvr)"


@pytest.mark.xvfb
def test_a_key_press_in_the_desktop_window_sends_the_patient_to_the_safe_place(xvfb_display, tmp_path):
    require(shutil.which("xdotool") is not None, "xdotool is not installed (apt-get install xdotool)")
    from environments.displays import open_display

    displays = []

    def make_display():
        displays.append(open_display("desktop", eye_size=(96, 108), max_fps=30))
        return displays[0]

    def press_space(live: LiveSession) -> None:  # the patient presses Space on the keyboard
        wid = str(int(displays[0].window._window))
        subprocess.run(["xdotool", "windowfocus", "--sync", wid], check=True, capture_output=True, timeout=30)
        subprocess.run(["xdotool", "key", "space"], check=True, capture_output=True, timeout=30)

    done = threading.Event()
    result: dict = {}

    def body() -> None:  # pyglet windows live on their own thread (see tests/environments/xwindow.py)
        try:
            result["run"] = run_session(tmp_path, {"display": "desktop", "protocol": short_protocol()},
                                        display_factory=make_display,
                                        observers=[when_phase(Phase.EXPOSURE, press_space),
                                                   when_phase(Phase.SAFE_PLACE, stop_after_safe_place)])
        except BaseException as exc:  # noqa: BLE001 - surfaced on the test thread
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=body, daemon=True).start()
    assert done.wait(HANG_GUARD_S), "the session never ended"
    if "error" in result:
        raise result["error"]
    log, runner = result["run"]
    assert_patient_stop_reached_the_session(log, runner, "desktop")


def test_recovery_shows_the_breathing_pacer_at_the_protocols_rate(render, tmp_path):
    """In the scene states the runtime publishes during recovery the pacer advances at the protocol's rate, and
    the rendered safe place changes with it."""
    from tests.therapy.conftest import run_virtual_session

    s = run_virtual_session(tmp_path, minutes=8, seed=0)
    spec, _ = load_protocol("heights-graded")
    rate = spec.recovery.breaths_per_min
    recovery = [sc for sc in s.scenes if sc.panel_text and sc.panel_text.startswith("Well done")]
    assert len(recovery) >= 60 and all(sc.breath_phase is not None and sc.safe_place for sc in recovery)
    steps = [(b.breath_phase - a.breath_phase) % 1.0 for a, b in zip(recovery, recovery[1:])]
    expected = [(rate / 60.0 * (b.t_s - a.t_s)) % 1.0 for a, b in zip(recovery, recovery[1:])]
    assert np.allclose(steps, expected, atol=1e-6)  # rate/60 of a breath per second of session time
    exhale = min(recovery, key=lambda sc: abs(sc.breath_phase - 0.0))
    inhale = min(recovery, key=lambda sc: abs(sc.breath_phase - 0.5))
    a, _ = render(exhale, size=(96, 96))
    b, _ = render(inhale, size=(96, 96))
    none, _ = render(dataclasses.replace(inhale, breath_phase=None), size=(96, 96))
    changed = (np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 8).sum()
    shown = (np.abs(none.astype(int) - b.astype(int)).max(axis=2) > 8).sum()
    assert changed >= 20 and shown >= 20, (changed, shown)  # the light grows and shrinks on screen


def test_the_runner_offers_the_patients_view_while_it_renders(tmp_path):
    """What the console shows as the patient's view: the next frame the session's render loop draws."""
    from environments.errors import RenderError

    got: dict = {}

    def look(live: LiveSession) -> None:
        try:
            # Exposure opens under the runtime's fade from black, so the frame right after the phase change is
            # black by design (a race that failed once in CI): keep the first frame drawn after the fade-in ended.
            # Each turn waits for a rendered frame, never for a sleep.
            for _ in range(int(HANG_GUARD_S * 30)):
                shown = live.snapshot().shown
                rgb = runner_box["runner"].request_rgb("left").result(timeout=HANG_GUARD_S)
                if shown is not None and shown.fade == 0.0:
                    got["rgb"] = rgb
                    break
        finally:
            live.commands.put(cmd.Stop(source="test", reason="looked"))

    runner_box: dict = {}

    def remember(live: LiveSession) -> None:
        runner_box.setdefault("live", live)

    with open_store(tmp_path) as store:
        store.add_patient("P01", birth_year=1990)
    runner = SessionRunner(
        SessionRequest(patient="P01", sensor="sim:2", minutes=8, data_dir=tmp_path, capture_frames=False, xdf=False,
                       lsl=False, display="headless", eye_size=(64, 72), fps=30.0, protocol=short_protocol()),
        clock=PacedClock(20.0), observers=[remember, when_phase(Phase.EXPOSURE, look)])
    runner_box["runner"] = runner
    runner.run()
    assert got["rgb"].shape == (72, 64, 3) and got["rgb"].std() > 5.0
    with pytest.raises(RenderError, match="renders nothing now"):
        runner.request_rgb("left").result(timeout=1)  # after the session: an answer at once, never a hang
