"""The clinician's report of a session, and the course of treatment across a patient's sessions.

One self-contained HTML file each (plots are PNGs embedded as base64, no
scripts, no external files), so a report can be mailed or archived as it is:

* ``report-<id8>.html``: HR and exposure level over the session with SUDS
  answers, alerts and phases marked; SUDS per level (anticipated, peak, end);
  time and HR at each level; HRV of the baseline against exposure and recovery;
  level changes with their reasons; alerts; notes.
* ``course-<patient>.html``: one row per session: per hierarchy level the peak
  SUDS and peak HR, so habituation across sessions shows at a glance.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from therapy.export.recorded import SessionData

PHASE_COLOURS = {"baseline": "#d9d9d9", "safe_place": "#c7e9c0", "recovery": "#c6dbef"}
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:60em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left} .meta td{text-align:left;border:none;padding:.1em .8em .1em 0}
.alert{color:#b00} img{max-width:100%} .muted{color:#777}
"""


# -- numbers ----------------------------------------------------------------------------------------

def rmssd_ms(nn_ms: np.ndarray) -> float | None:
    """RMSSD of successive NN differences (artefacts and gaps already excluded by the caller)."""
    if len(nn_ms) < 3:
        return None
    d = np.diff(nn_ms)
    return float(np.sqrt(np.mean(d * d)))


def _phase_spans(data: SessionData) -> list[tuple[str, float, float]]:
    changes = data.of("PhaseChanged")
    spans = []
    for i, (t, p) in enumerate(changes):
        end = changes[i + 1][0] if i + 1 < len(changes) else data.end_s
        spans.append((p["phase"], t, end))
    return spans


def _mask(t: np.ndarray, spans: list[tuple[str, float, float]], phases: set[str]) -> np.ndarray:
    m = np.zeros(len(t), dtype=bool)
    for phase, a, b in spans:
        if phase in phases:
            m |= (t >= a) & (t < b)
    return m


def hrv_table(data: SessionData) -> list[dict[str, object]]:
    """HR and RMSSD for the baseline, exposure and recovery (clean beats only, no gaps)."""
    spans = _phase_spans(data)
    beats = data.beats
    clean = (beats[:, 3] == 0) if len(beats) else np.zeros(0, dtype=bool)
    rows = []
    for name, phases in (("baseline", {"baseline"}), ("exposure", {"exposure", "safe_place"}),
                         ("recovery", {"recovery"})):
        m = _mask(beats[:, 0], spans, phases) if len(beats) else np.zeros(0, dtype=bool)
        nn = beats[m, 2]
        # successive differences only within runs without a gap or artefact
        ok = m & clean & (beats[:, 4] == 0) if len(beats) else m
        diffs = []
        idx = np.flatnonzero(ok)
        for a, b in zip(idx[:-1], idx[1:]):
            if b == a + 1:
                diffs.append(beats[b, 2] - beats[a, 2])
        hr_m = _mask(data.hr[:, 0], spans, phases) if len(data.hr) else np.zeros(0, dtype=bool)
        hr = data.hr[hr_m, 1]
        hr = hr[~np.isnan(hr)]
        rows.append({"part": name, "beats": int(m.sum()),
                     "mean_nn_ms": float(np.mean(nn)) if len(nn) else None,
                     "rmssd_ms": float(np.sqrt(np.mean(np.square(diffs)))) if len(diffs) >= 2 else None,
                     "hr_mean_bpm": float(np.mean(hr)) if len(hr) else None,
                     "hr_peak_bpm": float(np.max(hr)) if len(hr) else None})
    return rows


