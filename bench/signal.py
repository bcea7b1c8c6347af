"""``python main.py bench signal``: artefact handling, HRV accuracy, R-peaks and CPU cost.

Why this benchmark is built the way it is: a figure is only worth reporting if
the data it is measured on did not shape the code, and if its reference was
made without looking at vrex's answer. So:

* **Held-out data for the RR cleaner.** The NSRDB 60-min NN series is split
  in two by beats: the *first half is the tuning set* (change the cleaner's
  parameters only while looking at it), the *second half is held out* and its
  figures judge the targets. The 5-min NSRDB series (a different recording)
  is a second held-out check. Candour about the past: the cleaner's present
  parameters and its three rules beyond Kubios (``biofeedback/rr.py``) were
  chosen while looking at the *whole* 60-min series, before this split
  existed, so the second half is held out from this split on, not in
  retrospect; the 5-min series was never used for tuning. Tuning-half figures
  are printed beside the held-out ones so that a gap between them shows.
* **A blind R-peak reference.** The reference beats are the majority vote of
  ten NeuroKit2 detectors alone; nothing in it was decided while seeing vrex's
  detections. (A list of beats adjudicated by eye while plotting vrex's
  disagreements with the vote used to correct it; all five went vrex's way,
  so it was removed.) Where the vote is wrong, vrex is charged for it: the
  figures are an honest lower bound, not a flattering one.

What is measured:

* Artefacts: each data set (the reference RR) is corrupted with a seeded,
  shuffled, equal mix of ectopic (a beat moved 20-35 % early: short-long pair,
  same total time), missed (two intervals merged), extra (one interval split at
  25-75 %) and long/short (one wrong value, x0.5-0.7 or x1.35-1.6) artefacts at
  2 % and 5 % of beats, at least 6 beats apart; ``--injections`` independent
  injections per rate are pooled (more artefacts, less luck). Sensitivity: an
  artefact counts as detected when any interval it touches is flagged.
  Specificity: 1 - false flags / clean intervals, where an interval within one
  of an injected artefact is neither clean nor false, and -- because real
  series are not artefact-free by Kubios' own criteria -- intervals within one
  of an interval that NeuroKit2's offline kubios method (first pass, centred
  windows) flags in the *un-injected* series are "ambiguous" and left out, for
  both methods alike (that exclusion is decided by NeuroKit2, never by vrex).
  ``specificity_all_pct`` counts every un-injected interval as clean.
  NeuroKit2's ``signal_fixpeaks(method="kubios")`` runs on the same peaks: its
  first pass (``iterative=False``) for flags, its default iterative correction
  for HRV.
* How realistic the artefact model is: ectopic, missed and extra beats have
  shapes a sinus rhythm does not make. A single long/short value with normal
  neighbours does not: it looks exactly like a genuine sinus pause, and real
  series have such intervals. No RR-only method can tell them apart, so the
  bench also reports the flags on, and the RMSSD error of, each *un-injected*
  series: the price of detecting this artefact kind, paid on clean data.
* HRV error: RMSSD, SDNN and mean HR of the corrected series against the
  reference in consecutive 60-s windows (mean relative error over all windows
  of all injections). The reference is placed on the corrupted series' clock
  (a wrong long/short value shifts the later beats), so windows hold the same beats.
* Breathing: flags on a 6 breaths/min RSA (RR +-80 ms) added to each real
  series, and on a clean synthetic RSA series (+-160 ms, 8 ms noise); the
  target compares with NeuroKit2 on the held-out half and the synthetic series.
* R-peaks: MIT-BIH 208 resampled to 130 Hz (``resample_poly``, zero phase),
  streamed in 73-sample Polar frames. Reference: beats that at least half of
  10 NeuroKit2 detectors find at 360 Hz (detections chained into one cluster
  per beat while < 80 ms apart), timed offline at the extremum of the 0.5 Hz
  zero-phase high-passed ECG with parabolic refinement. Match window 150 ms
  (ANSI/AAMI EC57). The JSON lists every unmatched detection and missed
  reference beat. Without NeuroKit2 there is no blind reference, and the
  accuracy figures are left empty rather than judged against vrex itself.
* Cost: CPU time (``time.process_time``, best of repeats) of the cleaner alone
  and the whole pipeline per beat, and of the 130 Hz ECG detector per second of ECG.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_JSON = Path("bench-results") / "signal.json"
#: the recordings shipped with the repository (tests/data, with their README)
DATA_DIR = Path(__file__).resolve().parents[1] / "tests" / "data"
#: beat-matching window (ANSI/AAMI EC57 uses 150 ms); wide PVCs have no sharp R wave to time
MATCH_WINDOW_S = 0.15
KINDS = ("ectopic", "missed", "extra", "longshort")
RATES = (0.02, 0.05)
DEFAULT_INJECTIONS = 5
#: the RR data sets: the tuning half, the held-out half (judges the targets), a second held-out recording
DATASET_TITLES = {
    "tuning": "NSRDB 60-min, 1st half (tuning)",
    "held_out": "NSRDB 60-min, 2nd half (held out)",
    "held_out_short": "NSRDB 5-min (held out)",
}
#: the data set whose figures judge the RR targets
JUDGED = "held_out"

TARGETS = {
    "artifact_sensitivity_pct": (">=", 99.0),
    "artifact_specificity_pct": (">=", 99.5),
    "rmssd_error_5pct_pct": ("<=", 8.0),
    "breathing_false_alarms_vs_nk": ("<=", 0.0),
    "rpeak_sensitivity_130hz_pct": (">=", 99.5),
    "rpeak_ppv_130hz_pct": (">=", 99.5),
    "rpeak_median_timing_error_ms": ("<=", 4.0),
    "rr_path_us_per_beat": ("<=", 50.0),
    "ecg_path_core_pct": ("<", 1.0),
}
#: the targets judged on the RR data sets (the others: MIT-BIH 208 and CPU time)
RR_TARGETS = ("artifact_sensitivity_pct", "artifact_specificity_pct", "rmssd_error_5pct_pct", "breathing_false_alarms_vs_nk")


def register(bench: argparse._SubParsersAction) -> None:
    """Add ``bench signal`` to the bench sub-commands."""
    p = bench.add_parser("signal", help="RR artefacts, HRV error, R-peaks at 130 Hz, CPU cost (vs NeuroKit2)")
    p.add_argument("--quick", action="store_true", help="one injection per rate and one timing repeat (smoke test)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="FILE", help=f"write results here (default {DEFAULT_JSON})")
    p.add_argument("--seed", type=int, default=7, help="seed of the artefact injection")
    p.add_argument(
        "--injections", type=int, default=None, metavar="N",
        help=f"independent artefact injections per rate, pooled (default {DEFAULT_INJECTIONS}, 1 with --quick)",
    )
    p.add_argument("--data", type=Path, default=DATA_DIR, metavar="DIR",
                   help="folder with nsrdb/ and mitbih208/ (default: the repository's tests/data)")
    p.set_defaults(handler=_handle)


# ---------------------------------------------------------------------- injection
@dataclass(frozen=True, slots=True)
class Injected:
    """A corrupted RR series and its ground truth.

    ``truth``: per artefact, its kind and the indices of the corrupted series it
    touches; ``ref_out[i]``: index in the corrupted series of the interval
    that ends where reference interval ``i`` ends (for a missed beat, the
    merged interval), so reference positions and times can be mapped.
    """

    rr_ms: np.ndarray
    truth: list[tuple[str, list[int]]]
    ref_out: np.ndarray


def inject_artifacts(nn_ms: np.ndarray, rate: float, rng: np.random.Generator) -> Injected:
    """Corrupt ``rate`` of the beats with an equal, shuffled mix of the four artefact kinds."""
    n = len(nn_ms)
    count = int(round(rate * n))
    slots = np.arange(3, n - 3, 6)
    pos = np.sort(rng.choice(slots, size=min(count, len(slots)), replace=False))
    kinds = [KINDS[k % 4] for k in range(len(pos))]
    rng.shuffle(kinds)
    at = dict(zip(pos.tolist(), kinds))
    out: list[float] = []
    truth: list[tuple[str, list[int]]] = []
    ref_out = np.zeros(n, dtype=np.int64)
    i = 0
    while i < n:
        kind = at.get(i)
        v = float(nn_ms[i])
        j = len(out)
        if kind == "ectopic":  # beat i moved 20-35 % early: short-long pair, same total time
            s = rng.uniform(0.20, 0.35) * v
            out += [v - s, float(nn_ms[i + 1]) + s]
            truth.append((kind, [j, j + 1]))
            ref_out[i], ref_out[i + 1] = j, j + 1
            i += 2
            continue
        if kind == "missed":  # beat i not detected: intervals i and i+1 merged
            out.append(v + float(nn_ms[i + 1]))
            truth.append((kind, [j]))
            ref_out[i] = ref_out[i + 1] = j
            i += 2
            continue
        if kind == "extra":  # a false beat splits interval i at 25-75 %
            u = rng.uniform(0.25, 0.75)
            out += [u * v, (1 - u) * v]
            truth.append((kind, [j, j + 1]))
            ref_out[i] = j + 1
        elif kind == "longshort":  # one wrong value, x0.5-0.7 or x1.35-1.6
            f = rng.uniform(1.35, 1.6) if rng.random() < 0.5 else rng.uniform(0.5, 0.7)
            out.append(v * f)
            truth.append((kind, [j]))
            ref_out[i] = j
        else:
            out.append(v)
            ref_out[i] = j
        i += 1
    return Injected(np.asarray(out), truth, ref_out)


def ambiguous_intervals(ref_flags: np.ndarray, inj: Injected) -> set[int]:
    """Corrupted-series indices within one interval of a reference interval the offline method flags."""
    amb: set[int] = set()
    for i in np.asarray(ref_flags, dtype=np.int64).tolist():
        if 0 <= i < inj.ref_out.size:
            j = int(inj.ref_out[i])
            amb.update((j - 1, j, j + 1))
    return amb


def detection_scores(flagged: np.ndarray, truth: list[tuple[str, list[int]]], n: int, ambiguous: set[int] | None = None) -> dict:
    """Sensitivity per injected artefact; specificity over intervals that are neither injected nor ambiguous.

    An artefact is detected when any interval it touches is flagged. An
    interval within one of an injected artefact is neither clean nor false.
    ``ambiguous`` (intervals the offline reference method already flags in the
    un-injected series, +-1) are left out of the main specificity and counted
    in ``specificity_all_pct``, which treats every un-injected interval as clean.
    The raw counts are returned too, so that injections can be pooled
    (:func:`pool_scores`).
    """
    flagged_set = {int(k) for k in flagged}
    near: set[int] = set()
    detected = 0
    by_kind = {k: [0, 0] for k in KINDS}
    for kind, idx in truth:
        hit = any(k in flagged_set for k in idx)
        detected += hit
        by_kind[kind][0] += hit
        by_kind[kind][1] += 1
        for k in idx:
            near.update((k - 1, k, k + 1))
    clean_all = set(range(n)) - near
    clean = clean_all - (ambiguous or set())
    return _score_percentages({
        "artifacts": len(truth),
        "detected": detected,
        "clean_intervals": len(clean),
        "false_flags": len(flagged_set & clean),
        "ambiguous_intervals": len(clean_all) - len(clean),
        "false_flags_all": len(flagged_set & clean_all),
        "by_kind": by_kind,
    })


def _score_percentages(c: dict) -> dict:
    clean_all = c["clean_intervals"] + c["ambiguous_intervals"]
    return c | {
        "sensitivity_pct": 100.0 * c["detected"] / max(1, c["artifacts"]),
        "specificity_pct": 100.0 * (1 - c["false_flags"] / max(1, c["clean_intervals"])),
        "specificity_all_pct": 100.0 * (1 - c["false_flags_all"] / max(1, clean_all)),
        "sensitivity_by_kind_pct": {k: 100.0 * d / max(1, t) for k, (d, t) in c["by_kind"].items()},
    }


def pool_scores(scores: list[dict]) -> dict:
    """Scores of several injections as one: counts summed, percentages recomputed from the sums."""
    keys = ("artifacts", "detected", "clean_intervals", "false_flags", "ambiguous_intervals", "false_flags_all")
    pooled: dict = {k: sum(s[k] for s in scores) for k in keys}
    pooled["by_kind"] = {k: [sum(s["by_kind"][k][0] for s in scores), sum(s["by_kind"][k][1] for s in scores)] for k in KINDS}
    return _score_percentages(pooled)


def window_relative_errors(
    ref_nn: np.ndarray, ref_t_s: np.ndarray, est_nn: np.ndarray, est_t_s: np.ndarray, window_s: float = 60.0
) -> dict[str, list[float]]:
    """Per consecutive window, the relative error of RMSSD, SDNN and mean HR (both series on one clock)."""
    from biofeedback.hrv import mean_hr_bpm, rmssd_ms, sdnn_ms

    errs: dict[str, list[float]] = {"rmssd": [], "sdnn": [], "mean_hr": []}
    for w0 in np.arange(0.0, ref_t_s[-1] - window_s + 1e-9, window_s):
        r = ref_nn[(ref_t_s > w0) & (ref_t_s <= w0 + window_s)]
        e = est_nn[(est_t_s > w0) & (est_t_s <= w0 + window_s)]
        for name, fn in (("rmssd", rmssd_ms), ("sdnn", sdnn_ms), ("mean_hr", mean_hr_bpm)):
            a, b = fn(r), fn(e)
            if a and b is not None:
                errs[name].append(abs(b - a) / a)
    return errs


def mean_window_errors(errs: dict[str, list[float]]) -> dict:
    """Mean relative errors in percent (``None`` where no window had a value) and the window count."""
    return {f"{k}_error_pct": 100.0 * float(np.mean(v)) if v else None for k, v in errs.items()} | {
        "windows": len(errs["rmssd"])
    }


def window_errors(ref_nn: np.ndarray, ref_t_s: np.ndarray, est_nn: np.ndarray, est_t_s: np.ndarray, window_s: float = 60.0) -> dict:
    """Mean relative error of RMSSD, SDNN and mean HR in consecutive windows (both series on one clock)."""
    return mean_window_errors(window_relative_errors(ref_nn, ref_t_s, est_nn, est_t_s, window_s))


def _nk_kubios(rr_ms: np.ndarray, nk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NeuroKit2 kubios on peaks at 1 kHz: (flagged interval indices, corrected NN, their end times)."""
    peaks = np.concatenate([[0], np.cumsum(np.round(rr_ms))]).astype(np.int64)
    info, _ = nk.signal_fixpeaks(peaks, sampling_rate=1000, method="kubios", iterative=False, show=False)
    flagged = sorted({int(i) - 1 for key in KINDS for i in info[key] if int(i) >= 1})
    _, fixed = nk.signal_fixpeaks(peaks, sampling_rate=1000, method="kubios", iterative=True, show=False)
    fixed = np.asarray(fixed, dtype=np.float64)
    return np.asarray(flagged, dtype=np.int64), np.diff(fixed), fixed[1:] / 1000.0


