"""Sub-commands of the biofeedback package, registered on main.py's parser.

* ``devices``: list nearby heart-rate sensors.
* ``monitor``: live HR, RR, artefact rate, signal quality and link state from any sensor.
* ``bench link``: reconnect times of the BLE sensor over the bumble virtual radio.

Heavy libraries (bleak, liblsl, rich, numpy) load inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_LINK_JSON = Path("bench-results") / "link.json"
RECONNECT_TARGET_S = 10.0


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's commands to commands and its benchmarks to bench."""
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

    b = bench.add_parser("link", help="BLE reconnect time over the bumble virtual radio (needs the dev extras)")
    b.add_argument("--drops", type=int, default=5, metavar="N", help="number of link drops (default 5)")
    b.add_argument("--seed", type=int, default=1, help="seed of the absence durations")
    b.add_argument("--max-absent", type=float, default=12.0, metavar="S", help="longest absence of the strap (default 12 s)")
    b.add_argument("--adv-interval-ms", type=float, default=250.0, metavar="MS", help="strap advertising interval (default 250 ms)")
    b.add_argument("--json", type=Path, default=DEFAULT_LINK_JSON, metavar="FILE", help=f"JSON output (default {DEFAULT_LINK_JSON})")
    b.set_defaults(handler=bench_link_command)


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
        _write_json(args.json, {"timeout_s": args.timeout, "sensors": [_found_dict(s) for s in found]})
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
        _write_json(args.json, summary)
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


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n", encoding="utf-8")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


# ------------------------------------------------------------------------------------ bench link
def bench_link_command(args: argparse.Namespace) -> int:
    """Drop the link N times and time reconnection from the strap's reappearance."""
    import asyncio

    from rich.console import Console
    from rich.table import Table

    from biofeedback.errors import BiofeedbackError

    if args.drops < 1:
        raise BiofeedbackError(f"--drops must be >= 1, got {args.drops}")
    try:
        from biofeedback.virtual_ble import VirtualRadio, VirtualStrap  # noqa: F401
    except ImportError as exc:
        from biofeedback.errors import SensorUnavailableError

        raise SensorUnavailableError(
            f"bench link needs bumble for its virtual radio ({exc}); install the virtual-ble extra "
            "(pip install -e '.[virtual-ble]')"
        ) from exc
    result = asyncio.run(_bench_link(args))
    rows = result["drops"]
    table = Table(title=f"BLE reconnect over bumble virtual radio ({args.adv_interval_ms:g} ms advertising, HR every 1 s)")
    for col in ("drop", "absent s", "link back s", "streaming s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["drop"]), f"{r['absent_s']:.1f}", _fmt(r["link_back_s"], ".2f"), _fmt(r["streaming_s"], ".2f"))
    s = result["summary"]
    table.add_section()
    table.add_row("median", "", _fmt(s["link_back_median_s"], ".2f"), _fmt(s["streaming_median_s"], ".2f"))
    table.add_row("max", "", _fmt(s["link_back_max_s"], ".2f"), _fmt(s["streaming_max_s"], ".2f"))
    console = Console(width=None if sys.stdout.isatty() else 160)  # logs and pipes get the whole table
    console.print(table)
    verdict = "met" if s["target_met"] else "NOT met"
    console.print(f"target: streaming again <= {RECONNECT_TARGET_S:g} s after the strap reappears: {verdict}")
    console.print(
        f"worst case by design (reappearing during the longest backoff sleep, {result['policy']['backoff_max_s']:g} s): "
        f"<= {_fmt(s['worst_case_bound_s'], '.2f')} s"
    )
    _write_json(args.json, result)
    console.print(f"wrote {args.json}")
    return 0 if s["target_met"] else 1


async def _bench_link(args: argparse.Namespace) -> dict[str, Any]:
    import asyncio
    import platform
    import random
    import statistics

    from biofeedback.ble import BleHeartRateSensor
    from biofeedback.clock import ScaledClock
    from biofeedback.hrm import encode_heart_rate_measurement
    from biofeedback.records import HeartSample, LinkEvent, LinkState
    from biofeedback.virtual_ble import VirtualRadio, VirtualStrap

    loop = asyncio.get_running_loop()
    strap = VirtualStrap("Bench HRM", "F0:00:00:00:00:0B", advertising_interval_ms=args.adv_interval_ms)
    radio = VirtualRadio([strap])
    clock = ScaledClock(1.0, time_fn=loop.time)
    sensor = BleHeartRateSensor("F0:00:00:00:00:0B", clock, backend=radio.backend())
    events: asyncio.Queue[Any] = asyncio.Queue()
    rng = random.Random(args.seed)

    async def consume() -> None:
        async for record in sensor.records():
            await events.put((loop.time(), record))

    async def heart() -> None:  # a strap notifies about once a second
        while True:
            if strap.subscribed is not None and strap.subscribed.is_set():
                await strap.notify_hr(encode_heart_rate_measurement(70, [857.0]))
            await asyncio.sleep(1.0)

    async def next_event(pred, timeout_s: float):
        deadline = loop.time() + timeout_s
        while True:
            t, rec = await asyncio.wait_for(events.get(), timeout=max(0.01, deadline - loop.time()))
            if pred(rec):
                return t, rec

    consumer = asyncio.create_task(consume())
    await radio.start()
    beater = asyncio.create_task(heart())
    rows = []
    try:
        await next_event(lambda r: isinstance(r, HeartSample), 30.0)
        for i in range(args.drops):
            absent_s = rng.uniform(0.5, args.max_absent)
            await strap.drop()
            await next_event(lambda r: isinstance(r, LinkEvent) and r.state is LinkState.LOST, 10.0)
            await asyncio.sleep(absent_s)
            await strap.reappear()
            t0 = strap.reappeared_at
            row = {"drop": i + 1, "absent_s": absent_s, "link_back_s": None, "streaming_s": None}
            try:
                t_link, _ = await next_event(lambda r: isinstance(r, LinkEvent) and r.state is LinkState.RECONNECTED, 60.0)
                row["link_back_s"] = t_link - t0
                t_hr, _ = await next_event(lambda r: isinstance(r, HeartSample), 10.0)
                row["streaming_s"] = t_hr - t0
            except asyncio.TimeoutError:
                log.warning("drop %d: sensor not back within the bench's wait", i + 1)
            rows.append(row)
    finally:
        beater.cancel()
        await sensor.close()
        consumer.cancel()
        for t in (beater, consumer):
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
    link = [r["link_back_s"] for r in rows if r["link_back_s"] is not None]
    stream = [r["streaming_s"] for r in rows if r["streaming_s"] is not None]
    ok = len(stream) == len(rows) and max(stream) <= RECONNECT_TARGET_S
    return {
        "bench": "link",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": platform.platform(),
        "transport": "bumble LocalLink (in-process virtual radio) via bleak's BleakScanner/BleakClient",
        "advertising_interval_ms": args.adv_interval_ms,
        "policy": {k: getattr(sensor.policy, k) for k in sensor.policy.__slots__},
        "drops": rows,
        "summary": {
            "link_back_median_s": statistics.median(link) if link else None,
            "link_back_max_s": max(link) if link else None,
            "streaming_median_s": statistics.median(stream) if stream else None,
            "streaming_max_s": max(stream) if stream else None,
            "target_s": RECONNECT_TARGET_S,
            "target_met": ok,
            # a strap that reappears during the longest backoff sleep waits that long, plus the
            # slowest observed reconnect and one notification period (1 s) for the first sample
            "worst_case_bound_s": sensor.policy.backoff_max_s + (max(link) if link else float("nan")) + 1.0,
        },
    }
