"""The one module that imports pylsl (liblsl): clock, outlets and the inlet sensor.

Everything else asks this module for LSL. Importing it configures liblsl before
its first use (:func:`configure_liblsl`): the configuration liblsl would have
loaded anyway (``LSLAPICFG``, then ``lsl_api.cfg`` in the working directory,
``~/lsl_api/lsl_api.cfg``, ``/etc/lsl_api/lsl_api.cfg``) with only its log
level lowered, so liblsl's own log lines (``api_config.cpp ... ERR``) never
reach a therapist's terminal while a lab's discovery settings stay as they are.
Problems with that file are reported through Python logging instead. The tests
point ``LSLAPICFG`` at ``tests/lsl/loopback.cfg``; vrex itself never defaults to
loopback, since labs need normal discovery across machines.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pylsl
from pylsl.util import LostError

from biofeedback.clock import Clock
from biofeedback.errors import SensorUnavailableError
from biofeedback.records import EcgChunk, HeartSample, LinkEvent, LinkState, SensorRecord

log = logging.getLogger(__name__)

CONFIG_ENV = "LSLAPICFG"
#: loguru's FATAL: the quietest level liblsl's ``[log] level`` accepts (-3..9).
QUIET_LOG_LEVEL = -3
_IPV6_VALUES = {"disabled", "disable", "allowed", "allow", "forced", "force"}
_SCOPES = {"machine", "link", "site", "organization", "global"}


@dataclass(frozen=True, slots=True)
class LiblslConfig:
    """What vrex hands liblsl: the INI text, where it came from, and what was wrong on the way."""

    content: str
    source: Path | None
    problems: tuple[str, ...] = ()


def config_candidates(env: Mapping[str, str], cwd: Path, home: Path | None) -> list[Path]:
    """The files liblsl itself would try, in its order (``api_config.cpp``)."""
    out: list[Path] = []
    if env.get(CONFIG_ENV):
        out.append(Path(env[CONFIG_ENV]))
    out.append(cwd / "lsl_api.cfg")
    if home is not None:
        out.append(home / "lsl_api" / "lsl_api.cfg")
    out.append(Path("/etc/lsl_api/lsl_api.cfg"))
    return out


def parse_liblsl_ini(text: str) -> list[tuple[str, str, str]]:
    """``(section, key, value)`` exactly as liblsl's INI reader sees them; ValueError like liblsl's.

    liblsl rejects a whole file for one bad line (and then falls back to its
    defaults with its default, chatty log level), so vrex checks the same rules
    first and can say what is wrong in one line of its own.
    """
    entries: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    section = ""
    ws = " \t\r\n"
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.startswith(";") or not line.strip(ws):
            continue
        if line.startswith("["):
            close = line.find("]")
            if close < 0:
                raise ValueError(f"line {lineno}: no closing bracket ] in {line.strip()!r}")
            section = line[1:close]
            continue
        key, eq, value = line.partition("=")
        if not eq:
            raise ValueError(f"line {lineno}: {line.strip()!r} is not 'key = value'")
        key, value = key.strip(ws), value.strip(ws)
        if not key:
            raise ValueError(f"line {lineno}: empty key")
        if not value:
            raise ValueError(f"line {lineno}: key {key!r} has no value")
        if (section, key) in seen:
            raise ValueError(f"line {lineno}: duplicate key {section + '.' if section else ''}{key}")
        seen.add((section, key))
        entries.append((section, key, value))
    values = {f"{s}.{k}": v for s, k, v in entries}
    if values.get("ports.IPv6", "allow") not in _IPV6_VALUES:
        raise ValueError(f"[ports] IPv6 = {values['ports.IPv6']!r}; expected one of allow, disable, force")
    if values.get("multicast.ResolveScope", "site") not in _SCOPES:
        raise ValueError(f"[multicast] ResolveScope = {values['multicast.ResolveScope']!r}; expected one of {', '.join(sorted(_SCOPES))}")
    level = values.get("log.level", "0")
    try:
        if not -3 <= int(level) <= 9:
            raise ValueError
    except ValueError:
        raise ValueError(f"[log] level = {level!r}; expected an integer from -3 to 9") from None
    return entries


def quiet_config(env: Mapping[str, str], cwd: Path, home: Path | None) -> LiblslConfig:
    """The configuration liblsl would load, with its terminal log lowered to fatal errors only.

    A ``[log] file`` the user set is kept as it is: liblsl then writes its log
    there and nothing to the terminal, which is what that user asked for.
    """
    problems: list[str] = []
    for i, path in enumerate(config_candidates(env, cwd, home)):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            if i == 0 and env.get(CONFIG_ENV):
                problems.append(f"{CONFIG_ENV} file {str(path)!r} not found or unreadable; fix or unset {CONFIG_ENV}")
            continue
        try:
            entries = parse_liblsl_ini(text)
        except ValueError as exc:
            problems.append(f"LSL configuration {str(path)!r} ignored ({exc}); liblsl would ignore it too - fix that line")
            continue
        keys = {(s, k) for s, k, _ in entries}
        if ("log", "file") not in keys:
            entries = [e for e in entries if e[:2] != ("log", "level")] + [("log", "level", str(QUIET_LOG_LEVEL))]
        return LiblslConfig(_render_ini(entries), path, tuple(problems))
    return LiblslConfig(_render_ini([("log", "level", str(QUIET_LOG_LEVEL))]), None, tuple(problems))


def _render_ini(entries: list[tuple[str, str, str]]) -> str:
    lines: list[str] = []
    current: str | None = None
    for section, key, value in sorted(entries, key=lambda e: e[0] != ""):  # section-less keys first, as read
        if section != current and section:
            lines.append(f"[{section}]")
        current = section
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def configure_liblsl() -> LiblslConfig:
    """Hand liblsl its configuration before its first use; runs once, at this module's import.

    liblsl reads its configuration once, lazily, at its first stream or
    resolver call, and logs to stderr at INFO until then; ``set_config_content``
    (liblsl >= 1.17.7) replaces the file search, so vrex passes the file liblsl
    would have chosen, quietened.
    """
    cfg = quiet_config(os.environ, Path.cwd(), _home())
    for problem in cfg.problems:
        log.warning("%s", problem)
    set_content = getattr(pylsl, "set_config_content", None)
    try:
        if set_content is None:
            raise NotImplementedError("pylsl has no set_config_content")
        set_content(cfg.content)
    except NotImplementedError:
        log.warning(
            "liblsl %s cannot take its configuration from vrex (needs >= 1.17.7): its own log lines may reach "
            "the terminal; install pylsl >= 1.17 (its wheels bundle liblsl 1.18)",
            pylsl.library_version(),
        )
        return cfg
    log.debug("liblsl configured from %s with its terminal log off", cfg.source or "its defaults")
    return cfg


def _home() -> Path | None:
    try:
        return Path.home()
    except RuntimeError:  # no HOME: liblsl skips the home-directory file too
        return None


LIBLSL_CONFIG = configure_liblsl()


def local_clock() -> float:
    """Seconds on liblsl's monotonic clock, the timeline of every vrex timestamp."""
    return pylsl.local_clock()


