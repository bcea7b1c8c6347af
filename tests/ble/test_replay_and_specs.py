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


def test_in_repo_nsrdb_mitbih_and_bitalino_files(data_dir) -> None:
    rr = load_recording(data_dir / "nsrdb" / "SampleNNISeriesShort.npy")
    assert rr.kind == "rr" and 250 < rr.duration_s < 350
    ecg = load_recording(data_dir / "mitbih208" / "ecg.dat")
    assert ecg.kind == "ecg" and ecg.fs_hz == 360.0 and ecg.duration_s == pytest.approx(300.0)
    assert 100 < np.std(ecg.ecg_uv) < 2000  # µV, not ADC units or mV
    bit = load_recording(data_dir / "bitalino" / "SampleECG.txt")
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
     ("sim:abc", "seed must be an integer"), ("sim:-1", "seed must be a non-negative integer .*got -1"),
     ("replay:", "needs a file path"), ("lsl:", "needs a stream name")],
)
def test_bad_specs_name_the_value_and_list_valid_forms(spec, match) -> None:
    with pytest.raises(SensorSpecError, match=match) as info:
        open_sensor(spec, VirtualClock())
    assert repr(spec) in str(info.value)
    assert "replay:FILE" in str(info.value) and "polar:ADDRESS|NAME" in str(info.value)


# -- malformed files: one SensorUnavailableError naming the file and the problem, never a traceback --------

_OS_HEADER = '# {"20:16:02:26:60:88": {"sampling rate": %s, "resolution": [4, 1, 1, 1, 1, 10], "column": ["nSeq", "A2"]}}'


def _opensignals(header_line: str | None, rows: str = "1\t496\n2\t500\n3\t510\n") -> str:
    lines = ["# OpenSignals Text File Format"]
    if header_line is not None:
        lines.append(header_line)
    lines.append("# EndOfHeader")
    return "\n".join(lines) + "\n" + rows


def _write_npz(path, **arrays) -> None:
    with open(path, "wb") as f:  # np.savez would append .npz to a name without it
        np.savez(f, **arrays)


MALFORMED = {
    "opensignals_without_json_header": ("x.txt", _opensignals(None), "no '# {...}' JSON line"),
    "opensignals_header_not_json": ("x.txt", _opensignals("# {not json"), "cannot read replay file"),
    "opensignals_header_without_device": ("x.txt", _opensignals("# {}"), "names no device"),
    "opensignals_without_rate": ("x.txt", _opensignals('# {"a": {"resolution": [10]}}'), "no 'sampling rate'"),
    "opensignals_list_rate": ("x.txt", _opensignals(_OS_HEADER % "[1000, 1000]"), "'sampling rate' must be one number"),
    "opensignals_text_rate": ("x.txt", _opensignals(_OS_HEADER % '"fast"'), "'sampling rate' must be one number"),
    "opensignals_zero_rate": ("x.txt", _opensignals(_OS_HEADER % "0"), "needs a finite rate > 0"),
    "opensignals_bad_resolution": ("x.txt", _opensignals('# {"a": {"sampling rate": 1000, "resolution": "ten"}}'), "no ADC bit count"),
    "opensignals_no_rows": ("x.txt", _opensignals(_OS_HEADER % "1000", rows=""), "no sample rows"),
    "npz_array_rate": ("x.npz", dict(ecg=np.zeros(100), fs_hz=np.array([130.0, 130.0])), "'fs_hz' must be one number"),
    "npz_text_rate": ("x.npz", dict(ecg=np.zeros(100), fs=np.array("130 Hz")), "'fs' must be one number"),
    "npz_nan_rate": ("x.npz", dict(ecg=np.zeros(100), fs_hz=np.float64("nan")), "sampling rate nan Hz; it needs a finite rate > 0"),
    "npz_inf_rate": ("x.npz", dict(ecg=np.zeros(100), fs_hz=np.float64("inf")), "sampling rate inf Hz; it needs a finite rate > 0"),
    "npz_negative_rate": ("x.npz", dict(ecg=np.zeros(100), fs_hz=-130.0), "sampling rate -130.0 Hz"),
    "npz_two_channel_ecg": ("x.npz", dict(ecg=np.zeros((100, 2)), fs_hz=130.0), "one channel"),
    "npz_text_ecg": ("x.npz", dict(ecg=np.array(["a", "b"]), fs_hz=130.0), "must hold numbers"),
    "npz_nan_ecg": ("x.npz", dict(ecg=np.array([1.0, np.nan, 2.0]), fs_hz=130.0), "1 non-finite ECG sample(s)"),
    # RR values no recording of a heart can hold: named, with the range, never played as silence or overflow
    "npy_rr_1e308": ("x.npy", np.full(10, 1e308), "RR value 1e+308 ms (number 1) (and 9 more) is outside the plausible 20-20000 ms"),
    "npy_rr_2e6": ("x.npy", np.full(10, 2e6), "RR value 2000000 ms (number 1) (and 9 more) is outside the plausible 20-20000 ms"),
    "csv_one_rr_1e308": ("x.csv", "800\n810\n1e308\n790\n", "RR value 1e+308 ms (number 3) is outside the plausible 20-20000 ms"),
    "csv_rr_overflowing_to_inf": ("x.csv", "800\n1e309\n", "RR value inf (number 2) is not a positive, finite number of ms"),
    "csv_rr_nan": ("x.csv", "800\nnan\n810\n", "RR value nan (number 2) is not a positive, finite number of ms"),
    "npy_rr_negative": ("x.npy", np.full(10, -800.0), "RR value -800 (number 1) (and 9 more) is not a positive, finite number"),
    "npy_rr_median_too_slow": ("x.npy", np.full(10, 5000.0), "median RR 5000 ms is outside the 250-3000 ms"),
    "npy_rr_seconds": ("x.npy", np.full(10, 0.8), "look like seconds"),
    # .npy files that are not numeric arrays: said so, never a hint at allow_pickle (unpickling runs code)
    "npy_pickled_objects": ("x.npy", np.array([{"rr": 800}], dtype=object), "is not a numeric .npy array: it holds pickled Python objects"),
    "npy_garbage": ("x.npy", b"certainly not numpy " * 8, "is not a numeric .npy array: it has no .npy header"),
    "npy_truncated": ("x.npy", b"\x93NUMPY\x01\x00v\x00{'descr'", "is not a numeric .npy array: its header or data is damaged"),
    "npy_text": ("x.npy", np.array(["800", "810"]), "is not a numeric .npy array (it holds dtype <U3)"),
    "npy_two_d": ("x.npy", np.full((10, 3), 800.0), "holds a 10x3 array; RR intervals are one column"),
    "npz_pickled_rr": ("x.npz", dict(rr_ms=np.array([{"rr": 800}], dtype=object)), "holds pickled Python objects"),
}


