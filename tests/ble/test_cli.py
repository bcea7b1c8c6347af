"""``devices``, ``monitor`` and ``bench link`` through main.py, and where the device libraries live."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import main
from tests.conftest import REPO_ROOT

BUMBLE_BACKEND = "biofeedback.ble.virtual:demo_backend"


def test_each_device_library_is_imported_by_one_package_only() -> None:
    """bleak and bumble live in biofeedback/ble/, pylsl in biofeedback/lsl.py: the rest of vrex (and
    its tests of everything else) never needs Bluetooth or liblsl."""
    import re

    owners = {"bleak": "biofeedback/ble/", "bumble": "biofeedback/ble/", "pylsl": "biofeedback/lsl.py"}
    pattern = re.compile(r"^\s*(?:import|from)\s+(bleak|bumble|pylsl)\b", re.MULTILINE)
    strays = []
    product = ("biofeedback", "therapy", "environments", "protocols", "clinician_console", "bench")
    files = [REPO_ROOT / "main.py", *(f for top in product for f in (REPO_ROOT / top).rglob("*.py"))]
    for path in files:
        rel = path.relative_to(REPO_ROOT).as_posix()
        for lib in set(pattern.findall(path.read_text(encoding="utf-8", errors="replace"))):
            if not rel.startswith(owners[lib]):
                strays.append(f"{rel} imports {lib}")
    assert not strays, strays


@pytest.mark.ble
def test_the_old_virtual_ble_backend_path_still_works(monkeypatch, need_bumble) -> None:
    from biofeedback.ble import BleBackend, backend_from_env

    monkeypatch.setenv("VREX_BLE_BACKEND", "biofeedback.virtual_ble:demo_backend")
    assert isinstance(backend_from_env(), BleBackend)


def test_devices_without_an_adapter_is_one_line_and_exit_2() -> None:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/vrex-test-bus"}
    env.pop("VREX_BLE_BACKEND", None)
    proc = subprocess.run(
        [sys.executable, "main.py", "devices", "--timeout", "1"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("vrex: error: no Bluetooth adapter found (BlueZ/DBus not available)")
    assert "--sensor sim" in lines[0]


@pytest.mark.ble
def test_devices_lists_the_virtual_straps(monkeypatch, capsys, tmp_path, need_bumble) -> None:
    monkeypatch.setenv("VREX_BLE_BACKEND", BUMBLE_BACKEND)
    out_json = tmp_path / "devices.json"
    assert main.run(["devices", "--timeout", "0.6", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "Polar H10 A1B2C3D4" in out and "HRM-Dual 1234" in out
    assert "polar:F0:00:00:00:00:02" in out and "ble:F0:00:00:00:00:01" in out
    sensors = {s["name"]: s for s in json.loads(out_json.read_text())["sensors"]}
    assert sensors["Polar H10 A1B2C3D4"]["offers_ecg"] is True
    assert sensors["HRM-Dual 1234"]["offers_ecg"] is False and sensors["HRM-Dual 1234"]["offers_hr"] is True


def test_monitor_replay_accelerated(tmp_path, capsys, data_dir) -> None:
    out_json = tmp_path / "m.json"
    rc = main.run(["monitor", "--sensor", f"replay:{data_dir / 'nsrdb' / 'SampleNNISeriesShort.npy'}",
                   "--seconds", "120", "--speed", "50", "--json", str(out_json)])
    assert rc == 0
    result = json.loads(out_json.read_text())
    rr = np.load(data_dir / "nsrdb" / "SampleNNISeriesShort.npy")
    expected_beats = int(np.searchsorted(np.cumsum(rr) / 1000.0, 120.0))
    assert abs(result["counts"]["beats"] - expected_beats) <= 3  # the cleaner holds the last beats back
    assert 55 < result["state"]["hr_bpm"] < 90 and result["state"]["stale"] is False
    assert result["link"] == "connected" and result["session_s"] == pytest.approx(120.0, abs=0.5)
    out = capsys.readouterr().out
    assert "HR (from RR)" in out and "signal quality" in out and "link" in out


def test_monitor_replay_ends_with_the_file(tmp_path) -> None:
    path = tmp_path / "short.txt"
    path.write_text("\n".join(["800"] * 30))
    out_json = tmp_path / "m.json"
    assert main.run(["monitor", "--sensor", f"replay:{path}", "--speed", "100", "--json", str(out_json)]) == 0
    result = json.loads(out_json.read_text())
    assert result["source_ended"] is True and result["link"] == "closed"


def test_monitor_sim(tmp_path) -> None:
    out_json = tmp_path / "m.json"
    assert main.run(["monitor", "--sensor", "sim:4", "--seconds", "90", "--speed", "60", "--json", str(out_json)]) == 0
    result = json.loads(out_json.read_text())
    assert result["counts"]["beats"] > 60 and result["state"]["hr_bpm"] is not None


@pytest.mark.ble
def test_monitor_ble_strap_over_the_virtual_radio(monkeypatch, tmp_path, need_bumble) -> None:
    monkeypatch.setenv("VREX_BLE_BACKEND", BUMBLE_BACKEND)
    out_json = tmp_path / "m.json"
    assert main.run(["monitor", "--sensor", "ble:HRM-Dual", "--seconds", "4", "--json", str(out_json)]) == 0
    result = json.loads(out_json.read_text())
    assert result["link"] == "closed" or result["link"] == "connected"
    assert result["counts"]["beats"] >= 1


def test_monitor_user_errors_exit_2(capsys) -> None:
    assert main.run(["monitor", "--sensor", "replay:/nonexistent/rr.npy"]) == 2
    assert "replay file '/nonexistent/rr.npy' not found" in capsys.readouterr().err
    assert main.run(["monitor", "--sensor", "ble:AA:BB:CC:DD:EE:FF", "--speed", "10"]) == 2
    assert "only applies to sim and replay" in capsys.readouterr().err


@pytest.mark.ble
def test_bench_link_writes_reconnect_times(tmp_path, capsys, need_bumble) -> None:
    out_json = tmp_path / "link.json"
    rc = main.run(["bench", "link", "--drops", "2", "--max-absent", "1.5", "--json", str(out_json)])
    result = json.loads(out_json.read_text())
    assert len(result["drops"]) == 2
    assert all(r["streaming_s"] is not None and r["streaming_s"] >= r["link_back_s"] > 0 for r in result["drops"])
    assert rc == (0 if result["summary"]["target_met"] else 1)
    assert "reconnect" in capsys.readouterr().out
