"""Bluetooth LE heart sensors over bleak (with :mod:`biofeedback.ble.virtual`, the only code that imports bleak).

* :func:`scan_heart_sensors` lists nearby straps (``python main.py devices``).
* :class:`BleHeartRateSensor` streams the standard Heart Rate service (0x180D).
* :class:`PolarEcgSensor` streams Polar H10 raw ECG over PMD (and HR if offered).

Both reconnect after a drop (rescan first, capped backoff) and report link
changes as :class:`~biofeedback.records.LinkEvent` records; bad payloads become
:class:`~biofeedback.records.PayloadError` records. ``backend`` (a
:class:`BleBackend`) swaps bleak's platform backend for another one, e.g. the
bumble-backed virtual radio the tests use; ``VREX_BLE_BACKEND=module:factory``
does the same for the CLI (``biofeedback.ble.virtual:demo_backend``; the old
module path ``biofeedback.virtual_ble`` is accepted as an alias, so existing
set-ups keep working).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError, BleakError

from biofeedback.clock import Clock
from biofeedback.errors import SensorUnavailableError
from biofeedback.hrm import MalformedPayloadError, parse_heart_rate_measurement
from biofeedback.polar_pmd import (
    ECG_FS_HZ,
    MIN_MTU_FOR_ECG,
    PMD_CONTROL_UUID,
    PMD_DATA_UUID,
    PMD_SERVICE_UUID,
    START_ECG_130HZ,
    STOP_ECG,
    PmdFrameError,
    SensorTimeMapper,
    parse_control_response,
    parse_ecg_frame,
)
from biofeedback.records import EcgChunk, HeartSample, LinkEvent, LinkState, PayloadError, SensorRecord

log = logging.getLogger(__name__)

HR_SERVICE_UUID = "0000180d-0000-1000-8000-00805f9b34fb"
HR_MEASUREMENT_UUID = "00002a37-0000-1000-8000-00805f9b34fb"
BODY_SENSOR_LOCATION_UUID = "00002a38-0000-1000-8000-00805f9b34fb"
BODY_SENSOR_LOCATIONS = {0: "other", 1: "chest", 2: "wrist", 3: "finger", 4: "hand", 5: "ear lobe", 6: "foot"}
BACKEND_ENV = "VREX_BLE_BACKEND"
#: Module paths that moved into this package, still accepted in ``VREX_BLE_BACKEND``.
_BACKEND_MODULE_ALIASES = {"biofeedback.virtual_ble": "biofeedback.ble.virtual"}

_ADDRESS_RE = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")


@dataclass(frozen=True, slots=True)
class BleBackend:
    """A pair of bleak backend classes (scanner, client) to use instead of the platform's."""

    scanner: type[BaseBleakScanner]
    client: type[BaseBleakClient]


@dataclass(frozen=True, slots=True)
class FoundSensor:
    """A heart-rate sensor seen in a scan."""

    name: str | None
    address: str
    rssi_dbm: int | None
    offers_hr: bool
    offers_ecg: bool


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How hard to try after a drop: rescan windows, capped backoff, and when to give up.

    The backoff cap bounds the dead time between scans, hence how late a
    reappearing strap can be noticed (the 10 s reconnect target).
    """

    scan_window_s: float = 4.0
    connect_timeout_s: float = 10.0
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 2.0
    give_up_after_s: float = 300.0
    first_scan_s: float = 10.0
    setup_timeout_s: float = 15.0


def backend_from_env() -> BleBackend | None:
    """The backend named by ``VREX_BLE_BACKEND`` (``module:factory``), or None for the platform's."""
    spec = os.environ.get(BACKEND_ENV, "").strip()
    if not spec:
        return None
    module_name, _, attr = spec.partition(":")
    module_name = _BACKEND_MODULE_ALIASES.get(module_name.strip(), module_name.strip())
    try:
        factory = getattr(importlib.import_module(module_name), attr or "backend")
    except (ImportError, AttributeError) as exc:
        raise SensorUnavailableError(
            f"{BACKEND_ENV}={spec!r} does not name a backend factory ({exc}); use 'package.module:function' or unset it"
        ) from exc
    backend = factory()
    if not isinstance(backend, BleBackend):
        raise SensorUnavailableError(f"{BACKEND_ENV}={spec!r} returned {type(backend).__name__}, expected a BleBackend")
    return backend


