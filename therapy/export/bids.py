"""A session as BIDS physiological recordings (REFERENCE.md, "BIDS physiological recordings").

Layout (one subject per pseudonymous patient code, one BIDS session per vrex
session, the ``beh`` datatype since no imaging is involved)::

    dataset_description.json  participants.tsv  participants.json  README  .bidsignore
    sub-<code>/ses-<id8>/beh/sub-<code>_ses-<id8>_task-<protocol>_events.tsv (+ .json)
        ..._recording-ecg_physio.tsv.gz (+ .json)       raw ECG at the sensor's rate (when the sensor gave ECG)
        ..._recording-hr_physio.tsv.gz (+ .json)        HR, arousal, RMSSD, quality, stale at 1 Hz
        ..._recording-exposure_physio.tsv.gz (+ .json)  level, intensity, phase code, safe place, dials at 1 Hz
        ..._recording-rr_beat.tsv (+ .json)             one row per beat (irregular: listed in .bidsignore)

Physio files are gzip TSV without a header; their sidecars carry
``SamplingFrequency``, ``StartTime`` (seconds from the session start, which is
onset 0 of the events) and ``Columns``, with a ``Units``/``Description`` entry
per column and the device keys. Recordings are split by rate, as BIDS asks.
The 1 Hz series are ticks of the session clock; they are written on an exact
1 Hz grid from their first sample, each point holding the last tick at or
before it (ticks are within a tick of the grid). RR intervals are irregular by
nature, so they keep their beat times in a ``_beat.tsv`` (the pattern of the
physiology extension proposal) rather than being resampled.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from importlib import metadata
from pathlib import Path

import numpy as np

from therapy.export.recorded import SessionData
from therapy.export.writers import progress, regular_grid
from therapy.sinks.streams import PHASE_CODES, STATE_RATE_HZ, acquisition_from, environment_dial_units, shown_dials

BIDS_VERSION = "1.10.0"
_SERIES = {"HeartSampled", "ExposureSampled", "BeatRecorded"}


def label(text: str, fallback: str) -> str:
    """A BIDS label: letters and digits only."""
    cleaned = re.sub(r"[^A-Za-z0-9]", "", text or "")
    return cleaned or fallback


def _version() -> str:
    try:
        return f"vrex {metadata.version('vrex')}"
    except metadata.PackageNotFoundError:
        return "vrex"


def _json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _tsv(v: object) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return "n/a" if np.isnan(v) else f"{v:.6g}" if abs(v) < 1e6 else repr(v)
    text = str(v)
    return text.replace("\t", " ").replace("\n", " ") or "n/a"


def _physio(path: Path, rows: np.ndarray, fmt: str, advance) -> None:
    # no file name and a zero time in the gzip header: the same data give the same bytes (BIDS recommends it)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as f:
        step = 20000
        for a in range(0, len(rows), step):
            block = rows[a:a + step]
            text = "\n".join("\t".join("n/a" if np.isnan(x) else fmt % x for x in row) for row in block)
            f.write(text + "\n")
            advance(len(block))


def write_bids(data: SessionData, out: Path, *, station: str, console=None) -> list[Path]:
    sub = label(data.patient or "", "unknown")
    ses = data.session_id[:8]
    task = label(data.protocol, "exposure")
    folder = out / f"sub-{sub}" / f"ses-{ses}" / "beh"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"sub-{sub}_ses-{ses}_task-{task}"
    t0 = data.t0_s
    acq = acquisition_from(data.sensor)
    task_name = {"TaskName": data.protocol}
    device = {**task_name, "Manufacturer": acq.manufacturer or "n/a", "ManufacturersModelName": acq.model or "n/a",
              "DeviceSerialNumber": acq.serial_number or "n/a", "SoftwareVersions": _version()}
    written: list[Path] = []

    written.append(_json(out / "dataset_description.json", {
        "Name": "vrex exposure-therapy sessions", "BIDSVersion": BIDS_VERSION, "DatasetType": "raw",
        "Authors": ["vrex export"],
        "GeneratedBy": [{"Name": "vrex", "Version": _version().partition(" ")[2] or "unknown",
                         "Description": "python main.py export --format bids"}],
    }))
    written.append(_participants(out, sub, data))
    readme = out / "README"
    if not readme.exists():
        readme.write_text("Physiological recordings (ECG, heart rate, RR intervals) and exposure state of VR exposure-"
                          "therapy sessions recorded by vrex. Participants are identified by pseudonymous codes only.\n"
                          "Irregular beat-to-beat series are in *_beat.tsv files (listed in .bidsignore).\n",
                          encoding="utf-8")
    written.append(readme)
    ignore = out / ".bidsignore"
    ignore.write_text("*_beat.tsv\n*_beat.json\n", encoding="utf-8")
    written.append(ignore)

    ecg = data.ecg()
    exp = data.of("ExposureSampled")
    total = (len(ecg[0]) if ecg else 0) + len(data.hr) + len(exp)
    with progress(console, total, "writing BIDS physio") as advance:
        if ecg is not None:
            t, v, fs = ecg
            name = f"{stem}_recording-ecg_physio"
            _physio(folder / f"{name}.tsv.gz", v.astype(float).reshape(-1, 1), "%.6g", advance)
            written += [folder / f"{name}.tsv.gz", _json(folder / f"{name}.json", {
                "SamplingFrequency": float(fs), "StartTime": round(float(t[0]) - t0, 6), "Columns": ["cardiac"],
                "cardiac": {"Description": "raw ECG from the chest strap", "Units": "uV"},
                "PhysioType": "generic", "Placement": "chest strap (approximately lead CM5)", **device,
            })]
        first, rows = regular_grid(data.hr[:, 0], data.hr[:, 1:], STATE_RATE_HZ, t0)
        name = f"{stem}_recording-hr_physio"
        _physio(folder / f"{name}.tsv.gz", rows, "%.6g", advance)
        written += [folder / f"{name}.tsv.gz", _json(folder / f"{name}.json", {
            "SamplingFrequency": STATE_RATE_HZ, "StartTime": round(first - t0, 6),
            "Columns": ["heart_rate", "arousal", "rmssd", "quality", "stale"],
            "heart_rate": {"Description": "heart rate from RR intervals", "Units": "bpm"},
            "arousal": {"Description": "(HR - baseline mean) / baseline SD", "Units": "n/a"},
            "rmssd": {"Description": "RMSSD of recent NN intervals", "Units": "ms"},
            "quality": {"Description": "signal quality, 0..1", "Units": "n/a"},
            "stale": {"Description": "1 when no valid beat arrived recently", "Units": "n/a"},
            "PhysioType": "generic", **device,
        })]
        dials = list(data.dial_names)
        exp_rows = []
        for _, p in exp:
            exp_rows.append([p["level"], p["intensity"], PHASE_CODES[p["phase"]], float(p["safe_place"])]
                            + shown_dials(p["environment"], p["level"], p["intensity"], p.get("dials"), dials))
        exp_t = np.array([t for t, _ in exp], dtype=float)
        first, rows = regular_grid(exp_t, np.array(exp_rows, dtype=float).reshape(len(exp), 4 + len(dials)),
                                   STATE_RATE_HZ, t0)
        name = f"{stem}_recording-exposure_physio"
        _physio(folder / f"{name}.tsv.gz", rows, "%.6g", advance)
        codes = ", ".join(f"{v} = {k}" for k, v in PHASE_CODES.items())
        written += [folder / f"{name}.tsv.gz", _json(folder / f"{name}.json", {
            "SamplingFrequency": STATE_RATE_HZ, "StartTime": round(first - t0, 6),
            "Columns": ["level", "intensity", "phase", "safe_place"] + [f"dial_{n}" for n in dials],
            "level": {"Description": f"hierarchy level of {data.environment} shown (0 = lowest)", "Units": "n/a"},
            "intensity": {"Description": "shown intensity of the level, 0..1", "Units": "n/a"},
            "phase": {"Description": f"session phase code: {codes}", "Units": "n/a"},
            "safe_place": {"Description": "1 while the safe place is shown", "Units": "n/a"},
            **{f"dial_{n}": {"Description": f"environment dial {n} as shown", "Units": u}
               for n, u in zip(dials, environment_dial_units(data.environment, dials))},
            "PhysioType": "generic", **task_name, "Manufacturer": "vrex", "SoftwareVersions": _version(),
        })]

    name = f"{stem}_recording-rr_beat"
    with (folder / f"{name}.tsv").open("w", encoding="utf-8") as f:
        f.write("onset\trr\tnn\tartifact\tgap_before\n")
        for t, rr, nn, art, gap in data.beats.tolist():
            f.write(f"{t - t0:.6f}\t{rr:.6g}\t{nn:.6g}\t{int(art)}\t{int(gap)}\n")
    written += [folder / f"{name}.tsv", _json(folder / f"{name}.json", {
        "onset": {"Description": "time of the beat, from the session start", "Units": "s"},
        "rr": {"Description": "RR interval ending at this beat, as measured", "Units": "ms"},
        "nn": {"Description": "RR corrected for artefacts (NN)", "Units": "ms"},
        "artifact": {"Description": "1 when classified as an artefact and corrected"},
        "gap_before": {"Description": "1 when beats were lost before this one"},
        **device,
    })]
    written += _events(data, folder, stem)
    return written


def _participants(out: Path, sub: str, data: SessionData) -> Path:
    path = out / "participants.tsv"
    rows: dict[str, str] = {}
    if path.exists():  # several exports into one dataset: keep the others
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            if line.strip():
                rows[line.split("\t")[0]] = line
    rows[f"sub-{sub}"] = f"sub-{sub}\t{data.patient or 'n/a'}"
    path.write_text("participant_id\tpatient_code\n" + "\n".join(rows[k] for k in sorted(rows)) + "\n",
                    encoding="utf-8")
    _json(out / "participants.json", {
        "participant_id": {"Description": "BIDS subject label: the pseudonymous patient code, letters and digits"},
        "patient_code": {"Description": "vrex's pseudonymous patient code (never a name)"},
    })
    return path


def _events(data: SessionData, folder: Path, stem: str) -> list[Path]:
    t0 = data.t0_s
    end = data.end_s
    rows = []
    spans = {"PhaseChanged": [], "LevelChanged": []}
    for t, k, p in data.events:
        if k in spans:
            spans[k].append(t)
    for t, k, p in data.events:
        if k in _SERIES:
            continue
        duration = 0.0
        if k in spans:  # a phase or level lasts until the next change
            later = [u for u in spans[k] if u > t]
            duration = (later[0] if later else end) - t
        value = p.get("value", p.get("level"))
        rows.append([round(t - t0, 6), round(duration, 6), k, p.get("level"), value,
                     json.dumps(p, separators=(",", ":"), ensure_ascii=False)])
    path = folder / f"{stem}_events.tsv"
    with path.open("w", encoding="utf-8") as f:
        f.write("onset\tduration\ttrial_type\tlevel\tvalue\tdescription\n")
        for r in rows:
            f.write("\t".join(_tsv(v) for v in r) + "\n")
    side = _json(folder / f"{stem}_events.json", {
        "TaskName": data.protocol,
        "TaskDescription": f"graded virtual-reality exposure ({data.environment}) with heart-rate biofeedback",
        "onset": {"Description": "time of the event from the session start (session clock)", "Units": "s"},
        "duration": {"Description": "for phase and level changes, until the next change; else 0", "Units": "s"},
        "trial_type": {"Description": "vrex event kind (PhaseChanged, LevelChanged, SudsPrompted, SudsRecorded, "
                                      "SafetyAlert, Recommendation, SensorEvent, SessionEnded, ...)"},
        "level": {"Description": "hierarchy level the event refers to, where it has one"},
        "value": {"Description": "SUDS answer (0-100) for SudsRecorded, else the level"},
        "description": {"Description": "the event's fields as JSON"},
    })
    return [path, side]
