"""One heart, two streams (Polar H10: ECG frames and 0x2A37 RR): every beat is counted once.

While ECG chunks arrive, the RR values of heart samples are ignored (their
contact bit still counts); when the ECG stops, the RR values take over, and
when it (re)starts, the ECG does.
"""

from __future__ import annotations

import numpy as np
import pytest

from biofeedback.pipeline import HeartPipeline
from biofeedback.records import EcgChunk, HeartSample

FS_HZ = 130.0
FRAME = 73  # samples per Polar PMD frame


def heart(n_beats: int, seed: int = 5) -> np.ndarray:
    """RR intervals (ms) of a resting heart: ~800 ms, 0.25 Hz RSA, small noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_beats) * 0.8
    return 800.0 + 40.0 * np.sin(2 * np.pi * 0.25 * t) + rng.normal(0.0, 6.0, n_beats)


def ecg_chunks(beat_t_s: np.ndarray, t0_s: float, t1_s: float) -> list[EcgChunk]:
    """Synthetic 130 Hz ECG (P, QRS, T as Gaussians) with R peaks at ``beat_t_s``, in Polar-sized frames."""
    rng = np.random.default_rng(1)
    n = int((t1_s - t0_s) * FS_HZ) // FRAME * FRAME
    t = t0_s + np.arange(n) / FS_HZ
    x = rng.normal(0.0, 10.0, n)
    near = beat_t_s[(beat_t_s > t0_s - 1.0) & (beat_t_s < t1_s + 1.0)]
    for offset_s, amp_uv, width_s in ((-0.2, 120.0, 0.025), (0.0, 1200.0, 0.012), (0.03, -250.0, 0.012), (0.25, 300.0, 0.05)):
        d = t[:, None] - (near[None, :] + offset_s)
        x += amp_uv * np.exp(-0.5 * (d / width_s) ** 2).sum(axis=1)
    return [EcgChunk(t_s=float(t[k + FRAME - 1]), fs_hz=FS_HZ, ecg_uv=x[k : k + FRAME], source="H10") for k in range(0, n, FRAME)]


def hr_samples(rr_ms: np.ndarray, beat_t_s: np.ndarray, t0_s: float, t1_s: float, latency_s: float = 0.3) -> list[HeartSample]:
    """~1 Hz 0x2A37 notifications carrying the RR values of the beats since the last one."""
    out = []
    t_arr = t0_s + 1.0
    while t_arr <= t1_s:
        sel = (beat_t_s + latency_s > t_arr - 1.0) & (beat_t_s + latency_s <= t_arr)
        out.append(HeartSample(t_s=t_arr, rr_ms=tuple(float(v) for v in rr_ms[sel]), hr_bpm=72.0, sensor_contact=True, source="H10"))
        t_arr += 1.0
    return out


def merged(*streams: list) -> list:
    """Records of several streams in arrival order, as one sensor would yield them."""
    return sorted((r for s in streams for r in s), key=lambda r: r.t_s)


@pytest.fixture(scope="module")
def one_heart():
    rr = heart(200)
    beat_t = 10.0 + np.cumsum(rr) / 1000.0  # beat k ends interval rr[k]
    return rr, beat_t


def test_ecg_and_rr_of_the_same_heart_count_each_beat_once(one_heart):
    rr, beat_t = one_heart
    p = HeartPipeline()
    for rec in merged(ecg_chunks(beat_t, 10.0, 130.0), hr_samples(rr, beat_t, 10.0, 130.0)):
        p.feed(rec)
    beats = p.drain_beats()
    t = np.array([b.t_s for b in beats])
    nn = np.array([b.nn_ms for b in beats])
    assert np.all(np.diff(t) > 0.25)  # no duplicate beats, time never runs backwards
    truth = beat_t[(beat_t > 10.0) & (beat_t < 129.0)]
    # every beat once: the ECG gives them all (but the first, which has no interval yet, and the look-ahead)
    assert truth.size - 4 <= len(beats) <= truth.size
    assert not any(b.artifact for b in beats)
    j = np.searchsorted(beat_t, t)
    j = np.where(np.abs(beat_t[np.clip(j - 1, 0, None)] - t) < np.abs(beat_t[np.clip(j, None, beat_t.size - 1)] - t), j - 1, j)
    assert np.max(np.abs(beat_t[j] - t)) < 0.01  # beats come from the ECG, timed at the R peaks
    np.testing.assert_allclose(nn[1:], rr[j[1:]], atol=8.0)
    st = p.state(130.0)
    assert st.hr_bpm == pytest.approx(60000.0 / np.mean(rr[j[-20:]]), rel=0.05)
    assert st.rmssd_ms == pytest.approx(np.sqrt(np.mean(np.diff(rr[j[t > 70.0]]) ** 2)), rel=0.15)
    assert st.artifact_rate == 0.0 and st.quality > 0.9 and not st.stale
    assert p.counts["rr_ignored"] > 100 and p.counts["source_switches"] == 0


def test_rr_takes_over_when_the_ecg_stops_and_ecg_when_it_returns(one_heart):
    rr, beat_t = one_heart
    p = HeartPipeline()
    records = merged(
        ecg_chunks(beat_t, 10.0, 60.0),  # ECG for 50 s, then the PMD stream stops ...
        hr_samples(rr, beat_t, 10.0, 160.0),  # ... while 0x2A37 notifications go on
        ecg_chunks(beat_t, 110.0, 160.0),  # ECG back at 110 s
    )
    worst_stale = []
    for rec in records:
        p.feed(rec)
        if isinstance(rec, HeartSample):
            worst_stale.append(p.state(rec.t_s).stale)
    assert not any(worst_stale[2:])  # the fallback starts before the state goes stale
    beats = p.drain_beats()
    t = np.array([b.t_s for b in beats])
    assert np.all(np.diff(t) > 0.25)  # never doubled, never backwards across the switches
    assert not any(b.artifact for b in beats)
    assert p.counts["source_switches"] == 2
    assert sum(b.gap_before for b in beats) == 2
    # RR-only stretch: beats from the notifications, about as many as the heart made
    mid = (t > 65.0) & (t < 105.0)
    truth_mid = np.sum((beat_t > 65.0) & (beat_t < 105.0))
    assert abs(int(mid.sum()) - int(truth_mid)) <= 2
    st = p.state(85.0)
    sel = (beat_t > 25.0) & (beat_t <= 85.0)
    assert st.hr_bpm == pytest.approx(60000.0 / np.mean(rr[sel][-10:]), rel=0.05)
    # back on ECG: beats at the R peaks again
    late = t[t > 115.0]
    d = np.min(np.abs(late[:, None] - beat_t[None, :]), axis=1)
    assert np.max(d) < 0.01
    st = p.state(160.0)
    assert not st.stale and st.artifact_rate == 0.0


def test_contact_from_heart_samples_still_counts_while_ecg_leads(one_heart):
    rr, beat_t = one_heart
    p = HeartPipeline()
    for rec in merged(ecg_chunks(beat_t, 10.0, 60.0), hr_samples(rr, beat_t, 10.0, 60.0)):
        p.feed(rec)
    assert p.state(60.0).quality > 0.9
    p.feed(HeartSample(t_s=60.2, rr_ms=(800.0,), sensor_contact=False, source="H10"))
    assert p.state(60.2).quality <= 0.25
    assert p.counts["rr_ignored"] > 40
