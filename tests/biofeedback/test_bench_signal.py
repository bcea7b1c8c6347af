"""``bench signal --quick``: the JSON has every part and sane values (not speed)."""

from __future__ import annotations

import json

import main


def test_bench_signal_quick_writes_sane_json(tmp_path, shared_data_dir):
    out = tmp_path / "signal.json"
    assert main.run(["bench", "signal", "--quick", "--json", str(out), "--data", str(shared_data_dir)]) == 0
    r = json.loads(out.read_text())
    assert set(r) >= {"meta", "artifacts", "breathing", "rpeaks", "cost", "targets"}
    for rate in ("2%", "5%"):
        v = r["artifacts"][rate]["vrex"]
        assert 0 <= v["sensitivity_pct"] <= 100 and 0 <= v["specificity_pct"] <= 100
        assert v["artifacts"] > 0 and v["windows"] > 0
        assert v["rmssd_error_pct"] >= 0
    assert r["rpeaks"]["130hz"]["detected"] > 50
    # figures against the plain majority vote are reported next to the adjudicated ones
    assert 0 < r["rpeaks"]["130hz"]["ppv_majority_only_pct"] <= 100
    assert isinstance(r["rpeaks"]["130hz"]["unmatched_detections_s"], list)
    assert r["artifacts"]["flags_on_uninjected_reference"]["vrex_rmssd_error_pct"] >= 0
    assert 0 < r["rpeaks"]["130hz"]["median_abs_timing_error_ms"] < 10
    assert r["cost"]["pipeline_us_per_beat"] > 0
    for t in r["targets"].values():
        assert t["met"] in (True, False, None)


def test_reference_adjudication_adds_and_removes_beats_timed_like_voted_ones():
    import numpy as np

    from biofeedback.bench_signal import reference_peaks

    fs = 360.0
    t = np.arange(int(10 * fs)) / fs
    beats = np.arange(0.5, 9.6, 0.8)
    x = sum(1000.0 * np.exp(-0.5 * ((t - b) / 0.01) ** 2) for b in beats)
    votes = (np.delete(beats, 4) + 0.02, "test vote")  # the vote missed beat 4 and is 20 ms off
    votes = (np.append(votes[0], 4.1), votes[1])  # ... and took a noise spike at 4.1 s for a beat
    adjudication = ((beats[4], "add", "missed by the vote"), (4.1, "remove", "noise"))
    ref, how = reference_peaks(x, fs, None, adjudication, votes=votes)
    np.testing.assert_allclose(ref, beats, atol=0.5 / fs)
    assert "adjudicated" in how
    plain, _ = reference_peaks(x, fs, None, votes=votes)
    assert plain.size == beats.size  # one missing, one extra
    assert not np.any(np.abs(plain - beats[4]) < 0.05)
