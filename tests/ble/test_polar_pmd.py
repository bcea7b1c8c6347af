"""PMD frames, control responses and the sensor-time mapping (pure functions, no radio)."""

from __future__ import annotations

import numpy as np
import pytest

from biofeedback.polar_pmd import (
    ECG_FRAME_BYTES,
    START_ECG_130HZ,
    PmdFrameError,
    SensorTimeMapper,
    encode_ecg_frame,
    parse_control_response,
    parse_ecg_frame,
)


def test_start_command_is_the_documented_bytes() -> None:
    assert START_ECG_130HZ == bytes([0x02, 0x00, 0x00, 0x01, 0x82, 0x00, 0x01, 0x01, 0x0E, 0x00])


def test_hand_built_frame_decodes_signed_24_bit_samples() -> None:
    t_ns = 599_000_000_123_456_789
    samples = [0, 1, -1, 8_388_607, -8_388_608, 1234, -1234] + [7] * 66
    body = b"".join(int(v & 0xFFFFFF).to_bytes(3, "little") for v in samples)
    frame = bytes([0]) + t_ns.to_bytes(8, "little") + bytes([0]) + body
    assert len(frame) == ECG_FRAME_BYTES == 229
    decoded = parse_ecg_frame(frame)
    assert decoded.sensor_t_ns == t_ns
    np.testing.assert_array_equal(decoded.ecg_uv, np.array(samples, dtype=float))
    assert encode_ecg_frame(t_ns, samples) == frame


@pytest.mark.parametrize(
    "data,problem",
    [
        (b"", "shorter than its 10-byte header"),
        (bytes(9), "shorter than its 10-byte header"),
        (bytes([2]) + bytes(9) + bytes(6), "measurement type 2"),
        (bytes(9) + bytes([1]) + bytes(6), "frame type 1"),
        (bytes(10), "not a positive multiple of 3"),
        (bytes(20), "MTU must be >= 232"),
    ],
)
def test_bad_frames_raise_pmd_frame_error(data: bytes, problem: str) -> None:
    with pytest.raises(PmdFrameError, match=problem):
        parse_ecg_frame(data)


def test_control_responses() -> None:
    ok = parse_control_response(bytes.fromhex("f0 02 00 00 00"))
    assert ok.ok and ok.op == 2 and ok.measurement_type == 0
    refused = parse_control_response(bytes.fromhex("f0 02 00 0d"))
    assert not refused.ok and refused.status_text == "device in charger"
    with pytest.raises(ValueError, match="not a PMD control point response"):
        parse_control_response(bytes.fromhex("0f 05"))


def test_mapper_keeps_sensor_spacing_under_jittery_link_delay() -> None:
    rng = np.random.default_rng(0)
    true_offset_s = 1000.0
    frame_s = 73 / 130
    mapper = SensorTimeMapper()
    mapped, truth = [], []
    for k in range(200):
        sensor_s = 600_000_000.0 + k * frame_s
        delay_s = 0.02 + rng.exponential(0.05)
        mapped.append(mapper.map(round(sensor_s * 1e9), sensor_s + true_offset_s + delay_s))
        truth.append(sensor_s + true_offset_s)
    err = np.array(mapped) - np.array(truth)
    # after a few frames the error is the minimal link latency, constant to well under a sample
    assert np.all(err[20:] >= 0.02 - 1e-6) and np.all(err[20:] < 0.03)
    assert np.ptp(np.diff(mapped[40:])) < 0.01


def test_mapper_restarts_after_the_sensor_clock_resets() -> None:
    mapper = SensorTimeMapper()
    for k in range(10):
        mapper.map(round((700_000_000 + k * 0.5) * 1e9), 50.0 + k * 0.5)
    t = mapper.map(round(5.0 * 1e9), 55.1)  # power cycle: sensor time back near zero
    assert mapper.resets == 1
    assert t == pytest.approx(55.1)
    assert mapper.map(round(5.5 * 1e9), 55.6) == pytest.approx(55.6)
