"""The heart pipeline: sensor records in, :class:`HeartState` out.

One object per session, fed every record a sensor yields (in order), asked for
the state whenever a controller needs it. It

* turns RR values into a beat timeline: a BLE notification arrives up to
  seconds after its beats and a lost one drops its RR values, so gaps are
  found from arrival times (an arrival interval well above the usual one *and*
  a matching jump of arrival minus beat time), never called artefacts;
* detects R-peaks in raw ECG (:mod:`biofeedback.ecg`) and feeds their intervals
  into the same path. A Polar H10 sends ECG *and* 0x2A37 RR values of the same
  heart: while ECG chunks keep arriving (within ``ecg_priority_s``) the RR
  values of heart samples are ignored (ECG beats are more precise; counting
  both would count every beat twice) and only their contact bit is used; when
  the ECG stops, the RR values take over again. A switch of beat source is a
  gap (the two timelines are not aligned to the millisecond);
* cleans RR causally (:mod:`biofeedback.rr`, two intervals of look-ahead);
* computes HR from the cleaned intervals (not the strap's averaged byte),
  smoothed at 0.5 Hz, windowed RMSSD/SDNN, RSA amplitude, arousal against a
  resting baseline, and a quality score from artefacts, gaps, contact, link.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from biofeedback.errors import BiofeedbackError
from biofeedback.hrv import (
    HrSmoother,
    HrvSnapshot,
    RsaEstimator,
    arousal_z,
    mean_hr_bpm,
    quality_score,
    rmssd_ms,
    sdnn_ms,
)
from biofeedback.records import (
    EcgChunk,
    HeartSample,
    HeartState,
    LinkEvent,
    LinkState,
    PayloadError,
    SensorRecord,
)
from biofeedback.rr import CleanBeat, RRCleaner, RRCleanerConfig

log = logging.getLogger(__name__)

_LINK_UP = {LinkState.CONNECTED, LinkState.RECONNECTED}


class BaselineError(BiofeedbackError):
    """A resting baseline that cannot be computed (too short, too few clean beats, not started)."""


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Tunables of :class:`HeartPipeline`; the defaults suit chest straps and Polar ECG."""

    #: no valid beat for this long and the state is stale (nothing may step exposure up)
    stale_after_s: float = 5.0
    #: HR low-pass cut-off: 0.5 Hz lags ~0.45 s and keeps a 6 breaths/min RSA swing
    hr_cutoff_hz: float = 0.5
    hr_grid_hz: float = 4.0
    #: window of RMSSD / SDNN / mean HR
    hrv_window_s: float = 60.0
    #: window of the artefact rate, gap fraction and payload-error count behind quality
    quality_window_s: float = 60.0
    rsa_window_s: float = 30.0
    #: a baseline needs at least this many clean beats (~3 min at rest is the clinical norm)
    min_baseline_beats: int = 30
    #: an arrival interval this many times the usual one may hide a lost notification ...
    gap_arrival_factor: float = 1.5
    #: ... confirmed when arrival minus beat time jumps by this fraction of an RR interval
    gap_beat_fraction: float = 0.6
    #: while an ECG chunk arrived within this many seconds, beats come from the ECG alone and the
    #: RR values of heart samples (the same heart, e.g. a Polar H10's 0x2A37) are ignored; shorter
    #: than ``stale_after_s`` so the fallback to RR starts before the state turns stale
    ecg_priority_s: float = 2.5
    #: an ECG chunk starting this much later than the previous one ended restarts R-peak detection
    ecg_restart_gap_s: float = 1.0
    cleaner: RRCleanerConfig = field(default_factory=RRCleanerConfig)


@dataclass(frozen=True, slots=True)
class Baseline:
    """A resting baseline (>= ~3 min at rest; shorter ones are allowed, e.g. in tests)."""

    hr_mean_bpm: float
    hr_sd_bpm: float
    rmssd_ms: float | None
    beats: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class Beat:
    """One cleaned beat, for the session store and LSL.

    ``rr_ms`` is the measured interval ending at this beat (for a beat inserted
    to split a missed-beat interval, that whole interval), ``nn_ms`` the
    corrected one; ``gap_before`` marks data lost just before it.
    """

    t_s: float
    rr_ms: float
    nn_ms: float
    artifact: bool
    gap_before: bool


