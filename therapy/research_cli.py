"""``export`` and ``replay-lsl``: a recorded session for researchers (files, or live LSL streams again).

Registered from :mod:`therapy.cli`. Every user mistake (an unknown session id, a
folder that cannot be written, a session still being recorded, a file that is
not XDF) is a :class:`~therapy.errors.TherapyError`: one ``vrex: error:`` line
and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path

log = logging.getLogger(__name__)

FORMATS = ("xdf", "bids", "csv", "report")


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    from therapy.cli import _positive, _station, add_data_dir

    p = commands.add_parser(
        "export", help="export a recorded session: xdf, bids, csv or an html report",
        description="Write one recorded session for researchers or the clinician: 'xdf' (one file with every "
                    "stream, as LabRecorder would), 'bids' (BIDS physiological recordings with sidecars, events, "
                    "dataset_description.json and participants.tsv), 'csv' (one tidy CSV per series and a README "
                    "of columns and units) or 'report' (a self-contained HTML page with plots, and a "
                    "course-of-treatment page across the patient's sessions).")
    p.add_argument("id", metavar="SESSION_ID", help="session id (a unique prefix is enough; see 'sessions list')")
    p.add_argument("--format", choices=FORMATS, required=True, help="what to write")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write into (created if needed)")
    p.add_argument("--station", type=_station, default=None, metavar="NAME",
                   help="station name in rebuilt streams' names and source ids (default: this computer's host name)")
    add_data_dir(p)
    p.set_defaults(handler=export_command)

    p = commands.add_parser(
        "replay-lsl", help="republish a recorded session (or an .xdf file) as live LSL streams",
        description="Publish every stream of a recorded session (its session.xdf, else what the store holds) or of "
                    "an XDF file as live LSL outlets with the same channels and metadata, at the recorded pace. "
                    "'monitor --sensor lsl:vrex.replay.RR' or 'run --sensor lsl:vrex.replay.ECG' consume them.")
    p.add_argument("source", metavar="SESSION_ID|FILE.xdf")
    p.add_argument("--speed", type=_positive(float, "time factor"), default=1.0,
                   help="play N times faster than recorded (default 1)")
    p.add_argument("--station", type=_station, default="replay", metavar="NAME",
                   help="station name in the published names and source ids (default 'replay': vrex.replay.RR ...)")
    add_data_dir(p)
    p.set_defaults(handler=replay_command)


def _streams_of(source: str, data_dir: Path | None, station: str):
    """The recorded streams a session id or XDF path names, and a label for where they came from."""
    from therapy.export.recorded import load_session, read_xdf

    path = Path(source).expanduser()
    if path.suffix.lower() == ".xdf" or path.is_file():
        if not path.is_file():
            from therapy.errors import TherapyError

            raise TherapyError(f"XDF file {str(path)!r} not found; give a session id or an existing .xdf file")
        return read_xdf(path), path.name
    from therapy.store import open_store

    with open_store(data_dir) as store:
        data = load_session(store, source)
    return data.streams(station), f"session {data.session_id}"


def replay_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from therapy.sinks.player import LslPlayer

    streams, origin = _streams_of(args.source, args.data_dir, args.station)
    player = LslPlayer(streams, station=args.station, origin=origin, speed=args.speed)
    console = Console()
    table = Table(title=f"replaying {origin} at {args.speed:g}x: {player.duration_s:.1f} s")
    for col in ("name", "type", "source_id", "rate Hz", "channels", "samples"):
        table.add_column(col)
    for spec, s in zip(player.specs, player.streams):
        table.add_row(spec.name, spec.type, spec.source_id, f"{spec.nominal_srate_hz:g}",
                      ", ".join(f"{c.label} ({c.unit})" for c in spec.channels), str(len(s)))
    console.print(table)
    stop = threading.Event()
    try:
        with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                      TextColumn("{task.completed:.0f}/{task.total:.0f} s"), TimeRemainingColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("publishing", total=max(player.duration_s, 1e-9))
            pushed = player.run(stop, on_progress=lambda s: progress.update(task, completed=s))
    except KeyboardInterrupt:
        stop.set()
        console.print("replay stopped", highlight=False)
        return 130
    finally:
        player.close()
    console.print(f"published {pushed} samples in {len(player.specs)} streams", highlight=False)
    return 0


def export_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    from therapy.export.recorded import load_session
    from therapy.export.writers import export_session, prepare_out
    from therapy.sinks.streams import default_station
    from therapy.store import open_store

    out = prepare_out(args.out)
    with open_store(args.data_dir) as store:
        data = load_session(store, args.id)
        course = None
        if args.format == "report" and data.patient:
            course = [load_session(store, s.id, allow_running=True) for s in store.sessions(data.patient)
                      if s.status != "running"]
    console = Console()
    written = export_session(data, args.format, out, station=args.station or default_station(), console=console,
                             course=course)
    console.print(f"exported session {data.session_id} as {args.format} to {out}:", highlight=False, soft_wrap=True)
    for path in written:
        console.print(f"  {path.relative_to(out)}", highlight=False, soft_wrap=True)
    return 0