#: Channel unit -> factor to microvolts.
_UNIT_TO_UV = {
    "uv": 1.0, "µv": 1.0, "μv": 1.0, "microvolts": 1.0, "microvolt": 1.0,
    "mv": 1e3, "millivolts": 1e3, "millivolt": 1e3,
    "v": 1e6, "volts": 1e6, "volt": 1e6,
}
_KINDS = {"rr": "rr", "ecg": "ecg"}


def _escape(value: str) -> str:
    return value.replace("'", "")


def visible_streams(timeout_s: float = 0.5) -> list[str]:
    """``name (type, source_id)`` of every stream visible now (for error messages and listings)."""
    return [f"{i.name()} ({i.type()}, source_id {i.source_id()!r})" for i in pylsl.resolve_streams(timeout_s)]


def resolve_stream(name_or_source_id: str, timeout_s: float) -> pylsl.StreamInfo:
    """Find a stream by name or source_id; :class:`SensorUnavailableError` lists what is visible."""
    key = _escape(name_or_source_id)
    found = pylsl.resolve_bypred(f"name='{key}' or source_id='{key}'", 1, timeout_s)
    if found:
        return found[0]
    seen = visible_streams()
    raise SensorUnavailableError(
        f"no LSL stream named {name_or_source_id!r} (name or source_id) found within {timeout_s:g} s; "
        f"visible: {', '.join(seen) if seen else 'none'}; start the streaming program or fix the name"
    )