def _make(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, dict):
        _write_npz(path, **content)
    elif isinstance(content, np.ndarray):
        np.save(path, content, allow_pickle=content.dtype == object)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_replay_files_are_one_clear_error(tmp_path, case) -> None:
    name, content, match = MALFORMED[case]
    path = _make(tmp_path, name, content)
    with pytest.raises(SensorUnavailableError) as info:
        ReplaySensor(path, VirtualClock())
    message = str(info.value)
    assert match in message, message
    assert str(path) in message and "\n" not in message
    assert "allow_pickle" not in message


def test_a_well_formed_opensignals_file_still_loads(tmp_path) -> None:
    path = _make(tmp_path, "x.txt", _opensignals(_OS_HEADER % "1000"))
    rec = load_recording(path)
    assert rec.fs_hz == 1000.0 and rec.ecg_uv is not None and rec.ecg_uv.size == 3
    # BITalino transfer function at 10 bits (resolution [..., 10]).
    assert rec.ecg_uv[0] == pytest.approx((496 / 1024 - 0.5) * 3.3 / 1100 * 1e6)


@pytest.mark.parametrize(
    "case",
    ["opensignals_without_json_header", "npz_array_rate", "npz_nan_rate", "npy_rr_1e308", "npy_rr_2e6",
     "npy_pickled_objects", "npy_garbage"],
)
def test_monitor_on_a_malformed_replay_file_is_one_line_and_exit_2(tmp_path, case) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    name, content, match = MALFORMED[case]
    path = _make(tmp_path, name, content)
    proc = subprocess.run(
        [sys.executable, "main.py", "monitor", "--sensor", f"replay:{path}", "--seconds", "5", "--speed", "50"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("vrex: error: ") and match in lines[0] and str(path) in lines[0]
    assert "allow_pickle" not in proc.stderr and "Warning" not in proc.stderr


def test_monitor_with_a_negative_simulator_seed_is_one_line_and_exit_2() -> None:
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    proc = subprocess.run(
        [sys.executable, "main.py", "monitor", "--sensor", "sim:-1", "--seconds", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("vrex: error: bad sensor spec 'sim:-1': the simulator seed must be a non-negative integer")