def bench_artifacts(ref_nn: np.ndarray, seed: int, nk, injections: int = DEFAULT_INJECTIONS) -> dict:
    """Detection and HRV error of vrex (and NeuroKit2) on ``injections`` pooled injections per rate."""
    from biofeedback.rr import clean_rr

    res: dict = {"beats": int(ref_nn.size), "minutes": float(ref_nn.sum()) / 60000.0, "injections_per_rate": injections}
    vrex_clean = clean_rr(ref_nn)
    vrex_ref = vrex_clean.artifact_idx
    ref_t_s = np.cumsum(ref_nn) / 1000.0
    nk_uninjected = _nk_kubios(ref_nn, nk) if nk is not None else None
    nk_ref = nk_uninjected[0] if nk_uninjected is not None else np.empty(0, dtype=np.int64)
    for rate in RATES:
        methods = ("vrex", "neurokit2") if nk is not None else ("vrex",)
        scores: dict[str, list[dict]] = {m: [] for m in methods}
        errs: dict[str, dict[str, list[float]]] = {m: {"rmssd": [], "sdnn": [], "mean_hr": []} for m in methods}
        for k in range(injections):
            rng = np.random.default_rng([seed, int(round(rate * 1000)), k])
            inj = inject_artifacts(ref_nn, rate, rng)
            amb = ambiguous_intervals(nk_ref, inj)
            # the reference on the corrupted series' clock (a wrong long/short value shifts later beats)
            ref_t = np.cumsum(inj.rr_ms)[inj.ref_out] / 1000.0
            c = clean_rr(inj.rr_ms)
            found = {"vrex": (c.artifact_idx, c.nn_ms, c.t_s)}
            if nk is not None:
                found["neurokit2"] = _nk_kubios(inj.rr_ms, nk)
            for m, (flagged, nn, t) in found.items():
                scores[m].append(detection_scores(flagged, inj.truth, inj.rr_ms.size, amb))
                for name, v in window_relative_errors(ref_nn, ref_t, nn, t).items():
                    errs[m][name] += v
        res[f"{int(round(rate * 100))}%"] = {m: pool_scores(scores[m]) | mean_window_errors(errs[m]) for m in methods}
    res["flags_on_uninjected_reference"] = {
        "vrex": int(vrex_ref.size),
        "vrex_not_near_reference_flags": int(len(set(vrex_ref.tolist()) - {k + o for k in nk_ref.tolist() for o in (-1, 0, 1)})),
        "neurokit2": int(nk_ref.size) if nk is not None else None,
        # what "correcting" the real, un-injected series costs (its RR values are the reference)
        "vrex_rmssd_error_pct": window_errors(ref_nn, ref_t_s, vrex_clean.nn_ms, vrex_clean.t_s)["rmssd_error_pct"],
        "neurokit2_rmssd_error_pct": (
            window_errors(ref_nn, ref_t_s, nk_uninjected[1], nk_uninjected[2])["rmssd_error_pct"] if nk_uninjected is not None else None
        ),
    }
    return res


