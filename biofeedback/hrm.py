"""Parser for the Bluetooth Heart Rate Measurement characteristic (GATT 0x2A37).

Straps send one notification about once a second: a flags byte, the strap's
averaged HR (8 or 16 bit), optional energy expended (kJ) and any number of RR
intervals in 1/1024 s. The parser is strict: a payload that does not match its
own flags raises :class:`MalformedPayloadError` (a ``ValueError``), which the
sensor layer turns into a :class:`~biofeedback.records.PayloadError` record.
"""

from __future__ import annotations

from dataclasses import dataclass

FLAG_HR_UINT16 = 0x01
FLAG_CONTACT_DETECTED = 0x02
FLAG_CONTACT_SUPPORTED = 0x04
FLAG_ENERGY_PRESENT = 0x08
FLAG_RR_PRESENT = 0x10
FLAGS_RESERVED = 0xE0

#: RR intervals are sent in units of 1/1024 s.
RR_UNIT_MS = 1000.0 / 1024.0


class MalformedPayloadError(ValueError):
    """A 0x2A37 payload that does not follow the Heart Rate profile; names the bytes and the problem."""

    def __init__(self, data: bytes, problem: str) -> None:
        self.payload_hex = bytes(data).hex(" ")
        self.problem = problem
        super().__init__(f"malformed heart rate measurement [{self.payload_hex or 'empty'}]: {problem}")


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    """One decoded 0x2A37 notification.

    ``sensor_contact`` is ``None`` when the strap does not report contact;
    ``rr_ms`` holds the RR intervals carried, oldest first, in milliseconds.
    """

    hr_bpm: int
    rr_ms: tuple[float, ...]
    sensor_contact: bool | None
    energy_expended_kj: int | None


def parse_heart_rate_measurement(data: bytes) -> HeartRateMeasurement:
    """Decode one Heart Rate Measurement payload (all flag combinations).

    Raises :class:`MalformedPayloadError` for an empty payload, reserved flag
    bits, a truncated HR or energy field, or an odd number of RR bytes.
    """
    data = bytes(data)
    n = len(data)
    if n == 0:
        raise MalformedPayloadError(data, "empty payload (expected at least a flags byte and the heart rate)")
    flags = data[0]
    if flags & FLAGS_RESERVED:
        raise MalformedPayloadError(data, f"reserved flag bits set (flags 0x{flags:02x}, bits 5-7 must be 0)")
    offset = 1
    if flags & FLAG_HR_UINT16:
        if n < offset + 2:
            raise MalformedPayloadError(data, f"truncated 16-bit heart rate ({n} bytes, need {offset + 2})")
        hr_bpm = data[offset] | (data[offset + 1] << 8)
        offset += 2
    else:
        if n < offset + 1:
            raise MalformedPayloadError(data, "truncated 8-bit heart rate (only the flags byte present)")
        hr_bpm = data[offset]
        offset += 1
    if flags & FLAG_CONTACT_SUPPORTED:
        contact: bool | None = bool(flags & FLAG_CONTACT_DETECTED)
    else:
        contact = None
    energy_kj: int | None = None
    if flags & FLAG_ENERGY_PRESENT:
        if n < offset + 2:
            raise MalformedPayloadError(data, f"truncated energy expended field ({n} bytes, need {offset + 2})")
        energy_kj = data[offset] | (data[offset + 1] << 8)
        offset += 2
    rr: tuple[float, ...] = ()
    if flags & FLAG_RR_PRESENT:
        rest = n - offset
        if rest % 2:
            raise MalformedPayloadError(data, f"odd number of RR bytes ({rest}); RR values are 2 bytes each")
        rr = tuple(
            (data[i] | (data[i + 1] << 8)) * RR_UNIT_MS for i in range(offset, n, 2)
        )
    elif n != offset:
        raise MalformedPayloadError(data, f"{n - offset} trailing byte(s) after the fields the flags announce")
    return HeartRateMeasurement(hr_bpm=hr_bpm, rr_ms=rr, sensor_contact=contact, energy_expended_kj=energy_kj)


def encode_heart_rate_measurement(
    hr_bpm: int,
    rr_ms: tuple[float, ...] | list[float] = (),
    *,
    sensor_contact: bool | None = None,
    energy_expended_kj: int | None = None,
    hr_uint16: bool | None = None,
) -> bytes:
    """Encode a payload the way a strap does (RR rounded to 1/1024 s); used by simulators and tests."""
    flags = 0
    wide = hr_bpm > 0xFF if hr_uint16 is None else hr_uint16
    body = bytearray()
    if wide:
        flags |= FLAG_HR_UINT16
        body += int(hr_bpm).to_bytes(2, "little")
    else:
        body.append(int(hr_bpm))
    if sensor_contact is not None:
        flags |= FLAG_CONTACT_SUPPORTED | (FLAG_CONTACT_DETECTED if sensor_contact else 0)
    if energy_expended_kj is not None:
        flags |= FLAG_ENERGY_PRESENT
        body += int(energy_expended_kj).to_bytes(2, "little")
    if rr_ms:
        flags |= FLAG_RR_PRESENT
        for value in rr_ms:
            body += min(0xFFFF, max(0, round(value / RR_UNIT_MS))).to_bytes(2, "little")
    return bytes([flags]) + bytes(body)
