"""Resonance breathing: the simulated heart's resonance rate is found; the HRV-biofeedback measure rises with pacing.

The simulator runs on the virtual clock (no sleeping), its pacer driven by the assessment's own schedule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from biofeedback.clock import VirtualClock
from biofeedback.records import HeartSample
from biofeedback.resonance import ResonanceAssessment, ResonanceMonitor, calm_response, measure_oscillation
from biofeedback.rr import RRCleaner
from biofeedback.simulated import SimulatedSensor


def simulate(seed: int, duration_s: float, pacer: Callable[[float], float | None],
             on_second: Callable[[float, list[tuple[float, float]]], None] | None = None):
    """Run the simulated strap for ``duration_s`` on a virtual clock; returns (sensor, cleaned beats [(t_s, nn_ms)])."""
    beats: list[tuple[float, float]] = []

    async def main() -> SimulatedSensor:
        clock = VirtualClock()
        sensor = SimulatedSensor(clock, seed=seed, pacer=lambda: pacer(clock.now()), duration_s=duration_s)
        driver = asyncio.create_task(clock.run())
        cleaner = RRCleaner()
        t_beat = None
        try:
            async for rec in sensor.records():
                if isinstance(rec, HeartSample) and rec.rr_ms:
                    if t_beat is None:
                        t_beat = rec.t_s - sum(rec.rr_ms) / 1000.0
                    for rr in rec.rr_ms:
                        t_beat += rr / 1000.0
                        beats.extend((b.t_s, b.nn_ms) for b in cleaner.push(rr, t_beat))
                    if on_second is not None:
                        on_second(rec.t_s, beats)
        finally:
            driver.cancel()
        return sensor

    return asyncio.run(main()), beats


def test_assessment_finds_the_simulated_resonance_rate_for_9_of_10_seeds():
    hits, lines = 0, []
    for seed in range(10):
        assessment = ResonanceAssessment((6.5, 6.0, 5.5, 5.0, 4.5), segment_s=120.0, settle_s=20.0)
        sensor, beats = simulate(seed, assessment.end_s + 1.0, assessment.pacer_rate)
        for t_s, nn_ms in beats:
            assessment.add_beat(t_s, nn_ms)
        result = assessment.result()
        true_rate = sensor.model.resonance_breaths_per_min
        assert 4.5 <= true_rate <= 6.5
        hits += abs(result.breaths_per_min - true_rate) <= 0.5
        lines.append(f"seed {seed}: true {true_rate:.2f}, chose {result.breaths_per_min:g}")
        assert result.explanation.startswith(f"resonance rate {result.breaths_per_min:g} breaths/min: ")
        assert "bpm peak to trough" in result.explanation and "LF power" in result.explanation
    assert hits >= 9, "; ".join(lines)


def test_hrv_biofeedback_measure_rises_as_breathing_locks_to_the_pacer():
    """2 min of spontaneous breathing, then the pacer at 6/min: swing and coherence, updated each second, rise."""
    monitor = ResonanceMonitor(window_s=64.0)
    fed = [0]
    series: list[tuple[float, float, float]] = []

    def pacer(t_s: float) -> float | None:
        return None if t_s < 120.0 else 6.0

    def on_second(t_s: float, beats: list[tuple[float, float]]) -> None:
        for b in beats[fed[0]:]:
            monitor.add_beat(*b)
        fed[0] = len(beats)
        snap = monitor.update(t_s, pacer(t_s))
        if snap is not None:
            series.append((t_s, snap.measures.peak_to_trough_bpm, snap.measures.coherence,
                           calm_response(snap.measures, "rsa_amplitude")))

    simulate(3, 360.0, pacer, on_second)
    arr = np.array(series)
    before = arr[(arr[:, 0] > 70) & (arr[:, 0] < 120)]
    locked = arr[arr[:, 0] > 260]
    assert len(before) > 40 and len(locked) > 90  # one value a second
    assert locked[:, 1].mean() > 1.8 * before[:, 1].mean()
    assert locked[:, 2].mean() > before[:, 2].mean() + 0.1
    assert locked[:, 3].mean() > before[:, 3].mean() + 0.2 and locked[:, 3].max() <= 1.0  # the scene's dial


def test_measures_of_a_known_sinusoid():
    t = np.cumsum(np.full(600, 0.8))  # 75 bpm
    hr = 75.0 + 5.0 * np.sin(2 * np.pi * 0.1 * t)  # 10 bpm peak to trough at 6 breaths/min
    m = measure_oscillation(t, 60000.0 / hr, start_s=100.0, end_s=400.0, breaths_per_min=6.0)
    assert m is not None and m.cycles == 30
    assert m.peak_to_trough_bpm == pytest.approx(10.0, rel=0.05)
    assert m.peak_hz == pytest.approx(0.1, abs=0.005) and m.coherence > 0.9 and m.lf_power_ms2 > 0
    assert measure_oscillation(t, 60000.0 / hr, start_s=100.0, end_s=110.0) is None  # too short to say


def test_assessment_schedule_and_validation():
    a = ResonanceAssessment((6.5, 6.0), segment_s=60.0, settle_s=10.0, start_s=100.0)
    assert [a.pacer_rate(t) for t in (99.0, 100.0, 159.9, 160.0, 219.9, 220.0)] == [None, 6.5, 6.5, 6.0, 6.0, None]
    with pytest.raises(ValueError, match="at least two rates"):
        ResonanceAssessment((6.0,))
    with pytest.raises(ValueError, match="no paced rate has enough clean heart beats"):
        a.result()


def test_simulated_resonance_gain_peaks_at_the_seeded_rate():
    clock = VirtualClock()
    for seed in range(5):
        sensor = SimulatedSensor(clock, seed=seed)
        f = sensor.model.resonance_breaths_per_min
        assert sensor.rsa_gain(f) == pytest.approx(sensor.model.resonance_gain)
        assert sensor.rsa_gain(f + 1.0) < sensor.rsa_gain(f) and sensor.rsa_gain(f - 1.0) < sensor.rsa_gain(f)
        assert sensor.rsa_gain(12.0) < 1.01  # spontaneous breathing: RSA as before
