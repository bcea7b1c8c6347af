"""``export --format xdf|csv|bids|report``: one recorded session into files other tools read without help.

* ``xdf``: every stream in one XDF 1.0 file, rebuilt from the store (the record of truth) with the raw ECG
  from the session's own ``session.xdf``, with footers even when the live file was cut by a crash.
* ``csv``: tidy CSVs, one per series (one row per observation, one column per variable, units in the column
  names) and a README of every column.
* ``bids``: BIDS physiological recordings (:mod:`therapy.export.bids`).
* ``report``: a self-contained HTML page for the clinician (:mod:`therapy.export.report`).

Long writes (ECG rows) show a rich progress bar on a terminal.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from therapy.errors import TherapyError
from therapy.export.recorded import SessionData, read_xdf
from therapy.sinks.streams import PHASE_CODES, shown_dials
from therapy.sinks.xdf import XdfWriter

PHASE_NAMES = {v: k for k, v in PHASE_CODES.items()}


def prepare_out(path: Path) -> Path:
    """Create ``path`` and prove it is writable before reading anything (one clear line otherwise)."""
    from therapy.store import prepare_output_dir

    return prepare_output_dir(path, what="export folder", option="--out folder")


@contextlib.contextmanager
def progress(console, total: int, what: str) -> Iterator:
    """A rich progress bar (on a terminal; silent otherwise) advanced with ``advance(n)``."""
    if console is None or not console.is_terminal or total <= 0:
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n=1: bar.advance(task, n)


def recorded_station(data: SessionData, fallback: str) -> str:
    """The station the session's streams were published from (from its XDF), else ``fallback``."""
    if data.xdf_path is not None:
        try:
            for s in read_xdf(data.xdf_path):
                station = s.spec.desc.get("session", {}).get("station") if isinstance(s.spec.desc, dict) else None
                if station:
                    return str(station)
        except TherapyError:
            pass
    return fallback


def export_session(data: SessionData, fmt: str, out: Path, *, station: str, console=None,
                   course: Sequence[SessionData] | None = None) -> list[Path]:
    """Write ``data`` as ``fmt`` into ``out``; returns the files written."""
    if fmt == "xdf":
        return [write_xdf(data, out / f"{data.session_id}.xdf", station=recorded_station(data, station),
                          console=console)]
    if fmt == "csv":
        return write_csv(data, out, station=station, console=console)
    if fmt == "bids":
        from therapy.export.bids import write_bids

        return write_bids(data, out, station=station, console=console)
    if fmt == "report":
        from therapy.export.report import write_report

        return write_report(data, out, course=course or [data], console=console)
    raise TherapyError(f"unknown export format {fmt!r}; choose xdf, bids, csv or report")


def write_xdf(data: SessionData, path: Path, *, station: str, console=None) -> Path:
    streams = data.streams(station)
    writer = XdfWriter(path, file_info={"session_id": data.session_id, "patient_code": data.patient or "",
                                        "protocol": data.protocol, "environment": data.environment,
                                        "started_utc": data.started_utc, "exported_by": "vrex export"})
    for s in streams:
        writer.add_stream(s.spec, hostname=station)
    total = sum(len(s) for s in streams)
    with progress(console, total, "writing XDF") as advance:
        for s in streams:
            step = 4096
            for a in range(0, len(s), step):
                b = min(len(s), a + step)
                writer.write_samples(s.spec.key, s.timestamps_s[a:b], s.values[a:b])
                writer.flush()
                advance(b - a)
    writer.close()
    return path


# -- csv ----------------------------------------------------------------------------------------------

