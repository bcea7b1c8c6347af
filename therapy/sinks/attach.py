"""Attach a session's research sinks (``session.xdf`` and the LSL outlets): the CLI's one call per session."""

from __future__ import annotations

import logging
from pathlib import Path

from therapy.sinks.streams import default_station, sensor_ecg_rate_hz

log = logging.getLogger(__name__)


def attach_research(live, *, data_dir: Path, sensor: object = None, lsl: bool = True,
                    station: str | None = None, xdf: bool = True) -> dict[str, object]:
    """Subscribe the XDF writer (unless ``xdf`` is false) and the LSL outlets (unless ``lsl`` is false) to ``live``.

    ``sensor`` tells the ECG rate ahead of the first chunk when it knows it, so recorders see the ECG outlet
    from the start. Returns the sinks that attached, by name (``xdf``, ``lsl``).
    """
    from therapy.sinks.xdf import attach_xdf

    station = station or default_station()
    ecg_fs_hz = sensor_ecg_rate_hz(sensor) if sensor is not None else None
    out: dict[str, object] = {}
    writer = attach_xdf(live, data_dir, station=station, ecg_fs_hz=ecg_fs_hz) if xdf else None
    if writer is not None:
        out["xdf"] = writer
    if lsl:
        from therapy.sinks.lsl_outlets import attach_lsl

        outlets = attach_lsl(live, station=station, ecg_fs_hz=ecg_fs_hz)
        if outlets is not None:
            out["lsl"] = outlets
            log.info("LSL outlets for session %s: %s", live.session_id, ", ".join(outlets.source_ids.values()))
    return out
