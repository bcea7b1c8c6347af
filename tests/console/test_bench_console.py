"""``bench console`` runs a real session, console server and watching browsers and measures through them
(timings are reported, not asserted: this machine is shared)."""

from __future__ import annotations

import json
import threading
import time

from bench.console import _SceneStamps
from environments.scene_state import SceneState, SceneStateBox
from main import run


def test_scene_stamps_give_the_first_matching_state_put_after_a_moment():
    box = SceneStateBox(SceneState(environment="heights", level=2))
    stamps = _SceneStamps(box)
    box.put(SceneState(environment="heights", level=3))
    since = time.perf_counter()
    threading.Timer(0.05, box.put, [SceneState(environment="heights", level=3, intensity=0.1)]).start()
    t = stamps.first(since, lambda s: s.level + s.intensity > 3.0, 5, "the rise")
    assert t >= since and box.get().intensity == 0.1  # the level-3 state put before ``since`` does not count


def test_bench_console_measures_both_phases_with_a_real_browser_process(tmp_path, capsys):
    out = tmp_path / "console.json"
    assert run(["bench", "console", "--rounds", "1", "--commands", "2", "--observers", "2", "--speed", "10",
                "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for phase in ("no_observers", "with_observers"):
        assert result[phase]["level_ms"]["n"] == 2 and result[phase]["stop_ms"]["n"] == 2
        assert result[phase]["frames"] > 0
    assert result["with_observers"]["observer_messages"] > 0  # the browsers really watched
    assert set(result["change_95ci"]) == {"level_ms", "stop_ms", "frame_cpu_ms", "http_ms"}
    assert result["with_observers"]["console_cpu_pct"]["n"] == 1  # one loaded phase, its console threads timed
    assert "STOP" in capsys.readouterr().out  # the table (rich wraps its cells to the terminal width)


def test_bench_console_refuses_a_negative_observer_count(capsys):
    assert run(["bench", "console", "--observers", "-1"]) == 2
    assert "--observers >= 0" in capsys.readouterr().err


def test_bench_console_without_a_render_loop_measures_the_command_path_alone(tmp_path):
    out = tmp_path / "console.json"
    assert run(["bench", "console", "--rounds", "1", "--commands", "2", "--observers", "1", "--speed", "10",
                "--no-render", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["render"] is False and result["settings"]["view"] is False
    assert result["with_observers"]["frames"] == 0 and result["change"]["frame_cpu_ms"] is None
    assert result["with_observers"]["stop_ms"]["n"] == 2 and result["with_observers"]["observer_messages"] > 0
