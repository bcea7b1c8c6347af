"""A session's research streams as live LSL outlets: what a lab's LabRecorder (or own code) records.

A lossless, raw live-session subscriber (:class:`LslOutletSink`) publishes the
streams of :mod:`therapy.sinks.streams` from its own thread, so a busy network
never delays the session. Conventions labs rely on (REFERENCE.md, "Lab
Streaming Layer"):

* stable ``source_id`` per station and stream, so a recorder reconnects to the
  next session's outlets by itself;
* ECG pushed as chunks stamped with the time of their last sample (liblsl
  back-fills the others at 1/rate), never stamped "now" on arrival;
* RR one sample per beat at the beat; Markers irregular (``nominal_srate`` 0),
  as pyxdf's dejittering requires;
* timestamps are the session clock's, which is ``pylsl.local_clock()`` for a
  live sensor.

Outlets exist for the session's life and are destroyed when it ends; the next
session on the station announces the same source ids again.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from therapy.sinks.streams import ECG, MARKERS, SessionStreams, StreamSpec, samples_of

log = logging.getLogger(__name__)

#: How long the outlets stay up after the session's last item while a consumer is connected. Once an outlet is
#: gone, liblsl gives an inlet nothing it has not pulled yet (a pull raises LostError, or blocks while the inlet
#: tries to recover), so a recorder that pulls on an interval, or a viewer short of CPU for a moment, would lose
#: the end of every stream, the session-ended marker among it. (Destroying an outlet itself takes ~0.13 s here.)
CLOSE_LINGER_S = 1.0


def open_spec_outlet(spec: StreamSpec):
    """An LSL outlet for one stream description (through vrex's one pylsl wrapper)."""
    from biofeedback.lsl import open_outlet

    return open_outlet(name=spec.name, stream_type=spec.type, source_id=spec.source_id,
                       channel_format=spec.channel_format, nominal_srate_hz=spec.nominal_srate_hz,
                       channels=[(c.label, c.unit, c.type) for c in spec.channels], desc=spec.desc)


class LslOutletSink:
    """Publishes one session's streams; called with every event and raw record on its subscription thread.

    ``ecg_fs_hz`` opens the ECG outlet at once (so a recorder sees it before the first chunk); otherwise it
    opens with the first ECG chunk, at that chunk's rate.
    """

    def __init__(self, streams: SessionStreams, *, ecg_fs_hz: float | None = None) -> None:
        self.streams = streams
        self.outlets: dict[str, object] = {}
        self.specs: dict[str, StreamSpec] = {}
        self.pushed: dict[str, int] = {}
        try:
            for spec in streams.fixed():
                self._open(spec)
            if ecg_fs_hz:
                self._open(streams.ecg(ecg_fs_hz))
        except Exception:
            self.close()
            raise

    def _open(self, spec: StreamSpec) -> None:
        self.outlets[spec.key] = open_spec_outlet(spec)
        self.specs[spec.key] = spec
        self.pushed[spec.key] = 0

    def _any_consumer(self) -> bool:
        try:
            return any(outlet.have_consumers() for outlet in self.outlets.values())
        except Exception:  # a broken outlet: closing it is all that is left to do
            return False

    @property
    def source_ids(self) -> dict[str, str]:
        return {k: s.source_id for k, s in self.specs.items()}

    def __call__(self, item: object) -> None:
        got = samples_of(item, self.streams.dial_names)
        if got is None:
            return
        if got.key == ECG and ECG not in self.outlets:
            self._open(self.streams.ecg(item.record.fs_hz))  # type: ignore[attr-defined]
        outlet = self.outlets.get(got.key)
        if outlet is None:
            return
        if got.key == ECG:
            outlet.push_chunk(np.asarray(got.values, dtype=np.float32), float(got.timestamps_s[-1]))
        elif got.key == MARKERS:
            for row, t_s in zip(got.values, got.timestamps_s):
                outlet.push_sample(row, float(t_s))
        else:
            for row, t_s in zip(np.asarray(got.values), got.timestamps_s):
                outlet.push_sample(row.tolist(), float(t_s))
        self.pushed[got.key] += len(got.timestamps_s)

    def close(self, linger_s: float = CLOSE_LINGER_S) -> None:
        """Destroy every outlet (after the session's last item), ``linger_s`` later if a consumer is connected."""
        if linger_s > 0 and self._any_consumer():
            time.sleep(linger_s)  # on this subscriber's own thread: the session itself has already ended
        for outlet in self.outlets.values():
            try:
                outlet.close()
            except Exception:
                log.exception("closing an LSL outlet failed")
        self.outlets = {}


def attach_lsl(live, *, station: str, ecg_fs_hz: float | None = None) -> LslOutletSink | None:
    """Publish the session's streams as LSL outlets (a lossless, raw subscriber).

    If liblsl cannot open outlets (no network stack, a broken install) the session goes on without them,
    with one warning: research streams are never a reason to stop a patient's session.
    """
    try:
        sink = LslOutletSink(SessionStreams.for_identity(live.identity, station), ecg_fs_hz=ecg_fs_hz)
    except Exception as exc:
        log.warning("LSL outlets could not be opened (%s): the session runs without them", exc)
        return None
    live.subscribe(sink, lossless=True, raw=True, name="lsl-outlets")
    return sink
