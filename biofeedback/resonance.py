"""Resonance-breathing measures from the NN series: per-breath HR swing, LF power, coherence.

HRV biofeedback (Lehrer) trains breathing at the rate where breathing and the
~0.1 Hz baroreflex reinforce each other, usually 4.5-6.5 breaths/min; there the
heart rate swings most with each breath. Two pieces live here:

* :class:`ResonanceMonitor`, causal and updated each second, for the
  HRV-biofeedback session (the scene's calm-response dial, the therapist's
  view, the record): from the last ``window_s`` seconds of NN intervals it
  gives the mean peak-to-trough HR swing per breath cycle, the LF power
  (0.04-0.15 Hz) and a coherence measure (the share of 0.04-0.4 Hz power within
  +-0.015 Hz of the dominant peak, 0..1; HeartMath uses a similar peak-share
  over 64 s).
* :class:`ResonanceAssessment`, for the resonance-frequency assessment: it plans
  the paced rates (6.5, 6.0, 5.5, 5.0, 4.5 breaths/min, 2 minutes each by
  default), measures each rate after its settling time, picks the rate with
  the largest oscillation and explains the choice in words.

"Causal" means a value at t uses beats up to t only; inside that past window
zero-phase filtering is allowed (it only looks at the past).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal

GRID_HZ = 4.0
LF_BAND_HZ = (0.04, 0.15)
COHERENCE_BAND_HZ = (0.04, 0.4)
PEAK_HALF_WIDTH_HZ = 0.015
#: the HR low-pass before peak-to-trough: above any paced or normal breathing rate, below beat-to-beat jitter
SWING_LOWPASS_HZ = 0.4
#: two rates whose swings are within this share count as a tie, decided by LF power
TIE_FRACTION = 0.05


@dataclass(frozen=True, slots=True)
class OscillationMeasures:
    """Breathing-related heart-rate oscillation over one stretch of NN intervals."""

    peak_to_trough_bpm: float  # mean over complete breath cycles (max - min of low-passed HR in each)
    cycles: int
    lf_power_ms2: float  # NN power 0.04-0.15 Hz
    coherence: float  # 0..1, share of 0.04-0.4 Hz power around the dominant peak
    peak_hz: float
    beats: int


@dataclass(frozen=True, slots=True)
class ResonanceSnapshot:
    """The monitor's value at ``t_s`` (what the HRV-biofeedback session shows and stores each second)."""

    t_s: float
    breaths_per_min: float | None  # the pacer rate used to cut breath cycles (None: from the spectrum peak)
    measures: OscillationMeasures


def _grid(t_s: np.ndarray, nn_ms: np.ndarray, start_s: float, end_s: float) -> tuple[np.ndarray, np.ndarray]:
    """NN intervals (at their beat times) linearly interpolated onto a 4 Hz grid over [start, end]."""
    grid_t = np.arange(start_s, end_s, 1.0 / GRID_HZ)
    return grid_t, np.interp(grid_t, t_s, nn_ms)


def _band_power(freqs: np.ndarray, psd: np.ndarray, lo: float, hi: float) -> float:
    sel = (freqs >= lo) & (freqs < hi)
    if not sel.any():
        return 0.0
    return float(np.trapezoid(psd[sel], freqs[sel])) if hasattr(np, "trapezoid") else float(np.trapz(psd[sel], freqs[sel]))


