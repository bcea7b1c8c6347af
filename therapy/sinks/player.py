"""Republish a recorded session as live LSL streams (``python main.py replay-lsl``), like mne-lsl's Player.

Researchers test their recording and analysis set-up against a real session
without a patient; vrex's own tests use it as an LSL source for ``run`` and
``monitor --sensor lsl:``. Every stream keeps its type, channels (label, unit,
type) and ``desc`` metadata; its name and ``source_id`` name the replaying
station (``vrex.<station>.<stream>``; ``<original>.replay`` for streams another
program wrote), so a replay is never mistaken for the live station. Samples go
out at their recorded pace (``speed`` times faster), re-stamped on this
machine's LSL clock; ECG goes out in sensor-like packets stamped with their last
sample.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from therapy.export.recorded import RecordedStream
from therapy.sinks.lsl_outlets import open_spec_outlet
from therapy.sinks.streams import APP, StreamSpec, source_id

log = logging.getLogger(__name__)

#: ECG packet length when replaying (a Polar H10 sends ~0.56 s; shorter keeps latency low).
ECG_PACKET_S = 0.25


def replay_spec(spec: StreamSpec, station: str, origin: str, speed: float) -> StreamSpec:
    """The description a replayed stream is published under (see the module docstring)."""
    desc = {**spec.desc, "replay": {"of": origin, "speed": f"{speed:g}", "original_source_id": spec.source_id}}
    if spec.source_id.startswith(f"{APP}."):
        return dataclasses.replace(spec, name=f"{APP} {station} {spec.key}", source_id=source_id(station, spec.key),
                                   desc=desc)
    return dataclasses.replace(spec, name=f"{spec.name} (replay)", source_id=f"{spec.source_id or spec.name}.replay",
                               desc=desc)


class LslPlayer:
    """Outlets for the recorded streams, then :meth:`run` pushes them at the recorded pace."""

    def __init__(self, streams: Sequence[RecordedStream], *, station: str = "replay", origin: str = "",
                 speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"replay speed must be > 0, got {speed!r}")
        self.speed = float(speed)
        self.streams = [s for s in streams if len(s)]
        self.specs = [replay_spec(s.spec, station, origin, speed) for s in self.streams]
        self.outlets = []
        try:
            for spec in self.specs:
                self.outlets.append(open_spec_outlet(spec))
        except Exception:
            self.close()
            raise
        self.pushed = [0] * len(self.streams)

    @property
    def source_ids(self) -> dict[str, str]:
        return {spec.key: spec.source_id for spec in self.specs}

    @property
    def duration_s(self) -> float:
        if not self.streams:
            return 0.0
        return (max(float(s.timestamps_s[-1]) for s in self.streams)
                - min(float(s.timestamps_s[0]) for s in self.streams)) / self.speed

    def wait_for_consumers(self, timeout_s: float) -> bool:
        """Until every outlet has a consumer (a test or a recorder that must not miss the first sample)."""
        deadline = time.monotonic() + timeout_s
        return all(o.wait_for_consumers(max(0.0, deadline - time.monotonic())) for o in self.outlets)

    def _items(self) -> list[tuple[float, int, int, int]]:
        """(original time of the item's last sample, stream, first index, end index), in time order."""
        items = []
        for k, s in enumerate(self.streams):
            n = len(s)
            if s.spec.regular and s.spec.channel_format != "string" and s.spec.nominal_srate_hz > 2:
                step = max(1, round(s.spec.nominal_srate_hz * ECG_PACKET_S))
                for a in range(0, n, step):
                    b = min(n, a + step)
                    items.append((float(s.timestamps_s[b - 1]), k, a, b))
            else:
                items.extend((float(t), k, i, i + 1) for i, t in enumerate(s.timestamps_s))
        heapq.heapify(items)
        return [heapq.heappop(items) for _ in range(len(items))]

    def run(self, stop: threading.Event | None = None, *, clock: Callable[[], float] | None = None,
            on_progress: Callable[[float], None] | None = None) -> int:
        """Push everything at the recorded pace; returns the number of samples pushed (fewer if stopped)."""
        from biofeedback.lsl import local_clock

        clock = clock or local_clock
        stop = stop or threading.Event()
        items = self._items()
        if not items:
            return 0
        t0 = min(float(s.timestamps_s[0]) for s in self.streams)
        start = clock()
        total = 0
        for t_orig, k, a, b in items:
            due = start + (t_orig - t0) / self.speed
            wait = due - clock()
            if wait > 0 and stop.wait(wait):
                break
            if stop.is_set():
                break
            s, outlet = self.streams[k], self.outlets[k]
            stamps = start + (np.asarray(s.timestamps_s[a:b]) - t0) / self.speed
            if s.spec.channel_format == "string":
                for row, t in zip(s.values[a:b], stamps):
                    outlet.push_sample(row, float(t))
            elif b - a > 1 and self.speed == 1.0:  # liblsl back-fills the packet at 1/rate from its last sample
                outlet.push_chunk(np.asarray(s.values[a:b]), float(stamps[-1]))
            elif b - a > 1:  # faster than recorded: the rate no longer spaces the samples, so stamp each one
                outlet.push_stamped(np.asarray(s.values[a:b]), stamps)
            else:
                outlet.push_sample(np.asarray(s.values[a]).tolist(), float(stamps[0]))
            self.pushed[k] += b - a
            total += b - a
            if on_progress is not None:
                on_progress((t_orig - t0) / self.speed)
        return total

    def close(self) -> None:
        for outlet in self.outlets:
            outlet.close()
        self.outlets = []
