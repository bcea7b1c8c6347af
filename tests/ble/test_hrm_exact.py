"""The 0x2A37 parser's error messages byte for byte, and the strap encoder's width and RR clamping."""

from __future__ import annotations

import pytest

from biofeedback.hrm import (
    MalformedPayloadError,
    encode_heart_rate_measurement,
    parse_heart_rate_measurement,
)


@pytest.mark.parametrize(("payload", "problem"), [
    (b"", "empty payload (expected at least a flags byte and the heart rate)"),
    (b"\x01\x50", "truncated 16-bit heart rate (2 bytes, need 3)"),
    (b"\x00", "truncated 8-bit heart rate (only the flags byte present)"),
    (b"\x08\x50\x01", "truncated energy expended field (3 bytes, need 4)"),
    (b"\x09\x50\x00\x01", "truncated energy expended field (4 bytes, need 5)"),
    (b"\x00\x50\x01\x02", "2 trailing byte(s) after the fields the flags announce"),
    (b"\x10\x50\x01\x02\x03", "odd number of RR bytes (3); RR values are 2 bytes each"),
    (b"\x20\x50", "reserved flag bits set (flags 0x20, bits 5-7 must be 0)"),
])
def test_each_malformed_payload_names_its_bytes_and_its_problem(payload, problem):
    with pytest.raises(MalformedPayloadError) as info:
        parse_heart_rate_measurement(payload)
    err = info.value
    shown = payload.hex(" ") or "empty"
    assert str(err) == f"malformed heart rate measurement [{shown}]: {problem}"
    assert err.problem == problem and err.payload_hex == payload.hex(" ")
    assert isinstance(err, ValueError)


def test_the_encoder_uses_16_bits_only_above_255_unless_told():
    assert encode_heart_rate_measurement(255) == b"\x00\xff"
    assert encode_heart_rate_measurement(256) == b"\x01\x00\x01"
    assert encode_heart_rate_measurement(70, hr_uint16=True) == b"\x01\x46\x00"
    assert encode_heart_rate_measurement(70, hr_uint16=False) == b"\x00\x46"
    assert parse_heart_rate_measurement(encode_heart_rate_measurement(300)).hr_bpm == 300


def test_the_encoder_sets_contact_and_energy_flags_and_fields():
    assert encode_heart_rate_measurement(70, sensor_contact=True) == b"\x06\x46"
    assert encode_heart_rate_measurement(70, sensor_contact=False) == b"\x04\x46"
    assert encode_heart_rate_measurement(70, energy_expended_kj=0x0102) == b"\x08\x46\x02\x01"
    m = parse_heart_rate_measurement(encode_heart_rate_measurement(70, [1000.0], sensor_contact=True,
                                                                   energy_expended_kj=5))
    assert (m.hr_bpm, m.sensor_contact, m.energy_expended_kj) == (70, True, 5)
    assert m.rr_ms == pytest.approx((1000.0,), abs=1000 / 1024)


def test_the_encoder_clamps_rr_to_what_16_bits_carry():
    assert encode_heart_rate_measurement(60, [0.0, -5.0]) == b"\x10\x3c\x00\x00\x00\x00"
    assert encode_heart_rate_measurement(60, [70000.0]) == b"\x10\x3c\xff\xff"
    assert encode_heart_rate_measurement(60, [1000.0]) == b"\x10\x3c\x00\x04"  # 1024/1024 s
    assert encode_heart_rate_measurement(60, []) == b"\x00\x3c"
