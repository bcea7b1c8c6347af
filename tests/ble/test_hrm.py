"""The 0x2A37 parser against real strap captures, every flag combination and malformed payloads."""

from __future__ import annotations

import itertools
import struct

import pytest

from biofeedback.hrm import (
    HeartRateMeasurement,
    MalformedPayloadError,
    encode_heart_rate_measurement,
    parse_heart_rate_measurement,
)

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    given = settings = st = None

from tests.conftest import require


def _needs_hypothesis() -> None:
    require(given is not None, "hypothesis is not installed (pip install 'hypothesis>=6.100')")


def test_polar_h10_capture() -> None:
    m = parse_heart_rate_measurement(bytes.fromhex("10482c03"))
    assert m.hr_bpm == 72
    assert m.rr_ms == pytest.approx((812 * 1000 / 1024,))
    assert m.rr_ms[0] == pytest.approx(792.97, abs=0.01)
    assert m.sensor_contact is None
    assert m.energy_expended_kj is None


def test_two_rr_capture() -> None:
    m = parse_heart_rate_measurement(bytes.fromhex("10495e039603"))
    assert m.hr_bpm == 73
    assert m.rr_ms == pytest.approx((0x035E * 1000 / 1024, 0x0396 * 1000 / 1024))


def test_polar_h7_contact_capture() -> None:
    m = parse_heart_rate_measurement(bytes.fromhex("164d1603"))
    assert m.hr_bpm == 77
    assert m.sensor_contact is True
    assert m.rr_ms[0] == pytest.approx(771.48, abs=0.01)


def test_garmin_capture_keeps_bogus_rr_for_the_cleaner() -> None:
    m = parse_heart_rate_measurement(bytes.fromhex("10382d043500"))
    assert m.hr_bpm == 56
    assert m.rr_ms == pytest.approx((1043.95, 51.76), abs=0.01)


@pytest.mark.parametrize(
    "wide,contact,energy,n_rr",
    list(itertools.product([False, True], [None, False, True], [None, 0, 1234], [0, 1, 4])),
)
def test_every_flag_combination_round_trips(wide, contact, energy, n_rr) -> None:
    rr = [600.0, 800.0, 1000.0, 1200.0][:n_rr]
    hr = 300 if wide else 61
    payload = encode_heart_rate_measurement(hr, rr, sensor_contact=contact, energy_expended_kj=energy)
    m = parse_heart_rate_measurement(payload)
    assert isinstance(m, HeartRateMeasurement)
    assert (m.hr_bpm, m.sensor_contact, m.energy_expended_kj) == (hr, contact, energy)
    assert m.rr_ms == pytest.approx(tuple(rr), abs=1000 / 1024 / 2)
    assert bool(payload[0] & 0x01) is wide


def test_contact_bit_without_support_bit_means_unknown() -> None:
    assert parse_heart_rate_measurement(bytes([0x02, 70])).sensor_contact is None
    assert parse_heart_rate_measurement(bytes([0x04, 70])).sensor_contact is False


def test_rr_flag_with_no_rr_values_is_empty() -> None:
    assert parse_heart_rate_measurement(bytes([0x10, 70])).rr_ms == ()


@pytest.mark.parametrize(
    "hex_payload,problem",
    [
        ("", "empty"),
        ("00", "truncated 8-bit"),
        ("01", "truncated 16-bit"),
        ("0148", "truncated 16-bit"),
        ("0848", "truncated energy"),
        ("084801", "truncated energy"),
        ("10482c", "odd number of RR bytes"),
        ("10482c0396", "odd number of RR bytes"),
        ("20482c03", "reserved flag bits"),
        ("80", "reserved flag bits"),
        ("004801", "trailing"),
    ],
)
def test_malformed_payloads_name_bytes_and_problem(hex_payload: str, problem: str) -> None:
    data = bytes.fromhex(hex_payload)
    with pytest.raises(MalformedPayloadError) as info:
        parse_heart_rate_measurement(data)
    assert problem in str(info.value)
    assert isinstance(info.value, ValueError)
    if data:
        assert data.hex(" ") in str(info.value)
    assert info.value.payload_hex == data.hex(" ")


def test_nothing_but_malformed_payload_error_is_ever_raised() -> None:
    _needs_hypothesis()

    @settings(max_examples=1500, deadline=None)
    @given(st.binary(max_size=24))
    def check(data: bytes) -> None:
        _parse_or_malformed(data)

    check()


def _parse_or_malformed(data: bytes) -> None:
    try:
        m = parse_heart_rate_measurement(data)
    except MalformedPayloadError:
        return
    assert 0 <= m.hr_bpm <= 0xFFFF
    assert all(0 <= v < 64_000 for v in m.rr_ms)


def test_raw_field_values_decode_exactly() -> None:
    _needs_hypothesis()

    @settings(max_examples=300, deadline=None)
    @given(
        st.integers(0, 0xFFFF),
        st.lists(st.integers(0, 0xFFFF), max_size=8),
        st.one_of(st.none(), st.booleans()),
        st.one_of(st.none(), st.integers(0, 0xFFFF)),
    )
    def check(hr, rr_raw, contact, energy) -> None:
        _check_raw(hr, rr_raw, contact, energy)

    check()


def _check_raw(hr, rr_raw, contact, energy) -> None:
    flags = (0x01 if hr > 0xFF else 0) | (0x10 if rr_raw else 0)
    body = struct.pack("<H", hr) if hr > 0xFF else bytes([hr])
    if contact is not None:
        flags |= 0x04 | (0x02 if contact else 0)
    if energy is not None:
        flags |= 0x08
        body += struct.pack("<H", energy)
    body += b"".join(struct.pack("<H", v) for v in rr_raw)
    m = parse_heart_rate_measurement(bytes([flags]) + body)
    assert (m.hr_bpm, m.sensor_contact, m.energy_expended_kj) == (hr, contact, energy)
    assert m.rr_ms == pytest.approx(tuple(v * 1000 / 1024 for v in rr_raw))
