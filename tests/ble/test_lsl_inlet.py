"""LslInletSensor against real liblsl outlets on the loopback configuration."""

from __future__ import annotations

import uuid

import numpy as np
import pylsl
import pytest

from biofeedback.clock import LslClock
from biofeedback.errors import SensorUnavailableError
from biofeedback.records import EcgChunk, HeartSample, LinkEvent, LinkState
from biofeedback.sensors import open_sensor
from tests.ble.conftest import run_async, take_until

pytestmark = pytest.mark.lsl



def _outlet(stype: str, *, rate: float = 0.0, unit: str | None = None, fmt=None, name: str | None = None):
    sid = f"vrex-test-{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo(name or sid, stype, 1, rate, fmt or pylsl.cf_float32, sid)
    if unit:
        info.set_channel_units([unit])
    return pylsl.StreamOutlet(info), sid


def test_rr_stream_by_name_yields_rr_with_lsl_timestamps() -> None:
    outlet, sid = _outlet("RR")

    async def go():
        sensor = open_sensor(f"lsl:{sid}", LslClock(), timeout_s=5.0)
        records = sensor.records()
        await take_until(records, lambda r: isinstance(r, LinkEvent) and r.state is LinkState.CONNECTED)
        t0 = pylsl.local_clock()
        for k, rr in enumerate([812.0, 790.0, 805.0]):
            outlet.push_sample([rr], t0 + k)
        got = await take_until(records, lambda r: isinstance(r, HeartSample) and r.rr_ms == (805.0,))
        await sensor.close()
        return t0, [r for r in got if isinstance(r, HeartSample)]

    t0, samples = run_async(go(), 30)
    assert [s.rr_ms for s in samples] == [(812.0,), (790.0,), (805.0,)]
    assert [s.t_s for s in samples] == pytest.approx([t0, t0 + 1, t0 + 2], abs=0.01)


def test_ecg_stream_in_millivolts_is_converted_to_microvolts() -> None:
    outlet, sid = _outlet("ECG", rate=130.0, unit="mV")

    async def go():
        sensor = open_sensor(f"lsl:{sid}", LslClock())
        records = sensor.records()
        await take_until(records, lambda r: isinstance(r, LinkEvent))
        outlet.push_chunk([[0.5], [-1.25], [2.0]], pylsl.local_clock())
        got = await take_until(records, lambda r: isinstance(r, EcgChunk))
        await sensor.close()
        return got[-1]

    chunk = run_async(go(), 30)
    assert chunk.fs_hz == 130.0
    np.testing.assert_allclose(chunk.ecg_uv, [500.0, -1250.0, 2000.0])


def test_hr_stream_yields_hr_without_rr() -> None:
    outlet, sid = _outlet("HR")

    async def go():
        sensor = open_sensor(f"lsl:{sid}", LslClock())
        records = sensor.records()
        await take_until(records, lambda r: isinstance(r, LinkEvent))
        outlet.push_sample([64.0])
        got = await take_until(records, lambda r: isinstance(r, HeartSample))
        await sensor.close()
        return got[-1]

    sample = run_async(go(), 30)
    assert sample.hr_bpm == 64.0 and sample.rr_ms == ()


def test_missing_stream_and_wrong_type_are_clear_errors() -> None:
    _, sid = _outlet("EEG")
    with pytest.raises(SensorUnavailableError, match="no LSL stream named 'nope-.*visible"):
        open_sensor(f"lsl:nope-{uuid.uuid4().hex[:6]}", LslClock(), timeout_s=0.5)
    with pytest.raises(SensorUnavailableError, match="type 'EEG'; expected RR"):
        open_sensor(f"lsl:{sid}", LslClock(), timeout_s=5.0)


def test_lost_outlet_is_reported_and_the_same_source_id_reconnects() -> None:
    sid = f"vrex-test-{uuid.uuid4().hex[:8]}"

    def make():
        return pylsl.StreamOutlet(pylsl.StreamInfo("vrex-rr-restart", "RR", 1, 0.0, pylsl.cf_float32, sid))

    async def go():
        outlet = make()
        sensor = open_sensor(f"lsl:{sid}", LslClock())
        records = sensor.records()
        await take_until(records, lambda r: isinstance(r, LinkEvent))
        del outlet  # the streaming program quits
        lost = await take_until(records, lambda r: isinstance(r, LinkEvent) and r.state is LinkState.LOST, timeout_s=20)
        outlet = make()
        back = await take_until(records, lambda r: isinstance(r, LinkEvent) and r.state is LinkState.RECONNECTED, timeout_s=20)
        outlet.push_sample([777.0])
        got = await take_until(records, lambda r: isinstance(r, HeartSample))
        await sensor.close()
        return lost[-1], back[-1], got[-1]

    lost, back, sample = run_async(go(), 60)
    assert lost.state is LinkState.LOST and back.state is LinkState.RECONNECTED
    assert sample.rr_ms == (777.0,)
