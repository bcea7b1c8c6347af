"""vrex's BLE sensors through bleak's real BleakScanner/BleakClient over the bumble virtual radio."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from biofeedback.ble import BleHeartRateSensor, PolarEcgSensor, ReconnectPolicy, scan_heart_sensors
from biofeedback.clock import ScaledClock, VirtualClock
from biofeedback.errors import SensorUnavailableError
from biofeedback.polar_pmd import MIN_MTU_FOR_ECG, START_ECG_130HZ, STOP_ECG
from biofeedback.records import EcgChunk, HeartSample, LinkEvent, LinkState, PayloadError
from tests.ble.conftest import run_async, take_until

pytestmark = [pytest.mark.ble, pytest.mark.usefixtures("need_bumble")]

CAPTURES = {
    "10482c03": (72, (792.97,), None),
    "10495e039603": (73, (841.80, 896.48), None),
    "164d1603": (77, (771.48,), True),
    "10382d043500": (56, (1043.95, 51.76), None),
}
H10 = ("Polar H10 A1B2C3D4", "F0:00:00:00:00:02")
DUAL = ("HRM-Dual 1234", "F0:00:00:00:00:01")
FAST = ReconnectPolicy(scan_window_s=2.0, connect_timeout_s=5.0, backoff_initial_s=0.1, backoff_max_s=0.5, give_up_after_s=30.0, first_scan_s=5.0)


def _radio(**kw):
    from biofeedback.ble.virtual import VirtualRadio, VirtualStrap

    h10 = VirtualStrap(*H10, with_pmd=True, **kw.pop("h10", {}))
    dual = VirtualStrap(*DUAL, body_sensor_location=2)
    return VirtualRadio([dual, h10], **kw), dual, h10


def _is_link(state):
    return lambda r: isinstance(r, LinkEvent) and r.state is state


def test_scan_lists_both_straps_with_what_they_offer() -> None:
    radio, _, _ = _radio()
    found = run_async(scan_heart_sensors(0.6, backend=radio.backend()))
    by_addr = {s.address: s for s in found}
    assert set(by_addr) == {H10[1], DUAL[1]}
    assert by_addr[H10[1]].name == H10[0] and by_addr[H10[1]].offers_ecg and by_addr[H10[1]].offers_hr
    assert by_addr[DUAL[1]].offers_hr and not by_addr[DUAL[1]].offers_ecg
    assert by_addr[DUAL[1]].rssi_dbm == radio.rssi_dbm


def test_hr_strap_by_address_streams_real_captures_on_the_injected_clock() -> None:
    async def go():
        radio, dual, _ = _radio()
        clock = VirtualClock(start_s=1234.5)  # nobody advances it: every stamp must be exactly its now()
        sensor = BleHeartRateSensor(DUAL[1], clock, backend=radio.backend(), policy=FAST)
        records = sensor.records()
        first = await take_until(records, _is_link(LinkState.CONNECTED))
        await asyncio.wait_for(dual.subscribed.wait(), 5)
        for payload in CAPTURES:
            await dual.notify_hr(bytes.fromhex(payload))
        got = await take_until(records, lambda r: isinstance(r, HeartSample) and r.hr_bpm == 56)
        await sensor.close()
        rest = [r async for r in records]
        return sensor, first, got, rest

    sensor, first, got, rest = run_async(go())
    assert first[-1].detail.startswith(DUAL[1])
    assert sensor.body_sensor_location == "wrist"
    samples = [r for r in got if isinstance(r, HeartSample)]
    assert len(samples) == 4
    for s, (hr, rr, contact) in zip(samples, CAPTURES.values()):
        assert s.hr_bpm == hr and s.sensor_contact is contact
        assert s.rr_ms == pytest.approx(rr, abs=0.01)
        assert s.t_s == 1234.5
        assert "HRM-Dual" in s.source
    # our own close is not a lost link (bleak calls disconnected_callback for it too)
    assert [r.state for r in rest if isinstance(r, LinkEvent)] == [LinkState.CLOSED]


def test_malformed_payloads_are_records_not_crashes() -> None:
    bad = ["", "10482c", "20482c03", "01", "0848", "ff" * 30]

    async def go():
        radio, dual, _ = _radio()
        sensor = BleHeartRateSensor("HRM-Dual", VirtualClock(), backend=radio.backend(), policy=FAST)
        records = sensor.records()
        await take_until(records, _is_link(LinkState.CONNECTED))
        await asyncio.wait_for(dual.subscribed.wait(), 5)
        for payload in bad:
            await dual.notify_hr(bytes.fromhex(payload))
        await dual.notify_hr(bytes.fromhex("10482c03"))
        got = await take_until(records, lambda r: isinstance(r, HeartSample))
        await sensor.close()
        return sensor, got

    sensor, got = run_async(go())
    errors = [r for r in got if isinstance(r, PayloadError)]
    assert [e.payload_hex for e in errors] == [bytes.fromhex(p).hex(" ") for p in bad]
    assert "odd number of RR bytes" in errors[1].problem
    assert "reserved flag bits" in errors[2].problem
    assert sensor.payload_errors == len(bad)
    assert got[-1].rr_ms == pytest.approx((792.97,), abs=0.01)


def test_dropped_link_keeps_rescanning_while_away_then_reconnects_and_streams() -> None:
    """A drop ends in LOST, rescans that find nothing while the strap is away, then RECONNECTED and
    data again. Each step waits on its event (bounded only against a hang): how fast it comes back
    is ``bench link``'s figure, not something a test on a loaded machine can judge."""

    async def go():
        radio, dual, _ = _radio()
        base = radio.backend()
        scan_ended = asyncio.Event()

        class Scanner(base.scanner):
            async def stop(self):
                await super().stop()
                scan_ended.set()

        backend = type(base)(scanner=Scanner, client=base.client)
        sensor = BleHeartRateSensor(DUAL[1], VirtualClock(), backend=backend, policy=FAST)
        records = sensor.records()
        await take_until(records, _is_link(LinkState.CONNECTED))
        await asyncio.wait_for(dual.subscribed.wait(), 5)
        await dual.notify_hr(bytes.fromhex("10482c03"))
        await take_until(records, lambda r: isinstance(r, HeartSample))
        await dual.drop()
        lost = await take_until(records, _is_link(LinkState.LOST))
        scan_ended.clear()
        await asyncio.wait_for(scan_ended.wait(), 30)  # one rescan window passed without the strap
        dual.subscribed.clear()
        await dual.reappear()
        back = await take_until(records, _is_link(LinkState.RECONNECTED), timeout_s=30)
        await asyncio.wait_for(dual.subscribed.wait(), 5)
        await dual.notify_hr(bytes.fromhex("10495e039603"))
        streaming = await take_until(records, lambda r: isinstance(r, HeartSample))
        await sensor.close()
        rest = [r async for r in records]
        return lost, back, streaming, rest

    lost, back, streaming, rest = run_async(go())
    assert lost[-1].state is LinkState.LOST
    assert not any(isinstance(r, LinkEvent) for r in back[:-1]), back  # nothing between LOST and RECONNECTED
    assert back[-1].state is LinkState.RECONNECTED and back[-1].detail.startswith(DUAL[1])
    assert streaming[-1].rr_ms == pytest.approx((841.80, 896.48), abs=0.01)
    assert [r.state for r in rest if isinstance(r, LinkEvent)] == [LinkState.CLOSED]


