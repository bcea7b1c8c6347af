"""``bench signal`` on the repository's recordings: issue 3's targets, judged on held-out data and a blind reference.

These tests assert the accuracy targets (not CPU time: tests never assert
times), so a cleaner that never flags, a detector that drifts, or a
reference that starts looking at vrex's output fails them. Where vrex misses
a target honestly (R-peak PPV against the blind NeuroKit2 vote; the 5-min
NSRDB series), the test asserts the figure it does reach and that the table
says "not met".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import main
from bench import signal as bench_signal

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    """The full benchmark (5 pooled injections per rate), run once through the CLI with its in-repo default data."""
    out = tmp_path_factory.mktemp("bench") / "signal.json"
    assert main.run(["bench", "signal", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["meta"]["neurokit2"], "the bench extra (neurokit2) is needed: ./dev setup"
    assert Path(r["meta"]["data_dir"]).resolve() == DATA_DIR.resolve()
    return r


def test_rr_targets_met_on_the_held_out_half(result):
    t = result["targets"]
    assert result["meta"]["judged_on"] == "held_out"
    held = result["artifacts"]["held_out"]
    for rate in ("2%", "5%"):
        v = held[rate]["vrex"]
        assert v["artifacts"] >= 200  # pooled injections: a single miss moves sensitivity by < 0.5 %
        assert v["sensitivity_pct"] >= 99.0, rate
        assert v["specificity_pct"] >= 99.5, rate
        for kind, pct in v["sensitivity_by_kind_pct"].items():
            assert pct >= 97.0, (rate, kind)
    assert held["5%"]["vrex"]["rmssd_error_pct"] <= 8.0
    assert held["5%"]["vrex"]["windows"] >= 5 * 25  # 5 injections x ~30 one-minute windows
    br = result["breathing"]
    for case in ("real_plus_rsa_held_out", "synthetic_rsa"):
        assert br[case]["vrex_false_alarms"] <= br[case]["neurokit2_false_alarms"], case
    assert br["synthetic_rsa"]["vrex_false_alarms"] == 0
    for name in ("artifact_sensitivity_pct", "artifact_specificity_pct", "rmssd_error_5pct_pct", "breathing_false_alarms_vs_nk"):
        assert t[name]["met"] is True, name
        assert t[name]["judged_on"].endswith("(held out)")


def test_targets_are_judged_on_held_out_figures_not_tuning_figures(result):
    held, tuning = result["artifacts"]["held_out"], result["artifacts"]["tuning"]
    assert held["beats"] + tuning["beats"] == 4684  # the 60-min series, split in two
    t = result["targets"]
    a2, a5 = held["2%"]["vrex"], held["5%"]["vrex"]
    assert t["artifact_sensitivity_pct"]["value"] == min(a2["sensitivity_pct"], a5["sensitivity_pct"])
    assert t["rmssd_error_5pct_pct"]["value"] == a5["rmssd_error_pct"]
    tuning_rmssd = tuning["5%"]["vrex"]["rmssd_error_pct"]
    assert t["rmssd_error_5pct_pct"]["other_datasets"]["tuning"]["value"] == tuning_rmssd
    assert tuning_rmssd != a5["rmssd_error_pct"]


def test_vrex_beats_neurokit2_where_the_issue_says_it_must(result):
    for name in ("tuning", "held_out"):
        a5 = result["artifacts"][name]["5%"]
        assert a5["vrex"]["rmssd_error_pct"] < a5["neurokit2"]["rmssd_error_pct"], name


def test_second_held_out_recording_is_reported_and_judged_honestly(result):
    """The 5-min NSRDB series (RMSSD ~100 ms, never used for tuning) misses several targets: the table must say so."""
    short = result["artifacts"]["held_out_short"]
    assert short["beats"] == 337
    assert short["5%"]["vrex"]["sensitivity_pct"] >= 95.0 and short["2%"]["vrex"]["sensitivity_pct"] >= 95.0
    assert short["5%"]["vrex"]["specificity_all_pct"] >= 95.0
    for name, row in result["targets"].items():
        for dataset, d in row.get("other_datasets", {}).items():
            op, limit = bench_signal.TARGETS[name]
            assert d["met"] == bench_signal._met(d["value"], op, limit), (name, dataset)


def test_rpeaks_against_the_blind_majority_vote(result):
    rp = result["rpeaks"]
    assert "no adjudication" in rp["reference"] and "vrex" in rp["reference"]
    assert 480 <= rp["reference_beats"] <= 520  # record 208 at ~100 bpm for 5 min
    r130 = rp["130hz"]
    assert r130["sensitivity_pct"] >= 99.5
    assert r130["median_abs_timing_error_ms"] <= 4.0
    assert result["targets"]["rpeak_sensitivity_130hz_pct"]["met"] is True
    assert result["targets"]["rpeak_median_timing_error_ms"]["met"] is True
    # PPV against the plain vote is 99.2 % (4 of 501 detections unmatched), short of the 99.5 % target:
    # assert what vrex reaches and that the table says "not met" whenever it is below the target.
    assert r130["ppv_pct"] >= 99.0
    assert len(r130["unmatched_detections_s"]) == r130["detected"] - r130["true_positives"]
    assert result["targets"]["rpeak_ppv_130hz_pct"]["met"] is (r130["ppv_pct"] >= 99.5)


def test_cost_is_reported_but_not_asserted(result):
    # CPU times depend on the machine: the benchmark judges them, the test only checks they were measured
    assert result["cost"]["beats"] > 4000 and result["cost"]["pipeline_us_per_beat"] > 0
    assert result["targets"]["rr_path_us_per_beat"]["value"] == result["cost"]["pipeline_us_per_beat"]
    assert result["targets"]["ecg_path_core_pct"]["value"] == result["rpeaks"]["130hz"]["core_pct"]


def test_the_r_peak_reference_never_uses_vrex(monkeypatch):
    """The vote and its timing run with vrex's detector made unusable: the reference cannot depend on it."""
    import neurokit2 as nk  # the bench extra, which ./dev test installs
    import biofeedback.ecg as ecg

    def forbidden(*_a, **_k):
        raise AssertionError("the benchmark's reference used vrex's R-peak detector")

    monkeypatch.setattr(ecg, "detect_r_peaks", forbidden)
    monkeypatch.setattr(ecg, "RPeakDetector", forbidden)
    with np.load(DATA_DIR / "mitbih208" / "ecg.dat") as z:
        x = (z["ecg"][: 360 * 20].astype(float) - 1024.0) / 200.0 * 1000.0
    approx, how = bench_signal.majority_beats(x, 360.0, nk)
    ref = bench_signal.reference_peaks(x, 360.0, approx)
    assert 25 <= ref.size <= 40 and "no adjudication" in how


