"""Sub-commands of the therapy package: ``run``, ``demo``, ``patients`` and ``sessions``.

Each handler parses nothing itself (argparse did), calls the runner or the
store, and prints; every user mistake is a :class:`~therapy.errors.TherapyError`
(or another package's error family) that ``main.py`` maps to one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)


# -- argument types ----------------------------------------------------------------------------------

def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: write WIDTHxHEIGHT, e.g. 640x720") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"size {text!r} is out of range: each side must be 16..8192 pixels")
    return w, h


def _positive(kind: type, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number ({what})") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number greater than 0 ({what})")
        return value

    return parse


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def _fault(text: str):
    from biofeedback.simulated import Fault

    try:
        return Fault.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _station(text: str) -> str:
    from therapy.sinks.streams import station_name

    try:
        return station_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _year(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a year (e.g. 1987)") from None


def add_data_dir(p: argparse.ArgumentParser, *aliases: str) -> None:
    """``--data-dir DIR`` (default ``VREX_DATA_DIR`` or the per-user data directory) on every command."""
    p.add_argument("--data-dir", *aliases, dest="data_dir", type=Path, default=None, metavar="DIR",
                   help="where patients and session records live (default: $VREX_DATA_DIR, else the per-user "
                        "data directory, e.g. ~/.local/share/vrex)")


def _session_options(p: argparse.ArgumentParser, *, demo: bool) -> None:
    p.add_argument("--minutes", type=_positive(float, "session length in minutes"), default=20.0,
                   help="session length in session minutes (default 20)")
    p.add_argument("--display", choices=("auto", "headless", "desktop", "openvr"), default="auto",
                   help="auto = desktop window when a screen is available, else headless offscreen rendering")
    p.add_argument("--protocol", default="heights-graded",
                   help="built-in protocol name or path to a protocol .toml file (default heights-graded)")
    p.add_argument("--eye-size", type=_size, default=None, metavar="WxH",
                   help="per-eye render size for headless/desktop (default 640x720)")
    p.add_argument("--fps", type=_positive(float, "frames per second"), default=None,
                   help="cap on rendered frames per second (default 10 headless, display rate otherwise)")
    p.add_argument("--speed", type=_positive(float, "time factor"), default=1.0,
                   help="simulated or replayed sensors only: session time runs N times faster (default 1)")
    p.add_argument("--fault", type=_fault, action="append", default=[], metavar="KIND@START+DURATION",
                   help="simulated sensor only: script a fault, e.g. dropout@300+20 (kinds: dropout, stall, "
                        "implausible, bad_payload, no_contact); repeatable")
    p.add_argument("--no-frames", dest="frames", action="store_false",
                   help="do not write PNG frames of the baseline, each level and the end")
    p.add_argument("--no-lsl", dest="lsl", action="store_false",
                   help="do not publish the session's LSL streams (ECG, RR, HR, Exposure, Markers)")
    p.add_argument("--station", type=_station, default=None, metavar="NAME",
                   help="station name in LSL stream names and source ids (default: this computer's host name)")
    __import__("clinician_console.cli").cli.add_options(p)  # --console [--host H] [--port P] [TLS | --insecure-lan]
    if demo:
        p.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the simulated patient (default 0)")
        add_data_dir(p, "--out")
    else:
        add_data_dir(p)


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's commands to commands and its benchmarks to bench."""
    from biofeedback.sensors import SPEC_FORMS

    p = commands.add_parser(
        "run", help="run a patient's session on a real (or simulated) heart sensor",
        description="Run one session for a patient: wait for a valid heart signal, measure the resting baseline, "
                    "grade exposure by the protocol and the heart, recover with paced breathing. The record goes "
                    "to the data directory.")
    p.add_argument("--patient", required=True, metavar="CODE", help="pseudonymous patient code (see 'patients add')")
    p.add_argument("--sensor", required=True, metavar="SPEC", help="heart sensor: " + "; ".join(SPEC_FORMS))
    p.add_argument("--signal-timeout", type=_positive(float, "seconds"), default=30.0, metavar="S",
                   help="seconds to wait for a valid heart signal before asking to retry or exit (default 30)")
    _session_options(p, demo=False)
    p.set_defaults(handler=_run_session)

    p = commands.add_parser(
        "demo", help="run one whole graded-exposure session on embedded defaults (simulated sensor, no hardware)",
        description="Run one complete heart-rate adaptive exposure session with a simulated chest strap and a "
                    "simulated patient who answers SUDS prompts: 'run' with patient DEMO and --sensor sim:SEED. "
                    "The record goes to the data directory (--out or --data-dir), with PNG frames.")
    _session_options(p, demo=True)
    p.set_defaults(handler=_run_demo)

    __import__("clinician_console.cli").cli.register(commands)  # python main.py console

    p = commands.add_parser("patients", help="pseudonymous patients: add, list, show, set a personal hierarchy")
    sub = p.add_subparsers(dest="patients_command", metavar="ACTION", parser_class=type(p))
    sub.required = True
    a = sub.add_parser("add", help="add a patient (a pseudonymous code; no name is ever needed)")
    a.add_argument("code", metavar="CODE")
    a.add_argument("--birth-year", type=_year, default=None, help="for age-dependent safety limits (HR ceiling)")
    a.add_argument("--notes", default="", help="free-text notes (no identifying information)")
    add_data_dir(a)
    a.set_defaults(handler=_patients_add)
    a = sub.add_parser("list", help="list patients")
    a.add_argument("--json", action="store_true", help="print JSON")
    add_data_dir(a)
    a.set_defaults(handler=_patients_list)
    a = sub.add_parser("show", help="one patient: age, resonance rate, hierarchies, sessions")
    a.add_argument("code", metavar="CODE")
    a.add_argument("--json", action="store_true", help="print JSON")
    add_data_dir(a)
    a.set_defaults(handler=_patients_show)
    a = sub.add_parser("hierarchy", help="set the patient's personal hierarchy for an environment",
                       description="The levels chosen for this patient, in the order they are climbed, each with "
                                   "an optional note: LEVEL or LEVEL:NOTE, e.g. 0 2:'balcony, door open' 5. "
                                   "'run' climbs these steps instead of the protocol's range.")
    a.add_argument("code", metavar="CODE")
    a.add_argument("environment", metavar="ENV")
    a.add_argument("levels", nargs="+", metavar="LEVEL[:NOTE]")
    add_data_dir(a)
    a.set_defaults(handler=_patients_hierarchy)

    p = commands.add_parser("sessions", help="recorded sessions: list and show")
    sub = p.add_subparsers(dest="sessions_command", metavar="ACTION", parser_class=type(p))
    sub.required = True
    a = sub.add_parser("list", help="list sessions (oldest first)")
    a.add_argument("--patient", metavar="CODE", help="only this patient's sessions")
    a.add_argument("--json", action="store_true",
                   help='print [{"id", "patient", "protocol", "environment", "started_utc", "ended_utc", "status"}]')
    add_data_dir(a)
    a.set_defaults(handler=_sessions_list)
    a = sub.add_parser("show", help="one session: phases, levels, SUDS, alerts and counts")
    a.add_argument("id", metavar="ID", help="session id (a unique prefix is enough)")
    a.add_argument("--json", action="store_true", help="print JSON")
    add_data_dir(a)
    a.set_defaults(handler=_sessions_show)
    from therapy import research_cli  # export, replay-lsl

    research_cli.register(commands, bench)


