"""Bluetooth LE heart sensors: the one package that imports bleak (and bumble, for its test radio).

One package per device library keeps the rest of vrex, and its tests, free of
Bluetooth: everything else imports this package lazily, only for ``ble:`` and
``polar:`` sensors.

* :mod:`biofeedback.ble.sensors`: scanning and the real sensors
  (:class:`BleHeartRateSensor`, :class:`PolarEcgSensor`) over bleak.
* :mod:`biofeedback.ble.virtual`: a bleak backend over bumble's in-process
  virtual radio, with virtual straps (tests, ``bench link``, demos without
  hardware via ``VREX_BLE_BACKEND=biofeedback.ble.virtual:demo_backend``). It
  needs bumble, so it is imported only when asked for.

The byte formats (:mod:`biofeedback.hrm`, :mod:`biofeedback.polar_pmd`) stay
outside: they are pure parsing and need no device library.
"""

from __future__ import annotations

from biofeedback.ble.sensors import (
    BACKEND_ENV,
    BODY_SENSOR_LOCATION_UUID,
    BODY_SENSOR_LOCATIONS,
    HR_MEASUREMENT_UUID,
    HR_SERVICE_UUID,
    BleBackend,
    BleHeartRateSensor,
    FoundSensor,
    PolarEcgSensor,
    ReconnectPolicy,
    backend_from_env,
    is_address,
    scan_heart_sensors,
)

__all__ = [
    "BACKEND_ENV",
    "BODY_SENSOR_LOCATION_UUID",
    "BODY_SENSOR_LOCATIONS",
    "HR_MEASUREMENT_UUID",
    "HR_SERVICE_UUID",
    "BleBackend",
    "BleHeartRateSensor",
    "FoundSensor",
    "PolarEcgSensor",
    "ReconnectPolicy",
    "backend_from_env",
    "is_address",
    "scan_heart_sensors",
]