def _backend_kw(backend: BleBackend | None, which: str) -> dict[str, Any]:
    return {} if backend is None else {"backend": getattr(backend, which)}


def _adapter_error(exc: BaseException) -> SensorUnavailableError | None:
    """Translate "there is no Bluetooth here" into one clear, fixable message."""
    if isinstance(exc, BleakBluetoothNotAvailableError):
        return SensorUnavailableError(f"Bluetooth is not available: {exc}; switch the adapter on, or use --sensor sim")
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)) or (
        isinstance(exc, BleakDBusError) and "ServiceUnknown" in str(exc)
    ):
        return SensorUnavailableError(
            f"no Bluetooth adapter found (BlueZ/DBus not available): {exc}; "
            "start bluetoothd and plug in an adapter, or use --sensor sim / replay:FILE"
        )
    if isinstance(exc, BleakError) and "No Bluetooth adapters found" in str(exc):
        return SensorUnavailableError(f"no Bluetooth adapter found: {exc}; plug one in, or use --sensor sim")
    return None


def is_address(target: str) -> bool:
    """True for a MAC address (or a macOS UUID), False for a device name."""
    return bool(_ADDRESS_RE.match(target))


def _matches(target: str) -> Callable[[BLEDevice, AdvertisementData], bool]:
    if is_address(target):
        wanted = target.lower().replace("-", ":")
        return lambda d, ad: d.address.lower().replace("-", ":") == wanted
    lowered = target.lower()
    return lambda d, ad: any(lowered == n.lower() or lowered in n.lower() for n in (ad.local_name, d.name) if n)


async def scan_heart_sensors(timeout_s: float = 5.0, *, backend: BleBackend | None = None) -> list[FoundSensor]:
    """Scan for ``timeout_s`` and list heart-rate sensors (HR service or Polar PMD), strongest first."""
    try:
        found = await BleakScanner.discover(
            timeout=timeout_s, return_adv=True, service_uuids=[HR_SERVICE_UUID, PMD_SERVICE_UUID], **_backend_kw(backend, "scanner")
        )
    except Exception as exc:
        mapped = _adapter_error(exc)
        if mapped is not None:
            raise mapped from exc
        raise
    sensors = []
    for device, adv in found.values():
        uuids = {u.lower() for u in adv.service_uuids}
        name = adv.local_name or device.name
        sensors.append(
            FoundSensor(
                name=name,
                address=device.address,
                rssi_dbm=adv.rssi,
                offers_hr=HR_SERVICE_UUID in uuids,
                offers_ecg=PMD_SERVICE_UUID in uuids or bool(name and name.startswith("Polar H10")),
            )
        )
    sensors.sort(key=lambda s: -(s.rssi_dbm if s.rssi_dbm is not None else -999))
    return sensors


class _SetupError(Exception):
    """The link is up but the sensor refused to stream (retryable after a reconnect)."""


_END = object()


