"""``replay-lsl``: a recorded session back on LSL with its metadata, consumed by vrex's own LSL inlet sensor."""

from __future__ import annotations

import asyncio
import json
import os
import threading

import numpy as np
import pytest

from biofeedback.clock import LslClock
from biofeedback.lsl import LslInletSensor
from biofeedback.records import EcgChunk, HeartSample
from main import run
from therapy.export.recorded import load_session, read_xdf
from therapy.sinks.player import LslPlayer
from therapy.store import open_store

pytestmark = pytest.mark.lsl


def consume(sensor: LslInletSensor, player: LslPlayer, want, enough) -> list:
    """Run the sensor until ``enough(records)``; the player starts once the sensor's inlet is connected."""
    stop = threading.Event()
    records: list = []

    async def main() -> None:
        play = None
        async for record in sensor.records():
            if play is None:  # CONNECTED: the inlet is open, nothing the player sends can be missed
                play = threading.Thread(target=player.run, args=(stop,), daemon=True)
                play.start()
            if isinstance(record, want):
                records.append(record)
                if enough(records):
                    break
        await sensor.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 120.0))  # the timeout only guards against a hang
    finally:
        stop.set()
        player.close()
    return records


def test_lsl_inlet_sensor_receives_the_replayed_ecg(ecg_session):
    session, folder = ecg_session
    streams = read_xdf(folder / "sessions" / session.session_id / "session.xdf")
    ecg = next(s for s in streams if s.spec.type == "ECG")
    station = f"rp{os.getpid()}e"
    player = LslPlayer(streams, station=station, origin="test", speed=1.0)
    sensor = LslInletSensor(f"vrex.{station}.ECG", LslClock(), timeout_s=30.0)
    info = sensor.info
    assert info.type() == "ECG" and info.nominal_srate() == 360.0 and info.name() == f"vrex {station} ECG"
    n = 3 * 360
    got = consume(sensor, player, EcgChunk, lambda r: sum(len(c.ecg_uv) for c in r) >= n)
    values = np.concatenate([c.ecg_uv for c in got])[:n]
    assert all(c.fs_hz == 360.0 for c in got)
    np.testing.assert_allclose(values, np.asarray(ecg.values)[:n, 0], rtol=1e-6)
    # the replay keeps the recorded spacing: each chunk's last sample is 1/360 s per sample after the previous
    ends = np.array([c.t_s for c in got])
    sizes = np.array([len(c.ecg_uv) for c in got])
    # within liblsl's clock synchronisation, which the inlet sensor applies (its offset estimate moves by µs)
    np.testing.assert_allclose(np.diff(ends), sizes[1:] / 360.0, atol=1e-3)


def test_lsl_inlet_sensor_receives_the_replayed_rr_of_a_stored_session(recorded_session):
    session, folder = recorded_session
    with open_store(folder) as store:
        data = load_session(store, session.session_id)
    station = f"rp{os.getpid()}r"
    player = LslPlayer(data.streams("recorded"), station=station, origin="test", speed=40.0)
    sensor = LslInletSensor(f"vrex.{station}.RR", LslClock(), timeout_s=30.0)
    desc = sensor.info  # metadata travels with the replay
    assert desc.type() == "RR" and desc.source_id() == f"vrex.{station}.RR"
    got = consume(sensor, player, HeartSample, lambda r: len(r) >= 60)
    np.testing.assert_array_equal([r.rr_ms[0] for r in got[:60]], data.beats[:60, 1])
    beat_gaps = np.diff(data.beats[:60, 0]) / 40.0
    np.testing.assert_allclose(np.diff([r.t_s for r in got[:60]]), beat_gaps, atol=1e-3)  # clock sync: µs moves


def test_replayed_metadata_is_the_recording_s(recorded_session):
    session, folder = recorded_session
    streams = read_xdf(folder / "sessions" / session.session_id / "session.xdf")
    player = LslPlayer(streams, station="rpmeta", origin="x.xdf")
    try:
        for spec, s in zip(player.specs, player.streams):
            assert spec.channels == s.spec.channels and spec.type == s.spec.type
            assert spec.desc["session"] == s.spec.desc["session"]
            assert spec.desc["replay"]["original_source_id"] == s.spec.source_id
    finally:
        player.close()


def test_replay_lsl_command_plays_a_session_and_refuses_bad_sources(recorded_session, tmp_path, capsys, monkeypatch):
    session, folder = recorded_session
    monkeypatch.setenv("COLUMNS", "250")  # the whole table on one line per stream
    code = run(["replay-lsl", session.session_id[:8], "--speed", "5000", "--station", f"rp{os.getpid()}c",
                "--data-dir", str(folder)])
    out = capsys.readouterr().out
    assert code == 0 and f"vrex.rp{os.getpid()}c.HR" in out and "published" in out
    bad = tmp_path / "bad.xdf"
    bad.write_text("not xdf")
    for source, expected in ((str(bad), "cannot read XDF file"), (str(tmp_path / "none.xdf"), "not found")):
        assert run(["replay-lsl", source, "--data-dir", str(folder)]) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("vrex: error:")]
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in err


def test_monitor_consumes_a_replayed_session(recorded_session, tmp_path):
    """``monitor --sensor lsl:vrex.<station>.RR`` on the replay, in real time (a few seconds of beats)."""
    session, folder = recorded_session
    with open_store(folder) as store:
        data = load_session(store, session.session_id)
    station = f"rp{os.getpid()}m"
    player = LslPlayer(data.streams("recorded"), station=station, origin="test", speed=1.0)
    stop = threading.Event()
    play = threading.Thread(target=player.run, args=(stop,), daemon=True)
    play.start()
    out = tmp_path / "monitor.json"
    try:
        code = run(["monitor", "--sensor", f"lsl:vrex.{station}.RR", "--seconds", "6", "--json", str(out)])
    finally:
        stop.set()
        play.join(10)
        player.close()
    assert code == 0
    summary = json.loads(out.read_text())
    assert summary["link"] == "connected" and summary["state"]["beats"] >= 3
    assert 40 <= summary["state"]["hr_bpm"] <= 140


def test_run_consumes_a_replayed_session_as_a_live_lsl_sensor(recorded_session, tmp_path):
    """A researcher replays a recorded session on LSL; ``run --sensor lsl:...`` runs a new session on it in real
    time, as on a live strap (baseline, exposure), through the runner."""
    from tests.ble.test_run_live_sensors import assert_a_live_session, run_live

    session, folder = recorded_session
    with open_store(folder) as store:
        data = load_session(store, session.session_id)
    station = f"rp{os.getpid()}run"
    player = LslPlayer(data.streams("recorded"), station=station, origin="test", speed=1.0)
    stop = threading.Event()
    threading.Thread(target=player.run, args=(stop,), daemon=True).start()
    try:
        log, runner = run_live(tmp_path / "live", f"lsl:vrex.{station}.RR")
    finally:
        stop.set()
        player.close()
    assert_a_live_session(log, runner)
    assert f"vrex.{station}.RR" in runner.live.identity.sensor or "lsl" in runner.live.identity.sensor.lower()