def test_reference_timing_moves_voted_beats_to_the_signal():
    fs = 360.0
    t = np.arange(int(10 * fs)) / fs
    beats = np.arange(0.5, 9.6, 0.8)
    x = sum(1000.0 * np.exp(-0.5 * ((t - b) / 0.01) ** 2) for b in beats)
    ref = bench_signal.reference_peaks(x, fs, beats + 0.02)  # the detectors' vote is 20 ms late
    np.testing.assert_allclose(ref, beats, atol=0.5 / fs)


def test_pooled_scores_are_the_sums_of_the_injections():
    truth_a = [("ectopic", [10, 11]), ("missed", [30])]
    truth_b = [("extra", [5, 6])]
    a = bench_signal.detection_scores(np.array([10, 50]), truth_a, 100)
    b = bench_signal.detection_scores(np.array([]), truth_b, 100)
    p = bench_signal.pool_scores([a, b])
    assert (p["artifacts"], p["detected"]) == (3, 1)
    assert p["sensitivity_pct"] == pytest.approx(100 / 3)
    assert p["false_flags"] == 1 and p["clean_intervals"] == a["clean_intervals"] + b["clean_intervals"]
    assert p["sensitivity_by_kind_pct"] == {"ectopic": 100.0, "missed": 0.0, "extra": 0.0, "longshort": 0.0}


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main.run(["bench", "signal", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vrex: error:") and "--data" in err[0]
    (tmp_path / "nsrdb").mkdir()
    (tmp_path / "mitbih208").mkdir()
    for name in ("nsrdb/SampleNNISeriesLong.npy", "nsrdb/SampleNNISeriesShort.npy", "mitbih208/ecg.dat"):
        (tmp_path / name).write_bytes(b"not numpy")
    assert main.run(["bench", "signal", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be read" in err[0]
    assert main.run(["bench", "signal", "--injections", "0"]) == 2
    assert "--injections" in capsys.readouterr().err
