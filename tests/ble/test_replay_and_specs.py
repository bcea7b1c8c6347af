"""ReplaySensor on the virtual clock, and open_sensor's spec parsing."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from biofeedback.clock import ScaledClock, VirtualClock
from biofeedback.errors import SensorSpecError, SensorUnavailableError
from biofeedback.records import EcgChunk, HeartSample, LinkState
from biofeedback.replay import ReplaySensor, load_recording
from biofeedback.sensor import HeartSensor
from biofeedback.sensors import open_sensor
from tests.ble.conftest import run_async


async def _drain(sensor, clock: VirtualClock):
    driver = asyncio.create_task(clock.run())
    try:
        return [r async for r in sensor.records()]
    finally:
        driver.cancel()


def test_rr_replay_plays_every_beat_at_its_time(tmp_path) -> None:
    rr = np.array([800, 810, 790, 1200, 400, 805], dtype=np.int64)
    path = tmp_path / "rr.npy"
    np.save(path, rr)
    clock = VirtualClock(start_s=100.0)
    sensor = ReplaySensor(path, clock)
    assert isinstance(sensor, HeartSensor)
    records = run_async(_drain(sensor, clock))
    assert records[0].state is LinkState.CONNECTED and records[-1].state is LinkState.CLOSED
    assert records[-1].detail == "end of file"
    beats = [r for r in records if isinstance(r, HeartSample)]
    assert [b.rr_ms for b in beats] == [(float(v),) for v in rr]
    assert [b.t_s for b in beats] == pytest.approx(list(100.0 + np.cumsum(rr) / 1000.0))
    assert clock.now() == pytest.approx(100.0 + rr.sum() / 1000.0)


def test_csv_with_header_and_comments(tmp_path) -> None:
    path = tmp_path / "rr.csv"
    path.write_text("# exported\nrr_ms\n812\n790, 805\n\n1001\n")
    assert load_recording(path).rr_ms.tolist() == [812.0, 790.0, 805.0, 1001.0]


def test_shared_nsrdb_and_mitbih_files(shared_data_dir) -> None:
    rr = load_recording(shared_data_dir / "nsrdb" / "SampleNNISeriesShort.npy")
    assert rr.kind == "rr" and 250 < rr.duration_s < 350
    ecg = load_recording(shared_data_dir / "mitbih208" / "ecg.dat")
    assert ecg.kind == "ecg" and ecg.fs_hz == 360.0 and ecg.duration_s == pytest.approx(300.0)
    assert 100 < np.std(ecg.ecg_uv) < 2000  # µV, not ADC units or mV
    bit = load_recording(shared_data_dir / "bitalino" / "SampleECG.txt")
    assert bit.fs_hz == 1000.0 and bit.kind == "ecg"


def test_ecg_replay_chunks_stamped_with_their_last_sample(tmp_path) -> None:
    fs = 130.0
    ecg = np.arange(1000, dtype=float)
    path = tmp_path / "ecg.npz"
    np.savez(path, ecg=ecg, fs_hz=fs)
    clock = VirtualClock()
    records = run_async(_drain(ReplaySensor(path, clock, chunk_s=0.5), clock))
    chunks = [r for r in records if isinstance(r, EcgChunk)]
    assert np.concatenate([c.ecg_uv for c in chunks]).tolist() == ecg.tolist()
    n = 0
    for c in chunks:
        n += len(c.ecg_uv)
        assert c.t_s == pytest.approx(n / fs)
        assert c.fs_hz == fs


def test_accelerated_replay_follows_the_clock_speed(tmp_path) -> None:
    path = tmp_path / "rr.txt"
    path.write_text("\n".join(["1000"] * 20))

    async def go():
        loop = asyncio.get_running_loop()
        clock = ScaledClock(200.0, time_fn=loop.time)
        t0 = clock.now()
        beats = [r async for r in ReplaySensor(path, clock).records() if isinstance(r, HeartSample)]
        return beats, t0, clock.now()

    beats, t0, t1 = run_async(go())
    assert len(beats) == 20 and t1 - t0 >= 20.0
    assert all(b.t_s - a.t_s == pytest.approx(1.0) for a, b in zip(beats, beats[1:]))


@pytest.mark.parametrize(
    "content,match",
    [(None, "not found"), ("", "no RR intervals"), ("0.8\n0.81\n", "look like seconds"), ("800\nabc\n", "not numeric")],
)
def test_unreadable_files_name_the_path_and_the_fix(tmp_path, content, match) -> None:
    path = tmp_path / "x.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SensorUnavailableError, match=match) as info:
        ReplaySensor(path, VirtualClock())
    assert str(path) in str(info.value)


def test_close_stops_a_replay(tmp_path) -> None:
    path = tmp_path / "rr.npy"
    np.save(path, np.full(1000, 800))
    clock = VirtualClock()

    async def go():
        driver = asyncio.create_task(clock.run())
        sensor = ReplaySensor(path, clock)
        out = []
        async for r in sensor.records():
            out.append(r)
            if len(out) == 5:
                await sensor.close()
        driver.cancel()
        return out

    out = run_async(go())
    assert len(out) == 6 and out[-1].state is LinkState.CLOSED and out[-1].detail == "closed by vrex"


def test_open_sensor_builds_each_offline_kind(tmp_path) -> None:
    path = tmp_path / "rr.npy"
    np.save(path, np.full(10, 800))
    clock = VirtualClock()
    assert isinstance(open_sensor(f"replay:{path}", clock), ReplaySensor)
    sim = open_sensor("sim:7", clock, drive=lambda: 0.5)
    assert "7" in sim.description and isinstance(sim, HeartSensor)
    assert isinstance(open_sensor("SIM", clock), HeartSensor)


def test_open_sensor_ble_kinds_construct_without_touching_the_radio() -> None:
    from biofeedback.ble import BleHeartRateSensor, PolarEcgSensor

    clock = VirtualClock()
    assert isinstance(open_sensor("ble:A0:9E:1A:12:34:56", clock), BleHeartRateSensor)
    polar = open_sensor("polar:Polar H10 1234", clock)
    assert isinstance(polar, PolarEcgSensor) and polar.target == "Polar H10 1234"


@pytest.mark.parametrize(
    "spec,match",
    [("", "no sensor given"), ("bluetooth:x", "unknown sensor kind 'bluetooth'"), ("ble:", "needs a device address"),
     ("sim:abc", "seed must be an integer"), ("replay:", "needs a file path"), ("lsl:", "needs a stream name")],
)
def test_bad_specs_name_the_value_and_list_valid_forms(spec, match) -> None:
    with pytest.raises(SensorSpecError, match=match) as info:
        open_sensor(spec, VirtualClock())
    assert repr(spec) in str(info.value)
    assert "replay:FILE" in str(info.value) and "polar:ADDRESS|NAME" in str(info.value)