def level_table(data: SessionData) -> list[dict[str, object]]:
    """Per level shown in exposure: time there, mean and peak HR, SUDS anticipated / peak / end."""
    exp = [(t, p) for t, p in data.of("ExposureSampled") if p["phase"] == "exposure" and not p["safe_place"]]
    hr_t, hr_v = data.hr[:, 0], data.hr[:, 1]
    out: dict[int, dict[str, object]] = {}
    ts = [t for t, _ in exp]
    for i, (t, p) in enumerate(exp):
        row = out.setdefault(p["level"], {"level": p["level"], "seconds": 0.0, "hr": [], "suds": [],
                                          "anticipated": None, "end": None})
        dt = (ts[i + 1] - t) if i + 1 < len(ts) else 1.0
        row["seconds"] += min(dt, 2.0)  # a 1 Hz series: a longer step is a pause, not time at the level
        j = np.searchsorted(hr_t, t)
        if j < len(hr_t) and not math.isnan(hr_v[j]):
            row["hr"].append(float(hr_v[j]))
    for _, p in data.of("SudsRecorded"):
        row = out.setdefault(p["level"], {"level": p["level"], "seconds": 0.0, "hr": [], "suds": [],
                                          "anticipated": None, "end": None})
        kind = p.get("kind", "during")
        if kind == "anticipated":
            row["anticipated"] = p["value"]
        else:  # "end": the answer asked for when leaving the level; without one, the last answer there
            row["suds"].append(p["value"])
            if kind == "end" or not row.get("end_asked"):
                row["end"] = p["value"]
                row["end_asked"] = kind == "end"
    rows = []
    for level in sorted(out):
        r = out[level]
        rows.append({"level": level, "minutes": r["seconds"] / 60.0,
                     "hr_mean_bpm": float(np.mean(r["hr"])) if r["hr"] else None,
                     "hr_peak_bpm": float(np.max(r["hr"])) if r["hr"] else None,
                     "suds_anticipated": r["anticipated"], "suds_peak": max(r["suds"]) if r["suds"] else None,
                     "suds_end": r["end"]})
    return rows


# -- plots ------------------------------------------------------------------------------------------

