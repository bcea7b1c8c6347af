"""The heart-sensor seam: one small protocol, many implementations.

Real (``BleHeartRateSensor``, ``PolarEcgSensor``, ``LslInletSensor``) and
simulated (``SimulatedSensor``, ``ReplaySensor``) sensors all yield
:data:`biofeedback.records.SensorRecord` values from one async iterator, so the
pipeline and the therapy runtime never know which one they are talking to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from biofeedback.records import SensorRecord


@runtime_checkable
class HeartSensor(Protocol):
    """An async source of heart records.

    ``records()`` runs until :meth:`close` is called or the source ends (a
    replay file's end). A sensor never raises for a bad payload or a lost link:
    it yields :class:`PayloadError` / :class:`LinkEvent` records and carries on.
    """

    @property
    def description(self) -> str:
        """A short human label, e.g. ``"Polar H10 A1B2C3 (ble)"`` or ``"simulated (seed 7)"``."""
        ...

    def records(self) -> AsyncIterator[SensorRecord]:
        """Yield records as they arrive, timestamped on the session clock."""
        ...

    async def close(self) -> None:
        """Stop streaming and release the device; safe to call twice."""
        ...