class HeartPipeline:
    """Stateful, causal processing of one sensor's records; O(1) work per beat."""

    def __init__(self, config: PipelineConfig | None = None) -> None:
        self.config = config or PipelineConfig()
        cfg = self.config
        self._cleaner = RRCleaner(cfg.cleaner)
        self._smoother = HrSmoother(cfg.hr_cutoff_hz, cfg.hr_grid_hz)
        self._rsa = RsaEstimator(cfg.hr_grid_hz, cfg.rsa_window_s)
        keep_s = max(cfg.hrv_window_s, cfg.quality_window_s)
        self._keep_s = keep_s
        # finalised beats kept for the windows: (t_s, nn_ms, artifact, gap_before)
        self._window: deque[tuple[float, float, bool, bool]] = deque()
        self._drain: list[Beat] = []
        self._gaps: deque[tuple[float, float]] = deque()  # (start_s, end_s) of data lost
        self._payload_errors: deque[float] = deque()
        self._arrivals: deque[float] = deque(maxlen=11)
        self._offsets: deque[float] = deque(maxlen=10)
        self._beat_end_s: float | None = None
        self._pending_gap = False
        self._link_ok = True
        self._link_lost_at: float | None = None
        self._contact: bool | None = None
        self._last_valid_s: float | None = None
        self._beats = 0
        self._last_nn_ms: float | None = None
        self._baseline: Baseline | None = None
        self._baseline_start_s: float | None = None
        self._baseline_rows: list[tuple[float, float, bool, bool]] = []
        self._ecg: dict[tuple[str, float], object] = {}
        self._ecg_last_t: dict[tuple[str, float], float] = {}  # t_s of the last chunk per ECG stream
        self._last_ecg_s: float | None = None  # arrival (t_s) of the newest ECG chunk
        self._beat_source: str | None = None  # "rr" or "ecg": which stream built the beat timeline
        self._ecg_gap_next = False  # the next ECG interval follows a gap
        self._last_push_t_s = -math.inf  # time of the last beat given to the cleaner
        self._overlap_until_s = -math.inf  # after a source switch: beats up to here are already counted
        self.counts = {
            "beats": 0, "artifacts": 0, "gaps": 0, "payload_errors": 0, "implausible": 0,
            "rr_ignored": 0, "source_switches": 0,
        }

    # ------------------------------------------------------------------ input
    def feed(self, record: SensorRecord) -> None:
        """Take one record from a sensor (in the order the sensor yielded them)."""
        if isinstance(record, HeartSample):
            self._feed_sample(record)
        elif isinstance(record, EcgChunk):
            self._feed_ecg(record)
        elif isinstance(record, LinkEvent):
            self._feed_link(record)
        elif isinstance(record, PayloadError):
            self._payload_errors.append(record.t_s)
            self.counts["payload_errors"] += 1
        else:
            raise TypeError(f"HeartPipeline.feed got {type(record).__name__}, expected a SensorRecord")

    def _feed_link(self, ev: LinkEvent) -> None:
        up = ev.state in _LINK_UP
        if self._link_ok and not up:
            self._link_lost_at = ev.t_s
            self._pending_gap = True
        elif up and not self._link_ok and self._link_lost_at is not None:
            self._gaps.append((self._link_lost_at, ev.t_s))
            self._link_lost_at = None
        self._link_ok = up
        log.info("link %s at %.3f s %s", ev.state.value, ev.t_s, ev.detail)

    def _feed_sample(self, s: HeartSample) -> None:
        self._contact = s.sensor_contact
        prev_arrival = self._arrivals[-1] if self._arrivals else None
        typical = self._typical_arrival_interval()
        self._arrivals.append(s.t_s)
        if not s.rr_ms:
            return
        if self._last_ecg_s is not None and s.t_s - self._last_ecg_s <= self.config.ecg_priority_s:
            # the same heart is measured by ECG: its beats are the precise ones
            self.counts["rr_ignored"] += len(s.rr_ms)
            return
        rr = [float(v) for v in s.rr_ms]
        if self._beat_source == "ecg":
            # ECG stopped: RR values take over on a new timeline (anchored on arrival), after a gap
            self._switch_source("rr", s.t_s)
            if self._beat_end_s is not None:
                self._gaps.append((self._beat_end_s, max(self._beat_end_s, s.t_s - sum(rr) / 1000.0)))
                self.counts["gaps"] += 1
            self._offsets.clear()
            self._beat_end_s = None
            self._pending_gap = True
        self._beat_source = "rr"
        total_s = sum(rr) / 1000.0
        gap = self._pending_gap
        if self._beat_end_s is None:
            end_s = s.t_s  # first beats (or first after a source switch): anchored on arrival
            gap = gap and self._cleaner.n_in > 0
        else:
            end_s = self._beat_end_s + total_s
            offset = s.t_s - end_s
            ref = min(self._offsets) if self._offsets else offset
            late = offset - ref
            long_wait = prev_arrival is not None and typical is not None and (
                s.t_s - prev_arrival > self.config.gap_arrival_factor * typical
            )
            beat_s = (self._last_nn_ms or rr[-1]) / 1000.0
            if gap or (long_wait and late > self.config.gap_beat_fraction * beat_s):
                # beats were lost: re-anchor the timeline so arrival minus beat time is as usual
                gap = True
                end_s = s.t_s - ref if self._offsets else s.t_s
                self._gaps.append((self._beat_end_s, end_s - total_s))
                self._offsets.clear()
                self.counts["gaps"] += 1
        self._pending_gap = False
        self._offsets.append(s.t_s - end_s)
        self._beat_end_s = end_s
        t = end_s - total_s
        for v in rr:
            t += v / 1000.0
            if t <= self._overlap_until_s:
                continue  # already counted from the other source (the two timelines overlap)
            self._push(v, t, gap)
            gap = False
        if any(self.config.cleaner.min_rr_ms <= v <= self.config.cleaner.max_rr_ms for v in rr):
            self._last_valid_s = s.t_s

    def _typical_arrival_interval(self) -> float | None:
        if len(self._arrivals) < 3:
            return None
        a = self._arrivals
        return statistics.median([a[k + 1] - a[k] for k in range(len(a) - 1)])

    def _feed_ecg(self, chunk: EcgChunk) -> None:
        from biofeedback.ecg import RPeakDetector

        key = (chunk.source, float(chunk.fs_hz))
        det = self._ecg.get(key)
        last_t = self._ecg_last_t.get(key)
        start_s = chunk.t_s - (chunk.ecg_uv.size - 1) / chunk.fs_hz
        if det is not None and last_t is not None and start_s - last_t > self.config.ecg_restart_gap_s:
            det = None  # ECG paused (stopped stream, lost frames): filters and thresholds start again
            self._pending_gap = True
        if det is None:
            det = RPeakDetector(chunk.fs_hz)
            self._ecg[key] = det
        self._ecg_last_t[key] = chunk.t_s
        self._last_ecg_s = chunk.t_s
        if self._beat_source != "ecg":
            if self._beat_source == "rr":
                self._switch_source("ecg", chunk.t_s)
                self._pending_gap = True
            self._beat_source = "ecg"
        for t_peak in det.feed(chunk.ecg_uv, chunk.t_s):  # type: ignore[attr-defined]
            if t_peak <= self._overlap_until_s:
                continue  # already counted from the RR values (the two timelines overlap)
            if self._beat_end_s is not None:
                rr = (t_peak - self._beat_end_s) * 1000.0
                if self._pending_gap or rr > self.config.cleaner.max_rr_ms * 2:
                    # the interval spans lost data: not a beat; the next one starts after a gap
                    self._pending_gap = False
                    self._ecg_gap_next = True
                    self._gaps.append((self._beat_end_s, t_peak))
                    self.counts["gaps"] += 1
                else:
                    self._push(rr, t_peak, self._ecg_gap_next)
                    self._ecg_gap_next = False
                    self._last_valid_s = chunk.t_s
            self._beat_end_s = t_peak

    def _switch_source(self, new: str, t_s: float) -> None:
        """Beats now come from ``new``; beats of the new source up to the last one pushed are dropped."""
        log.info("beat source %s -> %s at %.3f s", self._beat_source, new, t_s)
        self.counts["source_switches"] += 1
        self._overlap_until_s = self._last_push_t_s

    def _push(self, rr_ms: float, t_s: float, gap_before: bool) -> None:
        self._last_push_t_s = t_s
        self._take(self._cleaner.push(rr_ms, t_s, gap_before))

    def _take(self, beats: list[CleanBeat]) -> None:
        for b in beats:
            if b.artifact:
                self.counts["artifacts"] += 1
            if b.kind == "implausible":
                self.counts["implausible"] += 1
                continue
            self.counts["beats"] += 1
            self._beats += 1
            self._last_nn_ms = b.nn_ms
            row = (b.t_s, b.nn_ms, b.artifact, b.gap_before)
            self._window.append(row)
            if self._baseline_start_s is not None:
                self._baseline_rows.append(row)
            while self._window and self._window[0][0] < b.t_s - self._keep_s:
                self._window.popleft()
            grid = self._smoother.add_beat(b.t_s, 60000.0 / b.nn_ms, b.gap_before)
            if b.gap_before:
                self._rsa.reset()
            self._rsa.add(grid)
            self._drain.append(Beat(b.t_s, b.rr_ms, b.nn_ms, b.artifact, b.gap_before))

    # ------------------------------------------------------------------ output
    def _window_arrays(self, now_s: float, window_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = [r for r in self._window if r[0] > now_s - window_s and r[0] <= now_s + 1e-9]
        if not rows:
            e = np.empty(0)
            return e, e.astype(bool), e.astype(bool)
        a = np.array(rows, dtype=np.float64)
        return a[:, 1], a[:, 2].astype(bool), a[:, 3].astype(bool)

    def _gap_fraction(self, now_s: float) -> float:
        w0 = now_s - self.config.quality_window_s
        lost = 0.0
        for a, b in self._gaps:
            lost += max(0.0, min(b, now_s) - max(a, w0))
        if self._link_lost_at is not None:
            lost += max(0.0, now_s - max(self._link_lost_at, w0))
        while self._gaps and self._gaps[0][1] < w0:
            self._gaps.popleft()
        return min(1.0, lost / self.config.quality_window_s)

    def state(self, now_s: float) -> HeartState:
        """The heart as known at ``now_s`` (session clock)."""
        cfg = self.config
        stale = self._last_valid_s is None or now_s - self._last_valid_s > cfg.stale_after_s
        nn, _, gap = self._window_arrays(now_s, cfg.hrv_window_s)
        rmssd = rmssd_ms(nn, gap) if nn.size else None
        sdnn = sdnn_ms(nn) if nn.size else None
        _, qart, _ = self._window_arrays(now_s, cfg.quality_window_s)
        artifact_rate = float(np.mean(qart)) if qart.size else 0.0
        while self._payload_errors and self._payload_errors[0] < now_s - cfg.quality_window_s:
            self._payload_errors.popleft()
        quality = 0.0 if stale else quality_score(
            artifact_rate, self._gap_fraction(now_s), self._contact, self._link_ok, len(self._payload_errors)
        )
        hr = self._smoother.value()
        b = self._baseline
        return HeartState(
            t_s=now_s,
            hr_bpm=hr,
            last_nn_ms=self._last_nn_ms,
            rmssd_ms=rmssd,
            sdnn_ms=sdnn,
            arousal=arousal_z(hr, b.hr_mean_bpm if b else None, b.hr_sd_bpm if b else None),
            baseline_hr_bpm=b.hr_mean_bpm if b else None,
            quality=quality,
            artifact_rate=artifact_rate,
            stale=stale,
            beats=self._beats,
        )

    def hrv(self, now_s: float) -> HrvSnapshot:
        """Windowed HRV and RSA amplitude (breathing biofeedback) at ``now_s``."""
        cfg = self.config
        nn, art, gap = self._window_arrays(now_s, cfg.hrv_window_s)
        rmssd = rmssd_ms(nn, gap) if nn.size else None
        return HrvSnapshot(
            t_s=now_s,
            window_s=cfg.hrv_window_s,
            beats=int(nn.size),
            mean_hr_bpm=mean_hr_bpm(nn) if nn.size else None,
            rmssd_ms=rmssd,
            ln_rmssd=math.log(rmssd) if rmssd else None,
            sdnn_ms=sdnn_ms(nn) if nn.size else None,
            rsa_bpm=self._rsa.amplitude_bpm(),
            artifact_rate=float(np.mean(art)) if art.size else 0.0,
        )

    def drain_beats(self) -> list[Beat]:
        """Beats finalised since the last call (a beat is final ~2 beats after it happened)."""
        out, self._drain = self._drain, []
        return out

    # ------------------------------------------------------------------ baseline
    @property
    def baseline(self) -> Baseline | None:
        return self._baseline

    def begin_baseline(self, t_s: float) -> None:
        """Start collecting the resting baseline (the patient sits quietly)."""
        self._baseline_start_s = t_s
        self._baseline_rows = []

    def end_baseline(self, t_s: float) -> Baseline:
        """Compute and adopt the baseline from clean beats since :meth:`begin_baseline`."""
        if self._baseline_start_s is None:
            raise BaselineError("end_baseline called without begin_baseline: start the baseline first")
        start = self._baseline_start_s
        rows = [r for r in self._baseline_rows if start < r[0] <= t_s]
        self._baseline_start_s = None
        self._baseline_rows = []
        nn = np.array([r[1] for r in rows if not r[2]], dtype=np.float64)
        need = self.config.min_baseline_beats
        if nn.size < need:
            raise BaselineError(
                f"baseline has {nn.size} clean beats in {t_s - start:.0f} s, needs at least {need}: "
                "check the strap's contact and record the baseline again (3 min at rest is usual)"
            )
        hr = 60000.0 / nn
        gaps = np.array([r[3] for r in rows if not r[2]], dtype=bool)
        baseline = Baseline(
            hr_mean_bpm=float(np.mean(hr)),
            hr_sd_bpm=float(np.std(hr, ddof=1)),
            rmssd_ms=rmssd_ms(nn, gaps),
            beats=int(nn.size),
            duration_s=float(t_s - start),
        )
        self._baseline = baseline
        return baseline

    def set_baseline(self, baseline: Baseline) -> None:
        """Adopt a baseline measured earlier (e.g. in a previous session)."""
        if not (baseline.hr_mean_bpm > 0 and baseline.hr_sd_bpm >= 0):
            raise BaselineError(f"baseline HR {baseline.hr_mean_bpm} bpm / SD {baseline.hr_sd_bpm}: expected positive values")
        self._baseline = baseline
