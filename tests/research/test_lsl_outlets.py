"""vrex's LSL outlets through an independent pylsl inlet on the loopback configuration."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import numpy as np
import pylsl
import pytest
from pylsl.util import LostError

from tests.research.conftest import MITBIH_ECG, run_virtual_session
from therapy.commands import Stop
from therapy.events import BeatRecorded, ExposureSampled, HeartSampled, LevelChanged
from therapy.sinks.lsl_outlets import CLOSE_LINGER_S, LslOutletSink, attach_lsl
from therapy.sinks.streams import PHASE_CODES, SERIES_EVENTS, SessionStreams, marker_json

pytestmark = pytest.mark.lsl

FIXED = ("RR", "HR", "Exposure", "Markers")


def station(tag: str) -> str:
    return f"t{os.getpid()}{tag}"  # unique per test run: other programs' outlets on this machine never match


def resolve(stype: str, source_id: str) -> pylsl.StreamInfo:
    """By type (as a lab's viewer would), then by source_id (as a recorder does): both must find it."""
    by_type: list = []
    deadline = time.monotonic() + 30.0  # other programs' streams of this type may answer first; a busy machine
    while not by_type and time.monotonic() < deadline:  # answers late: ask again (guards a hang only)
        by_type = [i for i in pylsl.resolve_byprop("type", stype, 0, 1.0) if i.source_id() == source_id]
    assert by_type, f"no {stype} stream with source_id {source_id} among the streams of type {stype}"
    by_id = pylsl.resolve_byprop("source_id", source_id, 1, 10.0)
    assert by_id and by_id[0].type() == stype
    return by_id[0]


class Reader:
    """Independent inlets that pull on their own thread into lists, like a recorder."""

    def __init__(self, infos: dict[str, pylsl.StreamInfo]) -> None:
        self.inlets = {k: pylsl.StreamInlet(i, max_buflen=3600, recover=True) for k, i in infos.items()}
        self.infos = {k: inlet.info(timeout=30.0) for k, inlet in self.inlets.items()}
        for inlet in self.inlets.values():
            inlet.open_stream(timeout=30.0)
        self.data: dict[str, tuple[list, list]] = {k: ([], []) for k in infos}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            got = False
            for key, inlet in self.inlets.items():
                samples, stamps = inlet.pull_chunk(timeout=0.0, max_samples=100000)
                if stamps:
                    got = True
                    self.data[key][0].extend(samples)
                    self.data[key][1].extend(stamps)
            if not got:
                self._stop.wait(0.005)

    def wait_for(self, counts: dict[str, int], timeout_s: float = 180.0) -> None:
        """Until every stream has its expected count (the timeout only guards against a hang)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(len(self.data[k][1]) >= n for k, n in counts.items()):
                break
            self._stop.wait(0.01)
        self._stop.set()
        self._thread.join(5.0)
        for inlet in self.inlets.values():
            inlet.close_stream()


def channel_meta(info: pylsl.StreamInfo) -> list[tuple[str, str, str]]:
    out = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty():
        out.append((ch.child_value("label"), ch.child_value("unit"), ch.child_value("type")))
        ch = ch.next_sibling()
    return out


def test_every_stream_reaches_an_independent_inlet_without_loss_over_ten_minutes(tmp_path):
    st = station("a")
    readers: list[Reader] = []

    def attach(live) -> None:
        sink = attach_lsl(live, station=st)
        assert sink is not None
        readers.append(Reader({k: resolve(sink.specs[k].type, sid) for k, sid in sink.source_ids.items()}))

    session = run_virtual_session(tmp_path, minutes=10, seed=4, observers=[attach])
    reader = readers[0]
    ev = session.events
    beats, hr, exp = (session.of(BeatRecorded), session.of(HeartSampled), session.of(ExposureSampled))
    markers = [e for e in ev if not isinstance(e, SERIES_EVENTS)]
    reader.wait_for({"RR": len(beats), "HR": len(hr), "Exposure": len(exp), "Markers": len(markers)})
    data = reader.data
    assert len(hr) >= 590 and len(beats) > 500

    # no loss, no duplicates, in order, stamped at the moment of measurement
    np.testing.assert_array_equal(data["RR"][1], [b.t_s for b in beats])
    np.testing.assert_array_equal(data["RR"][0], [[b.rr_ms, b.nn_ms, b.artifact, b.gap_before] for b in beats])
    np.testing.assert_array_equal(data["HR"][1], [h.t_s for h in hr])
    got_hr = np.array(data["HR"][0], dtype=float)
    want_hr = np.array([[np.nan if v is None else v for v in (h.hr_bpm, h.arousal, h.rmssd_ms)] + [h.quality, h.stale]
                        for h in hr], dtype=float)
    np.testing.assert_array_equal(got_hr, want_hr)
    np.testing.assert_array_equal(np.array(data["Exposure"][0])[:, :3],
                                  [[e.level, e.intensity, PHASE_CODES[e.phase.value]] for e in exp])
    assert [m[0] for m in data["Markers"][0]] == [marker_json(e) for e in markers]
    np.testing.assert_array_equal(data["Markers"][1], [e.t_s for e in markers])

    # metadata: names, formats, rates, channels with label/unit/type, acquisition, session and patient
    infos = reader.infos
    assert infos["Markers"].nominal_srate() == 0 and infos["Markers"].channel_format() == pylsl.cf_string
    assert infos["RR"].nominal_srate() == 0 and infos["HR"].nominal_srate() == 1.0
    assert channel_meta(infos["RR"]) == [("RR", "ms", "RR"), ("NN", "ms", "NN"), ("artifact", "boolean", "flag"),
                                        ("gap_before", "boolean", "flag")]
    assert [u for _, u, _ in channel_meta(infos["HR"])] == ["bpm", "SD", "ms", "fraction", "boolean"]
    for key, info in infos.items():
        assert st in info.name() and key in info.name()
        assert info.source_id() == f"vrex.{st}.{key}"
        desc = info.desc()
        assert desc.child("acquisition").child_value("model") == "simulated strap"
        assert desc.child("session").child_value("session_id") == session.session_id
        assert desc.child("session").child_value("patient_code") == "P01"


def test_ecg_outlet_is_back_dated_from_the_sensor_clock(tmp_path):
    ecg_file = tmp_path / "ecg.dat"
    shutil.copy(MITBIH_ECG, ecg_file)
    st = station("e")
    readers: list[Reader] = []
    raw: list = []

    def attach(live) -> None:
        sink = attach_lsl(live, station=st, ecg_fs_hz=360.0)
        readers.append(Reader({"ECG": resolve("ECG", sink.source_ids["ECG"])}))

    run_virtual_session(tmp_path, minutes=8, sensor=f"replay:{ecg_file}", script=[(60.0, Stop(source="therapist"))],
                        observers=[attach, lambda live: live.subscribe(raw.append, lossless=True, raw=True)])
    chunks = [r.record for r in raw if type(getattr(r, "record", None)).__name__ == "EcgChunk"]
    total = sum(len(c.ecg_uv) for c in chunks)
    readers[0].wait_for({"ECG": total})
    values, stamps = readers[0].data["ECG"]
    info = readers[0].infos["ECG"]
    assert info.nominal_srate() == 360.0 and info.channel_format() == pylsl.cf_float32
    assert channel_meta(info) == [("ECG", "microvolts", "ECG")]
    np.testing.assert_array_equal(np.array(values)[:, 0], np.concatenate([c.ecg_uv for c in chunks]).astype(np.float32))
    ends = np.cumsum([len(c.ecg_uv) for c in chunks]) - 1
    np.testing.assert_allclose(np.array(stamps)[ends], [c.t_s for c in chunks], atol=1e-9)
    np.testing.assert_allclose(np.diff(stamps), 1 / 360.0, atol=1e-6)  # back-filled, not stamped on arrival


def test_a_recorder_keeps_receiving_after_the_outlets_restart(tmp_path):
    st = station("r")
    streams = SessionStreams(st, "session-a", "P01", "simulated strap (seed 0)", "heights", ())
    first = LslOutletSink(streams)
    sid = first.source_ids["HR"]
    inlet = pylsl.StreamInlet(resolve("HR", sid), max_buflen=60, recover=True)
    inlet.open_stream(timeout=10.0)
    hr = lambda t: HeartSampled(t, 70.0, 0.1, 40.0, 1.0, False)  # noqa: E731
    first(hr(1.0))
    sample, t = inlet.pull_sample(timeout=10.0)
    assert t == 1.0 and sample[0] == 70.0
    first.close()

    second = LslOutletSink(SessionStreams(st, "session-b", "P01", "simulated strap (seed 0)", "heights", ()))
    assert second.source_ids["HR"] == sid
    got: list[float] = []
    deadline = time.monotonic() + 30.0  # guards a hang only: liblsl reconnects by source_id on its own
    n = 0
    while not got and time.monotonic() < deadline:
        n += 1
        second(hr(1.0 + n))
        sample, t = inlet.pull_sample(timeout=0.2)
        if t is not None:
            got.append(t)
    second.close()
    assert got and got[0] > 1.0, "the recorder-style inlet never received the restarted outlet's samples"


def test_a_consumer_that_pulls_on_an_interval_still_gets_the_sessions_last_markers():
    """Once an outlet is gone liblsl gives an inlet nothing it has not pulled yet, so the outlets stay up for
    CLOSE_LINGER_S after the session's last item while someone is connected. The consumer here pulls half a
    second after the last markers were pushed and the sink was told to close (a recorder's pull interval, or a
    viewer short of CPU); without the linger the outlet is gone by then and its pull raises LostError."""
    st = station("c")
    sink = LslOutletSink(SessionStreams(st, "session-c", "P01", "simulated strap (seed 0)", "heights", ()))
    inlet = pylsl.StreamInlet(resolve("Markers", sink.source_ids["Markers"]), max_buflen=60, recover=False)
    inlet.open_stream(timeout=10.0)
    t = pylsl.local_clock()
    for i in range(10):
        sink(LevelChanged(t + i, "heights", i, None, "protocol", f"step {i}"))
    closer = threading.Thread(target=sink.close, daemon=True)
    closer.start()
    pull_interval_s = 0.5
    assert pull_interval_s < CLOSE_LINGER_S
    threading.Event().wait(pull_interval_s)  # the consumer's own pull interval (nothing of vrex's is awaited)
    try:
        samples, _ = inlet.pull_chunk(timeout=0.0)
    except LostError:
        samples = []
    closer.join(30.0)  # guards a hang only
    assert not closer.is_alive() and sink.outlets == {}
    assert [json.loads(m[0])["reason"] for m in samples] == [f"step {i}" for i in range(10)]