def synthetic_rsa(n_beats: int, rate_hz: float, amplitude_ms: float, mean_ms: float = 850.0, noise_ms: float = 8.0, seed: int = 0) -> np.ndarray:
    """A clean RR series with respiratory sinus arrhythmia: sinusoid at the breathing rate plus small noise."""
    rng = np.random.default_rng(seed)
    rr = np.empty(n_beats)
    t = 0.0
    for k in range(n_beats):
        rr[k] = mean_ms + amplitude_ms * math.sin(2 * math.pi * rate_hz * t) + rng.normal(0.0, noise_ms)
        t += rr[k] / 1000.0
    return rr


def _breathing_case(rr: np.ndarray, nk) -> dict:
    from biofeedback.rr import clean_rr

    out = {"beats": int(rr.size), "vrex_false_alarms": int(clean_rr(rr).artifact_idx.size)}
    if nk is not None:
        out["neurokit2_false_alarms"] = int(_nk_kubios(rr, nk)[0].size)
    return out


def real_plus_rsa(nn_ms: np.ndarray, amplitude_ms: float = 80.0, rate_hz: float = 0.1) -> np.ndarray:
    """A real series with a slow-breathing swing added (every flag on it is a false alarm or a real artefact)."""
    t = np.cumsum(nn_ms) / 1000.0
    return nn_ms + amplitude_ms * np.sin(2 * np.pi * rate_hz * t)


