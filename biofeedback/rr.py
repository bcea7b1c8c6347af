"""Streaming RR-interval artefact detection and correction (causal Lipponen & Tarvainen).

Straps and R-peak detectors produce ectopic beats, missed and extra detections
and plain wrong values. Lipponen & Tarvainen (2019) classify a beat from its
successive difference and its deviation from a local median, each normalised
by a rolling quartile-deviation threshold (``alpha`` x QD over 91 beats). The
published method and NeuroKit2's port use centred windows and move R-peaks;
this one is causal (thresholds and median from the *cleaned past*, at most two
intervals of look-ahead) and corrects RR *values*, which keeps the beat timeline
and does less damage to the neighbours:

* missed beat (an interval ~n x the median): split into n intervals;
* extra beat (two fragments that sum to ~one median interval): merged;
* ectopic / misplaced beat (short-long or long-short pair summing to ~two
  intervals): the pair's total time is kept and re-shared by interpolating
  between the neighbours;
* long/short (an isolated deviant value that does not persist): replaced by
  interpolation; a deviation that persists over the look-ahead is accepted as
  a real change of heart rate;
* physiologically impossible values that fit none of the above: dropped.

Gaps (lost notifications) are not artefacts: the caller marks them with
``gap_before`` and the cleaner keeps its history but never pairs across them.
Per beat the work is O(1): two sorted 91-value windows kept with ``bisect``.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

KINDS = ("normal", "ectopic", "missed", "extra", "longshort", "implausible")


@dataclass(frozen=True, slots=True)
class RRCleanerConfig:
    """Parameters of the cleaner; the defaults are Lipponen & Tarvainen's (c1, c2 used for ectopics)."""

    alpha: float = 5.2
    c1: float = 0.13
    c2: float = 0.17
    threshold_window: int = 91
    median_window: int = 11
    #: threshold floor (ms): very regular rhythms must not turn tiny changes into artefacts
    min_threshold_ms: float = 20.0
    #: until this many clean intervals are known, thresholds are at least prior_fraction x median
    warmup_beats: int = 15
    prior_fraction: float = 0.12
    #: physiological range of one RR interval (240 bpm .. 20 bpm)
    min_rr_ms: float = 250.0
    max_rr_ms: float = 3000.0
    #: most beats a single long interval may be split into (missed-beat correction)
    max_missed: int = 4
    #: relative tolerance for "worth n median intervals" (missed, extra, ectopic pair)
    ratio_tolerance: float = 0.2


@dataclass(frozen=True, slots=True)
class CleanBeat:
    """One corrected NN interval.

    ``t_s`` is the time of the beat that ends the interval (the input's clock);
    ``rr_ms`` the measured interval ending at this beat (for an inserted beat,
    the whole measured interval it was split from); ``nn_ms`` the corrected
    value; ``kind`` one of :data:`KINDS`; ``source_idx`` the index of the
    (last) input interval this beat comes from.
    """

    t_s: float
    rr_ms: float
    nn_ms: float
    kind: str
    artifact: bool
    gap_before: bool
    source_idx: int


@dataclass(frozen=True, slots=True)
class RRCleanResult:
    """Batch result: corrected intervals, their end times (s from series start), abnormal input indices."""

    nn_ms: np.ndarray
    t_s: np.ndarray
    artifact_idx: np.ndarray
    kinds: tuple[str, ...] = ()


class _SortedWindow:
    """The last ``size`` values, kept sorted for O(log n) quartiles and medians."""

    __slots__ = ("size", "_fifo", "_sorted")

    def __init__(self, size: int) -> None:
        self.size = size
        self._fifo: deque[float] = deque()
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._fifo)

    def push(self, value: float) -> None:
        self._fifo.append(value)
        bisect.insort(self._sorted, value)
        if len(self._fifo) > self.size:
            old = self._fifo.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    def median(self) -> float:
        s = self._sorted
        n = len(s)
        mid = n // 2
        return s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])

    def quartile_deviation(self) -> float:
        """(Q3 - Q1) / 2 with linear interpolation (numpy's default percentile)."""
        s = self._sorted
        n = len(s)
        if n < 2:
            return 0.0
        return 0.5 * (_quantile(s, 0.75) - _quantile(s, 0.25))


