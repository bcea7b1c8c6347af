"""Sub-commands of the biofeedback package, registered on main.py's parser.

* ``devices``: list nearby heart-rate sensors.
* ``monitor``: live HR, RR, artefact rate, signal quality and link state from any sensor.

Heavy libraries (bleak, liblsl, rich, numpy) load inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's commands to commands (its benchmarks are registered by ``bench.cli``)."""
    p = commands.add_parser("devices", help="list nearby Bluetooth heart-rate sensors (HR, Polar ECG)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S", help="scan for S seconds (default 5)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the list as JSON")
    p.set_defaults(handler=devices_command)

    p = commands.add_parser("monitor", help="show live HR, RR, artefacts, signal quality and link state")
    p.add_argument(
        "--sensor",
        required=True,
        metavar="SPEC",
        help="ble:ADDR|NAME, polar:ADDR|NAME, sim[:SEED], replay:FILE or lsl:NAME",
    )
    p.add_argument("--seconds", type=float, default=None, metavar="N", help="stop after N session seconds (default: until Ctrl-C or the end of a replay)")
    p.add_argument("--speed", type=float, default=1.0, metavar="X", help="session time runs X times faster (sim and replay only)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the final state and counts as JSON")
    p.set_defaults(handler=monitor_command)


# ------------------------------------------------------------------------------------ devices
def devices_command(args: argparse.Namespace) -> int:
    """Scan and print a table of heart-rate sensors; no adapter -> one line, exit 2."""
    import asyncio

    from rich.console import Console
    from rich.table import Table

    from biofeedback import ble

    if not args.timeout > 0:
        from biofeedback.errors import BiofeedbackError

        raise BiofeedbackError(f"--timeout must be > 0 seconds, got {args.timeout:g}")
    backend = ble.backend_from_env()
    found = asyncio.run(ble.scan_heart_sensors(args.timeout, backend=backend))
    console = Console()
    if args.json is not None:
        write_json(args.json, {"timeout_s": args.timeout, "sensors": [_found_dict(s) for s in found]})
    if not found:
        console.print(f"no heart-rate sensors found in {args.timeout:g} s (switch the strap on and wet its electrodes)")
        return 0
    table = Table(title=f"heart-rate sensors ({args.timeout:g} s scan)")
    for col in ("name", "address", "RSSI dBm", "HR", "ECG"):
        table.add_column(col, no_wrap=True)
    for s in found:
        table.add_row(
            s.name or "?",
            s.address,
            "" if s.rssi_dbm is None else str(s.rssi_dbm),
            "yes" if s.offers_hr else "no",
            "yes" if s.offers_ecg else "no",
        )
    console.print(table)
    for s in found:
        specs = [f"polar:{s.address}"] if s.offers_ecg else []
        specs += [f"ble:{s.address}"] if s.offers_hr else []
        console.print(f"{s.name or s.address}: --sensor {' or --sensor '.join(specs)}", soft_wrap=True, highlight=False)
    return 0


def _found_dict(s: Any) -> dict[str, Any]:
    return {"name": s.name, "address": s.address, "rssi_dbm": s.rssi_dbm, "offers_hr": s.offers_hr, "offers_ecg": s.offers_ecg}


# ------------------------------------------------------------------------------------ monitor
def monitor_command(args: argparse.Namespace) -> int:
    """Run a sensor through the pipeline and show its state live until --seconds or the source ends."""
    import asyncio

    from biofeedback.errors import BiofeedbackError, SensorSpecError

    if not (args.speed > 0 and math.isfinite(args.speed)):
        raise BiofeedbackError(f"--speed must be a positive number, got {args.speed:g}")
    if args.seconds is not None and not args.seconds > 0:
        raise BiofeedbackError(f"--seconds must be > 0, got {args.seconds:g}")
    kind = args.sensor.partition(":")[0].strip().lower()
    if args.speed != 1.0 and kind in ("ble", "polar", "lsl"):
        raise SensorSpecError(f"--speed {args.speed:g} only applies to sim and replay sensors; a {kind} sensor runs in real time")
    summary = asyncio.run(_monitor(args))
    if args.json is not None:
        write_json(args.json, summary)
    return 0


async def _monitor(args: argparse.Namespace) -> dict[str, Any]:
    import asyncio

    from rich.console import Console
    from rich.live import Live

    from biofeedback.clock import LslClock, ScaledClock
    from biofeedback.pipeline import HeartPipeline
    from biofeedback.records import LinkEvent, PayloadError
    from biofeedback.sensors import open_sensor

    clock = LslClock() if args.speed == 1.0 else ScaledClock(args.speed)
    sensor = open_sensor(args.sensor, clock)
    pipeline = HeartPipeline()
    start_s = clock.now()
    end_s = None if args.seconds is None else start_s + args.seconds
    status: dict[str, Any] = {"link": "starting", "link_detail": "", "payload_errors": 0, "ended": False, "records": 0}

    async def consume() -> None:
        async for record in sensor.records():
            status["records"] += 1
            if isinstance(record, LinkEvent):
                status["link"], status["link_detail"] = record.state.value, record.detail
            elif isinstance(record, PayloadError):
                status["payload_errors"] += 1
            pipeline.feed(record)
            pipeline.drain_beats()
        status["ended"] = True

    console = Console()
    task = asyncio.create_task(consume())
    live = Live(console=console, auto_refresh=False, transient=False) if console.is_terminal else None
    try:
        if live is not None:
            live.start()
        while not task.done():
            now_s = clock.now()
            if end_s is not None and now_s >= end_s:
                break
            if live is not None:
                live.update(_monitor_table(sensor.description, pipeline.state(now_s), status, now_s - start_s), refresh=True)
            wait_s = 0.25 if end_s is None else min(0.25, max(0.0, (end_s - now_s) / clock.speed))
            await asyncio.wait({task}, timeout=wait_s)
    finally:
        if live is not None:
            live.stop()
        await sensor.close()
        if not task.done():
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    now_s = min(clock.now(), end_s) if end_s is not None else clock.now()
    state = pipeline.state(now_s)
    console.print(_monitor_table(sensor.description, state, status, now_s - start_s))
    return {
        "sensor": sensor.description,
        "session_s": now_s - start_s,
        "speed": args.speed,
        "source_ended": status["ended"],
        "link": status["link"],
        "payload_errors": status["payload_errors"],
        "counts": dict(pipeline.counts),
        "state": {k: getattr(state, k) for k in state.__slots__},
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _monitor_table(description: str, state: Any, status: dict[str, Any], elapsed_s: float):
    from rich.table import Table

    table = Table(title=f"{description}  t={elapsed_s:6.1f} s", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("HR (from RR)", f"{_fmt(state.hr_bpm, '.1f')} bpm")
    table.add_row("last NN", f"{_fmt(state.last_nn_ms, '.0f')} ms")
    table.add_row("RMSSD / SDNN (60 s)", f"{_fmt(state.rmssd_ms, '.1f')} / {_fmt(state.sdnn_ms, '.1f')} ms")
    table.add_row("artefact rate", f"{100 * state.artifact_rate:.1f} %")
    quality = "STALE" if state.stale else f"{state.quality:.2f}"
    table.add_row("signal quality", quality)
    table.add_row("beats", str(state.beats))
    table.add_row("payload errors", str(status["payload_errors"]))
    link = status["link"] + (f" ({status['link_detail']})" if status["link_detail"] else "")
    table.add_row("link", link)
    return table


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write a result as indented JSON (numpy scalars as numbers, nan/inf as null), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n", encoding="utf-8")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)