def bench_breathing(sets: dict[str, np.ndarray], nk, amplitude_ms: float = 80.0, rate_hz: float = 0.1) -> dict:
    """Flags (false alarms) on slow-breathing RSA: added to each real series, and on a clean synthetic one."""
    synth_beats = max(v.size for v in sets.values())
    out: dict = {"amplitude_ms": amplitude_ms, "synthetic_amplitude_ms": 2 * amplitude_ms, "breaths_per_min": rate_hz * 60}
    for name, nn in sets.items():
        out[f"real_plus_rsa_{name}"] = _breathing_case(real_plus_rsa(nn, amplitude_ms, rate_hz), nk)
    out["synthetic_rsa"] = _breathing_case(synthetic_rsa(synth_beats, rate_hz, 2 * amplitude_ms), nk)
    return out


# ---------------------------------------------------------------------- R-peaks
def _match(ref_t: np.ndarray, det_t: np.ndarray, tol_s: float) -> tuple[int, np.ndarray]:
    """Reference beats with a detection within ``tol_s`` (nearest), and those detections' timing errors."""
    if det_t.size == 0 or ref_t.size == 0:
        return 0, np.empty(0)
    j = np.clip(np.searchsorted(det_t, ref_t), 1, det_t.size - 1) if det_t.size > 1 else np.zeros(ref_t.size, int)
    cand = np.stack([det_t[np.maximum(j - 1, 0)], det_t[j]])
    k = np.argmin(np.abs(cand - ref_t), axis=0)
    best = cand[k, np.arange(ref_t.size)]
    err = best - ref_t
    ok = np.abs(err) <= tol_s
    return int(ok.sum()), err[ok]