class LslInletSensor:
    """A :class:`~biofeedback.sensor.HeartSensor` over an existing LSL stream.

    Stream types (case-insensitive): ``RR`` (intervals in ms, one per sample)
    or ``ECG`` (µV, mV or V by the channel's ``unit``; channel ``channel``).
    ``HR`` (bpm) streams are refused at construction: the pipeline, the
    baseline and HRV all need beat times, which a rate alone cannot give, so
    accepting one would leave the heart state stale forever without a word. Timestamps are the outlet's, corrected to this machine's LSL
    clock (``proc_clocksync``): the session clock must be the LSL clock. A lost
    outlet yields LOST, then RECONNECTED when a stream with the same source_id
    is back (or GIVEN_UP after ``give_up_after_s``).
    """

    def __init__(
        self,
        name: str,
        clock: Clock,
        *,
        timeout_s: float = 5.0,
        channel: int = 0,
        poll_s: float = 0.02,
        give_up_after_s: float = 300.0,
    ) -> None:
        if not name:
            raise SensorUnavailableError("an LSL sensor needs a stream name or source_id, e.g. 'lsl:PolarH10-ECG'")
        self.name = name
        self.clock = clock
        self.timeout_s = timeout_s
        self.channel = channel
        self.poll_s = poll_s
        self.give_up_after_s = give_up_after_s
        self.info = resolve_stream(name, timeout_s)
        stype = self.info.type()
        if stype.strip().lower() == "hr":
            raise SensorUnavailableError(
                f"LSL stream {self.info.name()!r} has type {stype!r}: vrex needs beat-to-beat RR (type RR, ms) "
                "or ECG (type ECG); heart rate alone has no beat times for the baseline and HRV - "
                "stream the strap's RR intervals or its ECG instead"
            )
        self.kind = _KINDS.get(stype.strip().lower())
        if self.kind is None:
            raise SensorUnavailableError(
                f"LSL stream {self.info.name()!r} has type {stype!r}; vrex needs beat-to-beat RR (type RR, ms) or ECG (type ECG)"
            )
        if not 0 <= channel < self.info.channel_count():
            raise SensorUnavailableError(
                f"LSL stream {self.info.name()!r} has {self.info.channel_count()} channel(s); channel {channel} does not exist"
            )
        self.source_id = self.info.source_id()
        self._inlet: pylsl.StreamInlet | None = None
        self.scale_to_uv = 1.0
        self.fs_hz = self.info.nominal_srate()
        self._closed = False

    @property
    def description(self) -> str:
        return f"{self.info.name()} ({self.info.type()} via LSL)"

    async def close(self) -> None:
        self._closed = True

    def _open_inlet(self, info: pylsl.StreamInfo) -> pylsl.StreamInlet:
        inlet = pylsl.StreamInlet(info, max_buflen=60, recover=False, processing_flags=pylsl.proc_clocksync)
        full = inlet.info(timeout=self.timeout_s)
        if self.kind == "ecg":
            units = full.get_channel_units() or []
            unit = (units[self.channel] if self.channel < len(units) and units[self.channel] else "").strip().lower()
            if unit not in _UNIT_TO_UV:
                log.warning("%s: ECG channel unit %r unknown; assuming microvolts", self.description, unit)
            self.scale_to_uv = _UNIT_TO_UV.get(unit, 1.0)
            if self.fs_hz <= 0:
                raise SensorUnavailableError(f"LSL ECG stream {info.name()!r} has no nominal rate; ECG needs a regular rate")
        inlet.open_stream(timeout=self.timeout_s)
        return inlet

    def _convert(self, samples: list, stamps: list) -> list[SensorRecord]:
        src = self.description
        out: list[SensorRecord] = []
        if self.kind == "ecg":
            values = np.asarray(samples, dtype=np.float64)[:, self.channel] * self.scale_to_uv
            out.append(EcgChunk(t_s=float(stamps[-1]), fs_hz=self.fs_hz, ecg_uv=values, source=src))
            return out
        for sample, t_s in zip(samples, stamps):
            value = float(sample[self.channel])
            if not np.isfinite(value) or value <= 0:
                continue
            out.append(HeartSample(t_s=float(t_s), rr_ms=(value,), hr_bpm=None, source=src))
        return out

    async def records(self) -> AsyncIterator[SensorRecord]:
        loop = asyncio.get_running_loop()
        self._inlet = await loop.run_in_executor(None, self._open_inlet, self.info)
        yield LinkEvent(t_s=self.clock.now(), state=LinkState.CONNECTED, detail=f"source_id {self.source_id!r}", source=self.description)
        try:
            while not self._closed:
                try:
                    samples, stamps = self._inlet.pull_chunk(timeout=0.0, max_samples=4096)
                except LostError:
                    yield LinkEvent(t_s=self.clock.now(), state=LinkState.LOST, detail="outlet gone", source=self.description)
                    back = await self._reconnect()
                    if back is None:
                        if not self._closed:
                            yield LinkEvent(
                                t_s=self.clock.now(),
                                state=LinkState.GIVEN_UP,
                                detail=f"not back after {self.give_up_after_s:g} s",
                                source=self.description,
                            )
                        return
                    yield back
                    continue
                if stamps:
                    for record in self._convert(samples, stamps):
                        yield record
                else:
                    await asyncio.sleep(self.poll_s)
            if self._closed:
                yield LinkEvent(t_s=self.clock.now(), state=LinkState.CLOSED, detail="closed by vrex", source=self.description)
        finally:
            inlet, self._inlet = self._inlet, None
            if inlet is not None:
                inlet.close_stream()

    async def _reconnect(self) -> LinkEvent | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.give_up_after_s
        pred = f"source_id='{_escape(self.source_id)}'" if self.source_id else f"name='{_escape(self.info.name())}'"
        while not self._closed and loop.time() < deadline:
            found = await loop.run_in_executor(None, pylsl.resolve_bypred, pred, 1, 1.0)
            if found:
                try:
                    self._inlet = await loop.run_in_executor(None, self._open_inlet, found[0])
                except Exception as exc:  # the outlet vanished again between resolve and open
                    log.info("%s: reopen failed: %s", self.description, exc)
                    continue
                return LinkEvent(t_s=self.clock.now(), state=LinkState.RECONNECTED, detail=f"source_id {self.source_id!r}", source=self.description)
        if not self._closed:
            log.warning("%s: stream not back after %.0f s; giving up", self.description, self.give_up_after_s)
        return None