def measure_oscillation(
    t_s: Sequence[float] | np.ndarray,
    nn_ms: Sequence[float] | np.ndarray,
    *,
    start_s: float,
    end_s: float,
    breaths_per_min: float | None = None,
) -> OscillationMeasures | None:
    """Measure the breathing-related oscillation of the NN series between ``start_s`` and ``end_s``.

    With a known (paced) ``breaths_per_min`` the stretch is cut into whole breath
    cycles ending at ``end_s``; otherwise the cycle is the spectrum's dominant
    peak in the breathing band. None when fewer than ~20 s or 20 beats exist.
    """
    t = np.asarray(t_s, dtype=np.float64)
    nn = np.asarray(nn_ms, dtype=np.float64)
    sel = (t >= start_s - 2.0) & (t <= end_s)
    t, nn = t[sel], nn[sel]
    if t.size < 20 or end_s - max(start_s, float(t[0])) < 20.0:
        return None
    start_s = max(start_s, float(t[0]))
    grid_t, nn_grid = _grid(t, nn, start_s, end_s)
    n = nn_grid.size
    # Spectrum of the NN series (ms^2/Hz), detrended, Hann-windowed; zero-padded for a fine frequency grid.
    x = signal.detrend(nn_grid, type="linear")
    freqs, psd = signal.periodogram(x, fs=GRID_HZ, window="hann", nfft=max(1024, 1 << (n - 1).bit_length()),
                                    detrend=False, scaling="density")
    lf = _band_power(freqs, psd, *LF_BAND_HZ)
    band = (freqs >= COHERENCE_BAND_HZ[0]) & (freqs < COHERENCE_BAND_HZ[1])
    peak_hz = float(freqs[band][int(np.argmax(psd[band]))]) if band.any() else 0.0
    total = _band_power(freqs, psd, *COHERENCE_BAND_HZ)
    around = _band_power(freqs, psd, max(COHERENCE_BAND_HZ[0], peak_hz - PEAK_HALF_WIDTH_HZ), peak_hz + PEAK_HALF_WIDTH_HZ)
    coherence = around / total if total > 0 else 0.0
    # Peak-to-trough of low-passed HR in each complete breath cycle, counted back from the end.
    hr = 60000.0 / nn_grid
    sos = signal.butter(2, SWING_LOWPASS_HZ, btype="low", fs=GRID_HZ, output="sos")
    hr_smooth = signal.sosfiltfilt(sos, hr) if n > 30 else hr
    cycle_hz = breaths_per_min / 60.0 if breaths_per_min else peak_hz
    swings: list[float] = []
    if cycle_hz > 0:
        per = int(round(GRID_HZ / cycle_hz))
        for end in range(n, per - 1, -per):
            seg = hr_smooth[end - per:end]
            swings.append(float(seg.max() - seg.min()))
    return OscillationMeasures(
        peak_to_trough_bpm=float(np.mean(swings)) if swings else 0.0,
        cycles=len(swings),
        lf_power_ms2=lf,
        coherence=float(min(1.0, max(0.0, coherence))),
        peak_hz=peak_hz,
        beats=int(t.size),
    )


class ResonanceMonitor:
    """Causal breathing-oscillation measures over the last ``window_s`` seconds, asked for once a second.

    Feed it corrected NN intervals (:mod:`biofeedback.rr`) with their beat times;
    a gap (lost beats) restarts the window, so an oscillation is never measured
    across missing data.
    """

    def __init__(self, window_s: float = 64.0) -> None:
        if not window_s >= 30.0:
            raise ValueError(f"window_s must be >= 30 s (two slow breaths at least), got {window_s}")
        self._window_s = window_s
        self._beats: deque[tuple[float, float]] = deque()

    def add_beat(self, t_s: float, nn_ms: float, gap_before: bool = False) -> None:
        if gap_before:
            self._beats.clear()
        if self._beats and t_s <= self._beats[-1][0]:
            return  # out of order
        self._beats.append((float(t_s), float(nn_ms)))
        while self._beats and self._beats[0][0] < t_s - self._window_s - 5.0:
            self._beats.popleft()

    def update(self, t_s: float, breaths_per_min: float | None = None) -> ResonanceSnapshot | None:
        """The measures now (None until ~20 s of beats exist); ``breaths_per_min`` is the pacer rate, if any."""
        if not self._beats:
            return None
        t = np.fromiter((b[0] for b in self._beats), dtype=np.float64)
        nn = np.fromiter((b[1] for b in self._beats), dtype=np.float64)
        end_s = min(t_s, float(t[-1]))
        measures = measure_oscillation(t, nn, start_s=end_s - self._window_s, end_s=end_s, breaths_per_min=breaths_per_min)
        return None if measures is None else ResonanceSnapshot(t_s, breaths_per_min, measures)


@dataclass(frozen=True, slots=True)
class RateSegment:
    """One paced rate of the assessment: the pacer shows ``breaths_per_min`` from ``start_s`` to ``end_s``."""

    breaths_per_min: float
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class RateResult:
    """What one paced rate produced (measured after its settling time)."""

    breaths_per_min: float
    measures: OscillationMeasures | None


@dataclass(frozen=True, slots=True)
class ResonanceResult:
    """The chosen resonance rate and, in words, why."""

    breaths_per_min: float
    rates: tuple[RateResult, ...]
    explanation: str