def _unmatched(a: np.ndarray, b: np.ndarray, tol_s: float) -> np.ndarray:
    """Times in ``a`` with nothing in ``b`` within ``tol_s`` (for inspecting disagreements)."""
    if a.size == 0 or b.size == 0:
        return a
    j = np.clip(np.searchsorted(b, a), 1, max(1, b.size - 1))
    d = np.minimum(np.abs(b[np.minimum(j - 1, b.size - 1)] - a), np.abs(b[np.minimum(j, b.size - 1)] - a))
    return a[d > tol_s]


REFERENCE_DETECTORS = (
    "neurokit", "pantompkins1985", "hamilton2002", "elgendi2010", "engzeemod2012",
    "rodrigues2021", "martinez2004", "kalidas2017", "nabian2018", "christov2004",
)


def majority_beats(ecg_uv: np.ndarray, fs_hz: float, nk) -> tuple[np.ndarray, str]:
    """Approximate beat times that at least half of 10 NeuroKit2 detectors find, and how they were found.

    Detections of all detectors are chained into one cluster per beat (a new
    cluster starts after an 80 ms silence); a beat is a cluster that at least
    half of the detectors voted for. vrex's detector takes no part, so the
    reference is blind to vrex's output.
    """
    sets = []
    for method in REFERENCE_DETECTORS:
        try:
            _, info = nk.ecg_peaks(ecg_uv, sampling_rate=int(fs_hz), method=method)
        except Exception as exc:  # a detector NeuroKit2 cannot run here: fewer voters
            log.warning("neurokit2 %s failed: %s", method, exc)
            continue
        sets.append(np.asarray(info["ECG_R_Peaks"], dtype=np.float64) / fs_hz)
    if not sets:
        return np.empty(0), "no NeuroKit2 detector ran"
    allt = np.concatenate(sets)
    lab = np.concatenate([np.full(s.size, k) for k, s in enumerate(sets)])
    order = np.argsort(allt, kind="stable")
    allt, lab = allt[order], lab[order]
    need = (len(sets) + 1) // 2
    breaks = np.flatnonzero(np.diff(allt) > 0.08) + 1
    centres = [
        float(np.median(allt[a:b]))
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, allt.size])
        if len(set(lab[a:b].tolist())) >= need
    ]
    how = (
        f"majority (>= {need} of {len(sets)}) of NeuroKit2 detectors at {fs_hz:g} Hz, "
        "detections chained at < 80 ms, timed offline at the |0.5 Hz high-passed ECG| maximum; "
        "no adjudication, vrex's detections unseen"
    )
    return np.asarray(centres, dtype=np.float64), how


def reference_peaks(ecg_uv: np.ndarray, fs_hz: float, approx_s: np.ndarray) -> np.ndarray:
    """Reference beat times: each approximate (voted) beat timed on the zero-phase high-passed ECG.

    The detectors disagree by tens of ms on where a beat is; the reference time
    is the largest |ECG| after a 0.5 Hz zero-phase high-pass within +-75 ms of
    the voted time, refined to a fraction of a sample with a parabola, so the
    timing error measures vrex against the signal, not against a detector.
    """
    from scipy import signal

    hp = signal.filtfilt(*signal.butter(2, 0.5, "high", fs=fs_hz), ecg_uv)
    half = int(round(0.075 * fs_hz))
    fid = []
    for r in np.asarray(approx_s, dtype=np.float64):
        i = int(round(r * fs_hz))
        lo, hi = max(i - half, 1), min(i + half + 1, hp.size - 1)
        if hi - lo < 3:
            continue
        w = np.abs(hp[lo:hi])
        k = int(np.argmax(w))
        if 0 < k < w.size - 1:
            y0, y1, y2 = w[k - 1], w[k], w[k + 1]
            den = y0 - 2 * y1 + y2
            frac = 0.5 * (y0 - y2) / den if den < 0 else 0.0
        else:
            frac = 0.0
        fid.append((lo + k + frac) / fs_hz)
    return np.unique(np.asarray(fid))


