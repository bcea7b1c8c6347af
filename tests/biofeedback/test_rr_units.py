"""The RR cleaner's parts on their own: sorted windows and quantiles against numpy, counters, gap flags,
the correction helpers (spread, look-ahead, merge test, thresholds) and clean_rr's arrays."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest

from biofeedback.rr import RRCleaner, RRCleanerConfig, _In, _quantile, _SortedWindow, clean_rr


@pytest.mark.parametrize("values", [[5.0], [3.0, 1.0], [4.0, 1.0, 9.0], [7.0, 2.0, 2.0, 10.0], [5.0, 1.0, 8.0, 3.0, 9.0],
                                    list(np.random.default_rng(1).normal(800, 40, 12))])
def test_sorted_window_median_and_quartile_deviation_match_numpy(values):
    w = _SortedWindow(50)
    for v in values:
        w.push(v)
    assert len(w) == len(values)
    assert w.median() == pytest.approx(float(np.median(values)))
    q75, q25 = np.percentile(values, [75, 25])
    expected = 0.5 * (q75 - q25) if len(values) >= 2 else 0.0
    assert w.quartile_deviation() == pytest.approx(expected)


def test_sorted_window_keeps_only_its_last_values():
    w = _SortedWindow(3)
    for v in (10.0, 1.0, 7.0, 4.0, 2.0):
        w.push(v)
    assert len(w) == 3 and w.median() == 4.0  # 7, 4, 2
    w.push(2.0)
    assert sorted(w._sorted) == [2.0, 2.0, 4.0] and w.median() == 2.0


def test_quartile_deviation_of_two_values_and_of_none():
    w = _SortedWindow(5)
    assert w.quartile_deviation() == 0.0
    w.push(100.0)
    assert w.quartile_deviation() == 0.0
    w.push(200.0)
    assert w.quartile_deviation() == pytest.approx(25.0)  # Q1 125, Q3 175


@pytest.mark.parametrize("q", [0.0, 0.25, 0.5, 0.75, 1.0])
@pytest.mark.parametrize("s", [[3.0], [1.0, 5.0], [1.0, 2.0, 10.0], [0.0, 1.0, 4.0, 9.0, 16.0, 25.0]])
def test_quantile_matches_numpy_linear(s, q):
    assert _quantile(s, q) == pytest.approx(float(np.quantile(s, q)))


def test_counters_count_every_push_and_reset_clears_them():
    c = RRCleaner()
    for rr in (800.0, 810.0, 790.0, 805.0):
        c.push(rr)
    assert c.n_in == 4 and c._seen == 4 and c.n_artifacts == 0
    c.push(5000.0)
    c.push(800.0)
    c.push(800.0)
    c.flush()
    assert c.n_in == 7 and c.n_artifacts == 1
    c.reset()
    assert (c.n_in, c._seen, c.n_artifacts, c._next_idx, c._tol2, c._d_prev, c._prev_nn, c._last_raw) == (
        0, 0, 0, 0, 0.0, 0.0, None, None)
    assert len(c._pending) == len(c._med) == len(c._dabs) == len(c._mabs) == 0


def test_beats_carry_the_measured_interval_its_time_and_index():
    c = RRCleaner()
    beats = [b for rr in (800.0, 810.0, 790.0) for b in c.push(rr)] + c.flush()
    assert [(b.rr_ms, b.nn_ms, b.kind, b.artifact, b.gap_before, b.source_idx) for b in beats] == [
        (800.0, 800.0, "normal", False, False, 0), (810.0, 810.0, "normal", False, False, 1),
        (790.0, 790.0, "normal", False, False, 2)]
    assert [b.t_s for b in beats] == pytest.approx([0.8, 1.61, 2.4])


def test_a_gap_before_the_first_interval_is_kept_and_later_gaps_too():
    c = RRCleaner()
    beats = c.push(800.0, gap_before=True) + c.push(805.0) + c.push(795.0, gap_before=True) + c.push(800.0) + c.flush()
    assert [b.gap_before for b in beats] == [True, False, True, False]


def test_after_a_dropped_value_with_nothing_held_the_next_interval_follows_a_gap():
    c = RRCleaner()
    c.push(5000.0)
    (dropped,) = c.flush()
    assert dropped.kind == "implausible" and math.isnan(dropped.nn_ms) and dropped.rr_ms == 5000.0
    beats = c.push(800.0) + c.flush()
    assert [(b.gap_before, b.source_idx) for b in beats] == [(True, 1)]
    c.push(800.0)
    c.push(810.0)
    c.push(6000.0)
    c.push(800.0)
    c.push(805.0)
    c.push(790.0)
    beats = c.flush()
    assert [(b.kind, b.gap_before) for b in beats][-2:] == [("normal", False), ("normal", False)]


def test_spread_shares_a_total_along_the_line_between_its_neighbours():
    c = RRCleaner()
    c._prev_nn = 780.0
    assert c._spread(1600.0, 2, 820.0, 800.0) == pytest.approx([780 + 40 / 3, 780 + 80 / 3])
    assert c._spread(2400.0, 3, 840.0, 800.0) == pytest.approx(
        [p * 2400.0 / sum([795.0, 810.0, 825.0]) for p in (795.0, 810.0, 825.0)])
    assert c._spread(1000.0, 2, None, 800.0) == pytest.approx([500.0, 500.0])  # no next: flat from the previous
    c._prev_nn = None
    assert c._spread(1500.0, 2, 860.0, 800.0) == pytest.approx(
        [p * 1500.0 / (820.0 + 840.0) for p in (820.0, 840.0)])  # no previous: from the median


def _held(c: RRCleaner, *items: tuple[float, bool]) -> None:
    c._pending = deque(_In(rr, 0.0, gap, i, 0.0) for i, (rr, gap) in enumerate(items))


def test_next_normal_looks_ahead_from_start_and_stops_at_a_gap():
    c = RRCleaner()
    _held(c, (1600.0, False), (1200.0, False), (805.0, False))
    assert c._next_normal(800.0, 50.0) == 805.0  # the held value itself (index 0) is not a candidate
    assert c._next_normal(800.0, 50.0, start=2) == 805.0
    _held(c, (800.0, False), (790.0, False), (805.0, False))
    assert c._next_normal(800.0, 50.0) == 790.0
    assert c._next_normal(800.0, 50.0, start=2) == 805.0
    assert c._next_normal(800.0, 10.0) == 805.0  # 790 is exactly 10 off: not normal
    assert c._next_normal(800.0, 5.0) is None
    _held(c, (800.0, False), (1200.0, False), (805.0, True))
    assert c._next_normal(800.0, 50.0) is None  # beyond a gap the level is unknown
    _held(c, (800.0, False))
    assert c._next_normal(800.0, 50.0) is None


def test_merge_ok_is_kubios_extra_beat_test_plus_a_normal_merged_interval():
    c = RRCleaner()
    c._tol2 = 0.0
    c._prev_nn = None
    assert c._merge_ok(830.0, 800.0, 40.0, 40.0, False) is True
    assert c._merge_ok(840.0, 800.0, 40.0, 40.0, False) is False  # exactly th2 away: not the median
    assert c._merge_ok(770.0, 800.0, 40.0, 40.0, False) is True
    c._tol2 = 60.0
    assert c._merge_ok(850.0, 800.0, 40.0, 40.0, False) is True  # the uncapped tolerance accepts
    c._prev_nn = 760.0
    assert c._merge_ok(800.0, 800.0, 40.0, 40.0, False) is True  # 40 from the previous NN: inside th1
    assert c._merge_ok(801.0, 800.0, 40.0, 40.0, False) is False
    assert c._merge_ok(801.0, 800.0, 40.0, 40.0, True) is True  # after a gap the previous NN says nothing


def test_thresholds_floor_cap_and_warmup():
    cfg = RRCleanerConfig()
    c = RRCleaner(cfg)
    for v in (0.0, 100.0, 200.0, 300.0):  # |dRR| history: QD = 75
        c._dabs.push(v)
    for v in (0.0, 10.0):  # |mRR| history: QD = 2.5
        c._mabs.push(v)
    c._seen = cfg.warmup_beats  # warm: floor = max(20 ms, 0 x med)
    th1, th2 = c._thresholds(1000.0)
    assert th1 == pytest.approx(200.0)  # 5.2 x 75 = 390, capped at 20 % of 1000
    assert th2 == pytest.approx(20.0)  # 5.2 x 2.5 = 13, floored at 20 ms
    assert c._tol2 == pytest.approx(20.0)
    c._seen = cfg.warmup_beats - 1  # warming up: at least 12 % of the median
    th1, th2 = c._thresholds(1000.0)
    assert (th1, th2) == pytest.approx((200.0, 120.0)) and c._tol2 == pytest.approx(120.0)
    c2 = RRCleaner(RRCleanerConfig(min_threshold_fraction=0.05, max_threshold_fraction=0.5))
    c2._dabs, c2._mabs, c2._seen = c._dabs, c._mabs, cfg.warmup_beats
    th1, th2 = c2._thresholds(1000.0)
    assert (th1, th2) == pytest.approx((390.0, 50.0))
    assert c2._tol2 == pytest.approx(50.0)


def test_clean_rr_arrays_and_its_config():
    r = clean_rr([800.0, 810.0, 790.0])
    assert r.nn_ms.dtype == np.float64 and r.t_s.dtype == np.float64 and r.artifact_idx.dtype == np.int64
    assert r.artifact_idx.size == 0 and r.kinds == ("normal",) * 3
    r = clean_rr([800.0, 810.0, 5000.0, 790.0, 800.0, 805.0])
    assert not np.isnan(r.nn_ms).any() and r.nn_ms.size == 5  # the dropped value has no NN interval
    assert r.artifact_idx.tolist() == [2] and "implausible" not in r.kinds
    strict = clean_rr([800.0, 810.0, 790.0], RRCleanerConfig(max_rr_ms=805.0))
    assert strict.artifact_idx.tolist() == [1] and strict.nn_ms.size == 2


STEADY = [800.0, 806.0, 795.0, 802.0, 799.0, 804.0, 797.0, 801.0]


def _beats(values, gaps=()):
    c = RRCleaner()
    beats = []
    for i, v in enumerate(values):
        beats += c.push(v, gap_before=i in gaps)
    return c, beats + c.flush()


def test_a_spurious_beat_just_after_a_normal_looking_fragment_merges_with_that_fragment():
    # 760 looks normal, 60 is a fragment; 760 + 60 is nearer one interval than 60 + the next 800
    c, beats = _beats(STEADY + [760.0, 60.0, 800.0, 803.0, 798.0])
    extra = [b for b in beats if b.kind != "normal"]
    counted, _ = _beats([4000.0] + STEADY + [760.0, 60.0, 800.0, 803.0, 798.0])
    assert counted.n_artifacts == 3  # counts add up over the series
    assert [(b.kind, b.nn_ms, b.rr_ms, b.source_idx, b.gap_before) for b in extra] == [("extra", 820.0, 60.0, 9, False)]
    assert extra[0].t_s == pytest.approx(sum(STEADY + [760.0, 60.0]) / 1000.0)
    assert c.n_artifacts == 2 and [b.source_idx for b in beats] == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12]
    # after a gap the merged beat keeps the gap flag
    c, beats = _beats(STEADY + [760.0, 60.0, 800.0, 803.0, 798.0], gaps={8})
    assert [(b.kind, b.gap_before) for b in beats if b.source_idx == 9] == [("extra", True)]


def test_a_spurious_beat_that_fits_better_with_the_next_interval_merges_with_it():
    c, beats = _beats(STEADY + [800.0, 60.0, 740.0, 803.0, 798.0])
    assert [(b.kind, b.nn_ms, b.source_idx) for b in beats if b.kind != "normal"] == [("extra", 800.0, 10)]
    assert [b.nn_ms for b in beats if b.source_idx == 8] == [800.0]


def test_a_dropped_value_is_logged(caplog):
    import logging

    with caplog.at_level(logging.DEBUG, logger="biofeedback.rr"):
        _beats(STEADY + [4321.0] + STEADY)
    assert [r.getMessage() for r in caplog.records] == ["dropping implausible RR 4321.0 ms"]


def test_a_spurious_beat_at_the_end_or_before_a_gap_merges_with_the_fragment_before_it():
    c, beats = _beats(STEADY + [760.0, 60.0])  # the end of the data: nothing after it to merge with
    assert [(b.kind, b.nn_ms, b.source_idx) for b in beats if b.kind != "normal"] == [("extra", 820.0, 9)]
    c, beats = _beats(STEADY + [760.0, 60.0, 800.0, 805.0], gaps={10})  # lost beats before the next interval
    assert [(b.kind, b.nn_ms, b.source_idx) for b in beats if b.kind != "normal"] == [("extra", 820.0, 9)]


def test_a_spurious_beat_exactly_between_two_intervals_merges_with_the_later_one():
    c, beats = _beats([800.0] * 9 + [60.0, 800.0, 800.0, 800.0])
    assert [(b.kind, b.nn_ms, b.source_idx) for b in beats if b.kind != "normal"] == [("extra", 860.0, 10)]


@pytest.mark.parametrize("rr", [250.0, 3000.0])
def test_the_physiological_limits_themselves_are_plausible(rr):
    r = clean_rr([rr] * 12)
    assert r.artifact_idx.size == 0 and r.nn_ms.tolist() == [rr] * 12
