"""``python main.py export``: XDF, tidy CSV, BIDS and the HTML report, each checked by an independent reader."""

from __future__ import annotations

import csv
import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from main import run
from tests.conftest import require
from therapy.export.recorded import load_session
from therapy.store import open_store

import pyxdf  # a declared dependency: never skipped


def export(session, folder, fmt, out, capsys=None) -> int:
    return run(["export", session.session_id[:10], "--format", fmt, "--out", str(out), "--data-dir", str(folder)])


def store_hr(session) -> np.ndarray:
    rows = session.query("SELECT t_s, hr_bpm, arousal, rmssd_ms, quality, stale FROM hr_samples WHERE session_id=? "
                         "ORDER BY rowid", session.session_id)
    return np.array([[np.nan if v is None else v for v in r] for r in rows], dtype=float)


def store_beats(session) -> np.ndarray:
    return np.array(session.query("SELECT t_s, rr_ms, nn_ms, artifact, gap_before FROM beats WHERE session_id=? "
                                  "ORDER BY rowid", session.session_id), dtype=float)


def test_xdf_export_equals_the_store_and_has_footers(recorded_session, tmp_path):
    session, folder = recorded_session
    assert export(session, folder, "xdf", tmp_path) == 0
    streams, header = pyxdf.load_xdf(str(tmp_path / f"{session.session_id}.xdf"), dejitter_timestamps=False)
    by = {s["info"]["type"][0]: s for s in streams}
    hr = store_hr(session)
    np.testing.assert_array_equal(by["HR"]["time_stamps"], hr[:, 0])
    np.testing.assert_array_equal(by["HR"]["time_series"], hr[:, 1:])
    beats = store_beats(session)
    np.testing.assert_array_equal(by["RR"]["time_series"], beats[:, 1:])
    assert all("footer" in s for s in streams)
    live, _ = pyxdf.load_xdf(str(folder / "sessions" / session.session_id / "session.xdf"), dejitter_timestamps=False)
    live_by = {s["info"]["type"][0]: s for s in live}
    assert by["Markers"]["time_series"] == live_by["Markers"]["time_series"]  # rebuilt == what was sent live
    assert by["HR"]["info"]["source_id"] == live_by["HR"]["info"]["source_id"]  # the recording station's ids


def test_csv_export_is_tidy_with_a_readme_of_every_column(recorded_session, tmp_path):
    session, folder = recorded_session
    assert export(session, folder, "csv", tmp_path) == 0
    with (tmp_path / "hr.csv").open() as f:
        rows = list(csv.DictReader(f))
    hr = store_hr(session)
    assert len(rows) == len(hr)
    assert [float(r["t_s"]) for r in rows] == hr[:, 0].tolist()
    assert [float(r["hr_bpm"]) if r["hr_bpm"] else np.nan for r in rows][5:] == hr[5:, 1].tolist()
    with (tmp_path / "beats.csv").open() as f:
        beats = list(csv.DictReader(f))
    assert [float(b["rr_ms"]) for b in beats] == store_beats(session)[:, 1].tolist()
    with (tmp_path / "suds.csv").open() as f:
        suds = list(csv.DictReader(f))
    assert len(suds) == len(session.query("SELECT * FROM suds WHERE session_id=?", session.session_id)) > 0
    readme = (tmp_path / "README.md").read_text()
    for name in ("hr.csv", "beats.csv", "exposure.csv", "events.csv", "suds.csv", "levels.csv"):
        with (tmp_path / name).open() as f:
            header = next(csv.reader(f))
        for col in header:
            documented = col if not col.startswith("dial_") else "dial_<name>"
            assert f"| {documented} |" in readme, f"{name}: column {col} is not in the README"


def _physio_check(folder, stem) -> tuple[dict, np.ndarray]:
    side = json.loads((folder / f"{stem}.json").read_text())
    for key in ("SamplingFrequency", "StartTime", "Columns"):
        assert key in side, f"{stem}.json lacks {key}"
    for col in side["Columns"]:
        assert "Units" in side[col] or "Description" in side[col]
    with gzip.open(folder / f"{stem}.tsv.gz", "rt") as f:
        lines = f.read().splitlines()
    assert not re.match(r"[A-Za-z]", lines[0]), "physio files have no header row"
    rows = np.array([[np.nan if v == "n/a" else float(v) for v in line.split("\t")] for line in lines])
    assert rows.shape[1] == len(side["Columns"])
    return side, rows