def bench_rpeaks(ecg_uv: np.ndarray, fs_hz: float, nk, repeats: int) -> dict:
    """vrex's streaming detector at 130 Hz and at the recording's rate against the blind vote."""
    from scipy import signal

    from biofeedback.ecg import RPeakDetector

    if nk is not None:
        approx, how = majority_beats(ecg_uv, fs_hz, nk)
        ref = reference_peaks(ecg_uv, fs_hz, approx)
    else:
        ref, how = None, "none: NeuroKit2 is not installed (pip install 'vrex[bench]'), so accuracy is not judged"
    out: dict = {
        "reference": how,
        "reference_beats": None if ref is None else int(ref.size),
        "match_window_ms": 1000.0 * MATCH_WINDOW_S,
    }
    for target_hz, up, down in ((130, 13, 36), (int(fs_hz), 1, 1)):
        x = signal.resample_poly(ecg_uv, up, down) if up != down else ecg_uv
        best = math.inf
        for _ in range(repeats):
            det = RPeakDetector(target_hz)
            frame = 73
            peaks: list[float] = []
            t0 = time.process_time()
            for k in range(0, x.size, frame):
                chunk = x[k : k + frame]
                peaks += det.feed(chunk, (k + chunk.size - 1) / target_hz)
            peaks += det.flush()
            best = min(best, time.process_time() - t0)
        p = np.asarray(peaks)
        duration = x.size / target_hz
        row: dict = {
            "detected": int(p.size),
            "cpu_s_per_ecg_s": best / duration,
            "core_pct": 100.0 * best / duration,
            "latency_s": det.latency_s,
        }
        if ref is not None:
            tp, err = _match(ref, p, MATCH_WINDOW_S)
            row |= {
                "true_positives": tp,
                "sensitivity_pct": 100.0 * tp / max(1, ref.size),
                "ppv_pct": 100.0 * tp / max(1, p.size),
                "unmatched_detections_s": [round(float(v), 3) for v in _unmatched(p, ref, MATCH_WINDOW_S)],
                "missed_reference_beats_s": [round(float(v), 3) for v in _unmatched(ref, p, MATCH_WINDOW_S)],
                "median_abs_timing_error_ms": 1000.0 * float(np.median(np.abs(err))) if err.size else None,
                "p95_abs_timing_error_ms": 1000.0 * float(np.percentile(np.abs(err), 95)) if err.size else None,
            }
        else:
            row |= dict.fromkeys(("sensitivity_pct", "ppv_pct", "median_abs_timing_error_ms", "p95_abs_timing_error_ms"))
        out[f"{target_hz}hz"] = row
    return out


# ---------------------------------------------------------------------- cost
def bench_cost(ref_nn: np.ndarray, repeats: int) -> dict:
    """CPU time per beat of the cleaner alone and of the whole RR pipeline, 5 % artefacts injected."""
    from biofeedback.pipeline import HeartPipeline
    from biofeedback.records import HeartSample
    from biofeedback.rr import RRCleaner

    rng = np.random.default_rng(1)
    rr = inject_artifacts(ref_nn, 0.05, rng).rr_ms
    best_clean = best_pipe = math.inf
    vals = rr.tolist()
    t_end = np.cumsum(rr) / 1000.0
    samples = [HeartSample(t_s=float(t), rr_ms=(v,)) for t, v in zip(t_end, vals)]
    for _ in range(repeats):
        c = RRCleaner()
        t0 = time.process_time()
        for v in vals:
            c.push(v)
        c.flush()
        best_clean = min(best_clean, time.process_time() - t0)
        p = HeartPipeline()
        t0 = time.process_time()
        for s in samples:
            p.feed(s)
            p.drain_beats()
        best_pipe = min(best_pipe, time.process_time() - t0)
    n = len(vals)
    return {"beats": n, "cleaner_us_per_beat": 1e6 * best_clean / n, "pipeline_us_per_beat": 1e6 * best_pipe / n}


# ---------------------------------------------------------------------- driver
@dataclass(frozen=True, slots=True)
class BenchData:
    """The recordings the benchmark reads (see tests/data/README.md for their source and licence)."""

    nn_long_ms: np.ndarray
    nn_short_ms: np.ndarray
    ecg_uv: np.ndarray
    ecg_fs_hz: float

    def rr_sets(self) -> dict[str, np.ndarray]:
        """The tuning half, the held-out half (split by beats) and the short recording."""
        half = self.nn_long_ms.size // 2
        return {"tuning": self.nn_long_ms[:half], "held_out": self.nn_long_ms[half:], "held_out_short": self.nn_short_ms}