def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def session_figure(data: SessionData):
    """HR (top) and level with SUDS (bottom) over elapsed minutes; phases shaded, alerts as red lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = data.t0_s
    fig, (ax_hr, ax_lv) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=(3, 2))
    for phase, a, b in _phase_spans(data):
        colour = PHASE_COLOURS.get(phase)
        if colour:
            for ax in (ax_hr, ax_lv):
                ax.axvspan((a - t0) / 60, (b - t0) / 60, color=colour, alpha=0.6, lw=0)
    if len(data.hr):
        ax_hr.plot((data.hr[:, 0] - t0) / 60, data.hr[:, 1], color="#c0392b", lw=1.2, label="HR")
    base = data.of("BaselineMeasured")
    if base:
        p = base[0][1]
        ax_hr.axhline(p["hr_mean_bpm"], color="#555", ls="--", lw=0.8, label="baseline mean")
        ax_hr.axhspan(p["hr_mean_bpm"] - p["hr_sd_bpm"], p["hr_mean_bpm"] + p["hr_sd_bpm"], color="#999",
                      alpha=0.15, lw=0, label="baseline ±1 SD")
    ax_hr.set_ylabel("heart rate (bpm)")
    exp = data.of("ExposureSampled")
    if exp:
        t = np.array([(u - t0) / 60 for u, _ in exp])
        shown = [(p["phase"] in ("exposure",) and not p["safe_place"]) for _, p in exp]
        lv = np.array([p["level"] if ok else np.nan for ok, (_, p) in zip(shown, exp)], dtype=float)
        ax_lv.plot(t, lv, color="#2c3e50", lw=1.8, drawstyle="steps-post", label="level shown")
        top = int(np.nanmax(lv)) if np.isfinite(lv).any() else 0
        ax_lv.set_yticks(range(top + 1))
        ax_lv.set_ylim(-0.5, top + 0.5)
    ax_lv.set_ylabel("exposure level")
    ax_lv.set_xlabel("minutes since the session started")
    ax_su = ax_lv.twinx()
    suds = data.of("SudsRecorded")
    if suds:
        ax_su.scatter([(u - t0) / 60 for u, _ in suds], [p["value"] for _, p in suds], color="#8e44ad", s=28,
                      zorder=5, label="SUDS")
    ax_su.set_ylim(0, 100)
    ax_su.set_ylabel("SUDS (0-100)", color="#8e44ad")
    for u, p in data.of("SafetyAlert"):
        for ax in (ax_hr, ax_lv):
            ax.axvline((u - t0) / 60, color="#e74c3c", lw=1.0, ls=":")
    if data.of("SafetyAlert"):
        ax_hr.plot([], [], color="#e74c3c", ls=":", label="safety alert")
    for ax, where in ((ax_hr, "upper left"), (ax_su, "upper right"), (ax_lv, "upper left")):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc=where, fontsize=8, ncols=4 if ax is ax_hr else 1)
    ax_hr.set_title(f"{data.protocol} on {data.environment}: heart rate, exposure level and SUDS "
                    "(grey: baseline, green: safe place, blue: recovery)", fontsize=10)
    fig.tight_layout()
    return fig


def course_figure(course: Sequence[SessionData]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_s, ax_h) = plt.subplots(1, 2, figsize=(10, 3.6))
    per_level: dict[int, list[tuple[int, float | None, float | None]]] = {}
    for i, data in enumerate(course, 1):
        for row in level_table(data):
            per_level.setdefault(row["level"], []).append((i, row["suds_peak"], row["hr_peak_bpm"]))
    for level in sorted(per_level):
        pts = per_level[level]
        xs = [i for i, s, _ in pts if s is not None]
        ax_s.plot(xs, [s for _, s, _ in pts if s is not None], marker="o", label=f"level {level}")
        xs = [i for i, _, h in pts if h is not None]
        ax_h.plot(xs, [h for _, _, h in pts if h is not None], marker="o", label=f"level {level}")
    ax_s.set_title("peak SUDS per level", fontsize=10)
    ax_h.set_title("peak HR per level (bpm)", fontsize=10)
    for ax in (ax_s, ax_h):
        ax.set_xlabel("session")
        ax.set_xticks(range(1, len(course) + 1))
    ax_s.set_ylim(0, 100)
    ax_s.legend(fontsize=7)
    fig.tight_layout()
    return fig


# -- html -------------------------------------------------------------------------------------------

def _f(v: object, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return '<span class="muted">–</span>'
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 0, text: Sequence[int] = ()) -> str:
    """Numbers right-aligned; the first ``left`` columns and those in ``text`` (words) left-aligned."""
    def cls(i: int) -> str:
        return "l" if i < left or i in text else ""

    th = "".join(f'<th class="{cls(i)}">{html.escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{cls(i)}">{c}</td>' for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


def session_html(data: SessionData) -> str:
    t0 = data.t0_s
    minutes = (data.end_s - t0) / 60
    meta = [("Patient (code)", data.patient or "–"), ("Session", data.session_id),
            ("Protocol", f"{data.protocol} on {data.environment}"),
            ("Started (UTC)", data.started_utc), ("Ended (UTC)", data.ended_utc or "–"),
            ("Status", f"{data.status}: {data.end_reason}"), ("Length", f"{minutes:.1f} min"),
            ("Sensor", data.sensor)]
    parts = ["<h1>Exposure session report</h1>",
             '<table class="meta">' + "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}</td></tr>"
                                              for k, v in meta) + "</table>",
             f'<h2>Heart rate, exposure and SUDS</h2><img alt="heart rate, level and SUDS over the session" '
             f'src="data:image/png;base64,{_png(session_figure(data))}">']
    levels = level_table(data)
    parts.append("<h2>Per level</h2>" + (_table(
        ["level", "time (min)", "mean HR (bpm)", "peak HR (bpm)", "SUDS anticipated", "SUDS peak", "SUDS end"],
        [[_f(r["level"]), _f(r["minutes"]), _f(r["hr_mean_bpm"]), _f(r["hr_peak_bpm"]), _f(r["suds_anticipated"]),
          _f(r["suds_peak"]), _f(r["suds_end"])] for r in levels]) if levels else "<p>No exposure level was shown.</p>"))
    base = data.of("BaselineMeasured")
    hrv = hrv_table(data)
    note = ""
    if base:
        p = base[0][1]
        note = (f"<p>Resting baseline measured by the session: HR {p['hr_mean_bpm']:.1f} ± {p['hr_sd_bpm']:.1f} bpm"
                + (f", RMSSD {p['rmssd_ms']:.1f} ms" if p.get("rmssd_ms") is not None else "")
                + f" over {p['beats']} beats.</p>")
    parts.append("<h2>Heart-rate variability: baseline against the session</h2>" + note + _table(
        ["part", "beats", "mean HR (bpm)", "peak HR (bpm)", "mean NN (ms)", "RMSSD (ms)"],
        [[r["part"], _f(r["beats"]), _f(r["hr_mean_bpm"]), _f(r["hr_peak_bpm"]), _f(r["mean_nn_ms"], 0),
          _f(r["rmssd_ms"])] for r in hrv], left=1)
        + '<p class="muted">RMSSD from successive clean NN intervals (artefacts and link gaps excluded); '
          "short-window values are not comparable with 5-minute norms.</p>")
    parts.append("<h2>Level changes</h2>" + _table(
        ["min", "level", "from", "cause", "reason"],
        [[_f((t - t0) / 60), _f(p["level"]), _f(p["previous"]), html.escape(p["cause"]), html.escape(p["reason"])]
         for t, p in data.of("LevelChanged")], text=(3, 4)))
    alerts = data.of("SafetyAlert")
    parts.append("<h2>Safety alerts</h2>" + (_table(
        ["min", "code", "action", "message"],
        [[_f((t - t0) / 60), html.escape(p["code"]), html.escape(p["action"]),
          f'<span class="alert">{html.escape(p["message"])}</span>'] for t, p in alerts], text=(1, 2, 3))
        if alerts else "<p>None.</p>"))
    notes = [(t, p) for t, p in data.of("NoteAdded")]
    parts.append("<h2>Notes</h2>" + ("<ul>" + "".join(
        f"<li>{_f((t - t0) / 60)} min ({html.escape(str(p.get('source', '')))}): {html.escape(str(p.get('text', '')))}</li>"
        for t, p in notes) + "</ul>" if notes else "<p>No notes were taken during the session.</p>"))
    parts.append(f'<p class="muted">vrex export, session clock t0 = {t0:.3f} s.</p>')
    return _page(f"vrex session {data.session_id[:8]} ({data.patient or '-'})", "".join(parts))


def course_html(course: Sequence[SessionData]) -> str:
    patient = course[0].patient or "–"
    levels = sorted({r["level"] for d in course for r in level_table(d)})
    rows = []
    for i, d in enumerate(course, 1):
        table = {r["level"]: r for r in level_table(d)}
        cells = [_f(i), html.escape(d.started_utc[:16].replace("T", " ")), html.escape(d.protocol),
                 html.escape(d.status)]
        for lv in levels:
            r = table.get(lv)
            cells.append(f"{_f(r['suds_peak'] if r else None)} / {_f(r['hr_peak_bpm'] if r else None, 0)}")
        rows.append(cells)
    body = (f"<h1>Course of treatment: patient {html.escape(patient)}</h1>"
            f"<p>{len(course)} session(s). Each level cell: peak SUDS / peak HR (bpm) at that hierarchy level.</p>"
            + _table(["#", "started (UTC)", "protocol", "status"] + [f"level {lv}" for lv in levels], rows, left=4)
            + f'<img alt="peak SUDS and HR per level across sessions" src="data:image/png;base64,'
              f'{_png(course_figure(course))}">')
    return _page(f"vrex course of treatment ({patient})", body)


def write_report(data: SessionData, out: Path, *, course: Sequence[SessionData], console=None) -> list[Path]:
    from therapy.export.writers import progress

    written = []
    with progress(console, 2, "rendering report") as advance:
        path = out / f"report-{data.session_id[:8]}.html"
        path.write_text(session_html(data), encoding="utf-8")
        written.append(path)
        advance()
        if course:
            from therapy.export.bids import label

            cpath = out / f"course-{label(data.patient or '', 'unknown')}.html"
            cpath.write_text(course_html(course), encoding="utf-8")
            written.append(cpath)
        advance()
    return written
