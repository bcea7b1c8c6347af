"""The report's numbers on a session whose answers are known by construction."""

from __future__ import annotations

import numpy as np

from therapy.export.recorded import SessionData
from therapy.export.report import hrv_table, level_table


def session(events, hr, beats) -> SessionData:
    return SessionData("s" * 32, "P01", "heights-graded", "", "heights", "sim", "completed", "", "2026-01-01T00:00",
                       None, 0.0, {}, events, np.array(hr, dtype=float).reshape(-1, 6),
                       np.array(beats, dtype=float).reshape(-1, 5), None)


def phases():
    return [(0.0, "PhaseChanged", {"phase": "baseline", "previous": "starting", "reason": ""}),
            (100.0, "PhaseChanged", {"phase": "exposure", "previous": "baseline", "reason": ""}),
            (200.0, "SessionEnded", {"status": "completed", "reason": ""})]


def test_hrv_uses_clean_successive_nn_only():
    beats = []
    t = 0.0
    for i in range(100):  # baseline: NN alternates 800/820 ms -> RMSSD 20 ms
        nn = 800.0 if i % 2 == 0 else 820.0
        t += nn / 1000
        beats.append([t, nn, nn, 0, 0])
    t = 100.0
    for i in range(100):  # exposure: alternates 600/640 -> RMSSD 40, with one artefact that must not count
        nn = 600.0 if i % 2 == 0 else 640.0
        t += nn / 1000
        beats.append([t, 300.0 if i == 50 else nn, nn, int(i == 50), 0])
    rows = {r["part"]: r for r in hrv_table(session(phases(), [], beats))}
    assert abs(rows["baseline"]["rmssd_ms"] - 20.0) < 1e-9
    assert abs(rows["exposure"]["rmssd_ms"] - 40.0) < 1e-9
    assert rows["recovery"]["beats"] == 0 and rows["recovery"]["rmssd_ms"] is None


def test_level_table_time_hr_and_suds_per_level():
    events = phases()
    hr = []
    for k in range(100, 200):
        level = 0 if k < 150 else 1
        events.append((float(k), "ExposureSampled", {"environment": "heights", "level": level, "intensity": 1.0,
                                                      "phase": "exposure", "safe_place": False, "dials": []}))
        hr.append([float(k), 70.0 + level * 10 + (k % 5), 0.0, 30.0, 1.0, 0])
    for t, value, level, kind in ((120.0, 30, 0, "entry"), (140.0, 45, 0, "during"), (149.0, 20, 0, "end"),
                                  (148.0, 50, 1, "anticipated"), (170.0, 60, 1, "during")):
        events.append((t, "SudsRecorded", {"value": value, "level": level, "phase": "exposure", "source": "patient",
                                           "kind": kind}))
    events.sort(key=lambda e: e[0])
    rows = {r["level"]: r for r in level_table(session(events, hr, []))}
    assert abs(rows[0]["minutes"] - 50 / 60) < 1e-9 and abs(rows[1]["minutes"] - 50 / 60) < 1e-9
    assert rows[0]["hr_peak_bpm"] == 74.0 and rows[1]["hr_peak_bpm"] == 84.0
    assert (rows[0]["suds_anticipated"], rows[0]["suds_peak"], rows[0]["suds_end"]) == (None, 45, 20)
    assert (rows[1]["suds_anticipated"], rows[1]["suds_peak"], rows[1]["suds_end"]) == (50, 60, 60)