# -- generic outlets ------------------------------------------------------------------------------
# What vrex publishes is decided elsewhere (``therapy.sinks``); this module only turns a description into a
# well-behaved liblsl outlet: explicit source_id, channels/channel/{label,unit,type}, nested desc metadata.

from collections.abc import Mapping, Sequence  # noqa: E402,F811  (kept with the outlet helpers they serve)

#: How much an outlet keeps for a slow consumer (seconds for regular streams, x100 samples for irregular ones):
#: a whole accelerated session fits, so a recorder that lags never loses samples.
OUTLET_MAX_BUFFERED = 900


def _append_desc(element: pylsl.XMLElement, values: Mapping[str, object]) -> None:
    for key, value in values.items():
        if isinstance(value, Mapping):
            _append_desc(element.append_child(str(key)), value)
        else:
            element.append_child_value(str(key), "" if value is None else str(value))


class Outlet:
    """One LSL outlet; push from one thread. Timestamps are the session clock's (LSL seconds)."""

    def __init__(self, info: pylsl.StreamInfo, *, max_buffered: int = OUTLET_MAX_BUFFERED) -> None:
        self.source_id = info.source_id()
        self.name = info.name()
        self.string = info.channel_format() == pylsl.cf_string
        self._outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=max_buffered)

    def push_sample(self, values, timestamp_s: float) -> None:
        self._outlet.push_sample(list(values), timestamp_s)

    def push_chunk(self, values: np.ndarray, last_timestamp_s: float) -> None:
        """A block of a regular stream: liblsl stamps the last sample ``last_timestamp_s`` and back-fills the
        others at 1/rate (how a sensor packet is back-dated without 73 timestamps)."""
        self._outlet.push_chunk(values, last_timestamp_s)

    def push_stamped(self, values, timestamps_s) -> None:
        """Samples with one timestamp each (irregular streams)."""
        self._outlet.push_chunk([list(v) for v in values], [float(t) for t in timestamps_s])

    def have_consumers(self) -> bool:
        return bool(self._outlet.have_consumers())

    def wait_for_consumers(self, timeout_s: float) -> bool:
        return bool(self._outlet.wait_for_consumers(timeout_s))

    def close(self) -> None:
        """Destroy the outlet now (consumers see it gone; a recorder reconnects by source_id later)."""
        outlet, self._outlet = self._outlet, None
        if outlet is not None:
            del outlet