def test_gives_up_when_the_strap_never_comes_back() -> None:
    policy = ReconnectPolicy(scan_window_s=0.3, backoff_initial_s=0.05, backoff_max_s=0.1, give_up_after_s=1.0, first_scan_s=5.0)

    async def go():
        radio, dual, _ = _radio()
        sensor = BleHeartRateSensor(DUAL[1], VirtualClock(), backend=radio.backend(), policy=policy)
        records = sensor.records()
        await take_until(records, _is_link(LinkState.CONNECTED))
        await dual.drop()
        tail = [r async for r in records]  # ends by itself after GIVEN_UP
        return tail

    tail = run_async(go())
    states = [r.state for r in tail if isinstance(r, LinkEvent)]
    assert states[0] is LinkState.LOST
    assert LinkState.GIVEN_UP in states


def test_unknown_strap_is_a_clear_user_error() -> None:
    policy = ReconnectPolicy(first_scan_s=0.5)

    async def go():
        radio, _, _ = _radio()
        sensor = BleHeartRateSensor("No Such Strap", VirtualClock(), backend=radio.backend(), policy=policy)
        async for _ in sensor.records():
            pass

    with pytest.raises(SensorUnavailableError, match="No Such Strap.*devices"):
        run_async(go())


def test_polar_ecg_over_large_mtu_with_real_frames_and_hr() -> None:
    rng = np.random.default_rng(3)
    frames = [rng.integers(-8_000_000, 8_000_000, size=73) for _ in range(3)]
    frames[0][:3] = [-1, 0, 8_388_607]

    async def go():
        radio, _, h10 = _radio()
        loop = asyncio.get_running_loop()
        clock = ScaledClock(1.0, time_fn=loop.time)
        sensor = PolarEcgSensor("Polar H10", clock, backend=radio.backend(), policy=FAST)
        records = sensor.records()
        connected = await take_until(records, _is_link(LinkState.CONNECTED))
        await asyncio.wait_for(h10.ecg_streaming.wait(), 5)
        sent = []
        for f in frames:
            sent.append(await h10.send_ecg_frame(f))
        await h10.notify_hr(bytes.fromhex("10482c03"))
        got = await take_until(records, lambda r: isinstance(r, HeartSample))
        arrival_end = loop.time()
        await sensor.close()
        return sensor, h10, connected, sent, got, arrival_end

    sensor, h10, connected, sent, got, arrival_end = run_async(go())
    mtu = int(connected[-1].detail.rsplit(" ", 1)[-1])
    assert mtu >= MIN_MTU_FOR_ECG
    assert all(len(s) == 229 for s in sent)
    assert h10.pmd_commands[0] == START_ECG_130HZ
    assert h10.pmd_commands[-1] == STOP_ECG
    chunks = [r for r in got if isinstance(r, EcgChunk)]
    assert len(chunks) == 3
    for chunk, f in zip(chunks, frames):
        assert chunk.fs_hz == 130.0
        np.testing.assert_array_equal(chunk.ecg_uv, f.astype(float))
        assert chunk.t_s <= arrival_end
    # a burst arrives faster than the sensor clock runs: mapped times never run ahead of arrival
    assert chunks[0].t_s <= chunks[1].t_s <= chunks[2].t_s
    assert [r for r in got if isinstance(r, HeartSample)][0].hr_bpm == 72