#: Every CSV column: (file, column, unit, meaning). The README is generated from this table.
CSV_COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "hr.csv": [("t_s", "s", "session clock (LSL seconds for live sensors)"),
               ("elapsed_s", "s", "seconds since the session started"),
               ("hr_bpm", "beats/min", "heart rate from RR intervals; empty when unknown"),
               ("arousal_sd", "baseline SD", "(HR - baseline mean) / baseline SD; empty before the baseline"),
               ("rmssd_ms", "ms", "RMSSD of recent NN intervals"),
               ("quality", "0..1", "signal quality (1 = clean, recent, in contact)"),
               ("stale", "0/1", "1 when no valid beat arrived recently (never stepped up on)")],
    "beats.csv": [("t_s", "s", "session clock time of the beat"), ("elapsed_s", "s", "since the session started"),
                  ("rr_ms", "ms", "RR interval as measured"), ("nn_ms", "ms", "RR corrected for artefacts (NN)"),
                  ("artifact", "0/1", "1 when the beat was classified as an artefact and corrected"),
                  ("gap_before", "0/1", "1 when beats were lost before this one (a link gap)")],
    "exposure.csv": [("t_s", "s", "session clock"), ("elapsed_s", "s", "since the session started"),
                     ("environment", "", "environment shown"), ("level", "", "hierarchy level shown (0 = lowest)"),
                     ("intensity", "0..1", "shown intensity of the level (ramps in after a change)"),
                     ("phase", "", "baseline, exposure, safe_place, recovery, ..."),
                     ("safe_place", "0/1", "1 while the safe place is shown"),
                     ("dial_<name>", "dial unit", "each of the environment's dials as shown (the level's setting moved by the "
                      "intensity, then any therapist override; empty while another environment is shown)")],
    "events.csv": [("t_s", "s", "session clock"), ("elapsed_s", "s", "since the session started"),
                   ("kind", "", "event type (PhaseChanged, LevelChanged, SudsRecorded, SafetyAlert, ...)"),
                   ("payload_json", "JSON", "the event's fields")],
    "suds.csv": [("t_s", "s", "session clock"), ("elapsed_s", "s", "since the session started"),
                 ("value", "0..100", "SUDS answer"), ("level", "", "hierarchy level it refers to"),
                 ("kind", "", "anticipated, entry, during, before_step_up, therapist, end or unprompted"),
                 ("phase", "", "session phase when answered"), ("source", "", "who answered (patient, ...)")],
    "levels.csv": [("t_s", "s", "session clock"), ("elapsed_s", "s", "since the session started"),
                   ("level", "", "new level"), ("previous", "", "level before (empty at the first)"),
                   ("cause", "", "protocol, controller, therapist or safety"), ("reason", "", "why, in words")],
    "ecg.csv": [("t_s", "s", "session clock time of the sample"), ("elapsed_s", "s", "since the session started"),
                ("ecg_uv", "µV", "raw ECG from the sensor")],
}