def open_outlet(
    *,
    name: str,
    stream_type: str,
    source_id: str,
    channel_format: str,
    nominal_srate_hz: float,
    channels: Sequence[tuple[str, str, str]],
    desc: Mapping[str, object] | None = None,
    max_buffered: int = OUTLET_MAX_BUFFERED,
) -> Outlet:
    """An outlet described the way LSL tools expect: ``channels`` as ``(label, unit, type)``, ``desc`` nested
    (mappings become child elements). ``source_id`` is required: without one pylsl derives it from Python's
    randomised ``hash()`` and recorders cannot reconnect after a restart."""
    if not source_id:
        raise ValueError("an LSL outlet needs a stable source_id")
    if channel_format not in _CHANNEL_FORMATS:
        raise ValueError(f"channel format {channel_format!r}; expected one of {', '.join(_CHANNEL_FORMATS)}")
    info = pylsl.StreamInfo(name, stream_type, len(channels), float(nominal_srate_hz),
                            _CHANNEL_FORMATS[channel_format], source_id)
    root = info.desc()
    chans = root.append_child("channels")
    for label, unit, ctype in channels:
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
        ch.append_child_value("type", ctype)
    _append_desc(root, desc or {})
    return Outlet(info, max_buffered=max_buffered)


_CHANNEL_FORMATS = {"float32": pylsl.cf_float32, "double64": pylsl.cf_double64, "string": pylsl.cf_string,
                    "int32": pylsl.cf_int32, "int16": pylsl.cf_int16, "int8": pylsl.cf_int8}


class Inlet:
    """A plain inlet on one stream (for tools and benchmarks; sessions read through :class:`LslInletSensor`)."""

    def __init__(self, info: pylsl.StreamInfo, *, max_buflen_s: int = 360, timeout_s: float = 5.0) -> None:
        self._inlet = pylsl.StreamInlet(info, max_buflen=max_buflen_s, recover=True)
        self.info = self._inlet.info(timeout=timeout_s)
        self._inlet.open_stream(timeout=timeout_s)

    @property
    def name(self) -> str:
        return self.info.name()

    def pull_chunk(self, timeout_s: float = 0.0, max_samples: int = 4096) -> tuple[list, list[float]]:
        """Samples and their timestamps (the outlet's clock, uncorrected) that arrived, waiting up to
        ``timeout_s`` for the first."""
        samples, stamps = self._inlet.pull_chunk(timeout=timeout_s, max_samples=max_samples)
        return samples, stamps

    def pull_sample(self, timeout_s: float) -> tuple[list | None, float | None]:
        """The next sample and its timestamp, returning as soon as one arrives (``(None, None)`` on timeout).
        Unlike a chunk pull with a timeout, which liblsl holds until the chunk is full, this measures arrival."""
        return self._inlet.pull_sample(timeout=timeout_s)

    def close(self) -> None:
        self._inlet.close_stream()


def open_inlet(source_id: str, timeout_s: float = 5.0, *, max_buflen_s: int = 360) -> Inlet:
    """An :class:`Inlet` on the stream with this ``source_id``; :class:`SensorUnavailableError` if none shows."""
    found = pylsl.resolve_bypred(f"source_id='{_escape(source_id)}'", 1, timeout_s)
    if not found:
        raise SensorUnavailableError(f"no LSL stream with source_id {source_id!r} within {timeout_s:g} s")
    return Inlet(found[0], max_buflen_s=max_buflen_s, timeout_s=timeout_s)


def liblsl_version() -> str:
    """liblsl's version as ``1.18`` (for benchmark and export provenance)."""
    v = int(pylsl.library_version())
    return f"{v // 100}.{v % 100}"