def test_polar_frames_cut_by_a_small_mtu_are_reported() -> None:
    async def go():
        radio, _, h10 = _radio(max_mtu=23)
        sensor = PolarEcgSensor(H10[1], VirtualClock(), backend=radio.backend(), policy=FAST)
        records = sensor.records()
        await take_until(records, _is_link(LinkState.CONNECTED))
        await asyncio.wait_for(h10.ecg_streaming.wait(), 5)
        await h10.send_ecg_frame(list(range(73)))
        await h10.send_pmd_raw(b"\x00\x01")
        got = await take_until(records, lambda r: isinstance(r, PayloadError) and len(r.payload_hex) < 10)
        await sensor.close()
        return got

    got = run_async(go())
    errors = [r for r in got if isinstance(r, PayloadError)]
    assert len(errors) == 2
    assert "MTU" in errors[0].problem and len(bytes.fromhex(errors[0].payload_hex)) == 20
    assert "shorter than its 10-byte header" in errors[1].problem


def test_polar_refusing_to_start_is_a_clear_error() -> None:
    async def go():
        radio, _, _ = _radio(h10={"pmd_start_status": 3})
        sensor = PolarEcgSensor(H10[1], VirtualClock(), backend=radio.backend(), policy=FAST)
        async for _ in sensor.records():
            pass

    with pytest.raises(SensorUnavailableError, match="refused to start ECG: status 3 \\(not supported\\)"):
        run_async(go())