# -- run / demo ----------------------------------------------------------------------------------------

def choose_display(kind: str) -> str:
    """``auto``: a window where one can open (an X display on Linux, always on Windows/macOS), else headless."""
    if kind != "auto":
        return kind
    if sys.platform.startswith("linux"):
        return "desktop" if os.environ.get("DISPLAY") else "headless"  # pyglet needs X (XWayland sets DISPLAY)
    return "desktop"


def _run_demo(args: argparse.Namespace) -> int:
    from therapy.runner import DEMO_PATIENT

    return _start(args, patient=DEMO_PATIENT, sensor=f"sim:{args.seed}", command="demo", simulated_patient=True,
                  seed=args.seed, signal_timeout_s=30.0,
                  simulated_therapist=not args.console)  # with --console a person confirms the step-ups


def _run_session(args: argparse.Namespace) -> int:
    from therapy.errors import TherapyError

    kind = args.sensor.strip().partition(":")[0].lower()
    if args.fault and kind != "sim":
        raise TherapyError(f"--fault scripts faults of the simulated sensor only, not of {args.sensor!r}: "
                           "use --sensor sim[:SEED] or leave --fault out")
    seed = 0
    if kind == "sim":
        try:
            seed = int(args.sensor.partition(":")[2] or 0)
        except ValueError:
            seed = 0  # the sensor spec check names the problem
    return _start(args, patient=args.patient, sensor=args.sensor, command="run", simulated_patient=False,
                  seed=seed, signal_timeout_s=args.signal_timeout)


