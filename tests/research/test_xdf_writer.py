"""vrex's XDF writer against pyxdf, the independent reader LabRecorder users load their files with."""

from __future__ import annotations

import numpy as np

import pyxdf  # a declared dependency: never skipped

from therapy.sinks.streams import Channel, StreamSpec  # noqa: E402
from therapy.sinks.xdf import XdfWriter, chunk, varlen  # noqa: E402


def spec(key: str, fmt: str, rate: float, n: int) -> StreamSpec:
    return StreamSpec(key, f"vrex test {key}", key, f"vrex.test.{key}", fmt, rate,
                      tuple(Channel(f"c{i}", "ms", "misc") for i in range(n)),
                      {"acquisition": {"manufacturer": "vrex", "model": "m", "serial_number": "s"}})


def test_varlen_and_chunk_layout():
    assert varlen(5) == b"\x01\x05"
    assert varlen(300) == b"\x04" + (300).to_bytes(4, "little")
    assert varlen(2**33)[:1] == b"\x08"
    # length counts tag (2) + stream id (4) + content
    assert chunk(3, b"abc", 7) == b"\x01\x09" + b"\x03\x00" + b"\x07\x00\x00\x00" + b"abc"


def test_pyxdf_reads_every_format_and_deduced_timestamps(tmp_path):
    path = tmp_path / "t.xdf"
    w = XdfWriter(path, file_info={"session_id": "abc"})
    w.add_stream(spec("ECG", "float32", 130.0, 1))
    w.add_stream(spec("RR", "double64", 0.0, 2))
    w.add_stream(spec("Markers", "string", 0.0, 1))
    ecg = np.arange(260, dtype=np.float32).reshape(-1, 1) * 1.5
    t_ecg = 100.0 + np.arange(260) / 130.0
    w.write_samples("ECG", t_ecg[:130], ecg[:130])
    w.write_samples("ECG", t_ecg[130:], ecg[130:])
    w.write_samples("RR", np.array([100.5, 101.3]), np.array([[812.5, 800.0], [790.25, 790.25]]))
    w.write_samples("Markers", np.array([100.7]), [['{"kind":"X","é":1}']])
    w.close()
    streams, header = pyxdf.load_xdf(str(path), dejitter_timestamps=False, synchronize_clocks=False)
    assert header["info"]["version"] == ["1.0"] and header["info"]["session_id"] == ["abc"]
    by = {s["info"]["type"][0]: s for s in streams}
    assert by["ECG"]["time_series"].dtype == np.float32
    np.testing.assert_array_equal(by["ECG"]["time_series"], ecg)
    np.testing.assert_allclose(by["ECG"]["time_stamps"], t_ecg, atol=1e-9)
    np.testing.assert_array_equal(by["RR"]["time_series"], [[812.5, 800.0], [790.25, 790.25]])
    assert by["Markers"]["time_series"] == [['{"kind":"X","é":1}']]
    ch = by["RR"]["info"]["desc"][0]["channels"][0]["channel"]
    assert [c["label"][0] for c in ch] == ["c0", "c1"] and ch[0]["unit"] == ["ms"]
    assert by["ECG"]["footer"]["info"]["sample_count"] == ["260"]
    assert by["RR"]["info"]["source_id"] == ["vrex.test.RR"]


def test_nothing_reaches_the_file_before_flush_and_whole_chunks_after(tmp_path):
    path = tmp_path / "t.xdf"
    w = XdfWriter(path)
    w.add_stream(spec("RR", "double64", 0.0, 1))
    size = path.stat().st_size
    w.write_samples("RR", np.array([1.0]), np.array([[2.0]]))
    assert path.stat().st_size == size
    w.flush()
    assert path.stat().st_size > size
    streams, _ = pyxdf.load_xdf(str(path))  # no footer yet: still loads
    assert streams[0]["time_series"].tolist() == [[2.0]]
    w.close()