def load_data(data_dir: Path) -> BenchData:
    """Read the NSRDB NN series and the MIT-BIH 208 excerpt; a missing or unreadable file is a user error."""
    from biofeedback.errors import BiofeedbackError

    paths = {
        "long": data_dir / "nsrdb" / "SampleNNISeriesLong.npy",
        "short": data_dir / "nsrdb" / "SampleNNISeriesShort.npy",
        "ecg": data_dir / "mitbih208" / "ecg.dat",
    }
    for p in paths.values():
        if not p.is_file():
            raise BiofeedbackError(f"benchmark data {p} not found: pass --data with the folder holding nsrdb/ and mitbih208/ (the repository's tests/data)")
    try:
        long_ms = np.load(paths["long"], allow_pickle=False).astype(np.float64)
        short_ms = np.load(paths["short"], allow_pickle=False).astype(np.float64)
        with np.load(paths["ecg"], allow_pickle=False) as z:
            raw = z["ecg"].astype(np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise BiofeedbackError(f"benchmark data in {data_dir} cannot be read ({exc}): use the recordings of the repository's tests/data") from exc
    for name, v in (("nsrdb/SampleNNISeriesLong.npy", long_ms), ("nsrdb/SampleNNISeriesShort.npy", short_ms)):
        if v.ndim != 1 or v.size < 200 or not np.all(np.isfinite(v)) or not np.all((v > 200) & (v < 3000)):
            raise BiofeedbackError(f"benchmark data {data_dir / name}: expected a 1-D series of >= 200 NN intervals of 200-3000 ms")
    return BenchData(long_ms, short_ms, (raw - 1024.0) / 200.0 * 1000.0, 360.0)


def _met(value: float | None, op: str, limit: float) -> bool | None:
    if value is None:
        return None
    return value >= limit if op == ">=" else value <= limit if op == "<=" else value < limit


def rr_target_values(artifacts: dict, breathing: dict, dataset: str) -> dict[str, float | None]:
    """The RR targets' figures on one data set (breathing: its real + RSA case and the synthetic case)."""
    a2, a5 = artifacts["2%"]["vrex"], artifacts["5%"]["vrex"]
    cases = (f"real_plus_rsa_{dataset}", "synthetic_rsa")
    has_nk = all("neurokit2_false_alarms" in breathing[c] for c in cases)
    return {
        "artifact_sensitivity_pct": min(a2["sensitivity_pct"], a5["sensitivity_pct"]),
        "artifact_specificity_pct": min(a2["specificity_pct"], a5["specificity_pct"]),
        "rmssd_error_5pct_pct": a5["rmssd_error_pct"],
        "breathing_false_alarms_vs_nk": (
            max(breathing[c]["vrex_false_alarms"] - breathing[c]["neurokit2_false_alarms"] for c in cases) if has_nk else None
        ),
    }


def run_bench(data_dir: Path = DATA_DIR, quick: bool = False, seed: int = 7, injections: int | None = None) -> dict:
    """Run every part; returns the JSON-ready result, targets judged on held-out data and the blind reference."""
    from biofeedback.errors import BiofeedbackError

    if injections is None:
        injections = 1 if quick else DEFAULT_INJECTIONS
    if injections < 1:
        raise BiofeedbackError(f"--injections {injections}: use 1 or more")
    try:
        import warnings

        warnings.filterwarnings("ignore", module="neurokit2")
        import neurokit2 as nk
    except ImportError:
        nk = None
        log.warning("neurokit2 is not installed: comparisons and the R-peak reference are skipped (pip install 'vrex[bench]')")
    data = load_data(data_dir)
    sets = data.rr_sets()
    repeats = 1 if quick else 3
    artifacts = {name: bench_artifacts(nn, seed, nk, injections) for name, nn in sets.items()}
    breathing = bench_breathing(sets, nk)
    result = {
        "meta": {
            "quick": quick,
            "seed": seed,
            "injections_per_rate": injections,
            "neurokit2": getattr(nk, "__version__", None),
            "data_dir": str(data_dir),
            "datasets": {name: DATASET_TITLES[name] for name in sets},
            "judged_on": JUDGED,
            "ecg_seconds": data.ecg_uv.size / data.ecg_fs_hz,
        },
        "artifacts": artifacts,
        "breathing": breathing,
        "rpeaks": bench_rpeaks(data.ecg_uv, data.ecg_fs_hz, nk, repeats),
        "cost": bench_cost(data.nn_long_ms, repeats),
    }
    r130 = result["rpeaks"]["130hz"]
    per_set = {name: rr_target_values(artifacts[name], breathing, name) for name in sets}
    values = per_set[JUDGED] | {
        "rpeak_sensitivity_130hz_pct": r130["sensitivity_pct"],
        "rpeak_ppv_130hz_pct": r130["ppv_pct"],
        "rpeak_median_timing_error_ms": r130["median_abs_timing_error_ms"],
        "rr_path_us_per_beat": result["cost"]["pipeline_us_per_beat"],
        "ecg_path_core_pct": r130["core_pct"],
    }
    targets = {}
    for name, (op, limit) in TARGETS.items():
        v = values[name]
        row = {"value": v, "target": f"{op} {limit:g}", "met": _met(v, op, limit)}
        if name in RR_TARGETS:
            row["judged_on"] = DATASET_TITLES[JUDGED]
            row["other_datasets"] = {
                s: {"value": per_set[s][name], "met": _met(per_set[s][name], op, limit)} for s in sets if s != JUDGED
            }
        elif name.startswith("rpeak"):
            row["judged_on"] = "MIT-BIH 208, blind NeuroKit2 vote"
        else:
            row["judged_on"] = "CPU time"
        targets[name] = row
    result["targets"] = targets
    return result


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def _handle(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from biofeedback.errors import BiofeedbackError

    result = run_bench(args.data, args.quick, args.seed, args.injections)
    sets = list(result["meta"]["datasets"])
    console = Console(width=None if sys.stdout.isatty() else 180)  # logs and pipes get the whole table
    inj = result["meta"]["injections_per_rate"]
    t = Table(title=f"vrex signal benchmark: RR cleaner vs NeuroKit2 kubios ({inj} injection(s) per rate pooled)"
              + (" (quick)" if args.quick else ""))
    t.add_column("metric")
    short = {"tuning": "tuning", "held_out": "HELD OUT", "held_out_short": "5-min held out"}
    for s in sets:
        t.add_column(f"{short[s]}: vrex", justify="right")
        t.add_column(f"{short[s]}: NK", justify="right")
    a = result["artifacts"]
    t.add_row("beats", *[x for s in sets for x in (_fmt(a[s]["beats"]), "")])
    for rate in ("2%", "5%"):
        for key in (
            "artifacts", "sensitivity_pct", "specificity_pct", "false_flags", "ambiguous_intervals", "specificity_all_pct",
            "false_flags_all", "rmssd_error_pct", "sdnn_error_pct", "mean_hr_error_pct",
        ):
            cells = []
            for s in sets:
                cells += [_fmt(a[s][rate]["vrex"][key]), _fmt(a[s][rate].get("neurokit2", {}).get(key))]
            t.add_row(f"{rate} artefacts: {key}", *cells)
    t.add_row("flags on the un-injected series", *[x for s in sets for x in (
        _fmt(a[s]["flags_on_uninjected_reference"]["vrex"]), _fmt(a[s]["flags_on_uninjected_reference"]["neurokit2"]))])
    t.add_row("  vrex flags not within 1 of a NK flag", *[x for s in sets for x in (
        _fmt(a[s]["flags_on_uninjected_reference"]["vrex_not_near_reference_flags"]), "")])
    t.add_row("RMSSD error on the un-injected series", *[x for s in sets for x in (
        _fmt(a[s]["flags_on_uninjected_reference"]["vrex_rmssd_error_pct"]),
        _fmt(a[s]["flags_on_uninjected_reference"]["neurokit2_rmssd_error_pct"]))])
    br = result["breathing"]
    t.add_row("false alarms, 6/min breathing (real + RSA)", *[x for s in sets for x in (
        _fmt(br[f"real_plus_rsa_{s}"]["vrex_false_alarms"]), _fmt(br[f"real_plus_rsa_{s}"].get("neurokit2_false_alarms")))])
    syn = br["synthetic_rsa"]
    t.add_row(f"false alarms, 6/min breathing (synthetic RSA, {syn['beats']} beats)",
              _fmt(syn["vrex_false_alarms"]), _fmt(syn.get("neurokit2_false_alarms")), *[""] * (2 * len(sets) - 2))
    console.print(t)

    rt = Table(title="R-peaks on MIT-BIH 208 (blind reference) and CPU cost")
    rt.add_column("metric")
    rt.add_column("value", justify="right")
    rp = result["rpeaks"]
    rt.add_row("reference beats", _fmt(rp["reference_beats"]))
    for hz in ("130hz", "360hz"):
        for key in ("detected", "sensitivity_pct", "ppv_pct", "median_abs_timing_error_ms", "p95_abs_timing_error_ms", "core_pct"):
            rt.add_row(f"{hz}: {key}", _fmt(rp[hz][key]))
    for key, v in result["cost"].items():
        rt.add_row(f"cost: {key}", _fmt(v))
    console.print(rt)

    tt = Table(title=f"targets (RR targets judged on {DATASET_TITLES[JUDGED]})")
    for col in ("target", "limit", "judged on", "value", "met", "tuning half", "5-min held out"):
        tt.add_column(col, justify="left" if col in ("target", "judged on") else "right")
    verdict = {True: "yes", False: "NOT MET", None: "n/a"}

    def beside(d: dict | None) -> str:  # a figure on a data set that does not judge the target, and whether it would pass
        return "-" if d is None else f"{_fmt(d['value'])} ({verdict[d['met']]})"

    for name, d in result["targets"].items():
        other = d.get("other_datasets", {})
        tt.add_row(
            name, d["target"], d["judged_on"], _fmt(d["value"]), verdict[d["met"]],
            beside(other.get("tuning")), beside(other.get("held_out_short")),
        )
    console.print(tt)
    console.print(f"R-peak reference: {rp['reference']}", soft_wrap=True)
    try:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    except OSError as exc:
        raise BiofeedbackError(f"cannot write {args.json}: {exc.strerror or exc}; choose a writable --json path") from exc
    console.print(f"wrote {args.json}")
    return 0