def _start(args: argparse.Namespace, *, patient: str, sensor: str, command: str, simulated_patient: bool,
           seed: int, signal_timeout_s: float, simulated_therapist: bool = False) -> int:
    from rich.console import Console

    from therapy.progress import ProgressPrinter, SessionTally
    from therapy.runner import SessionRequest, SessionRunner, default_ask_retry

    display = choose_display(args.display)
    request = SessionRequest(
        patient=patient, protocol=args.protocol, sensor=sensor, minutes=args.minutes, speed=args.speed,
        faults=tuple(args.fault), display=display, eye_size=args.eye_size or (640, 720), fps=args.fps,
        data_dir=args.data_dir, simulated_patient=simulated_patient, simulated_therapist=simulated_therapist,
        capture_frames=args.frames, lsl=args.lsl, station=args.station,
        signal_timeout_s=signal_timeout_s, command=command, seed=seed,
    )
    console = Console()
    tallies: list[SessionTally] = []
    stop_view = threading.Event()

    def attach(live) -> None:
        ident = live.identity
        tally = SessionTally(t0_s=ident.t0_s, total_s=ident.total_s)
        tallies.append(tally)
        live.subscribe(tally.on_event, lossless=True, name="tally")
        if not console.is_terminal:  # plain lines for logs; a terminal gets the live panel below
            live.subscribe(ProgressPrinter(tally, console).on_event, name="progress")

    def clinician(live) -> None:  # --console: the clinician console shows this session
        if web is not None:
            web.attach(live, runner)

    def status(line: str) -> None:  # before the session: the sensor's link state while waiting for a heartbeat
        console.print(f"vrex: {line}", highlight=False, soft_wrap=True)

    runner = SessionRunner(request, observers=[attach, clinician], ask_retry=default_ask_retry, on_status=status)
    prep = runner.prepare()  # user errors surface here, before the display or the sensor opens
    web = __import__("clinician_console.cli").cli.start_for_session(args)  # None without --console
    console.print(
        f"vrex {command}: patient [bold]{patient}[/], protocol [bold]{prep.protocol.name}[/] on "
        f"[bold]{prep.env.title}[/], {args.minutes:g} min"
        + (f" at {args.speed:g}x" if args.speed != 1 else "") + f", sensor {sensor}, {display} display",
        highlight=False)
    view_thread = None
    if console.is_terminal:
        view_thread = threading.Thread(target=_live_view, args=(console, tallies, stop_view, runner.done),
                                       daemon=True)
        view_thread.start()
    try:
        outcome = runner.run()
    finally:
        if web is not None:
            web.stop()
        stop_view.set()
        if view_thread is not None:
            view_thread.join(2.0)
    _print_summary(console, tallies[0] if tallies else None, outcome)
    if outcome.xdf_path is not None:  # where the research copy went (LSL outlets close with the session)
        console.print(f"XDF: {outcome.xdf_path}", highlight=False, soft_wrap=True)
    return outcome.exit_code


