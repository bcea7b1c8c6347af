"""Every session writes ``session.xdf``: its values equal the store's, and a file cut mid-write still loads."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import pyxdf  # a declared dependency: never skipped

from tests.research.conftest import MITBIH_ECG, STATION, run_virtual_session  # noqa: E402
from therapy.commands import Stop  # noqa: E402
from therapy.sinks.streams import PHASE_CODES, SERIES_EVENTS  # noqa: E402
from therapy.sinks.xdf import SESSION_XDF, attach_xdf, session_folder  # noqa: E402


def samples_chunks(data: bytes) -> list[tuple[int, int]]:
    """(start, end) byte offsets of every Samples chunk, by walking the chunk layout of XDF 1.0."""
    out, pos = [], 4
    while pos < len(data):
        width = data[pos]
        length = int.from_bytes(data[pos + 1: pos + 1 + width], "little")
        body = pos + 1 + width
        if int.from_bytes(data[body: body + 2], "little") == 3:
            out.append((pos, body + length))
        pos = body + length
    return out


def load(path, **kw):
    streams, header = pyxdf.load_xdf(str(path), dejitter_timestamps=False, synchronize_clocks=False, **kw)
    return {s["info"]["type"][0]: s for s in streams}, header


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xdf-session")
    session = run_virtual_session(folder, minutes=8, seed=2,
                                  observers=[lambda live: attach_xdf(live, folder, station=STATION)])
    return session, session_folder(folder, session.session_id) / SESSION_XDF


def test_session_xdf_equals_the_store(recorded):
    session, path = recorded
    streams, header = load(path)
    assert header["info"]["session_id"] == [session.session_id]
    assert set(streams) == {"RR", "HR", "Exposure", "Markers"}  # the simulated strap gives RR, no ECG

    hr_rows = session.query("SELECT t_s, hr_bpm, arousal, rmssd_ms, quality, stale FROM hr_samples "
                            "WHERE session_id=? ORDER BY rowid", session.session_id)
    hr = streams["HR"]
    assert len(hr_rows) > 300 and len(hr["time_stamps"]) == len(hr_rows)
    want = np.array([[np.nan if v is None else v for v in r] for r in hr_rows], dtype=float)
    np.testing.assert_array_equal(hr["time_stamps"], want[:, 0])
    np.testing.assert_array_equal(hr["time_series"], want[:, 1:])

    beats = np.array(session.query("SELECT t_s, rr_ms, nn_ms, artifact, gap_before FROM beats WHERE session_id=? "
                                   "ORDER BY rowid", session.session_id), dtype=float)
    rr = streams["RR"]
    np.testing.assert_array_equal(rr["time_stamps"], beats[:, 0])
    np.testing.assert_array_equal(rr["time_series"], beats[:, 1:])

    series = {cls.__name__ for cls in SERIES_EVENTS}
    events = [(t, k, json.loads(p)) for t, k, p in session.query(
        "SELECT t_s, kind, payload_json FROM events WHERE session_id=? ORDER BY seq", session.session_id)
        if k not in series]
    markers = [json.loads(m[0]) for m in streams["Markers"]["time_series"]]
    types = [type(e).__name__ for e in session.events if not isinstance(e, SERIES_EVENTS)]
    assert [m["event"] for m in markers] == types and len(markers) == len(events)
    assert {"SessionEnded", "LevelChanged", "SudsRecorded", "PhaseChanged"} <= set(types)
    for m, (t, _, payload) in zip(markers, events):
        assert m == {"event": m["event"], "t_s": round(t, 6), **payload}
    np.testing.assert_array_equal(streams["Markers"]["time_stamps"], [t for t, _, _ in events])

    exp = streams["Exposure"]
    sampled = [e for e in session.events if type(e).__name__ == "ExposureSampled"]
    assert len(exp["time_stamps"]) == len(sampled)
    np.testing.assert_array_equal(exp["time_series"][:, 0], [e.level for e in sampled])
    np.testing.assert_array_equal(exp["time_series"][:, 2], [PHASE_CODES[e.phase.value] for e in sampled])
    labels = [c["label"][0] for c in exp["info"]["desc"][0]["channels"][0]["channel"]]
    assert labels[:4] == ["level", "intensity", "phase", "safe_place"] and "dial_height_m" in labels
    height = labels.index("dial_height_m")
    assert exp["info"]["desc"][0]["channels"][0]["channel"][height]["unit"] == ["m"]
    from environments import registry

    want = [registry.dial_values("heights", e.level, e.intensity, e.dials)["height_m"]
            if e.environment == "heights" else np.nan for e in sampled]
    np.testing.assert_array_equal(exp["time_series"][:, height], want)  # the level's setting as shown
    assert np.nanmax(want) > np.nanmin(want)


def test_stream_headers_carry_metadata_and_footers(recorded):
    session, path = recorded
    streams, _ = load(path)
    for key, s in streams.items():
        info = s["info"]
        assert info["source_id"] == [f"vrex.{STATION}.{key}"]
        assert STATION in info["name"][0] and key in info["name"][0]
        desc = info["desc"][0]
        assert desc["session"][0]["session_id"] == [session.session_id]
        assert desc["session"][0]["patient_code"] == ["P01"]
        assert desc["acquisition"][0]["model"] == ["simulated strap"]
        assert int(s["footer"]["info"]["sample_count"][0]) == len(s["time_stamps"])
    assert streams["Markers"]["info"]["nominal_srate"] == ["0.0"]
    assert streams["Markers"]["info"]["channel_format"] == ["string"]
    units = [c["unit"][0] for c in streams["HR"]["info"]["desc"][0]["channels"][0]["channel"]]
    assert units == ["bpm", "SD", "ms", "fraction", "boolean"]


def test_a_file_cut_mid_write_loads_up_to_the_cut(recorded, tmp_path):
    _, path = recorded
    full, _ = load(path)
    data = path.read_bytes()
    samples = samples_chunks(data)
    for fraction in (0.31, 0.5, 0.77, 0.93):
        # the middle of the Samples chunk nearest the fraction: where a write cut short by a full disk or a
        # power loss would most likely end (pyxdf skips a damaged Samples chunk but not a cut header or offset)
        start, end = min(samples, key=lambda c: abs(c[0] - fraction * len(data)))
        cut = tmp_path / f"cut-{fraction}.xdf"
        cut.write_bytes(data[: (start + end) // 2])
        streams, _ = load(cut)
        assert "HR" in streams and len(streams["HR"]["time_stamps"]) > 0
        for key, s in streams.items():
            n = len(s["time_stamps"])
            assert n <= len(full[key]["time_stamps"])
            # a sample cut inside its values may come back damaged: only the last one of the cut chunk
            np.testing.assert_array_equal(s["time_stamps"][: n - 1], full[key]["time_stamps"][: n - 1])
            if key != "Markers":
                np.testing.assert_array_equal(s["time_series"][: n - 1], full[key]["time_series"][: n - 1])
        assert len(streams["HR"]["time_stamps"]) >= 0.8 * fraction * len(full["HR"]["time_stamps"])


def test_ecg_sensor_adds_an_ecg_stream_with_every_sample_at_its_time(tmp_path):
    ecg_file = tmp_path / "ecg.dat"
    shutil.copy(MITBIH_ECG, ecg_file)
    raw = []
    session = run_virtual_session(
        tmp_path, minutes=8, sensor=f"replay:{ecg_file}", script=[(90.0, Stop(source="therapist"))],
        observers=[lambda live: attach_xdf(live, tmp_path, station=STATION),
                   lambda live: live.subscribe(raw.append, lossless=True, raw=True, name="raw")])
    streams, _ = load(session_folder(tmp_path, session.session_id) / SESSION_XDF)
    ecg = streams["ECG"]
    assert ecg["info"]["nominal_srate"] == ["360.0"] and ecg["info"]["channel_format"] == ["float32"]
    assert [c["unit"][0] for c in ecg["info"]["desc"][0]["channels"][0]["channel"]] == ["microvolts"]
    chunks = [r.record for r in raw if type(getattr(r, "record", None)).__name__ == "EcgChunk"]
    values = np.concatenate([c.ecg_uv for c in chunks]).astype(np.float32)
    np.testing.assert_array_equal(ecg["time_series"][:, 0], values)
    last_of_chunk = np.cumsum([len(c.ecg_uv) for c in chunks]) - 1
    np.testing.assert_allclose(ecg["time_stamps"][last_of_chunk], [c.t_s for c in chunks], atol=1e-6)
    np.testing.assert_allclose(np.diff(ecg["time_stamps"]), 1 / 360.0, atol=1e-6)