def _quantile(s: list[float], q: float) -> float:
    pos = q * (len(s) - 1)
    lo = int(pos)
    frac = pos - lo
    if lo + 1 >= len(s):
        return s[lo]
    return s[lo] + (s[lo + 1] - s[lo]) * frac


class RRCleaner:
    """Streaming cleaner: push measured RR intervals, get corrected beats at most two intervals later.

    ``push`` returns the beats finalised by that interval (0, 1 or several: a
    split missed beat yields several); ``flush`` finalises what is still held
    at the end of a series. The same pushes always give the same beats, so
    :func:`clean_rr` over a whole series equals any streamed chunking of it.
    """

    LOOKAHEAD = 2

    def __init__(self, config: RRCleanerConfig | None = None) -> None:
        self.config = config or RRCleanerConfig()
        self.reset()

    def reset(self) -> None:
        """Forget all history (a new recording, or a new person)."""
        cfg = self.config
        self._pending: deque[tuple[float, float, bool, int]] = deque()  # (rr_ms, t_s, gap_before, idx)
        self._nn_hist = _SortedWindow(cfg.median_window)
        self._dnn_hist = _SortedWindow(cfg.threshold_window)
        self._dev_hist = _SortedWindow(cfg.threshold_window)
        self._prev_nn: float | None = None
        self._prev_t_s: float | None = None
        self._last_in_t_s = 0.0
        self._clean_count = 0
        self._next_idx = 0
        self.n_in = 0
        self.n_artifacts = 0

    # ------------------------------------------------------------------ streaming
    def push(self, rr_ms: float, t_s: float | None = None, gap_before: bool = False) -> list[CleanBeat]:
        """Add one measured interval ending at ``t_s`` (default: running sum of the intervals).

        ``gap_before`` says beats were lost just before this one (a lost
        notification): no difference is formed across the gap.
        """
        rr = float(rr_ms)
        if t_s is None:
            t_s = self._last_in_t_s + rr / 1000.0
        self._last_in_t_s = float(t_s)
        idx = self._next_idx
        self._next_idx += 1
        self.n_in += 1
        self._pending.append((rr, float(t_s), bool(gap_before), idx))
        out: list[CleanBeat] = []
        while len(self._pending) > self.LOOKAHEAD:
            self._decide(out, final=False)
        return out

    def flush(self) -> list[CleanBeat]:
        """Finalise every held interval (end of a series) using the look-ahead that exists."""
        out: list[CleanBeat] = []
        while self._pending:
            self._decide(out, final=True)
        return out

    # ------------------------------------------------------------------ internals
    def _stats(self, hint: Sequence[float]) -> tuple[float, float, float]:
        """Median, th1 (successive-difference threshold) and th2 (median-deviation threshold), in ms."""
        cfg = self.config
        if len(self._nn_hist) >= 3:
            med = self._nn_hist.median()
        else:
            vals = [v for v in hint if cfg.min_rr_ms <= v <= cfg.max_rr_ms] or list(hint)
            med = float(np.median(vals))
        th1 = cfg.alpha * self._dnn_hist.quartile_deviation()
        th2 = cfg.alpha * self._dev_hist.quartile_deviation()
        floor = cfg.min_threshold_ms
        if self._clean_count < cfg.warmup_beats:
            floor = max(floor, cfg.prior_fraction * med)
        return med, max(th1, floor), max(th2, floor)

    def _emit(self, out: list[CleanBeat], t_s: float, rr: float, nn: float, kind: str, gap: bool, idx: int) -> None:
        artifact = kind != "normal"
        out.append(CleanBeat(t_s, rr, nn, kind, artifact, gap, idx))
        if self._prev_nn is not None and not gap:
            self._dnn_hist.push(abs(nn - self._prev_nn))
        if len(self._nn_hist) >= 3:
            dev = nn - self._nn_hist.median()
            self._dev_hist.push(abs(dev) * (2.0 if dev < 0 else 1.0))
        self._nn_hist.push(nn)
        self._prev_nn = nn
        self._prev_t_s = t_s
        self._clean_count += 1

    def _spread(self, total: float, n: int, nxt: float | None, med: float) -> list[float]:
        """Share ``total`` ms over n intervals along a line from the previous NN to the next one."""
        a = self._prev_nn if self._prev_nn is not None else med
        b = nxt if nxt is not None else a
        preds = [a + (b - a) * (k + 1) / (n + 1) for k in range(n)]
        scale = total / sum(preds)
        return [p * scale for p in preds]

    def _decide(self, out: list[CleanBeat], final: bool) -> None:
        cfg = self.config
        p = self._pending
        rr0, t0, gap0, i0 = p[0]
        rr1 = p[1][0] if len(p) > 1 else None
        rr2 = p[2][0] if len(p) > 2 else None
        gap1 = p[1][2] if len(p) > 1 else True
        gap2 = p[2][2] if len(p) > 2 else True
        med, th1, th2 = self._stats([v for v, _, _, _ in p] if len(self._nn_hist) < 3 else ())
        prev = self._prev_nn if (self._prev_nn is not None and not gap0) else None

        d0 = (rr0 - prev) / th1 if prev is not None else 0.0
        dev0 = rr0 - med
        m0 = (dev0 * (2.0 if dev0 < 0 else 1.0)) / th2
        abnormal0 = abs(d0) > 1.0 or abs(m0) > 3.0 or not (cfg.min_rr_ms <= rr0 <= cfg.max_rr_ms)
        # a plausible "next" value for interpolation: rr2 if it looks normal, else rr1, else the median
        nxt = None
        for cand, gap in ((rr2, gap2), (rr1, gap1)):
            if cand is not None and not gap and abs(cand - med) < 2.0 * th2:
                nxt = cand
                break

        # extra beat: a short fragment that with its neighbour makes one interval
        if rr1 is not None and not gap1:
            short0 = d0 < -1.0 or m0 < -3.0 or rr0 < cfg.min_rr_ms
            d1 = (rr1 - rr0) / th1
            short1 = d1 < -1.0 or (2.0 * (rr1 - med)) / th2 < -3.0 or rr1 < cfg.min_rr_ms
            err01 = abs(rr0 + rr1 - med)
            if (short0 or short1) and err01 < min(th2, cfg.ratio_tolerance * med):
                err12 = abs(rr1 + rr2 - med) if (rr2 is not None and not gap2) else math.inf
                if short0 or err01 <= err12:
                    p.popleft()
                    rr1_, t1, _, i1 = p.popleft()
                    self.n_artifacts += 2
                    self._emit(out, t1, rr1_, rr0 + rr1_, "extra", gap0, i1)
                    return
            # ectopic / misplaced beat: short-long or long-short pair worth two intervals
            if prev is not None and abs(d0) > 1.0:
                opposite = (d0 < -1.0 and d1 > max(1.0, cfg.c1 * -d0 + cfg.c2)) or (
                    d0 > 1.0 and d1 < -max(1.0, cfg.c1 * d0 + cfg.c2)
                )
                if opposite and abs(rr0 + rr1 - 2.0 * med) < min(2.0 * th2, 2.0 * cfg.ratio_tolerance * med):
                    nxt_pair = rr2 if (rr2 is not None and not gap2 and abs(rr2 - med) < 2.0 * th2) else None
                    nn_a, nn_b = self._spread(rr0 + rr1, 2, nxt_pair, med)
                    p.popleft()
                    rr1_, t1, _, i1 = p.popleft()
                    self.n_artifacts += 2
                    self._emit(out, t0 - (rr0 - nn_a) / 1000.0, rr0, nn_a, "ectopic", gap0, i0)
                    self._emit(out, t1, rr1_, nn_b, "ectopic", False, i1)
                    return

        if not abnormal0:
            p.popleft()
            self._emit(out, t0, rr0, rr0, "normal", gap0, i0)
            return

        # missed beat(s): one interval worth n intervals
        if rr0 > med:
            n = int(round(rr0 / med))
            if 2 <= n <= cfg.max_missed and abs(rr0 / n - med) < min(th2, cfg.ratio_tolerance * med):
                p.popleft()
                self.n_artifacts += 1
                parts = self._spread(rr0, n, nxt, med)
                t_start = t0 - rr0 / 1000.0
                acc = 0.0
                for k, nn in enumerate(parts):
                    acc += nn
                    t_k = t0 if k == n - 1 else t_start + acc / 1000.0
                    self._emit(out, t_k, rr0, nn, "missed", gap0 and k == 0, i0)
                return

        plausible = cfg.min_rr_ms <= rr0 <= cfg.max_rr_ms
        if plausible and prev is not None:
            # a change that persists over the look-ahead is the heart, not an artefact
            if rr1 is None or gap1:
                persists = final and rr1 is None and abs(m0) <= 3.0
            else:
                persists = abs(rr1 - rr0) <= th1 and (abs(rr0 - prev) <= th1 or abs(rr1 - rr0) <= abs(rr1 - prev))
            if persists:
                p.popleft()
                self._emit(out, t0, rr0, rr0, "normal", gap0, i0)
                return
        elif plausible and prev is None and abs(m0) <= 3.0:
            # the first interval after a start or a gap: nothing to difference against
            p.popleft()
            self._emit(out, t0, rr0, rr0, "normal", gap0, i0)
            return

        p.popleft()
        self.n_artifacts += 1
        if not plausible:
            log.debug("dropping implausible RR %.1f ms", rr0)
            # the next beat follows an unknown stretch of time: do not difference across it
            if p:
                r, t, _, i = p[0]
                p[0] = (r, t, True, i)
            else:
                self._prev_nn = None
            out.append(CleanBeat(t0, rr0, math.nan, "implausible", True, gap0, i0))
            return
        a = prev if prev is not None else med
        nn = 0.5 * (a + (nxt if nxt is not None else a))
        self._emit(out, t0, rr0, nn, "longshort", gap0, i0)


def clean_rr(rr_ms: Iterable[float], config: RRCleanerConfig | None = None) -> RRCleanResult:
    """Clean a whole RR series with the streaming cleaner (identical to pushing it beat by beat).

    ``t_s`` counts from the series start (the beat before the first interval);
    dropped implausible values produce no NN interval but are in ``artifact_idx``.
    """
    cleaner = RRCleaner(config)
    beats: list[CleanBeat] = []
    for rr in rr_ms:
        beats.extend(cleaner.push(rr))
    beats.extend(cleaner.flush())
    kept = [b for b in beats if b.kind != "implausible"]
    artifact_idx: set[int] = set()
    for b in beats:
        if b.artifact:
            artifact_idx.add(b.source_idx)
            if b.kind == "extra":  # a merged beat names its second fragment: add the first
                artifact_idx.add(b.source_idx - 1)
    return RRCleanResult(
        nn_ms=np.fromiter((b.nn_ms for b in kept), dtype=np.float64, count=len(kept)),
        t_s=np.fromiter((b.t_s for b in kept), dtype=np.float64, count=len(kept)),
        artifact_idx=np.array(sorted(artifact_idx), dtype=np.int64),
        kinds=tuple(b.kind for b in kept),
    )