def _live_view(console, tallies, stop: threading.Event, done: threading.Event) -> None:
    from rich.live import Live

    while not tallies and not stop.wait(0.1):
        pass
    if not tallies:
        return
    tally = tallies[0]
    with Live(tally.table(), console=console, refresh_per_second=4, transient=False) as view:
        while not stop.wait(0.25):
            view.update(tally.table())
        view.update(tally.table())


def _print_summary(console, tally, outcome) -> None:
    from rich.table import Table

    t = Table(title="session summary", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("status", f"{outcome.status.value}: {outcome.end_reason}")
    if tally is not None:
        t.add_row("duration", f"{tally.elapsed_s / 60:.1f} min (session clock)")
        if tally.baseline_hr_bpm is not None:
            t.add_row("baseline HR", f"{tally.baseline_hr_bpm:.1f} bpm")
        levels = sorted(tally.levels_reached)
        t.add_row("levels reached", ", ".join(map(str, levels)) or "none")
        t.add_row("steps down (arousal)", str(tally.steps_down_arousal))
        t.add_row("SUDS answers", str(tally.suds_count))
        t.add_row("safety alerts", str(tally.alerts))
    if outcome.max_lag_s >= 1.0:
        t.add_row("busy CPU", f"the session ran up to {outcome.max_lag_s:.1f} s behind the wall clock; "
                              "decisions waited for it")
    for sub in outcome.subscribers:
        if sub.lossless:
            t.add_row(f"observer {sub.name}", f"{sub.delivered} items, largest backlog {sub.max_backlog}"
                      + (f", {sub.failures} failures" if sub.failures else ""))
        elif sub.dropped or sub.failures:
            t.add_row(f"observer {sub.name}", f"{sub.delivered} items, {sub.dropped} dropped (lossy)"
                      + (f", {sub.failures} failures" if sub.failures else ""))
    console.print(t)
    if outcome.lost_events:
        console.print(f"[bold red]warning:[/] {outcome.lost_events} events could not be written to the record; "
                      "it is marked failed (check the disk)", highlight=False)
    console.print(f"record: {outcome.record_path} (session {outcome.session_id})", highlight=False, soft_wrap=True)
    if outcome.frames:
        console.print(f"frames in {outcome.frames[0].path.parent}:", highlight=False, soft_wrap=True)
        for frame in outcome.frames:
            console.print(f"  {frame.path.name}  {frame.label}", highlight=False, soft_wrap=True)


# -- patients ------------------------------------------------------------------------------------------

def _store(args: argparse.Namespace):
    from therapy.store import open_store

    return open_store(args.data_dir)


def _patient_dict(p) -> dict[str, object]:
    return {"code": p.code, "birth_year": p.birth_year, "notes": p.notes, "created_utc": p.created_utc,
            "resonance_breaths_per_min": p.resonance_breaths_per_min,
            "hierarchies": {env: [{"level": s.level, "note": s.note} for s in steps]
                            for env, steps in p.hierarchies.items()}}


def _patients_add(args: argparse.Namespace) -> int:
    with _store(args) as store:
        p = store.add_patient(args.code, birth_year=args.birth_year, notes=args.notes)
        print(f"patient {p.code} added to {store.path}")
    return 0


def _patients_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        patients = store.patients()
        counts = {p.code: len(store.sessions(p.code)) for p in patients}
    if args.json:
        print(json.dumps([_patient_dict(p) | {"sessions": counts[p.code]} for p in patients], indent=1))
        return 0
    if not patients:
        print("no patients yet: add one with 'python main.py patients add CODE'")
    for p in patients:
        age = f"born {p.birth_year}" if p.birth_year else "birth year unknown"
        print(f"{p.code:<12} {age:<20} {counts[p.code]:>3} sessions  {p.notes}")
    return 0


def _patients_show(args: argparse.Namespace) -> int:
    with _store(args) as store:
        p = store.patient(args.code)
        sessions = [s.listing() for s in store.sessions(p.code)]
    if args.json:
        print(json.dumps(_patient_dict(p) | {"sessions": sessions}, indent=1))
        return 0
    print(f"patient {p.code}")
    print(f"  birth year: {p.birth_year or 'unknown (HR ceiling assumes 60 years)'}")
    if p.resonance_breaths_per_min:
        print(f"  resonance breathing: {p.resonance_breaths_per_min:g} breaths/min")
    if p.notes:
        print(f"  notes: {p.notes}")
    for env, steps in p.hierarchies.items():
        print(f"  hierarchy for {env}: " + ", ".join(f"{s.level}" + (f" ({s.note})" if s.note else "") for s in steps))
    print(f"  sessions: {len(sessions)}")
    for s in sessions:
        print(f"    {s['id'][:12]}  {s['started_utc']}  {s['protocol']:<18} {s['status']}")
    return 0


def _patients_hierarchy(args: argparse.Namespace) -> int:
    from environments import registry
    from therapy.errors import TherapyError
    from therapy.store import HierarchyStep

    env = registry.info(args.environment)
    top = len(env.levels) - 1
    steps = []
    for text in args.levels:
        level_text, _, note = text.partition(":")
        try:
            level = int(level_text)
        except ValueError:
            raise TherapyError(f"hierarchy step {text!r} is not LEVEL or LEVEL:NOTE (e.g. 3 or '3:door open')") from None
        if not 0 <= level <= top:
            raise TherapyError(f"level {level} is outside {env.name}'s levels 0..{top}")
        steps.append(HierarchyStep(level, note.strip()))
    with _store(args) as store:
        store.set_hierarchy(args.code, env.name, steps)
    print(f"patient {args.code}: {env.name} hierarchy " + " -> ".join(str(s.level) for s in steps))
    return 0


# -- sessions ------------------------------------------------------------------------------------------

def _sessions_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        if args.patient:
            store.patient(args.patient)  # unknown patient: a clear error, not an empty list
        rows = [s.listing() for s in store.sessions(args.patient)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("no sessions recorded yet")
    for r in rows:
        print(f"{r['id'][:12]}  {r['started_utc'][:19]}  {str(r['patient'] or '-'):<10} {r['protocol']:<18} "
              f"{r['status']}")
    return 0


def _sessions_show(args: argparse.Namespace) -> int:
    with _store(args) as store:
        d = store.session_details(args.id)
    if args.json:
        print(json.dumps(d, indent=1, default=str))
        return 0
    print(f"session {d['id']}  patient {d['patient'] or '-'}  protocol {d['protocol']}  ({d['environment']})")
    print(f"  {d['started_utc']} -> {d['ended_utc'] or '...'}: {d['status']} ({d['end_reason'] or ''})")
    print(f"  sensor: {d['sensor']}")
    c = d["counts"]
    print(f"  {c['events']} events, {c['hr_samples']} HR samples, {c['beats']} beats, {c['suds']} SUDS answers")
    for ph in d["phases"]:
        print(f"  {ph['t_s']:8.1f} s  phase {ph['phase']}: {ph['reason']}")
    for lv in d["levels"]:
        print(f"  {lv['t_s']:8.1f} s  level {lv['level']} ({lv['cause']}): {lv['reason']}")
    for su in d["suds"]:
        print(f"  {su['t_s']:8.1f} s  SUDS {su['value']} at level {su['level']} ({su['source']})")
    for al in d["alerts"]:
        print(f"  {al['t_s']:8.1f} s  ALERT {al.get('code')}: {al.get('message')}")
    for v in d["levels_suds"]:
        shown = {k: "-" if v[k] is None else v[k] for k in ("anticipated", "first", "peak", "end")}
        print(f"  level {v['level']}: SUDS anticipated {shown['anticipated']}, first {shown['first']}, peak "
              f"{shown['peak']}, end {shown['end']} ({v['ratings']} ratings over {v['duration_s']:.0f} s)")
    for n in d["notes"]:
        print(f"  {n['t_s']:8.1f} s  NOTE ({n['source']}): {n['text']}")
    return 0
