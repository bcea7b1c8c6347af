"""RRCleaner: each artefact kind corrected as expected, streaming equals batch."""

from __future__ import annotations

import numpy as np
import pytest

from biofeedback.rr import RRCleaner, clean_rr


def base(n=80, rr=800.0, seed=0):
    rng = np.random.default_rng(seed)
    return rr + rng.normal(0.0, 6.0, n)


def test_clean_series_has_no_flags_and_keeps_values():
    rr = base()
    r = clean_rr(rr)
    assert r.artifact_idx.size == 0
    np.testing.assert_allclose(r.nn_ms, rr)
    np.testing.assert_allclose(r.t_s, np.cumsum(rr) / 1000.0)


def test_missed_beat_is_split():
    rr = base()
    missed = np.concatenate([rr[:40], [rr[40] + rr[41]], rr[42:]])
    r = clean_rr(missed)
    assert r.artifact_idx.tolist() == [40]
    assert r.kinds.count("missed") == 2
    assert r.nn_ms.size == rr.size
    np.testing.assert_allclose(r.nn_ms[40:42], [800, 800], atol=20)
    assert r.nn_ms[40] + r.nn_ms[41] == pytest.approx(rr[40] + rr[41])


def test_extra_beat_is_merged():
    rr = base()
    extra = np.concatenate([rr[:40], [0.3 * rr[40], 0.7 * rr[40]], rr[41:]])
    r = clean_rr(extra)
    assert r.artifact_idx.tolist() == [40, 41]
    assert r.nn_ms.size == rr.size
    assert r.nn_ms[40] == pytest.approx(rr[40])


def test_ectopic_pair_keeps_total_time_and_is_interpolated():
    rr = base()
    ect = rr.copy()
    ect[40] -= 250.0
    ect[41] += 250.0
    r = clean_rr(ect)
    assert r.artifact_idx.tolist() == [40, 41]
    assert r.nn_ms[40] + r.nn_ms[41] == pytest.approx(ect[40] + ect[41])
    np.testing.assert_allclose(r.nn_ms[40:42], [800, 800], atol=20)
    assert r.t_s[41] == pytest.approx(np.sum(ect[:42]) / 1000.0)


@pytest.mark.parametrize("factor", [0.6, 1.5])
def test_isolated_wrong_value_is_replaced(factor):
    rr = base()
    bad = rr.copy()
    bad[40] *= factor
    r = clean_rr(bad)
    assert r.artifact_idx.tolist() == [40]
    assert r.kinds[40] == "longshort"
    assert r.nn_ms[40] == pytest.approx(800.0, abs=25)


def test_sustained_rate_change_is_not_an_artefact():
    rr = np.concatenate([base(60), base(60, rr=620.0, seed=1)])
    r = clean_rr(rr)
    assert r.artifact_idx.size == 0


def test_impossible_value_dropped_and_no_difference_across_it():
    rr = base()
    bad = np.concatenate([rr[:40], [5000.0], rr[40:]])
    c = RRCleaner()
    beats = [b for v in bad for b in c.push(v)] + c.flush()
    dropped = [b for b in beats if b.kind == "implausible"]
    assert len(dropped) == 1 and np.isnan(dropped[0].nn_ms)
    after = beats[beats.index(dropped[0]) + 1]
    assert after.gap_before and not after.artifact


def test_streaming_equals_batch_for_any_chunking(shared_data_dir):
    from biofeedback.bench_signal import inject_artifacts

    nn = np.load(shared_data_dir / "nsrdb" / "SampleNNISeriesLong.npy").astype(float)[:1500]
    rr, _ = inject_artifacts(nn, 0.05, np.random.default_rng(3))
    batch = clean_rr(rr)
    c = RRCleaner()
    rng = np.random.default_rng(0)
    beats, k = [], 0
    while k < rr.size:  # notifications of 0-4 values
        m = int(rng.integers(0, 5))
        for v in rr[k : k + m]:
            beats += c.push(v)
        k += m
    beats += c.flush()
    kept = [b for b in beats if b.kind != "implausible"]
    np.testing.assert_array_equal(np.array([b.nn_ms for b in kept]), batch.nn_ms)
    np.testing.assert_array_equal(np.array([b.t_s for b in kept]), batch.t_s)


def test_injected_artefacts_mostly_found(shared_data_dir):
    from biofeedback.bench_signal import detection_scores, inject_artifacts

    nn = np.load(shared_data_dir / "nsrdb" / "SampleNNISeriesLong.npy").astype(float)[:2000]
    rr, truth = inject_artifacts(nn, 0.05, np.random.default_rng(11))
    s = detection_scores(clean_rr(rr).artifact_idx, truth, rr.size)
    assert s["sensitivity_pct"] > 95.0
    assert s["specificity_pct"] > 95.0
