"""``python main.py bench lsl``: latency of vrex's LSL outlets on this machine, as a lab's recorder sees it.

vrex's own outlets (the session's ECG, RR, HR, Exposure and Markers streams)
publish a synthetic session at a steady pace; independent inlets resolve them by
source_id and time each sample from its push (its timestamp is taken on the
LSL clock just before the push) to its arrival. The target is a median of at
most 1 ms on loopback. By default liblsl is confined to this machine with the
repository's loopback configuration (``tests/lsl/loopback.cfg``), unless
``LSLAPICFG`` already names one: the figure is vrex's and liblsl's cost, not
the network's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

DEFAULT_JSON = Path("bench-results") / "lsl.json"
LOOPBACK_CFG = Path(__file__).resolve().parents[1] / "tests" / "lsl" / "loopback.cfg"
TARGET_MEDIAN_MS = 1.0
ECG_FS_HZ = 130.0
ECG_PACKET = 73  # samples per Polar H10 ECG notification


def register(bench: argparse._SubParsersAction) -> None:
    """Add ``bench lsl`` to the bench sub-commands."""
    b = bench.add_parser("lsl", help="loopback latency of vrex's LSL outlets (ECG, RR, HR, Exposure, Markers)")
    b.add_argument("--packets", type=int, default=300, metavar="N",
                   help="ECG packets (73 samples each) and as many samples of every other stream (default 300)")
    b.add_argument("--interval-ms", type=float, default=5.0, metavar="MS",
                   help="pause between pushes (default 5 ms; a real strap sends every 560 ms)")
    b.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="FILE", help=f"JSON output (default {DEFAULT_JSON})")
    b.set_defaults(handler=bench_lsl_command)


def bench_lsl_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from biofeedback.errors import BiofeedbackError

    if args.packets < 10:
        raise BiofeedbackError(f"--packets must be >= 10, got {args.packets}")
    if not 0 <= args.interval_ms <= 1000:
        raise BiofeedbackError(f"--interval-ms must be 0..1000, got {args.interval_ms:g}")
    config = os.environ.get("LSLAPICFG") or ""
    if "biofeedback.lsl" not in sys.modules and not config and LOOPBACK_CFG.is_file():
        os.environ["LSLAPICFG"] = config = str(LOOPBACK_CFG)  # read once, when biofeedback.lsl is imported
    result = run_bench(args.packets, args.interval_ms / 1000.0)
    result["lsl_config"] = config or "liblsl defaults"
    table = Table(title=f"vrex LSL outlets -> independent inlets ({result['lsl_config']}, liblsl "
                        f"{result['liblsl']}): push-to-arrival latency")
    for col in ("stream", "format", "samples", "median ms", "p95 ms", "max ms", "lost"):
        table.add_column(col, justify="right")
    for row in result["streams"]:
        table.add_row(row["stream"], row["format"], str(row["samples"]), f"{row['median_ms']:.3f}",
                      f"{row['p95_ms']:.3f}", f"{row['max_ms']:.3f}", str(row["lost"]))
    console = Console()
    console.print(table)
    ok = result["median_ms"] <= TARGET_MEDIAN_MS
    console.print(f"all streams: median {result['median_ms']:.3f} ms (target <= {TARGET_MEDIAN_MS:g} ms: "
                  f"{'met' if ok else 'NOT met'}); resolving 5 outlets by source_id took "
                  f"{result['resolve_s']:.2f} s", highlight=False)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    console.print(f"JSON: {args.json}", highlight=False)
    return 0


def run_bench(packets: int, interval_s: float) -> dict:
    import numpy as np

    from biofeedback.lsl import local_clock, open_inlet
    from biofeedback.records import EcgChunk
    from therapy.events import BeatRecorded, ExposureSampled, HeartSampled, LevelChanged, Phase
    from therapy.live import RawRecord
    from therapy.sinks.lsl_outlets import LslOutletSink
    from therapy.sinks.streams import SessionStreams

    station = f"bench{os.getpid()}"
    sink = LslOutletSink(SessionStreams(station, "bench", "BENCH", "simulated strap (seed 0)", "heights", ()),
                         ecg_fs_hz=ECG_FS_HZ)
    t0 = time.perf_counter()
    inlets = {k: open_inlet(sid, 10.0, max_buflen_s=3600) for k, sid in sink.source_ids.items()}
    resolve_s = time.perf_counter() - t0
    arrivals: dict[str, list[tuple[float, float]]] = {k: [] for k in inlets}
    counts = {k: 0 for k in inlets}
    stop = threading.Event()

    def pull(key: str) -> None:
        inlet = inlets[key]
        every = ECG_PACKET if key == "ECG" else 1  # an ECG packet has arrived with its last (stamped) sample
        while not stop.is_set():
            _, stamp = inlet.pull_sample(timeout_s=0.2)
            now = local_clock()
            if stamp is not None:
                counts[key] += 1
                if counts[key] % every == 0:
                    arrivals[key].append((stamp, now))

    threads = [threading.Thread(target=pull, args=(k,), daemon=True) for k in inlets]
    for t in threads:
        t.start()
    ecg = np.sin(np.arange(ECG_PACKET) / 5.0) * 800.0
    for i in range(packets):
        now = local_clock()
        sink(RawRecord("bench", i, now, EcgChunk(now, ECG_FS_HZ, ecg)))
        sink(BeatRecorded(local_clock(), 812.0, 812.0, False, False))
        sink(HeartSampled(local_clock(), 72.0, 0.5, 41.0, 1.0, False))
        sink(ExposureSampled(local_clock(), "heights", 2, 0.8, Phase.EXPOSURE, False, ()))
        sink(LevelChanged(local_clock(), "heights", 2, 1, "protocol", "bench"))
        if interval_s:
            time.sleep(interval_s)  # pacing the publisher (a benchmark, not a test)
    expected = {"ECG": packets * ECG_PACKET, "RR": packets, "HR": packets, "Exposure": packets, "Markers": packets}
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and any(counts[k] < n for k, n in expected.items()):
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join(2.0)
    sink.close()
    for inlet in inlets.values():
        inlet.close()
    rows = []
    everything: list[float] = []
    for key in ("ECG", "RR", "HR", "Exposure", "Markers"):
        lat_ms = np.array([(arr - ts) * 1000.0 for ts, arr in arrivals[key]])
        everything.extend(lat_ms.tolist())
        rows.append({"stream": key, "format": sink.specs[key].channel_format, "samples": counts[key],
                     "median_ms": float(np.median(lat_ms)) if len(lat_ms) else float("nan"),
                     "p95_ms": float(np.percentile(lat_ms, 95)) if len(lat_ms) else float("nan"),
                     "max_ms": float(lat_ms.max()) if len(lat_ms) else float("nan"),
                     "lost": expected[key] - counts[key]})
    from biofeedback.lsl import liblsl_version

    return {"liblsl": liblsl_version(), "python": platform.python_version(), "machine": platform.machine(),
            "packets": packets, "interval_s": interval_s, "resolve_s": resolve_s,
            "median_ms": float(np.median(everything)) if everything else float("nan"),
            "target_median_ms": TARGET_MEDIAN_MS, "streams": rows}