class ResonanceAssessment:
    """Plan the paced rates, collect NN intervals, pick the rate with the largest oscillation.

    The rate with the largest mean peak-to-trough HR swing per breath wins;
    swings within 5 % of each other are a tie, decided by LF power (the two
    criteria Lehrer's protocol uses). The first ``settle_s`` of each rate is left
    out: breathing takes a few breaths to follow a new pacer rate.
    """

    def __init__(
        self,
        rates_breaths_per_min: Sequence[float] = (6.5, 6.0, 5.5, 5.0, 4.5),
        *,
        segment_s: float = 120.0,
        settle_s: float = 20.0,
        start_s: float = 0.0,
    ) -> None:
        if len(rates_breaths_per_min) < 2:
            raise ValueError("an assessment needs at least two rates to compare")
        if not 0 <= settle_s < segment_s / 2:
            raise ValueError(f"settle_s ({settle_s}) must be >= 0 and under half of segment_s ({segment_s})")
        self.settle_s = settle_s
        self.segments = tuple(
            RateSegment(float(r), start_s + i * segment_s, start_s + (i + 1) * segment_s)
            for i, r in enumerate(rates_breaths_per_min)
        )
        self._t: list[float] = []
        self._nn: list[float] = []

    @classmethod
    def from_spec(cls, spec, *, start_s: float = 0.0) -> ResonanceAssessment:
        """From a protocol's ``[assessment]`` section (:class:`protocols.model.AssessmentSpec`)."""
        return cls(spec.rates_breaths_per_min, segment_s=spec.segment_s, settle_s=spec.settle_s, start_s=start_s)

    @property
    def end_s(self) -> float:
        return self.segments[-1].end_s

    def pacer_rate(self, t_s: float) -> float | None:
        """The rate the pacer shows at ``t_s`` (None before the first and after the last segment)."""
        for seg in self.segments:
            if seg.start_s <= t_s < seg.end_s:
                return seg.breaths_per_min
        return None

    def add_beat(self, t_s: float, nn_ms: float) -> None:
        """A corrected NN interval ending at ``t_s`` (same clock as the segments)."""
        self._t.append(float(t_s))
        self._nn.append(float(nn_ms))

    def result(self) -> ResonanceResult:
        """Measure every rate and choose; rates without enough beats are named and never chosen."""
        t = np.asarray(self._t)
        nn = np.asarray(self._nn)
        rates = tuple(
            RateResult(
                seg.breaths_per_min,
                measure_oscillation(t, nn, start_s=seg.start_s + self.settle_s, end_s=seg.end_s,
                                    breaths_per_min=seg.breaths_per_min) if t.size else None,
            )
            for seg in self.segments
        )
        measured = [r for r in rates if r.measures is not None and r.measures.cycles > 0]
        missing = [r.breaths_per_min for r in rates if r not in measured]
        if not measured:
            raise ValueError("no paced rate has enough clean heart beats to measure: check the sensor and repeat")
        ranked = sorted(measured, key=lambda r: r.measures.peak_to_trough_bpm, reverse=True)
        best = ranked[0]
        why = "the largest heart-rate swing per breath"
        if len(ranked) > 1:
            second = ranked[1]
            tie = second.measures.peak_to_trough_bpm >= (1 - TIE_FRACTION) * best.measures.peak_to_trough_bpm
            if tie and second.measures.lf_power_ms2 > best.measures.lf_power_ms2:
                best, second = second, best
                why = (f"a heart-rate swing within {TIE_FRACTION:.0%} of the largest and the larger "
                       "low-frequency power")
        others = ", ".join(
            f"{r.breaths_per_min:g}: {r.measures.peak_to_trough_bpm:.1f} bpm, LF {r.measures.lf_power_ms2:.0f} ms2"
            for r in measured if r is not best
        )
        m = best.measures
        explanation = (
            f"resonance rate {best.breaths_per_min:g} breaths/min: {why} "
            f"({m.peak_to_trough_bpm:.1f} bpm peak to trough, mean of {m.cycles} breaths; "
            f"LF power {m.lf_power_ms2:.0f} ms2; coherence {m.coherence:.2f}); other rates {others}"
        )
        if missing:
            explanation += f"; not measured (too few clean beats): {', '.join(f'{r:g}' for r in missing)} breaths/min"
        return ResonanceResult(best.breaths_per_min, rates, explanation)


#: the HR swing that fills the calm-response dial (rsa_amplitude): ~20 bpm peak to trough is a strong resonance response
CALM_FULL_SCALE_BPM = 20.0


def calm_response(measures: OscillationMeasures, measure: str = "coherence") -> float:
    """The HRV-biofeedback scene's calm-response dial, 0..1, from the chosen measure.

    ``coherence`` is already 0..1; ``rsa_amplitude`` maps the per-breath swing
    linearly onto 0..``CALM_FULL_SCALE_BPM``, so the dial rises as breathing
    locks to the pacer and the heart answers each breath.
    """
    if measure == "coherence":
        return float(min(1.0, max(0.0, measures.coherence)))
    if measure == "rsa_amplitude":
        return float(min(1.0, max(0.0, measures.peak_to_trough_bpm / CALM_FULL_SCALE_BPM)))
    raise ValueError(f"unknown calm measure {measure!r}: expected 'coherence' or 'rsa_amplitude'")