def _fmt(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return repr(value)
    return value


def write_csv(data: SessionData, out: Path, *, station: str, console=None) -> list[Path]:
    t0 = data.t0_s
    dials = list(data.dial_names)
    files: dict[str, tuple[list[str], list[list[object]]]] = {}
    files["hr.csv"] = (["t_s", "elapsed_s", "hr_bpm", "arousal_sd", "rmssd_ms", "quality", "stale"],
                       [[r[0], r[0] - t0, r[1], r[2], r[3], r[4], int(r[5])] for r in data.hr.tolist()])
    files["beats.csv"] = (["t_s", "elapsed_s", "rr_ms", "nn_ms", "artifact", "gap_before"],
                          [[r[0], r[0] - t0, r[1], r[2], int(r[3]), int(r[4])] for r in data.beats.tolist()])
    exp_rows = []
    for t, p in data.of("ExposureSampled"):
        exp_rows.append([t, t - t0, p["environment"], p["level"], p["intensity"], p["phase"], int(p["safe_place"])]
                        + shown_dials(p["environment"], p["level"], p["intensity"], p.get("dials"), dials))
    files["exposure.csv"] = (["t_s", "elapsed_s", "environment", "level", "intensity", "phase", "safe_place"]
                             + [f"dial_{n}" for n in dials], exp_rows)
    files["events.csv"] = (["t_s", "elapsed_s", "kind", "payload_json"],
                           [[t, t - t0, k, json.dumps(p, separators=(",", ":"), ensure_ascii=False)]
                            for t, k, p in data.events])
    files["suds.csv"] = (["t_s", "elapsed_s", "value", "level", "kind", "phase", "source"],
                         [[t, t - t0, p["value"], p["level"], p.get("kind", "during"), p["phase"], p["source"]]
                          for t, p in data.of("SudsRecorded")])
    files["levels.csv"] = (["t_s", "elapsed_s", "level", "previous", "cause", "reason"],
                           [[t, t - t0, p["level"], p["previous"], p["cause"], p["reason"]]
                            for t, p in data.of("LevelChanged")])
    ecg = data.ecg()
    written: list[Path] = []
    total = sum(len(rows) for _, rows in files.values()) + (len(ecg[0]) if ecg else 0)
    with progress(console, total, "writing CSV") as advance:
        for name, (header, rows) in files.items():
            path = out / name
            with path.open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(header)
                for row in rows:
                    w.writerow([_fmt(v) for v in row])
            advance(len(rows))
            written.append(path)
        if ecg is not None:
            t, v, fs = ecg
            path = out / "ecg.csv"
            with path.open("w", newline="", encoding="utf-8") as f:
                f.write("t_s,elapsed_s,ecg_uv\n")
                step = 20000
                for a in range(0, len(t), step):
                    block = np.column_stack([t[a:a + step], t[a:a + step] - t0, v[a:a + step, 0]])
                    np.savetxt(f, block, delimiter=",", fmt=["%.6f", "%.6f", "%.6g"])
                    advance(len(block))
            written.append(path)
    written.append(_csv_readme(data, out, [p.name for p in written], ecg[2] if ecg else None))
    return written


def _csv_readme(data: SessionData, out: Path, names: list[str], ecg_fs_hz: float | None) -> Path:
    lines = [f"# vrex session {data.session_id}", "",
             f"Patient (pseudonymous code): {data.patient or '-'}  ",
             f"Protocol: {data.protocol} on {data.environment}  ",
             f"Started (UTC): {data.started_utc}; ended: {data.ended_utc or '-'}; status: {data.status}  ",
             f"Sensor: {data.sensor}" + (f" (ECG {ecg_fs_hz:g} Hz)" if ecg_fs_hz else ""), "",
             "Tidy CSVs: one row per observation, one column per variable, comma-separated, UTF-8, a header row. "
             "Empty cells are unknown values. Times: `t_s` is the session clock (pylsl.local_clock() seconds for "
             "live sensors, identical to the timestamps of vrex's LSL streams and session.xdf); `elapsed_s` counts "
             f"from the session's start (t_s = {data.t0_s!r}).", ""]
    for name in names:
        lines += [f"## {name}", "", "| column | unit | meaning |", "|---|---|---|"]
        lines += [f"| {c} | {u} | {m} |" for c, u, m in CSV_COLUMNS[name]]
        lines.append("")
    path = out / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def regular_grid(t_s: np.ndarray, values: np.ndarray, rate_hz: float, start_s: float) -> tuple[float, np.ndarray]:
    """Values of a nearly regular series (the runtime's 1 Hz ticks) on an exact grid from the first sample:
    each grid point takes the last sample at or before it (zero-order hold). Returns (first time, rows)."""
    if len(t_s) == 0:
        return start_s, values[:0]
    first = float(t_s[0])
    n = int(math.floor((float(t_s[-1]) - first) * rate_hz + 1e-6)) + 1
    grid = first + np.arange(n) / rate_hz
    idx = np.clip(np.searchsorted(t_s, grid + 1e-6, side="right") - 1, 0, len(t_s) - 1)
    return first, values[idx]

