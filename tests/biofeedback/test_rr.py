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


def test_streaming_equals_batch_for_any_chunking(data_dir):
    from bench.signal import inject_artifacts

    nn = np.load(data_dir / "nsrdb" / "SampleNNISeriesLong.npy").astype(float)[:1500]
    rr = inject_artifacts(nn, 0.05, np.random.default_rng(3)).rr_ms
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


def test_injected_artefacts_mostly_found(data_dir):
    from bench.signal import detection_scores, inject_artifacts

    nn = np.load(data_dir / "nsrdb" / "SampleNNISeriesLong.npy").astype(float)[:2000]
    inj = inject_artifacts(nn, 0.05, np.random.default_rng(11))
    s = detection_scores(clean_rr(inj.rr_ms).artifact_idx, inj.truth, inj.rr_ms.size)
    assert s["sensitivity_pct"] >= 99.0
    assert s["specificity_all_pct"] > 99.0  # every un-injected interval counted as clean


def test_premature_beat_short_long_pair_is_reshared():
    rr = base()
    pvc = rr.copy()
    pvc[40] *= 0.65  # premature beat ...
    pvc[41] += rr[40] * 0.35  # ... and its compensatory pause
    r = clean_rr(pvc)
    assert r.artifact_idx.tolist() == [40, 41]
    assert set(r.kinds[40:42]) == {"ectopic"}
    np.testing.assert_allclose(r.nn_ms[40:42], [800, 800], atol=20)
    assert r.t_s[41] == pytest.approx(np.sum(pvc[:42]) / 1000.0)  # the beat after the pair keeps its time


def test_extra_beat_with_normal_looking_first_fragment_merges_the_right_pair():
    rr = base()
    extra = np.concatenate([rr[:40], [0.8 * rr[40], 0.2 * rr[40]], rr[41:]])
    r = clean_rr(extra)
    assert r.artifact_idx.tolist() == [40, 41]
    assert r.nn_ms[40] == pytest.approx(rr[40])
    np.testing.assert_allclose(r.nn_ms[41:], rr[41:])


def test_no_false_flags_on_clean_synthetic_rsa_at_6_per_min():
    from bench.signal import synthetic_rsa

    for amp in (40.0, 80.0, 160.0):  # HR swings of ~6 to ~25 bpm
        rr = synthetic_rsa(600, 0.1, amp, seed=int(amp))
        assert clean_rr(rr).artifact_idx.size == 0, amp


def test_gap_is_not_an_artefact_and_no_difference_across_it():
    rr = base(120)
    c = RRCleaner()
    beats = []
    t = 0.0
    for k, v in enumerate(rr):
        t += v / 1000.0
        if 50 <= k < 60:  # ten beats lost with a notification
            continue
        # the heart rate moved on while data was lost: a jump that would be "long" without the gap
        val = v + (250.0 if k >= 60 else 0.0)
        beats += c.push(val, t, gap_before=(k == 60))
    beats += c.flush()
    assert not any(b.artifact for b in beats)
    assert [b.gap_before for b in beats].count(True) == 1


def test_missed_beat_double_interval_split_even_during_rsa():
    from bench.signal import synthetic_rsa

    rr = synthetic_rsa(200, 0.1, 60.0, seed=3)
    missed = np.concatenate([rr[:100], [rr[100] + rr[101]], rr[102:]])
    r = clean_rr(missed)
    assert r.artifact_idx.tolist() == [100]
    assert r.nn_ms.size == rr.size
    np.testing.assert_allclose(r.nn_ms[100:102], rr[100:102], atol=40)


def test_two_long_intervals_in_a_row_are_the_rhythm_not_an_artefact():
    # a sinus pause that lasts two beats (or a slow breath): the next interval does not return
    rr = base()
    for pause in ([1000.0, 990.0], [1050.0, 1020.0], [620.0, 640.0]):
        r = clean_rr(np.concatenate([rr[:40], pause, rr[40:]]))
        assert r.artifact_idx.size == 0, pause


def test_premature_beat_found_in_a_stretch_full_of_artefacts():
    # many artefacts inflate the quartile thresholds; a 20 % premature beat must still stand out
    rng = np.random.default_rng(4)
    rr = 800.0 + 60.0 * np.sin(np.arange(300) * 2 * np.pi / 7.0) + rng.normal(0.0, 15.0, 300)
    bad = rr.copy()
    for k in range(20, 200, 12):  # wrong values every 12 beats
        bad[k] *= 1.5 if k % 24 else 0.6
    bad[206] -= 0.2 * rr[206]  # premature by 20 % ...
    bad[207] += 0.2 * rr[206]  # ... and its compensatory pause
    r = clean_rr(bad)
    assert {206, 207} & set(r.artifact_idx.tolist())
    np.testing.assert_allclose(r.nn_ms[206:208], rr[206:208], atol=80)


def test_extra_beat_splitting_a_long_interval_is_merged():
    # the rhythm slows (1000-1050 ms) and a false beat splits one of the long intervals
    rr = base()
    rr[38:42] = [1000.0, 1050.0, 1040.0, 1000.0]
    extra = np.concatenate([rr[:40], [0.45 * rr[40], 0.55 * rr[40]], rr[41:]])
    r = clean_rr(extra)
    assert r.artifact_idx.tolist() == [40, 41]
    assert r.nn_ms[40] == pytest.approx(rr[40])
    np.testing.assert_allclose(r.nn_ms[41:], rr[41:])
