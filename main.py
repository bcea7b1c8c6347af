"""vrex command line: parses arguments, configures logging and composes the seams.

Each package registers its own sub-commands (``register(commands, bench)`` in its
``cli`` module); this file owns only the parser's top, logging, and the mapping
of each package's error family to exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("vrex")

USER_ERROR_EXIT = 2


class _Parser(argparse.ArgumentParser):
    """argparse, with the error line naming the fix and exit status 2 (argparse's own default)."""

    def error(self, message: str) -> None:
        sub = self.prog.partition(" ")[2]
        hint = f"python main.py {sub} --help" if sub else "python main.py --help"
        self.exit(USER_ERROR_EXIT, f"vrex: error: {message}\n(see '{hint}')\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; sub-commands come from each package's ``cli`` module."""
    from bench import cli as bench_cli
    from biofeedback import cli as biofeedback_cli
    from environments import cli as environments_cli
    from therapy import cli as therapy_cli

    parser = _Parser(
        prog="vrex",
        description="vrex: VR exposure therapy with heart-rate biofeedback.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    bench_parser = commands.add_parser("bench", help="benchmarks: print a table and write JSON")
    bench = bench_parser.add_subparsers(dest="bench", metavar="WHAT", parser_class=_Parser)
    bench.required = True
    _register_demo(commands)
    therapy_cli.register(commands, bench)
    biofeedback_cli.register(commands, bench)
    bench_cli.register(bench)
    environments_cli.register(commands, bench)
    __import__("protocols.cli").cli.register(commands, bench)
    return parser


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
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0 ({what})")
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


def _register_demo(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "demo",
        help="run one whole graded-exposure session on embedded defaults (simulated sensor, no hardware)",
        description=(
            "Run one complete heart-rate adaptive exposure session with a simulated chest strap: "
            "resting baseline, graded heights levels stepping up on habituation and down on high arousal, "
            "then recovery with paced breathing. The record goes to an SQLite file under --out, with PNG frames."
        ),
    )
    p.add_argument("--minutes", type=_positive(float, "session length in minutes"), default=20.0,
                   help="session length in session minutes (default 20)")
    p.add_argument("--speed", type=_positive(float, "time factor"), default=1.0,
                   help="simulated time runs N times faster than the wall clock (default 1)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the simulated patient (default 0)")
    p.add_argument("--out", type=Path, default=None,
                   help="data directory for the session record and frames (default: the per-user data dir)")
    p.add_argument("--display", choices=("auto", "headless", "desktop", "openvr"), default="auto",
                   help="auto = desktop window when a screen is available, else headless offscreen rendering")
    p.add_argument("--protocol", default="heights-graded",
                   help="built-in protocol name or path to a protocol .toml file (default heights-graded)")
    p.add_argument("--eye-size", type=_size, default=None, metavar="WxH",
                   help="per-eye render size for headless/desktop (default 640x720)")
    p.add_argument("--fps", type=_positive(float, "frames per second"), default=None,
                   help="cap on rendered frames per second (default 10 headless, display rate otherwise)")
    p.add_argument("--fault", type=_fault, action="append", default=[], metavar="KIND@START+DURATION",
                   help="script a sensor fault, e.g. dropout@300+20 (kinds: dropout, stall, implausible, "
                        "bad_payload, no_contact); repeatable")
    p.set_defaults(handler=_run_demo)


def _default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("vrex", appauthor=False))


def _choose_display(kind: str) -> str:
    """``auto``: a window where one can open (an X display on Linux, always on Windows/macOS), else headless."""
    import os

    if kind != "auto":
        return kind
    if sys.platform.startswith("linux"):
        return "desktop" if os.environ.get("DISPLAY") else "headless"  # pyglet needs X (XWayland sets DISPLAY)
    return "desktop"


def _run_demo(args: argparse.Namespace) -> int:
    """Compose the simulated seams with the real runtime, store and renderer, and run one session."""
    from environments import registry
    from environments.display import open_display
    from protocols.model import load_protocol
    from therapy.session import SessionPlan
    from therapy.store import prepare_output_dir

    # Everything a user can get wrong is checked before anything is opened or written.
    out_dir = prepare_output_dir(args.out or _default_data_dir())
    protocol, protocol_text = load_protocol(args.protocol)
    env_info = registry.info(protocol.environment)
    safe_info = registry.info(protocol.safe_environment)
    plan = SessionPlan.for_minutes(protocol, args.minutes)
    display_kind = _choose_display(args.display)
    eye_size = args.eye_size or (640, 720)
    fps = args.fps or (10.0 if display_kind == "headless" else None)
    display = open_display(display_kind, eye_size=eye_size, stereo=True, msaa=0, max_fps=fps)
    try:
        return _demo_session(args, display, display_kind, out_dir, protocol, protocol_text, env_info, safe_info, plan)
    finally:
        display.close()


def _demo_session(args, display, display_kind, out_dir, protocol, protocol_text, env_info, safe_info, plan) -> int:
    import signal
    import threading

    from rich.console import Console
    from rich.live import Live

    from biofeedback.clock import ScaledClock
    from biofeedback.pipeline import HeartPipeline
    from biofeedback.simulated import SimulatedSensor
    from environments.render_loop import RenderLoop
    from environments.scene_state import SceneStateBox
    from therapy import commands as cmd
    from therapy.events import EndStatus, EventBus
    from therapy.host import FrameCapturePolicy, SessionHost
    from therapy.progress import ProgressPrinter, SessionTally
    from therapy.session import SessionRuntime, drive_from_scene, initial_scene
    from therapy.simulated_patient import SimulatedPatient
    from therapy.store import SessionInfo, SqliteSessionStore

    console = Console()
    clock = ScaledClock(args.speed)
    scene = SceneStateBox(initial_scene(safe_info.name))
    sensor = SimulatedSensor(
        clock, seed=args.seed, drive=drive_from_scene(scene, len(env_info.levels)), faults=args.fault
    )
    bus = EventBus()
    commands = cmd.CommandQueue()
    runtime = SessionRuntime(
        clock=clock, sensor=sensor, pipeline=HeartPipeline(), protocol=protocol, environment=env_info,
        safe_environment=safe_info, plan=plan, bus=bus, commands=commands, scene=scene,
    )
    store = SqliteSessionStore(
        out_dir / "vrex.sqlite3",
        SessionInfo(
            protocol_name=protocol.name, protocol_toml=protocol_text, environment=env_info.name,
            sensor=sensor.description, clock_origin_s=clock.now(),
            metadata={"command": "demo", "seed": args.seed, "speed": args.speed, "minutes": args.minutes,
                      "display": display_kind, "eye_size": list(display.eye_size),
                      "faults": [f"{f.kind}@{f.start_s:g}+{f.duration_s:g}" for f in args.fault]},
        ),
    )
    frames_dir = out_dir / "frames" / store.session_id
    frames_dir.mkdir(parents=True, exist_ok=True)
    tally = SessionTally(t0_s=clock.now(), total_s=plan.total_s)
    loop = RenderLoop(display, scene, on_input=lambda ev: cmd.put_patient_input(commands, ev))
    capture = FrameCapturePolicy(runtime, clock, loop.request_capture, frames_dir,
                                 settle_s=runtime.fade_in_s + protocol.exposure.ramp_s + 1.0)
    patient_model = sensor.model
    patient = SimulatedPatient(clock, commands, lambda: sensor.fear_bpm / patient_model.fear_gain_bpm, seed=args.seed)
    for subscriber in (store, tally.on_event, capture.on_event, patient.on_event,
                       ProgressPrinter(tally, console).on_event):  # printed above the live view on a terminal
        bus.subscribe(subscriber)

    host = SessionHost(runtime, commands, companions=(capture.run, patient.run))
    stop_render = threading.Event()
    signals_seen: list[str] = []  # the handler only appends (no locks in a signal handler)

    def on_signal(signum: int, _frame) -> None:
        signals_seen.append(signal.Signals(signum).name)

    def supervise() -> None:
        """Turns signals into commands; stops rendering once the session is over (or on a second signal)."""
        sent = False
        while not host.done.wait(0.05):
            if signals_seen and not sent:
                sent = True
                commands.put(cmd.Interrupt(source="operator", reason=f"{signals_seen[0]} received"))
            if len(signals_seen) > 1:
                break
        stop_render.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    console.print(
        f"vrex demo: protocol [bold]{protocol.name}[/] on [bold]{env_info.title}[/], {args.minutes:g} min at "
        f"{args.speed:g}x, {display_kind} display, seed {args.seed}", highlight=False)
    supervisor = threading.Thread(target=supervise, name="vrex-supervise", daemon=True)
    host.start()
    supervisor.start()
    render_error: BaseException | None = None
    try:
        if console.is_terminal:
            with Live(tally.table(), console=console, refresh_per_second=4, transient=False) as view:
                threading.Thread(target=_refresh_view, args=(view, tally, stop_render), daemon=True).start()
                loop.run(stop_render)
        else:
            loop.run(stop_render)
    except Exception as exc:  # rendering died: the session must still end cleanly, recorded as failed
        log.exception("the render loop failed")
        render_error = exc
        commands.put(cmd.Abort(source="renderer", reason=f"rendering failed: {exc}"))
    finally:
        host.join(timeout_s=30.0)
        frames = capture.finish()
        status = host.status or EndStatus.INTERRUPTED
        store.close(EndStatus.FAILED if render_error else EndStatus.INTERRUPTED,
                    "the session thread did not finish" if host.status is None else "closed")
        for s, handler in previous.items():
            signal.signal(s, handler)

    _print_summary(console, tally, store, frames, status)
    if render_error is not None or status is EndStatus.FAILED:
        return 1
    return 130 if status is EndStatus.INTERRUPTED else 0


def _refresh_view(view, tally, stop) -> None:
    while not stop.wait(0.25):
        view.update(tally.table())
    view.update(tally.table())


def _print_summary(console, tally, store, frames, status) -> None:
    from rich.table import Table

    t = Table(title="session summary", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("status", f"{status.value}: {tally.end_reason}")
    t.add_row("duration", f"{tally.elapsed_s / 60:.1f} min (session clock)")
    if tally.baseline_hr_bpm is not None:
        t.add_row("baseline HR", f"{tally.baseline_hr_bpm:.1f} bpm")
    levels = sorted(tally.levels_reached)
    t.add_row("levels reached", ", ".join(map(str, levels)) or "none")
    t.add_row("steps down (arousal)", str(tally.steps_down_arousal))
    t.add_row("SUDS answers", str(tally.suds_count))
    t.add_row("safety alerts", str(tally.alerts))
    console.print(t)
    console.print(f"record: {store.path} (session {store.session_id})", highlight=False, soft_wrap=True)
    if frames:
        console.print(f"frames in {frames[0].path.parent}:", highlight=False, soft_wrap=True)
        for frame in frames:
            console.print(f"  {frame.path.name}  {frame.label}", highlight=False, soft_wrap=True)


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _user_error_types() -> tuple[type[BaseException], ...]:
    from biofeedback.errors import BiofeedbackError
    from environments.errors import RenderError
    from protocols.errors import ProtocolError
    from therapy.errors import TherapyError

    return (BiofeedbackError, RenderError, ProtocolError, TherapyError)


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit status (0 ok, 2 user error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except _user_error_types() as exc:
        print(f"vrex: error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        print("vrex: interrupted", file=sys.stderr)
        return 130


def cli() -> None:
    """Console-script entry point (``vrex``)."""
    sys.exit(run())


if __name__ == "__main__":
    cli()