def test_polar_on_a_strap_without_pmd_says_to_use_ble() -> None:
    async def go():
        radio, _, _ = _radio()
        sensor = PolarEcgSensor(DUAL[1], VirtualClock(), backend=radio.backend(), policy=FAST)
        async for _ in sensor.records():
            pass

    with pytest.raises(SensorUnavailableError, match="no Polar PMD service.*'ble:'"):
        run_async(go())


def test_polar_reconnect_restarts_ecg() -> None:
    async def go():
        radio, _, h10 = _radio()
        loop = asyncio.get_running_loop()
        sensor = PolarEcgSensor(H10[1], ScaledClock(1.0, time_fn=loop.time), backend=radio.backend(), policy=FAST)
        records = sensor.records()
        await take_until(records, _is_link(LinkState.CONNECTED))
        await asyncio.wait_for(h10.ecg_streaming.wait(), 5)
        await h10.drop()
        await take_until(records, _is_link(LinkState.LOST))
        h10.sensor_time_ns = 10**9  # the strap power-cycled: its clock restarted near 2000-01-01
        await h10.reappear()
        await take_until(records, _is_link(LinkState.RECONNECTED), timeout_s=15)
        await asyncio.wait_for(h10.ecg_streaming.wait(), 5)
        before = loop.time()
        await h10.send_ecg_frame([5] * 73)
        got = await take_until(records, lambda r: isinstance(r, EcgChunk))
        after = loop.time()
        await sensor.close()
        return h10, got[-1], before, after

    h10, chunk, before, after = run_async(go())
    assert h10.pmd_commands.count(START_ECG_130HZ) == 2
    assert before <= chunk.t_s <= after  # mapped afresh from its arrival, not 20 years off


def test_close_during_set_up_still_ends_the_stream_cleanly() -> None:
    async def go():
        radio, _, h10 = _radio()
        await radio.start()
        sensor = PolarEcgSensor(H10[1], VirtualClock(), backend=radio.backend(), policy=FAST)
        records = sensor.records()
        first = asyncio.ensure_future(records.__anext__())
        await asyncio.wait_for(h10.connected.wait(), 5)  # link up, set-up under way
        await sensor.close()
        out = [await first] + [r async for r in records]
        return out

    out = run_async(go())
    states = [r.state for r in out if isinstance(r, LinkEvent)]
    assert states[-1] is LinkState.CLOSED


def test_random_payloads_over_the_air_never_break_the_stream() -> None:
    rng = np.random.default_rng(11)
    hr_payloads = [rng.integers(0, 256, size=int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 21, size=150)]
    pmd_payloads = [rng.integers(0, 256, size=int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 240, size=60)]

    async def go():
        radio, _, h10 = _radio()
        sensor = PolarEcgSensor(H10[1], VirtualClock(), backend=radio.backend(), policy=FAST)
        records = sensor.records()
        await take_until(records, _is_link(LinkState.CONNECTED))
        await asyncio.wait_for(h10.ecg_streaming.wait(), 5)
        for p in hr_payloads:
            await h10.notify_hr(p)
        for p in pmd_payloads:
            await h10.send_pmd_raw(p)
        await h10.notify_hr(bytes.fromhex("10482c03"))
        got = await take_until(records, lambda r: isinstance(r, HeartSample) and r.rr_ms == pytest.approx((792.97,), abs=0.01) and r.hr_bpm == 72 and r.sensor_contact is None)
        await sensor.close()
        return got

    got = run_async(go())
    data_records = [r for r in got if isinstance(r, (HeartSample, EcgChunk, PayloadError))]
    # one record per notification, whatever its bytes: a sample, a chunk or a counted error
    assert len(data_records) == len(hr_payloads) + len(pmd_payloads) + 1
    assert any(isinstance(r, PayloadError) for r in data_records)


