"""``python main.py bench live``: does a slow observer change a live session's ticks? (issue 7)

A session runs on the real (LSL) clock with the simulated strap, as a live session does, twice: once with only
the store attached, once with an extra lossless subscriber that sleeps a full second on every event (a stalled
disk, a frozen browser tab). A thread reads the scene state the runtime publishes every tick (0.25 s) and takes
each tick's session-clock time; a tick's *lateness* is how far it came after its scheduled time. The figure to
look at: the lateness percentiles with and without the slow subscriber, and how far behind the slow subscriber
fell (its backlog) while the ticks stayed on time.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import threading
import time
from pathlib import Path

DEFAULT_JSON = Path("bench-results") / "live.json"


def register(bench: argparse._SubParsersAction) -> None:
    """Add ``bench live`` to the bench sub-commands."""
    b = bench.add_parser("live", help="session tick jitter on the real clock with and without a 1-s-per-event observer")
    b.add_argument("--seconds", type=float, default=30.0, metavar="S",
                   help="seconds of each session to measure (default 30; the session itself is real time)")
    b.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="FILE",
                   help=f"JSON output (default {DEFAULT_JSON})")
    b.set_defaults(handler=bench_live_command)


def _measure(seconds: float, slow: bool) -> dict[str, float]:
    import numpy as np

    from biofeedback.clock import LslClock
    from therapy import commands as cmd
    from therapy.runner import SessionRequest, SessionRunner
    from therapy.store import open_store

    data = Path(tempfile.mkdtemp(prefix="vrex-bench-live-"))
    with open_store(data) as store:
        store.add_patient("BENCH", birth_year=1990)
    ticks: dict[int, float] = {}
    t0: list[float] = []
    stats: dict[str, object] = {}

    def slow_sink(item: object) -> None:
        time.sleep(1.0)

    def watch(runner: SessionRunner, stop: threading.Event) -> None:
        while not runner.started.is_set() and not stop.is_set():
            time.sleep(0.001)
        live = runner.live
        t0.append(live.identity.t0_s)
        end = time.monotonic() + seconds
        while time.monotonic() < end and not stop.is_set():
            state = runner.scene.get()
            ticks.setdefault(state.seq, state.t_s)
            time.sleep(0.002)
        stats["slow_backlog"] = max((s.backlog for s in live.subscription_stats() if s.name == "slow"), default=0)
        for sub in subs:  # let it drain on its own: the bench does not wait hours for a 1 s/event sink
            sub.close(timeout_s=0)
        live.commands.put(cmd.Stop(source="bench", reason="measured"))

    subs = []

    def attach(live) -> None:
        if slow:
            subs.append(live.subscribe(slow_sink, lossless=True, name="slow"))

    runner = SessionRunner(
        SessionRequest(patient="BENCH", sensor="sim:1", minutes=20, display="none", data_dir=data, xdf=False,
                       lsl=False, simulated_patient=True, command="bench"),
        clock=LslClock(), observers=[attach])
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(runner, stop), daemon=True)
    watcher.start()
    try:
        runner.run()  # the slow subscriber drains its backlog at the end (a lossless one loses nothing)
    finally:
        stop.set()
        watcher.join()
    times = np.array(sorted(ticks.values()))
    times = times[times > t0[0]]
    tick_s = 0.25
    lateness_ms = np.mod(times - t0[0], tick_s) * 1000.0  # ticks are due at t0 + k * 0.25 s
    return {
        "ticks": int(len(times)),
        "p50_ms": float(np.percentile(lateness_ms, 50)),
        "p95_ms": float(np.percentile(lateness_ms, 95)),
        "max_ms": float(np.max(lateness_ms)),
        "slow_backlog_events": int(stats.get("slow_backlog", 0)),
    }


def bench_live_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    if not args.seconds > 0:
        from therapy.errors import TherapyError

        raise TherapyError(f"--seconds {args.seconds:g} must be greater than 0")
    _measure(min(5.0, args.seconds), slow=False)  # warm-up (imports, first session): not reported
    rows = {"without slow observer": _measure(args.seconds, slow=False),
            "with a 1 s/event observer": _measure(args.seconds, slow=True)}
    table = Table(title=f"session tick lateness on the LSL clock ({args.seconds:g} s each)")
    for col in ("run", "ticks", "p50 ms", "p95 ms", "max ms", "slow observer backlog"):
        table.add_column(col, justify="right")
    for name, r in rows.items():
        table.add_row(name, str(r["ticks"]), f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{r['max_ms']:.2f}",
                      str(r["slow_backlog_events"]) if "with" in name else "-")
    Console(width=120).print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": platform.platform(), "seconds": args.seconds, "runs": rows},
                                    indent=1))
    print(f"wrote {args.json}")
    return 0