class _BleSensor:
    """Connection life cycle shared by the BLE sensors: find, connect, set up, watch, reconnect."""

    kind = "ble"

    def __init__(
        self,
        target: str,
        clock: Clock,
        *,
        backend: BleBackend | None = None,
        policy: ReconnectPolicy | None = None,
    ) -> None:
        if not target:
            raise SensorUnavailableError(f"a {self.kind} sensor needs an address or a name, e.g. '{self.kind}:A0:9E:1A:12:34:56'")
        self.target = target
        self.clock = clock
        self.backend = backend
        self.policy = policy or ReconnectPolicy()
        self.body_sensor_location: str | None = None
        self.payload_errors = 0
        self.device_name: str | None = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._client: BleakClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost: asyncio.Event | None = None
        self._stopping = False
        self._started = False
        self._closed = False
        self._held: list[SensorRecord] | None = None

    @property
    def description(self) -> str:
        name = self.device_name or self.target
        if is_address(self.target) and name != self.target:
            return f"{name} {self.target} ({self.kind})"
        return f"{name} ({self.kind})"

    # -- record plumbing -------------------------------------------------------------------
    def _emit(self, record: SensorRecord) -> None:
        if self._held is not None:  # during set-up: released after the CONNECTED event
            self._held.append(record)
        else:
            self._queue.put_nowait(record)

    def _link(self, state: LinkState, detail: str = "") -> None:
        log.info("%s: link %s %s", self.description, state.value, detail)
        self._emit(LinkEvent(t_s=self.clock.now(), state=state, detail=detail, source=self.description))

    def _payload_error(self, data: bytes, problem: str) -> None:
        self.payload_errors += 1
        log.warning("%s: bad payload [%s]: %s", self.description, bytes(data).hex(" "), problem)
        self._emit(PayloadError(t_s=self.clock.now(), payload_hex=bytes(data).hex(" "), problem=problem, source=self.description))

    def _on_hr(self, _char: Any, data: bytearray) -> None:
        t_s = self.clock.now()  # arrival time: notifications carry no timestamp
        try:
            m = parse_heart_rate_measurement(bytes(data))
        except MalformedPayloadError as exc:
            self._payload_error(data, exc.problem)
            return
        self._emit(HeartSample(t_s=t_s, rr_ms=m.rr_ms, hr_bpm=float(m.hr_bpm), sensor_contact=m.sensor_contact, source=self.description))

    # -- life cycle ----------------------------------------------------------------------------
    async def records(self) -> AsyncIterator[SensorRecord]:
        """Yield records until :meth:`close` or until reconnection is given up.

        Raises :class:`SensorUnavailableError` only before the first connection
        (no adapter, sensor not found, sensor refuses to stream).
        """
        if self._started:
            raise RuntimeError(f"{self.description}: records() can only be iterated once")
        self._started = True
        self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            while True:
                item = await self._queue.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop streaming, tell the sensor to stop, disconnect; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        if self._lost is not None:
            self._lost.set()
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await self._teardown()
        self._held = None  # closed mid-set-up: nothing held back any more
        self._link(LinkState.CLOSED, "closed by vrex")
        self._queue.put_nowait(_END)

    async def _teardown(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if client.is_connected:
                await asyncio.wait_for(self._before_disconnect(client), timeout=2.0)
        except Exception as exc:
            log.debug("%s: stop before disconnect failed: %s", self.description, exc)
        try:
            await asyncio.wait_for(client.disconnect(), timeout=5.0)
        except Exception as exc:
            log.debug("%s: disconnect failed: %s", self.description, exc)

    async def _before_disconnect(self, client: BleakClient) -> None:
        """Hook: tell the sensor to stop streaming before we drop the link."""

    async def _setup(self, client: BleakClient, reconnect: bool) -> None:
        raise NotImplementedError

    def _disconnect_watcher(self, lost: asyncio.Event) -> Callable[[BleakClient], None]:
        """The disconnected callback for one connection: it can only mark *that* connection lost.

        Stacks may report a disconnect after ``disconnect()`` returned (one
        slower than our cap is cancelled and finishes later). Bound to its own
        event, a late report from a failed attempt cannot wake the run loop for
        the next, healthy connection (which would then be dropped un-disconnected).
        """

        def on_disconnected(_client: BleakClient) -> None:
            # bleak also calls this on our own disconnect(): only a drop we did not ask for counts.
            if self._stopping:
                return
            if lost is not self._lost:
                log.debug("%s: late disconnect report from an earlier connection; ignored", self.description)
                return
            lost.set()

        return on_disconnected

    async def _find(self, timeout_s: float) -> BLEDevice | None:
        try:
            return await BleakScanner.find_device_by_filter(
                _matches(self.target), timeout=timeout_s, service_uuids=[HR_SERVICE_UUID], **_backend_kw(self.backend, "scanner")
            )
        except Exception as exc:
            mapped = _adapter_error(exc)
            if mapped is not None:
                raise mapped from exc
            raise

    async def _connect_once(self, timeout_s: float, reconnect: bool) -> None:
        device = await self._find(timeout_s)
        if device is None:
            raise LookupError(f"no heart-rate sensor matching {self.target!r} advertised within {timeout_s:g} s")
        self.device_name = device.name or self.device_name
        lost = self._lost = asyncio.Event()  # this connection's own: see _disconnect_watcher
        client = BleakClient(
            device,
            disconnected_callback=self._disconnect_watcher(lost),
            timeout=self.policy.connect_timeout_s,
            **_backend_kw(self.backend, "client"),
        )
        await client.connect()
        self._client = client
        self._held = []
        try:
            await asyncio.wait_for(self._setup(client, reconnect), timeout=self.policy.setup_timeout_s)
            if lost.is_set():
                raise _SetupError("link dropped during set-up")
        except Exception as exc:
            self._held = None
            # Our own disconnect sets only this attempt's event, which nobody waits on after this.
            try:
                await asyncio.wait_for(client.disconnect(), timeout=5.0)
            except Exception as disconnect_exc:
                log.debug("%s: disconnect after failed set-up: %s", self.description, disconnect_exc)
            finally:
                self._client = None
            if isinstance(exc, asyncio.TimeoutError):
                raise _SetupError(f"set-up did not finish within {self.policy.setup_timeout_s:g} s") from exc
            raise
        held, self._held = self._held, None
        self._link(LinkState.RECONNECTED if reconnect else LinkState.CONNECTED, f"{device.address} mtu {client.mtu_size}")
        for record in held:
            self._queue.put_nowait(record)

    async def _run(self) -> None:
        try:
            self._link(LinkState.SEARCHING, f"scanning for {self.target!r}")
            try:
                await self._connect_once(self.policy.first_scan_s, reconnect=False)
            except LookupError as exc:
                raise SensorUnavailableError(f"{exc}; switch it on (wet the strap's electrodes), check the address with 'python main.py devices'") from exc
            except _SetupError as exc:
                raise SensorUnavailableError(f"{self.target}: {exc}") from exc
            except (BleakError, asyncio.TimeoutError, OSError) as exc:
                mapped = _adapter_error(exc)
                raise (mapped or SensorUnavailableError(f"cannot connect to {self.target!r}: {exc}; move closer or restart the sensor")) from exc
            while not self._stopping:
                lost = self._lost
                assert lost is not None
                await lost.wait()
                if self._stopping:
                    return
                client, self._client = self._client, None
                if client is not None and client.is_connected:
                    # The stack says lost but the link is up: never leave it streaming unowned.
                    log.warning("%s: disconnect reported while the link is up; disconnecting it", self.description)
                    try:
                        await asyncio.wait_for(client.disconnect(), timeout=5.0)
                    except Exception as exc:
                        log.debug("%s: disconnect of a reported-lost link: %s", self.description, exc)
                self._link(LinkState.LOST, "link dropped")
                if not await self._reconnect():
                    return
        except asyncio.CancelledError:
            raise
        except SensorUnavailableError as exc:
            self._queue.put_nowait(exc)
        except Exception as exc:  # a bug or an unexpected backend failure: report it, never hang the consumer
            log.exception("%s: sensor task failed", self.description)
            self._queue.put_nowait(SensorUnavailableError(f"{self.description}: unexpected failure: {exc!r}"))

    async def _reconnect(self) -> bool:
        """Rescan and reconnect with capped backoff; False (and GIVEN_UP) when the policy runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.give_up_after_s
        delay = self.policy.backoff_initial_s
        attempt = 0
        while not self._stopping:
            attempt += 1
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._link(LinkState.GIVEN_UP, f"not back after {self.policy.give_up_after_s:g} s ({attempt - 1} attempts)")
                self._queue.put_nowait(_END)
                return False
            try:
                await self._connect_once(min(self.policy.scan_window_s, remaining), reconnect=True)
                return True
            except Exception as exc:  # not found, refused, dropped mid-set-up: try again
                log.info("%s: reconnect attempt %d failed: %s", self.description, attempt, exc)
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 2, self.policy.backoff_max_s)
        return False


class BleHeartRateSensor(_BleSensor):
    """A standard BLE heart-rate strap: 0x2A37 notifications timestamped on arrival."""

    kind = "ble"

    async def _setup(self, client: BleakClient, reconnect: bool) -> None:
        await _read_body_sensor_location(self, client)
        try:
            await client.start_notify(HR_MEASUREMENT_UUID, self._on_hr)
        except BleakError as exc:
            raise _SetupError(f"cannot subscribe to Heart Rate Measurement: {exc}") from exc


async def _read_body_sensor_location(sensor: _BleSensor, client: BleakClient) -> None:
    if client.services.get_characteristic(BODY_SENSOR_LOCATION_UUID) is None:
        return
    try:
        raw = await client.read_gatt_char(BODY_SENSOR_LOCATION_UUID)
    except BleakError as exc:
        log.info("%s: body sensor location unreadable: %s", sensor.description, exc)
        return
    if raw:
        sensor.body_sensor_location = BODY_SENSOR_LOCATIONS.get(raw[0], f"reserved ({raw[0]})")
        log.info("%s: body sensor location %s", sensor.description, sensor.body_sensor_location)


class PolarEcgSensor(_BleSensor):
    """Polar H10 raw ECG (130 Hz) over the PMD service, plus HR/RR if the strap offers 0x180D."""

    kind = "polar"

    def __init__(self, target: str, clock: Clock, *, backend: BleBackend | None = None, policy: ReconnectPolicy | None = None, start_timeout_s: float = 5.0) -> None:
        super().__init__(target, clock, backend=backend, policy=policy)
        self.start_timeout_s = start_timeout_s
        self.mapper = SensorTimeMapper()
        self.fs_hz = ECG_FS_HZ
        self._responses: asyncio.Queue[bytes] = asyncio.Queue()

    def _on_control(self, _char: Any, data: bytearray) -> None:
        self._responses.put_nowait(bytes(data))

    def _on_ecg(self, _char: Any, data: bytearray) -> None:
        arrival_s = self.clock.now()
        try:
            frame = parse_ecg_frame(bytes(data))
        except PmdFrameError as exc:
            self._payload_error(data, str(exc))
            return
        t_s = self.mapper.map(frame.sensor_t_ns, arrival_s)
        self._emit(EcgChunk(t_s=t_s, fs_hz=self.fs_hz, ecg_uv=frame.ecg_uv, source=self.description))

    async def _setup(self, client: BleakClient, reconnect: bool) -> None:
        if client.services.get_service(PMD_SERVICE_UUID) is None:
            raise _SetupError("the sensor has no Polar PMD service (raw ECG needs a Polar H10); use 'ble:' for plain HR")
        if client.mtu_size < MIN_MTU_FOR_ECG:
            # BlueZ reports 23 until the MTU is used; cut frames would show up as PayloadError records.
            log.warning("%s: ATT MTU reads %d (< %d): ECG frames may be cut", self.description, client.mtu_size, MIN_MTU_FOR_ECG)
        self.mapper.reset()
        while not self._responses.empty():
            self._responses.get_nowait()
        if client.services.get_characteristic(HR_MEASUREMENT_UUID) is not None:
            await _read_body_sensor_location(self, client)
            await client.start_notify(HR_MEASUREMENT_UUID, self._on_hr)
        await client.start_notify(PMD_CONTROL_UUID, self._on_control)
        await client.start_notify(PMD_DATA_UUID, self._on_ecg)
        await client.write_gatt_char(PMD_CONTROL_UUID, START_ECG_130HZ, response=True)
        try:
            while True:
                raw = await asyncio.wait_for(self._responses.get(), timeout=self.start_timeout_s)
                try:
                    response = parse_control_response(raw)
                except ValueError as exc:
                    self._payload_error(raw, str(exc))
                    continue
                if response.op == START_ECG_130HZ[0]:
                    break
        except asyncio.TimeoutError:
            raise _SetupError(f"no answer to the ECG start command within {self.start_timeout_s:g} s") from None
        if response.status == 6:  # already streaming (e.g. after a quick reconnect): fine
            return
        if not response.ok:
            raise _SetupError(f"the sensor refused to start ECG: status {response.status} ({response.status_text})")

    async def _before_disconnect(self, client: BleakClient) -> None:
        await client.write_gatt_char(PMD_CONTROL_UUID, STOP_ECG, response=True)
