"""R-peaks on real MIT-BIH 208 ECG at 360 Hz and resampled to 130 Hz; streaming equals batch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from biofeedback.ecg import RPeakDetector, detect_r_peaks


@pytest.fixture(scope="module")
def ecg208(data_dir):
    with np.load(data_dir / "mitbih208" / "ecg.dat") as z:
        raw = z["ecg"].astype(float)
    return (raw - 1024.0) / 200.0 * 1000.0  # microvolts, 360 Hz


def _agree(a, b, tol_s):
    j = np.clip(np.searchsorted(b, a), 1, b.size - 1)
    d = np.minimum(np.abs(b[j - 1] - a), np.abs(b[j] - a))
    return d <= tol_s, d


def test_360_and_130_hz_agree_and_rate_is_plausible(ecg208):
    x = ecg208[: 360 * 120]
    p360 = detect_r_peaks(x, 360.0)
    p130 = detect_r_peaks(signal.resample_poly(x, 13, 36), 130.0)
    # record 208 runs at ~95-100 bpm: ~190-200 beats in 2 min
    assert 180 <= p360.size <= 215
    ok, d = _agree(p360, p130, 0.05)
    assert ok.mean() > 0.98
    assert np.median(d[ok]) < 0.004  # sub-sample refinement: well under a 130 Hz sample (7.7 ms)
    rr = np.diff(p360)
    assert rr.min() > 0.25


def test_streaming_in_polar_frames_equals_batch(ecg208):
    x = signal.resample_poly(ecg208[: 360 * 60], 13, 36)
    batch = detect_r_peaks(x, 130.0)
    det = RPeakDetector(130.0)
    peaks = []
    for k in range(0, x.size, 73):
        chunk = x[k : k + 73]
        peaks += det.feed(chunk, (k + chunk.size - 1) / 130.0)
    peaks += det.flush()
    np.testing.assert_allclose(np.array(peaks), batch, rtol=0, atol=1e-9)
    assert det.latency_s <= 0.5


def test_stream_times_follow_chunk_clock(ecg208):
    x = signal.resample_poly(ecg208[: 360 * 30], 13, 36)
    det = RPeakDetector(130.0)
    t0 = 1000.0
    peaks = []
    for k in range(0, x.size, 73):
        chunk = x[k : k + 73]
        peaks += det.feed(chunk, t0 + (k + chunk.size - 1) / 130.0)
    np.testing.assert_allclose(np.array(peaks) - t0, detect_r_peaks(x, 130.0)[: len(peaks)], atol=1e-9)


def test_too_low_rate_is_rejected():
    with pytest.raises(ValueError, match="too low"):
        RPeakDetector(20.0)


def test_pipeline_takes_ecg_chunks(ecg208):
    from biofeedback.pipeline import HeartPipeline
    from biofeedback.records import EcgChunk

    x = signal.resample_poly(ecg208[: 360 * 60], 13, 36)
    p = HeartPipeline()
    for k in range(0, x.size, 73):
        chunk = x[k : k + 73]
        p.feed(EcgChunk(t_s=(k + chunk.size - 1) / 130.0, fs_hz=130.0, ecg_uv=chunk))
    st = p.state(x.size / 130.0)
    assert not st.stale and st.beats > 80
    assert 80 < st.hr_bpm < 120


def _synthetic_ecg(beat_times_s, fs_hz, duration_s, width_s=0.012, amp_uv=1200.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * fs_hz)) / fs_hz
    x = rng.normal(0.0, 15.0, t.size)
    for b in beat_times_s:
        x += amp_uv * np.exp(-0.5 * ((t - b) / width_s) ** 2)
    return x


def test_close_couplet_gives_two_beats_at_130_hz():
    beats = list(np.arange(0.5, 20.0, 0.75))
    beats.insert(15, beats[14] + 0.28)  # a premature beat 280 ms after its predecessor
    beats = sorted(beats)
    p = detect_r_peaks(_synthetic_ecg(beats, 130.0, 21.0), 130.0)
    assert p.size == len(beats)
    np.testing.assert_allclose(p, beats, atol=0.004)


def test_flat_line_after_lead_off_makes_no_beats():
    beats = np.arange(0.5, 10.0, 0.8)
    x = _synthetic_ecg(beats, 130.0, 30.0)
    x[int(10.2 * 130):] = np.random.default_rng(1).normal(0.0, 3.0, x.size - int(10.2 * 130))  # lead off: tiny noise
    p = detect_r_peaks(x, 130.0)
    assert p.size == beats.size
