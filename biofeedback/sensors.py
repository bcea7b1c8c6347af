"""``--sensor`` specs -> sensor objects: one place that knows every kind of heart sensor.

Device libraries load lazily (bleak only for ``ble:``/``polar:``, liblsl only for
``lsl:``), so choosing the simulator never needs Bluetooth or LSL.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from biofeedback.clock import Clock
from biofeedback.errors import SensorSpecError
from biofeedback.sensor import HeartSensor

log = logging.getLogger(__name__)

SPEC_FORMS = (
    "ble:ADDRESS|NAME (Bluetooth heart-rate strap)",
    "polar:ADDRESS|NAME (Polar H10 raw ECG)",
    "sim[:SEED] (simulated strap)",
    "replay:FILE (recorded RR .npy/.csv/.txt or ECG .npz)",
    "lsl:NAME (an existing LSL stream, by name or source_id)",
)


def _spec_error(spec: str, problem: str) -> SensorSpecError:
    return SensorSpecError(f"bad sensor spec {spec!r}: {problem}; valid forms: {', '.join(SPEC_FORMS)}")


def _construct(cls: type, *args: Any, **kw: Any) -> Any:
    """Call ``cls`` with the keyword arguments it accepts (callers pass one set for every kind)."""
    params = inspect.signature(cls).parameters
    accepted = {k: v for k, v in kw.items() if k in params and v is not None}
    return cls(*args, **accepted)


def open_sensor(spec: str, clock: Clock, **kw: Any) -> HeartSensor:
    """Build the sensor a spec names; keyword arguments go to the kinds that take them.

    Useful keywords: ``drive`` and ``faults`` (sim), ``backend`` and ``policy``
    (ble/polar), ``timeout_s`` (lsl), ``loop`` and ``chunk_s`` (replay).
    Raises :class:`SensorSpecError` for a malformed spec and
    :class:`~biofeedback.errors.SensorUnavailableError` when the named source
    cannot be opened (missing file, stream not found).
    """
    text = (spec or "").strip()
    kind, sep, arg = text.partition(":")
    kind = kind.strip().lower()
    arg = arg.strip()
    if kind == "sim":
        from biofeedback.simulated import SimulatedSensor

        seed = 0
        if sep:
            try:
                seed = int(arg)
            except ValueError:
                raise _spec_error(spec, f"the simulator seed must be an integer, got {arg!r}") from None
            if seed < 0:  # numpy's seeding takes only non-negative integers
                raise _spec_error(spec, f"the simulator seed must be a non-negative integer (0, 1, 2, ...), got {seed}")
        return _construct(SimulatedSensor, clock, seed=seed, **{k: v for k, v in kw.items() if k != "seed"})
    if kind in ("ble", "polar"):
        if not arg:
            raise _spec_error(spec, f"'{kind}:' needs a device address or name")
        from biofeedback import ble

        if kw.get("backend") is None:
            kw = {**kw, "backend": ble.backend_from_env()}
        cls = ble.BleHeartRateSensor if kind == "ble" else ble.PolarEcgSensor
        return _construct(cls, arg, clock, **kw)
    if kind == "replay":
        if not arg:
            raise _spec_error(spec, "'replay:' needs a file path")
        from biofeedback.replay import ReplaySensor

        return _construct(ReplaySensor, arg, clock, **kw)
    if kind == "lsl":
        if not arg:
            raise _spec_error(spec, "'lsl:' needs a stream name or source_id")
        from biofeedback.lsl import LslInletSensor

        return _construct(LslInletSensor, arg, clock, **kw)
    if not text:
        raise _spec_error(spec, "no sensor given")
    raise _spec_error(spec, f"unknown sensor kind {kind!r}")
