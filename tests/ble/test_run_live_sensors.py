"""``run`` on live sensors, in real time: a Bluetooth strap over bleak (bumble's virtual radio) and an LSL stream.

The whole session path runs as for a patient: the runner waits for a valid heart signal, records the baseline on
the LSL clock, starts exposure; the test stops it a few seconds into exposure (a real session would go on for
minutes). Each test takes about 40 s of real time: a live heart cannot be accelerated.
"""

from __future__ import annotations

import threading
import uuid

import pylsl
import pytest

from protocols.model import load_protocol
from tests.therapy.conftest import EventLog
from therapy import commands as cmd
from therapy.events import BaselineMeasured, HeartSampled, Phase, PhaseChanged, SensorEvent
from therapy.live import LiveSession
from therapy.runner import SessionRequest, SessionRunner
from therapy.store import open_store

BUMBLE_BACKEND = "biofeedback.ble.virtual:demo_backend"


def short_protocol():
    """A 40-s baseline (30 clean beats are needed: a 1 Hz strap at rest gives ~35), short holds, no recovery: the
    session path in ~50 s."""
    spec, _ = load_protocol("heights-graded")
    return spec.model_copy(update={
        "baseline": spec.baseline.model_copy(update={"duration_s": 40.0}),
        "exposure": spec.exposure.model_copy(update={"min_hold_s": 5.0}),
        "recovery": spec.recovery.model_copy(update={"duration_s": 0.0}),
    })


def run_live(tmp_path, sensor: str) -> tuple[EventLog, SessionRunner]:
    with open_store(tmp_path) as store:
        store.add_patient("P01", birth_year=1988)
    log = EventLog()

    def stop_in_exposure(live: LiveSession) -> None:
        seen = []

        def on_event(item) -> None:
            if isinstance(item, HeartSampled) and live.snapshot().phase is Phase.EXPOSURE:
                seen.append(item)
                if len(seen) == 3:  # three seconds into exposure
                    live.commands.put(cmd.Stop(source="test", reason="enough"))

        live.subscribe(on_event, lossless=True, name="stopper")

    runner = SessionRunner(
        SessionRequest(patient="P01", protocol=short_protocol(), sensor=sensor, minutes=1.5, display="none", xdf=False, lsl=False,
                       data_dir=tmp_path, signal_timeout_s=30.0),
        observers=[lambda live: live.subscribe(log, lossless=True, raw=True, name="log"), stop_in_exposure],
    )
    outcome = runner.run()
    assert outcome.status.value == "stopped", outcome
    return log, runner


def assert_a_live_session(log: EventLog, runner: SessionRunner) -> None:
    phases = [e.phase for e in log.events if isinstance(e, PhaseChanged)]
    assert phases[:2] == [Phase.BASELINE, Phase.EXPOSURE], phases
    (baseline,) = [e for e in log.events if isinstance(e, BaselineMeasured)]
    assert 40 < baseline.hr_mean_bpm < 120 and baseline.beats >= 30
    hr = [e for e in log.events if isinstance(e, HeartSampled)]
    assert len(hr) >= 30 and all(not e.stale for e in hr[3:]), [e for e in hr if e.stale][:3]
    # the session clock is the LSL clock: the record's times are pylsl.local_clock() seconds
    assert abs(hr[-1].t_s - pylsl.local_clock()) < 30.0
    with open_store(runner.prepare().store.path.parent) as store:
        (row,) = store.sessions("P01")
    assert row.status == "stopped"


@pytest.mark.ble
def test_run_on_a_bluetooth_strap_over_bleak(monkeypatch, tmp_path, need_bumble):
    monkeypatch.setenv("VREX_BLE_BACKEND", BUMBLE_BACKEND)
    log, runner = run_live(tmp_path, "ble:HRM-Dual")
    assert_a_live_session(log, runner)
    links = [e.state for e in log.events if isinstance(e, SensorEvent)]
    assert "closed" in links or "connected" in links
    assert "HRM-Dual" in runner.live.identity.sensor


@pytest.mark.lsl
def test_run_on_an_lsl_stream_of_rr_intervals(tmp_path):
    """Another program publishes beat-to-beat intervals on LSL (type RR, ms), one sample per beat at its time."""
    sid = f"vrex-test-strap-{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo(sid, "RR", 1, 0.0, pylsl.cf_float32, sid)
    info.set_channel_units(["ms"])
    outlet = pylsl.StreamOutlet(info)
    stop = threading.Event()

    def beat() -> None:
        rrs = [812.0, 790.0, 805.0, 830.0, 845.0, 820.0]
        k = 0
        while not stop.is_set():
            rr = rrs[k % len(rrs)]
            k += 1
            if stop.wait(rr / 1000.0):  # a heartbeat every RR: the strap's own pace, not the engine's
                return
            outlet.push_sample([rr], pylsl.local_clock())

    pusher = threading.Thread(target=beat, daemon=True)
    pusher.start()
    try:
        log, runner = run_live(tmp_path, f"lsl:{sid}")
    finally:
        stop.set()
        pusher.join(5)
    assert_a_live_session(log, runner)
    assert sid in runner.live.identity.sensor or "lsl" in runner.live.identity.sensor.lower()
