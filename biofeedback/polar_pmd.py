"""Polar Measurement Data (PMD) protocol: commands, responses, ECG frames, sensor time.

Pure functions, no BLE: the H10 streams raw ECG over the PMD service once the
control point receives a start command. Frames carry the sensor timestamp of
their *last* sample (ns since 2000-01-01); the sensor clock resets to 2019 on
power-down, so :class:`SensorTimeMapper` maps it to the session clock by
tracking the offset instead of trusting it.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

PMD_SERVICE_UUID = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
PMD_CONTROL_UUID = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
PMD_DATA_UUID = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"

MEASUREMENT_ECG = 0x00
OP_GET_SETTINGS = 0x01
OP_START = 0x02
OP_STOP = 0x03
RESPONSE_CODE = 0xF0

ECG_FS_HZ = 130.0
#: Start 130 Hz, 14-bit ECG: op 2, type 0, setting 0 (rate) = 130, setting 1 (resolution) = 14.
START_ECG_130HZ = bytes.fromhex("02 00 00 01 82 00 01 01 0E 00")
STOP_ECG = bytes.fromhex("03 00")
ECG_HEADER_BYTES = 10
ECG_SAMPLE_BYTES = 3
#: A full H10 ECG notification: 10-byte header + 73 samples; needs ATT MTU >= 232.
ECG_FRAME_BYTES = ECG_HEADER_BYTES + 73 * ECG_SAMPLE_BYTES
MIN_MTU_FOR_ECG = ECG_FRAME_BYTES + 3

_STATUS_TEXT = {
    0: "success",
    1: "invalid op code",
    2: "invalid measurement type",
    3: "not supported",
    4: "invalid length",
    5: "invalid parameter",
    6: "already in state",
    7: "invalid resolution",
    8: "invalid sample rate",
    9: "invalid range",
    10: "invalid MTU",
    11: "invalid number of channels",
    12: "invalid state",
    13: "device in charger",
}


class PmdFrameError(ValueError):
    """A PMD data notification that is not a well-formed ECG frame."""


@dataclass(frozen=True, slots=True)
class PmdResponse:
    """A control-point indication: ``F0 <op> <type> <status> ...``."""

    op: int
    measurement_type: int
    status: int
    params: bytes

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def status_text(self) -> str:
        return _STATUS_TEXT.get(self.status, f"unknown status {self.status}")


def parse_control_response(data: bytes) -> PmdResponse:
    """Decode a control-point indication; raises ``ValueError`` if it is not one."""
    data = bytes(data)
    if len(data) < 4 or data[0] != RESPONSE_CODE:
        raise ValueError(f"not a PMD control point response: [{data.hex(' ')}] (expected F0 <op> <type> <status>)")
    return PmdResponse(op=data[1], measurement_type=data[2], status=data[3], params=data[4:])


@dataclass(frozen=True, slots=True)
class EcgFrame:
    """One decoded ECG notification; ``sensor_t_ns`` is the time of the last sample."""

    sensor_t_ns: int
    ecg_uv: np.ndarray


def parse_ecg_frame(data: bytes) -> EcgFrame:
    """Decode a PMD ECG data frame (type 0, frame type 0, 3-byte signed LE µV samples)."""
    data = bytes(data)
    n = len(data)
    if n < ECG_HEADER_BYTES:
        raise PmdFrameError(f"PMD frame of {n} bytes is shorter than its 10-byte header: [{data.hex(' ')}]")
    if data[0] != MEASUREMENT_ECG:
        raise PmdFrameError(f"PMD frame has measurement type {data[0]}, expected 0 (ECG)")
    if data[9] != 0:
        raise PmdFrameError(f"PMD ECG frame type {data[9]} is not supported (expected 0: raw 3-byte samples)")
    body = n - ECG_HEADER_BYTES
    if body == 0 or body % ECG_SAMPLE_BYTES:
        raise PmdFrameError(
            f"PMD ECG frame of {n} bytes has {body} sample bytes, not a positive multiple of 3 "
            f"(a cut frame: the link MTU must be >= {MIN_MTU_FOR_ECG})"
        )
    t_ns = int.from_bytes(data[1:9], "little")
    raw = np.frombuffer(data, dtype=np.uint8, offset=ECG_HEADER_BYTES).reshape(-1, 3).astype(np.int32)
    values = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
    values = np.where(values & 0x800000, values - 0x1000000, values)
    return EcgFrame(sensor_t_ns=t_ns, ecg_uv=values.astype(np.float64))


def encode_ecg_frame(sensor_t_ns: int, samples_uv) -> bytes:
    """Build a frame in the H10's format (for the simulated strap and tests)."""
    out = bytearray([MEASUREMENT_ECG])
    out += int(sensor_t_ns).to_bytes(8, "little")
    out.append(0)
    for v in samples_uv:
        out += (int(v) & 0xFFFFFF).to_bytes(3, "little")
    return bytes(out)


class SensorTimeMapper:
    """Maps sensor timestamps (ns) to session-clock seconds by offset tracking.

    ``offset = arrival - sensor_time`` is smallest for the least-delayed frame,
    so the running minimum over a window estimates the true offset plus the
    minimal link latency; the window lets it follow clock drift. A jump larger
    than ``reset_s`` (the sensor clock reset, or a reconnect) restarts tracking.
    """

    def __init__(self, *, window_s: float = 30.0, reset_s: float = 2.0) -> None:
        self.window_s = window_s
        self.reset_s = reset_s
        self._recent: deque[tuple[float, float]] = deque()
        self._offset_s: float | None = None
        self.resets = 0

    def map(self, sensor_t_ns: int, arrival_s: float) -> float:
        """Session-clock time of the sample stamped ``sensor_t_ns`` that arrived at ``arrival_s``."""
        sensor_s = sensor_t_ns * 1e-9
        raw = arrival_s - sensor_s
        if self._offset_s is not None and abs(raw - self._offset_s) > self.reset_s:
            log.info("sensor clock jumped by %.3f s; restarting offset tracking", raw - self._offset_s)
            self._recent.clear()
            self.resets += 1
        self._recent.append((arrival_s, raw))
        while self._recent and self._recent[0][0] < arrival_s - self.window_s:
            self._recent.popleft()
        self._offset_s = min(r for _, r in self._recent)
        return sensor_s + self._offset_s

    def reset(self) -> None:
        """Forget the offset (call after a reconnect: the strap may have power-cycled)."""
        self._recent.clear()
        self._offset_s = None
