"""HeartPipeline: HR from RR, gaps vs artefacts, stale, quality, baseline and arousal."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biofeedback.errors import BiofeedbackError
from biofeedback.pipeline import Baseline, HeartPipeline, PipelineConfig
from biofeedback.records import HeartSample, LinkEvent, LinkState, PayloadError


def notifications(rr_ms, t0_s=100.0, period_s=1.0, latency_s=0.3, lose=()):
    """Group beats into ~1 Hz BLE notifications that arrive ``latency_s`` after their last beat."""
    beat_t = t0_s + np.cumsum(rr_ms) / 1000.0
    out, k, n = [], 0, 0
    t_arr = t0_s + period_s
    while k < len(rr_ms):
        batch = []
        while k < len(rr_ms) and beat_t[k] + latency_s <= t_arr:
            batch.append(float(rr_ms[k]))
            k += 1
        if n not in lose:
            out.append(HeartSample(t_s=t_arr, rr_ms=tuple(batch), hr_bpm=70.0, sensor_contact=True))
        n += 1
        t_arr += period_s
    return out


def steady(n, rr=800.0, rsa_ms=30.0, seed=1):
    rng = np.random.default_rng(seed)
    t = np.cumsum(np.full(n, rr)) / 1000.0
    return rr + rsa_ms * np.sin(2 * np.pi * 0.25 * t) + rng.normal(0, 5, n)


def test_hr_comes_from_rr_not_the_strap_byte():
    p = HeartPipeline()
    for s in notifications(np.full(120, 750.0)):
        p.feed(s)
    st = p.state(s.t_s)
    assert st.hr_bpm == pytest.approx(80.0, abs=0.2)  # 60000/750, while the strap byte said 70
    assert st.last_nn_ms == pytest.approx(750.0)
    assert not st.stale and st.quality > 0.9 and st.artifact_rate == 0.0
    assert st.arousal is None and st.baseline_hr_bpm is None


def test_rmssd_and_sdnn_in_window():
    rr = steady(200)
    p = HeartPipeline()
    samples = notifications(rr)
    for s in samples:
        p.feed(s)
    now = samples[-1].t_s
    st = p.state(now)
    beats = p.drain_beats()
    t = np.array([b.t_s for b in beats])
    nn = np.array([b.nn_ms for b in beats])
    sel = nn[t > now - 60.0]
    assert st.rmssd_ms == pytest.approx(math.sqrt(np.mean(np.diff(sel) ** 2)), rel=1e-9)
    assert st.sdnn_ms == pytest.approx(np.std(sel, ddof=1), rel=1e-9)
    assert not any(b.artifact for b in beats)


def test_lost_notification_is_a_gap_not_an_artefact():
    rr = steady(300, seed=3)
    p = HeartPipeline()
    for s in notifications(rr, lose={60, 61, 150}):
        p.feed(s)
    beats = p.drain_beats()
    assert sum(b.artifact for b in beats) == 0
    assert sum(b.gap_before for b in beats) == 2
    assert p.counts["gaps"] == 2
    # lost beats are not invented; the timeline is re-anchored on arrival times, so beats after
    # a gap keep their spacing and sit within one notification period of where they belong
    samples = notifications(rr)
    lost = sum(len(samples[k].rr_ms) for k in (60, 61, 150))
    assert len(beats) == len(rr) - lost - 2  # the last two wait for look-ahead
    true_t = 100.0 + np.cumsum(rr) / 1000.0
    t = np.array([b.t_s for b in beats])
    kept = np.ones(len(rr), bool)
    start = 0
    for k, smp in enumerate(samples):
        if k in (60, 61, 150):
            kept[start : start + len(smp.rr_ms)] = False
        start += len(smp.rr_ms)
    offset = t - true_t[kept][: len(t)]
    assert np.ptp(offset) < 1.0


def test_ectopic_beat_is_flagged_and_corrected():
    rr = np.full(100, 800.0)
    rr[50], rr[51] = 520.0, 1080.0  # a premature beat and its compensatory pause
    p = HeartPipeline()
    for s in notifications(rr):
        p.feed(s)
    beats = p.drain_beats()
    flagged = [b for b in beats if b.artifact]
    assert len(flagged) == 2
    assert all(b.nn_ms == pytest.approx(800.0, abs=1.0) for b in flagged)
    assert p.state(beats[-1].t_s).rmssd_ms == pytest.approx(0.0, abs=1.0)


def test_stale_after_no_beats_and_quality_zero():
    p = HeartPipeline(PipelineConfig(stale_after_s=5.0))
    samples = notifications(np.full(60, 800.0))
    for s in samples:
        p.feed(s)
    t_end = samples[-1].t_s
    assert not p.state(t_end + 4.9).stale
    st = p.state(t_end + 5.1)
    assert st.stale and st.quality == 0.0
    assert p.state(0.0).beats == st.beats


def test_never_fed_is_stale():
    st = HeartPipeline().state(10.0)
    assert st.stale and st.hr_bpm is None and st.beats == 0 and st.quality == 0.0


def test_quality_drops_with_contact_link_and_payload_errors():
    samples = notifications(np.full(80, 800.0))
    p = HeartPipeline()
    for s in samples:
        p.feed(s)
    t = samples[-1].t_s
    assert p.state(t).quality == pytest.approx(1.0)
    p.feed(HeartSample(t_s=t + 0.5, rr_ms=(800.0,), sensor_contact=False))
    assert p.state(t + 0.5).quality <= 0.25
    p.feed(HeartSample(t_s=t + 1.0, rr_ms=(800.0,), sensor_contact=True))
    for k in range(5):
        p.feed(PayloadError(t_s=t + 1.0, payload_hex="17", problem="truncated"))
    assert 0.0 < p.state(t + 1.0).quality <= 0.5
    p.feed(LinkEvent(t_s=t + 1.2, state=LinkState.LOST))
    assert p.state(t + 1.3).quality == 0.0


def test_artefacts_lower_quality():
    rr = np.full(120, 800.0)
    rr[20::10] = 400.0  # many bogus short values that neither merge nor fit
    p = HeartPipeline()
    samples = notifications(rr)
    for s in samples:
        p.feed(s)
    st = p.state(samples[-1].t_s)
    assert st.artifact_rate > 0.05
    assert st.quality < 0.75


def test_baseline_and_arousal():
    p = HeartPipeline(PipelineConfig(min_baseline_beats=30))
    rest = notifications(steady(150, rr=800.0, rsa_ms=40.0))
    p.begin_baseline(rest[0].t_s)
    for s in rest:
        p.feed(s)
    b = p.end_baseline(rest[-1].t_s)
    assert b.hr_mean_bpm == pytest.approx(75.0, abs=0.5)
    assert b.beats >= 140 and b.duration_s == pytest.approx(rest[-1].t_s - rest[0].t_s)
    assert b.rmssd_ms is not None and b.rmssd_ms > 5
    st = p.state(rest[-1].t_s)
    assert st.baseline_hr_bpm == b.hr_mean_bpm
    assert abs(st.arousal) < 1.5
    # the heart speeds up to 100 bpm: arousal is the z-score of smoothed HR
    t0 = rest[-1].t_s
    for s in notifications(np.full(60, 600.0), t0_s=t0 + 0.5):
        p.feed(s)
    st = p.state(s.t_s)
    assert st.arousal == pytest.approx((st.hr_bpm - b.hr_mean_bpm) / max(b.hr_sd_bpm, 2.0))
    assert st.arousal > 3


def test_baseline_with_too_few_beats_raises_user_error():
    p = HeartPipeline()
    p.begin_baseline(0.0)
    for s in notifications(np.full(10, 800.0), t0_s=0.0):
        p.feed(s)
    with pytest.raises(BiofeedbackError, match="clean beats"):
        p.end_baseline(10.0)


def test_set_baseline_floors_sd():
    p = HeartPipeline()
    p.set_baseline(Baseline(hr_mean_bpm=70.0, hr_sd_bpm=0.5, rmssd_ms=40.0, beats=200, duration_s=180.0))
    for s in notifications(np.full(40, 750.0)):
        p.feed(s)
    st = p.state(s.t_s)
    assert st.arousal == pytest.approx((st.hr_bpm - 70.0) / 2.0)


def test_smoothing_keeps_slow_breathing_swing():
    # 6 breaths/min, HR swinging 64..76 bpm: the smoothed HR keeps most of the swing
    t, rr = 0.0, []
    while t < 120.0:
        hr = 70.0 + 6.0 * math.sin(2 * math.pi * 0.1 * t)
        rr.append(60000.0 / hr)
        t += rr[-1] / 1000.0
    p = HeartPipeline()
    hrs = []
    for s in notifications(np.array(rr), t0_s=0.0):
        p.feed(s)
        if s.t_s > 40:
            hrs.append(p.state(s.t_s).hr_bpm)
    swing = max(hrs) - min(hrs)
    assert swing > 0.85 * 12.0
    snap = p.hrv(s.t_s)
    assert snap.rsa_bpm == pytest.approx(12.0, rel=0.25)
