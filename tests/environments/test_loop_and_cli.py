"""The render loop on a headless display, captures, and the CLI through main.run."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

import main
from environments.scene_state import InputKind, PatientInput, SceneState, SceneStateBox

pytestmark = pytest.mark.gl


def _run_in_thread(box, on_input, **display_kwargs):
    """Start a headless RenderLoop on its own thread (it creates and owns the GL context there)."""
    from environments.displays import open_display
    from environments.render_loop import RenderLoop

    ready = threading.Event()
    out: dict = {}
    stop = threading.Event()

    def body():
        display = open_display("headless", **display_kwargs)
        try:
            out["loop"] = RenderLoop(display, box, on_input)
            ready.set()
            out["stats"] = out["loop"].run(stop)
        except BaseException as exc:  # surfaced by the test
            out["error"] = exc
            ready.set()
        finally:
            display.close()

    t = threading.Thread(target=body)
    t.start()
    assert ready.wait(30)
    return t, stop, out


def test_loop_captures_frames_and_follows_scene_switches(tmp_path):
    box = SceneStateBox(SceneState(environment="heights", level=10))
    t, stop, out = _run_in_thread(box, lambda e: None, eye_size=(96, 96), max_fps=240)
    try:
        first = out["loop"].request_capture(tmp_path / "a.png", "both").result(timeout=30)
        box.put(SceneState(environment="heights", level=10, safe_place=True, breath_phase=0.3, seq=1))
        # Captures are served after the frame that follows the request: wait until that frame shows the switch.
        for _ in range(50):
            second = out["loop"].request_capture(tmp_path / "b.png", "left").result(timeout=30)
            if out["loop"].renderer is not None and out["loop"].renderer.environment == "safe_place":
                second = out["loop"].request_capture(tmp_path / "b.png", "left").result(timeout=30)
                break
    finally:
        stop.set()
        t.join(30)
    assert "error" not in out
    a = np.asarray(Image.open(first))
    b = np.asarray(Image.open(second))
    assert a.shape == (96, 192, 3) and b.shape == (96, 96, 3)
    assert np.abs(a[:, :96].astype(int) - b.astype(int)).mean() > 10
    stats = out["stats"]
    assert stats.frames >= 2 and stats.cpu_ms_median is not None and stats.draw_calls_per_eye >= 3


def test_loop_survives_a_failing_input_handler_and_a_bad_state():
    from environments.displays import open_display
    from environments.render_loop import RenderLoop

    box = SceneStateBox(SceneState(environment="heights", level=2))
    display = open_display("headless", eye_size=(32, 32))
    calls = []

    def bad_handler(event: PatientInput) -> None:
        calls.append(event)
        raise RuntimeError("handler bug")

    try:
        loop = RenderLoop(display, box, bad_handler)
        box.put(SceneState(environment="no_such_place", level=0, seq=1))
        stats = loop.run(threading.Event(), max_frames=3)
        assert stats.frames == 3  # an unknown environment shows the safe place instead of stopping
        display.close()  # a closed display ends the next loop at once, with QUIT delivered (even to a failing handler)
        loop2 = RenderLoop(display, box, bad_handler)
        loop2.run(threading.Event())
        assert loop2.frames == 0
        assert calls and calls[-1].kind is InputKind.QUIT
    finally:
        display.close()


def test_capture_rejects_an_unknown_eye():
    from environments.errors import RenderError
    from environments.render_loop import RenderLoop

    loop = RenderLoop(display=None, scene=SceneStateBox(SceneState("heights", 0)), on_input=lambda e: None)
    with pytest.raises(RenderError, match="middle"):
        loop.request_capture("x.png", "middle")


def test_envs_render_writes_a_png(tmp_path, capsys):
    out = tmp_path / "deep" / "h.png"
    rc = main.run(["envs", "render", "heights", "--level", "7", "--out", str(out), "--eye", "both", "--size", "80x90",
                   "--msaa", "0"])
    assert rc == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (90, 160, 3) and img.std() > 20
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["envs", "render", "spidres", "--out", "x.png"], "unknown environment 'spidres'"),
        (["envs", "render", "heights", "--level", "40", "--out", "x.png"], "use 0..12"),
        (["envs", "render", "heights", "--size", "big", "--out", "x.png"], "WIDTHxHEIGHT"),
    ],
)
def test_envs_render_user_errors_exit_2_with_one_line(argv, needle, capsys):
    assert main.run(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and err.count("\n") == 1


def test_envs_render_to_an_unwritable_path_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main.run(["envs", "render", "safe_place", "--out", str(blocker / "x.png"), "--size", "32x32"]) == 2
    assert "writable" in capsys.readouterr().err


def test_envs_list_names_every_environment(capsys):
    assert main.run(["envs", "list", "--levels"]) == 0
    out = capsys.readouterr().out
    assert "heights" in out and "safe_place" in out and "Glass floor" in out


def test_bench_render_quick_writes_the_documented_json(tmp_path):
    out = tmp_path / "bench.json"
    assert main.run(["bench", "render", "--quick", "--environment", "heights", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"device", "rows"}
    assert set(data["device"]) == {"renderer", "gl_version"}
    assert [r["level"] for r in data["rows"]] == [0, 12]
    for row in data["rows"]:
        assert set(row) == {"environment", "level", "eye_size", "msaa", "frames", "frame_ms_median",
                            "python_ms_median", "draw_calls_per_eye", "instances"}
        assert row["eye_size"] == [128, 128] and row["frames"] == 5
        assert row["frame_ms_median"] > 0 and 0 < row["python_ms_median"] <= row["frame_ms_median"]
        assert 3 <= row["draw_calls_per_eye"] <= 40 and row["instances"] > 100


def test_envs_show_headless_runs_frames(capsys):
    assert main.run(["envs", "show", "safe_place", "--display", "headless", "--frames", "3", "--size", "32x32"]) == 0
    assert "3 frames" in capsys.readouterr().out
