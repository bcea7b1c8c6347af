"""Heart-rate and HRV metrics over cleaned beats: windows, smoothing, RSA, arousal, quality.

Everything here works on corrected NN intervals (from :mod:`biofeedback.rr`)
and is causal: a value at time t uses beats up to t only.

* :func:`rmssd_ms`, :func:`sdnn_ms`, :func:`mean_hr_bpm`: the standard
  short-term metrics; successive differences are never taken across a gap.
* :class:`HrSmoother`: HR resampled onto a 4 Hz grid and low-passed at 0.5 Hz
  with a causal Butterworth (SciPy): ~0.45 s lag, keeps a 6 breaths/min RSA
  swing (a 5-beat average keeps only ~64 % of it, a 10-s average erases it).
* :class:`RsaEstimator`: peak-to-trough HR swing of the breathing band
  (0.05-0.5 Hz) over the last ~30 s, what breathing biofeedback shows.
* :func:`arousal_z`: HR relative to a resting baseline as a z-score.
* :func:`quality_score`: one 0..1 number from artefact rate, gaps, contact, link.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy import signal

log = logging.getLogger(__name__)

#: the arousal z-score's SD floor (bpm): a very steady baseline must not make every beat "arousal"
MIN_BASELINE_SD_BPM = 2.0


def rmssd_ms(nn_ms: np.ndarray, gap_before: np.ndarray | None = None) -> float | None:
    """Root mean square of successive differences, skipping differences across gaps; None if < 2 pairs."""
    nn = np.asarray(nn_ms, dtype=np.float64)
    if nn.size < 3:
        return None
    d = np.diff(nn)
    if gap_before is not None:
        d = d[~np.asarray(gap_before, dtype=bool)[1:]]
    d = d[np.isfinite(d)]
    if d.size < 2:
        return None
    return float(math.sqrt(float(np.mean(d * d))))


def sdnn_ms(nn_ms: np.ndarray) -> float | None:
    """Standard deviation of NN intervals (ddof=1); None with fewer than 3 intervals."""
    nn = np.asarray(nn_ms, dtype=np.float64)
    nn = nn[np.isfinite(nn)]
    if nn.size < 3:
        return None
    return float(np.std(nn, ddof=1))


def mean_hr_bpm(nn_ms: np.ndarray) -> float | None:
    """Mean heart rate as beats over time (60000 / mean NN), the definition HRV tools use."""
    nn = np.asarray(nn_ms, dtype=np.float64)
    nn = nn[np.isfinite(nn)]
    if nn.size == 0:
        return None
    return float(60000.0 / float(np.mean(nn)))


def arousal_z(hr_bpm: float | None, baseline_mean_bpm: float | None, baseline_sd_bpm: float | None) -> float | None:
    """(HR - baseline mean) / max(baseline SD, 2 bpm); None without HR or baseline."""
    if hr_bpm is None or baseline_mean_bpm is None or baseline_sd_bpm is None:
        return None
    return (hr_bpm - baseline_mean_bpm) / max(baseline_sd_bpm, MIN_BASELINE_SD_BPM)


def quality_score(
    artifact_rate: float,
    gap_fraction: float,
    contact: bool | None,
    link_ok: bool,
    payload_errors: int = 0,
) -> float:
    """Combine what can go wrong into 0..1 (1 = trustworthy).

    20 % artefacts or 50 % of the window lost to gaps alone take quality to
    0; no skin contact caps it at 0.25; a link that is not up makes it 0.
    """
    if not link_ok:
        return 0.0
    q = max(0.0, 1.0 - artifact_rate / 0.2)
    q *= max(0.0, 1.0 - gap_fraction / 0.5)
    q *= max(0.0, 1.0 - payload_errors / 10.0)
    if contact is False:
        q = min(q, 0.25)
    return float(min(1.0, max(0.0, q)))


class HrSmoother:
    """Causal HR smoothing on a regular grid: linear interpolation of beat HR, then a SciPy low-pass.

    Grid values between two beats are known once the later beat is, so the
    output at a beat uses that beat; the filter itself lags ~0.45 s at 0.5 Hz.
    A gap restarts the filter at the new value (no transient across missing data).
    """

    def __init__(self, cutoff_hz: float = 0.5, grid_hz: float = 4.0, order: int = 2) -> None:
        if not 0 < cutoff_hz < grid_hz / 2:
            raise ValueError(f"cutoff_hz must be in (0, {grid_hz / 2}), got {cutoff_hz}")
        self.grid_hz = grid_hz
        self._sos = signal.butter(order, cutoff_hz, btype="low", fs=grid_hz, output="sos")
        self._zi_unit = signal.sosfilt_zi(self._sos)
        self.reset()

    def reset(self) -> None:
        self._zi: np.ndarray | None = None
        self._last_t_s: float | None = None
        self._last_hr: float | None = None
        self._next_grid_t_s: float | None = None
        self.value_bpm: float | None = None
        self._pending: list[float] = []

    def add_beat(self, t_s: float, hr_bpm: float, gap_before: bool = False) -> list[float]:
        """Add a beat's HR; returns the raw grid values it produced (for downstream band filters).

        Filtering is deferred to :meth:`value` so a beat costs a few float
        operations; the filter state carries over, so the result is the same.
        """
        if self._zi is None or gap_before or self._last_t_s is None:
            self._flush()
            self._zi = self._zi_unit * hr_bpm
            self.value_bpm = hr_bpm
            self._last_t_s, self._last_hr = t_s, hr_bpm
            self._next_grid_t_s = t_s + 1.0 / self.grid_hz
            return []
        if t_s <= self._last_t_s:
            return []  # out of order: ignore
        step = 1.0 / self.grid_hz
        tg = self._next_grid_t_s
        t0, h0 = self._last_t_s, self._last_hr
        slope = (hr_bpm - h0) / (t_s - t0)
        new: list[float] = []
        while tg <= t_s + 1e-9:
            new.append(h0 + slope * (tg - t0))
            tg += step
        self._next_grid_t_s = tg
        self._last_t_s, self._last_hr = t_s, hr_bpm
        self._pending.extend(new)
        return new

    def _flush(self) -> None:
        if self._pending and self._zi is not None:
            y, self._zi = signal.sosfilt(self._sos, self._pending, zi=self._zi)
            self.value_bpm = float(y[-1])
        self._pending = []

    def value(self) -> float | None:
        """The smoothed HR after the latest beat (None before the first)."""
        self._flush()
        return self.value_bpm


class RsaEstimator:
    """Peak-to-trough HR swing in the breathing band over the last ``window_s`` seconds.

    HR on the smoother's grid is band-passed (causal Butterworth, 0.05-0.5 Hz:
    slow-paced breathing down to 3/min, normal breathing up to 30/min) and the
    swing is 2*sqrt(2)*RMS, exact for a sinusoid and robust to noise peaks.
    """

    def __init__(self, grid_hz: float = 4.0, window_s: float = 30.0, band_hz: tuple[float, float] = (0.05, 0.5)) -> None:
        self._sos = signal.butter(2, band_hz, btype="band", fs=grid_hz, output="sos")
        self._zi = None
        self._pending: list[float] = []
        self._buf: deque[float] = deque(maxlen=int(window_s * grid_hz))
        self._settle = int(20.0 * grid_hz)  # the band-pass rings for ~20 s after a start
        self._seen = 0

    def reset(self) -> None:
        self._zi = None
        self._buf.clear()
        self._seen = 0
        self._pending = []

    def add(self, grid_hr: list[float]) -> None:
        """Queue grid HR values; filtered in bulk when the amplitude is asked for."""
        self._pending.extend(grid_hr)
        if len(self._pending) > 4 * self._buf.maxlen:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        if self._zi is None:
            self._zi = signal.sosfilt_zi(self._sos) * self._pending[0]
        y, self._zi = signal.sosfilt(self._sos, self._pending, zi=self._zi)
        self._seen += len(self._pending)
        self._buf.extend(y.tolist())
        self._pending = []

    def amplitude_bpm(self) -> float | None:
        """None until the filter has settled and a full window exists."""
        self._flush()
        if self._seen < self._settle + self._buf.maxlen // 2 or len(self._buf) < self._buf.maxlen // 2:
            return None
        y = np.fromiter(self._buf, dtype=np.float64)
        return float(2.0 * math.sqrt(2.0) * math.sqrt(float(np.mean(y * y))))


@dataclass(frozen=True, slots=True)
class HrvSnapshot:
    """Windowed metrics at ``t_s`` (None where the window holds too few beats)."""

    t_s: float
    window_s: float
    beats: int
    mean_hr_bpm: float | None
    rmssd_ms: float | None
    ln_rmssd: float | None
    sdnn_ms: float | None
    rsa_bpm: float | None
    artifact_rate: float