def test_a_late_disconnect_callback_from_a_failed_set_up_leaves_the_next_link_alone() -> None:
    """Some stacks report a disconnect after ``disconnect()`` returned (a disconnect slower than
    vrex's cap is cancelled; the OS finishes it later). That callback belongs to the failed
    attempt's client: it must not mark the next, healthy connection as lost."""
    from bleak.exc import BleakError

    async def go():
        radio, dual, _ = _radio()
        base = radio.backend()
        clients: list = []
        late: list = []
        failed_gone = asyncio.Event()

        class Client(base.client):
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                clients.append(self)
                self.fail_setup = len(clients) == 2  # the first reconnect attempt

            async def start_notify(self, characteristic, callback, **kw):
                if self.fail_setup:
                    raise BleakError("subscription refused (test)")
                await super().start_notify(characteristic, callback, **kw)

            def _on_disconnection(self, *args):
                if not self.fail_setup:
                    return super()._on_disconnection(*args)
                report, self._disconnected_callback = self._disconnected_callback, None
                super()._on_disconnection(*args)
                late.append(report)  # the OS will report this one later
                failed_gone.set()

        backend = type(base)(scanner=base.scanner, client=Client)
        loop = asyncio.get_running_loop()
        sensor = BleHeartRateSensor(DUAL[1], ScaledClock(1.0, time_fn=loop.time), backend=backend, policy=FAST)
        records = sensor.records()
        await take_until(records, _is_link(LinkState.CONNECTED))
        await dual.drop()
        await take_until(records, _is_link(LinkState.LOST))
        await dual.reappear()
        await asyncio.wait_for(failed_gone.wait(), 10)  # attempt 1 connected, failed its set-up, disconnected
        await dual.reappear()  # the strap advertises again after that disconnect
        back = await take_until(records, _is_link(LinkState.RECONNECTED), timeout_s=15)
        await asyncio.wait_for(dual.subscribed.wait(), 5)
        assert len(clients) == 3 and len(late) == 1
        late[0]()  # the failed attempt's disconnect is reported now, on a healthy link
        await asyncio.sleep(0)
        await dual.notify_hr(bytes.fromhex("10482c03"))
        after = await take_until(records, lambda r: isinstance(r, HeartSample) or _is_link(LinkState.LOST)(r))
        healthy = clients[2].is_connected and dual.connected.is_set()
        await sensor.close()
        return back, after, healthy

    back, after, healthy = run_async(go())
    assert back[-1].state is LinkState.RECONNECTED
    assert not any(isinstance(r, LinkEvent) and r.state is LinkState.LOST for r in after), after
    assert isinstance(after[-1], HeartSample) and after[-1].hr_bpm == 72
    assert healthy


def test_a_lost_report_for_a_link_that_is_still_up_disconnects_it_before_reconnecting() -> None:
    """If the stack reports the current link lost while it is in fact up, vrex must not leave it
    connected and unowned (its notifications would keep arriving next to the new link's)."""

    async def go():
        radio, dual, _ = _radio()
        base = radio.backend()
        clients: list = []

        class Client(base.client):
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                clients.append(self)

        backend = type(base)(scanner=base.scanner, client=Client)
        loop = asyncio.get_running_loop()
        sensor = BleHeartRateSensor(DUAL[1], ScaledClock(1.0, time_fn=loop.time), backend=backend, policy=FAST)
        records = sensor.records()
        await take_until(records, _is_link(LinkState.CONNECTED))
        await asyncio.wait_for(dual.subscribed.wait(), 5)
        clients[0]._disconnected_callback()  # a spurious report: the link is up
        lost = await take_until(records, _is_link(LinkState.LOST))
        first_still_up = clients[0].is_connected
        await dual.reappear()
        back = await take_until(records, _is_link(LinkState.RECONNECTED), timeout_s=15)
        await asyncio.wait_for(dual.subscribed.wait(), 5)
        links_up = len(dual.device.connections)
        await sensor.close()
        return lost, first_still_up, back, links_up

    lost, first_still_up, back, links_up = run_async(go())
    assert lost[-1].state is LinkState.LOST and back[-1].state is LinkState.RECONNECTED
    assert not first_still_up
    assert links_up == 1
