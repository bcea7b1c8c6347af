"""LslInletSensor against real liblsl outlets on the loopback configuration."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import numpy as np
import pylsl
import pytest

from biofeedback import lsl
from biofeedback.clock import LslClock
from biofeedback.errors import SensorUnavailableError
from biofeedback.records import EcgChunk, HeartSample, LinkEvent, LinkState
from biofeedback.sensors import open_sensor
from tests.ble.conftest import run_async, take_until
from tests.conftest import LOOPBACK_CFG, REPO_ROOT

pytestmark = pytest.mark.lsl


def _outlet(stype: str, *, rate: float = 0.0, unit: str | None = None, fmt=None, name: str | None = None):
    sid = f"vrex-test-{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo(name or sid, stype, 1, rate, fmt or pylsl.cf_float32, sid)
    if unit:
        info.set_channel_units([unit])
    return pylsl.StreamOutlet(info), sid


def test_rr_stream_by_name_yields_rr_with_lsl_timestamps() -> None:
    outlet, sid = _outlet("RR")

    async def go():
        sensor = open_sensor(f"lsl:{sid}", LslClock(), timeout_s=5.0)
        records = sensor.records()
        await take_until(records, lambda r: isinstance(r, LinkEvent) and r.state is LinkState.CONNECTED)
        t0 = pylsl.local_clock()
        for k, rr in enumerate([812.0, 790.0, 805.0]):
            outlet.push_sample([rr], t0 + k)
        got = await take_until(records, lambda r: isinstance(r, HeartSample) and r.rr_ms == (805.0,))
        await sensor.close()
        return t0, [r for r in got if isinstance(r, HeartSample)]

    t0, samples = run_async(go(), 30)
    assert [s.rr_ms for s in samples] == [(812.0,), (790.0,), (805.0,)]
    assert [s.t_s for s in samples] == pytest.approx([t0, t0 + 1, t0 + 2], abs=0.01)


def test_ecg_stream_in_millivolts_is_converted_to_microvolts() -> None:
    outlet, sid = _outlet("ECG", rate=130.0, unit="mV")

    async def go():
        sensor = open_sensor(f"lsl:{sid}", LslClock())
        records = sensor.records()
        await take_until(records, lambda r: isinstance(r, LinkEvent))
        outlet.push_chunk([[0.5], [-1.25], [2.0]], pylsl.local_clock())
        got = await take_until(records, lambda r: isinstance(r, EcgChunk))
        await sensor.close()
        return got[-1]

    chunk = run_async(go(), 30)
    assert chunk.fs_hz == 130.0
    np.testing.assert_allclose(chunk.ecg_uv, [500.0, -1250.0, 2000.0])


@pytest.mark.parametrize("stype", ["HR", "hr"])
def test_hr_only_stream_is_refused_with_one_fixable_line(stype) -> None:
    # A rate has no beat times: accepted, it would leave the heart state stale for ever.
    _, sid = _outlet(stype)
    with pytest.raises(SensorUnavailableError) as err:
        open_sensor(f"lsl:{sid}", LslClock(), timeout_s=5.0)
    message = str(err.value)
    assert f"stream {sid!r} has type {stype!r}" in message
    assert "vrex needs beat-to-beat RR (type RR, ms) or ECG (type ECG)" in message
    assert "\n" not in message


def test_monitor_on_an_hr_only_stream_is_one_line_and_exit_2() -> None:
    _outlet_keepalive, sid = _outlet("HR")  # alive while the CLI resolves it
    env = {**os.environ, "LSLAPICFG": str(LOOPBACK_CFG)}
    proc = subprocess.run(
        [sys.executable, "main.py", "monitor", "--sensor", f"lsl:{sid}", "--seconds", "5"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"vrex: error: LSL stream {sid!r} has type 'HR': vrex needs beat-to-beat RR")


def test_missing_stream_and_wrong_type_are_clear_errors() -> None:
    _, sid = _outlet("EEG")
    with pytest.raises(SensorUnavailableError, match="no LSL stream named 'nope-.*visible"):
        open_sensor(f"lsl:nope-{uuid.uuid4().hex[:6]}", LslClock(), timeout_s=0.5)
    with pytest.raises(SensorUnavailableError, match="type 'EEG'; vrex needs beat-to-beat RR"):
        open_sensor(f"lsl:{sid}", LslClock(), timeout_s=5.0)


def test_lost_outlet_is_reported_and_the_same_source_id_reconnects() -> None:
    sid = f"vrex-test-{uuid.uuid4().hex[:8]}"

    def make():
        return pylsl.StreamOutlet(pylsl.StreamInfo("vrex-rr-restart", "RR", 1, 0.0, pylsl.cf_float32, sid))

    async def go():
        outlet = make()
        sensor = open_sensor(f"lsl:{sid}", LslClock())
        records = sensor.records()
        await take_until(records, lambda r: isinstance(r, LinkEvent))
        del outlet  # the streaming program quits
        lost = await take_until(records, lambda r: isinstance(r, LinkEvent) and r.state is LinkState.LOST, timeout_s=20)
        outlet = make()
        back = await take_until(records, lambda r: isinstance(r, LinkEvent) and r.state is LinkState.RECONNECTED, timeout_s=20)
        outlet.push_sample([777.0])
        got = await take_until(records, lambda r: isinstance(r, HeartSample))
        await sensor.close()
        return lost[-1], back[-1], got[-1]

    lost, back, sample = run_async(go(), 60)
    assert lost.state is LinkState.LOST and back.state is LinkState.RECONNECTED
    assert sample.rr_ms == (777.0,)


# -- liblsl's configuration and its log: what a user's terminal shows -------------------------------------

LIBLSL_LOG_LINE = re.compile(r"\.cpp:\d+|\b(INFO|WARN|ERR|FATAL)\s*\|")


@pytest.mark.parametrize("lslapicfg", [None, "/nonexistent/vrex-lsl.cfg"])
def test_no_liblsl_log_line_reaches_the_terminal(tmp_path, lslapicfg) -> None:
    """liblsl logs to stderr at INFO by default (and an ERR for a missing LSLAPICFG file); vrex
    passes liblsl the same configuration with its log lowered, and says what it has to say itself.
    The working directory's lsl_api.cfg (which liblsl also reads) keeps this test on loopback; like
    most labs' files it leaves the log level at liblsl's default."""
    loopback = LOOPBACK_CFG.read_text()
    (tmp_path / "lsl_api.cfg").write_text(loopback[: loopback.index("[log]")])
    env = {k: v for k, v in os.environ.items() if k != "LSLAPICFG"}
    if lslapicfg is not None:
        env["LSLAPICFG"] = lslapicfg
    stream = f"nosuchstream-{uuid.uuid4().hex[:6]}"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "main.py"), "monitor", "--sensor", f"lsl:{stream}", "--seconds", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert not [line for line in proc.stderr.splitlines() if LIBLSL_LOG_LINE.search(line)], proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"vrex: error: no LSL stream named {stream!r}"), proc.stderr
    if lslapicfg is None:
        assert len(lines) == 1, proc.stderr
    else:  # vrex's own warning, through logging, naming the file and the fix
        assert len(lines) == 2 and f"LSLAPICFG file {lslapicfg!r} not found" in lines[0] and "unset LSLAPICFG" in lines[0]


def test_the_users_configuration_is_kept_with_only_the_log_level_lowered(tmp_path) -> None:
    cfg = tmp_path / "lab.cfg"
    cfg.write_text("; lab settings\n[lab]\nKnownPeers = {10.0.0.7}\n[log]\nlevel = 2\n[tuning]\nMulticastMinRTT = 0.05\n")
    got = lsl.quiet_config({"LSLAPICFG": str(cfg)}, tmp_path, tmp_path)
    assert got.source == cfg and got.problems == ()
    assert lsl.parse_liblsl_ini(got.content) == [
        ("lab", "KnownPeers", "{10.0.0.7}"), ("tuning", "MulticastMinRTT", "0.05"), ("log", "level", "-3"),
    ]


def test_without_any_file_vrex_gives_liblsl_its_defaults_never_loopback(tmp_path) -> None:
    got = lsl.quiet_config({}, tmp_path, tmp_path / "no-home")
    assert got.source is None and got.content == "[log]\nlevel = -3\n"
    assert "ResolveScope" not in got.content and "127.0.0.1" not in got.content


def test_a_log_file_the_user_chose_is_left_alone(tmp_path) -> None:
    (tmp_path / "lsl_api.cfg").write_text("[log]\nlevel = 4\nfile = /tmp/lsl.log\n")
    got = lsl.quiet_config({}, tmp_path, None)
    assert got.source == tmp_path / "lsl_api.cfg"
    assert ("log", "level", "4") in lsl.parse_liblsl_ini(got.content)


def test_files_are_tried_in_liblsls_order_and_a_broken_one_is_named(tmp_path) -> None:
    home = tmp_path / "home"
    (home / "lsl_api").mkdir(parents=True)
    (home / "lsl_api" / "lsl_api.cfg").write_text("[lab]\nSessionID = from-home\n")
    (tmp_path / "lsl_api.cfg").write_text("[lab]\nSessionID = a\nSessionID = b\n")
    got = lsl.quiet_config({"LSLAPICFG": str(tmp_path / "missing.cfg")}, tmp_path, home)
    assert got.source == home / "lsl_api" / "lsl_api.cfg"
    assert "SessionID = from-home" in got.content
    assert len(got.problems) == 2
    assert "LSLAPICFG file" in got.problems[0] and "missing.cfg" in got.problems[0]
    assert "duplicate key lab.SessionID" in got.problems[1] and str(tmp_path / "lsl_api.cfg") in got.problems[1]


@pytest.mark.parametrize(
    "text,problem",
    [("[log\nlevel = 1\n", "no closing bracket"), ("level\n", "is not 'key = value'"), ("[log]\nlevel =\n", "has no value"),
     ("[log]\nlevel = 12\n", "expected an integer from -3 to 9"), ("[ports]\nIPv6 = maybe\n", "IPv6 = 'maybe'"),
     ("[multicast]\nResolveScope = planet\n", "ResolveScope = 'planet'")],
)
def test_what_liblsl_would_reject_is_caught_first(text, problem) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        lsl.parse_liblsl_ini(text)


def test_the_in_repo_loopback_config_is_valid_for_liblsl() -> None:
    values = {f"{s}.{k}": v for s, k, v in lsl.parse_liblsl_ini(LOOPBACK_CFG.read_text())}
    assert values["multicast.ResolveScope"] == "machine" and values["multicast.MachineAddresses"] == "{127.0.0.1}"