def test_bids_export_is_structurally_valid(ecg_session, tmp_path):
    session, folder = ecg_session
    assert export(session, folder, "bids", tmp_path) == 0
    desc = json.loads((tmp_path / "dataset_description.json").read_text())
    assert desc["Name"] and desc["BIDSVersion"]
    assert (tmp_path / "participants.tsv").read_text().splitlines() == ["participant_id\tpatient_code",
                                                                       "sub-P01\tP01"]
    beh = tmp_path / "sub-P01" / f"ses-{session.session_id[:8]}" / "beh"
    name = re.compile(r"sub-P01_ses-[0-9a-f]{8}_task-heightsgraded(_recording-[a-z]+)?_(physio\.tsv\.gz|physio\.json|"
                      r"events\.tsv|events\.json|beat\.tsv|beat\.json)$")
    for path in beh.iterdir():
        assert name.match(path.name), path.name
    stem = f"sub-P01_ses-{session.session_id[:8]}_task-heightsgraded"
    side, ecg = _physio_check(beh, f"{stem}_recording-ecg_physio")
    assert side["SamplingFrequency"] == 360.0 and side["Columns"] == ["cardiac"] and side["cardiac"]["Units"] == "uV"
    xdf, _ = pyxdf.load_xdf(str(folder / "sessions" / session.session_id / "session.xdf"), dejitter_timestamps=False)
    live_ecg = next(s for s in xdf if s["info"]["type"] == ["ECG"])
    assert len(ecg) == len(live_ecg["time_stamps"])
    np.testing.assert_allclose(ecg[:, 0], live_ecg["time_series"][:, 0], rtol=1e-5)
    assert side["StartTime"] == pytest.approx(live_ecg["time_stamps"][0] - session.t0_s, abs=1e-6)
    side, hr = _physio_check(beh, f"{stem}_recording-hr_physio")
    assert side["SamplingFrequency"] == 1.0 and side["heart_rate"]["Units"] == "bpm"
    stored = store_hr(session)
    assert abs(len(hr) - len(stored)) <= 2
    _physio_check(beh, f"{stem}_recording-exposure_physio")
    with (beh / f"{stem}_events.tsv").open() as f:
        header = f.readline().rstrip("\n").split("\t")
        events = [line.rstrip("\n").split("\t") for line in f]
    assert header[:2] == ["onset", "duration"] and all(len(e) == len(header) for e in events)
    assert {"PhaseChanged", "SessionEnded"} <= {e[2] for e in events}  # stopped during the baseline
    with (beh / f"{stem}_recording-rr_beat.tsv").open() as f:
        assert len(f.read().splitlines()) == 1 + len(store_beats(session))
    assert "*_beat.tsv" in (tmp_path / ".bidsignore").read_text()

    beside = Path(sys.executable).parent / "bids-validator-deno"  # the venv's scripts need not be on PATH
    validator = str(beside) if beside.exists() else shutil.which("bids-validator-deno")
    require(validator is not None, "bids-validator-deno is not installed (pip install -e '.[dev]')")
    res = subprocess.run([validator, str(tmp_path), "--format", "json"], capture_output=True, text=True, timeout=300)
    issues = json.loads(res.stdout)["issues"]["issues"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert not errors, errors


def test_report_is_self_contained_with_plots_and_a_course_page(recorded_session, tmp_path):
    session, folder = recorded_session
    assert export(session, folder, "report", tmp_path) == 0
    page = (tmp_path / f"report-{session.session_id[:8]}.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page), "the report loads something from outside"
    for heading in ("Per level", "Heart-rate variability", "Level changes", "Safety alerts", "Notes"):
        assert heading in page
    with open_store(folder) as store:
        data = load_session(store, session.session_id)
    assert data.of("SudsRecorded") and "SUDS peak" in page
    course = (tmp_path / "course-P01.html").read_text()
    assert "Course of treatment" in course and "data:image/png;base64," in course


@pytest.mark.parametrize("case", ["unknown", "unwritable", "running"])
def test_export_errors_are_one_line(recorded_session, tmp_path, capsys, case):
    session, folder = recorded_session
    sid, out = session.session_id, tmp_path / "out"
    if case == "unknown":
        sid, expected = "ffffffff", "no session with id 'ffffffff'"
    elif case == "unwritable":
        (tmp_path / "file").write_text("")
        out, expected = tmp_path / "file" / "sub", "cannot write to export folder"
    else:
        from therapy.store import SessionInfo

        store = open_store(folder)
        writer = store.begin_session(SessionInfo("p", "", "heights", "sim", 0.0, {}, "P01"))
        sid, expected = writer.session_id, "is still running"
    try:
        code = run(["export", sid, "--format", "csv", "--out", str(out), "--data-dir", str(folder)])
    finally:
        if case == "running":
            writer.finish()
            store.close()
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("vrex: error:")]
    assert len(lines) == 1 and expected in lines[0], err
