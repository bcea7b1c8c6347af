"""A bleak backend over bumble's in-process virtual radio, and virtual heart-rate straps.

Used by the tests, by `bench link` and by `VREX_BLE_BACKEND=biofeedback.ble.virtual:demo_backend`
(`devices`/`monitor` against virtual straps, e.g. for training without hardware).

bleak >= 2 accepts ``backend=`` classes in ``BleakScanner``/``BleakClient``; the
classes here implement bleak's ``BaseBleakScanner``/``BaseBleakClient`` on top of
a bumble ``Device`` (the "host adapter") whose controller shares a
``bumble.link.LocalLink`` with the controllers of virtual peripherals. The
peripherals run bumble's real GATT server: the ``HeartRateService`` profile and a
PMD-like service (control point with indications, data notifications) that
answers the Polar H10 ECG commands with real-format frames. Everything above the
backend (bleak's public classes, vrex's sensors) runs unchanged.

Bumble objects bind to the running event loop, so a :class:`VirtualRadio` is
built without one and powers itself on at first use (``await radio.start()``),
which also lets ``python main.py devices`` run against it in-process.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import uuid as uuid_lib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bumble import gatt
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData, PhysicalTransport
from bumble.device import Connection, Device, Peer
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.profiles.heart_rate_service import HeartRateService
from bumble.transport.common import AsyncPipeSink

from biofeedback.ble.sensors import BleBackend
from biofeedback.polar_pmd import (
    PMD_CONTROL_UUID,
    PMD_DATA_UUID,
    PMD_SERVICE_UUID,
    encode_ecg_frame,
)

log = logging.getLogger(__name__)

_PROPERTY_NAMES = {
    0x01: "broadcast",
    0x02: "read",
    0x04: "write-without-response",
    0x08: "write",
    0x10: "notify",
    0x20: "indicate",
    0x40: "authenticated-signed-writes",
    0x80: "extended-properties",
}


def _uuid_str(u: UUID) -> str:
    """bumble UUID (little-endian bytes) -> bleak's normalised 128-bit lowercase string."""
    return str(uuid_lib.UUID(bytes=bytes(reversed(u.to_bytes(force_128=True)))))


class VirtualStrap:
    """A virtual chest strap: HRS (0x180D) and optionally a Polar-PMD-like ECG service.

    Tests push payloads with :meth:`notify_hr` / :meth:`send_ecg_frame` (nothing
    is sent on a timer unless :meth:`stream` runs), and simulate the strap going
    away with :meth:`drop` and coming back with :meth:`reappear`.
    """

    def __init__(
        self,
        name: str,
        address: str,
        *,
        with_pmd: bool = False,
        with_hrs: bool = True,
        body_sensor_location: int = 1,
        advertising_interval_ms: float = 100.0,
        pmd_start_status: int = 0,
        auto_hr_rr_ms: Sequence[float] = (),
    ) -> None:
        self.name = name
        self.address = address
        self.with_pmd = with_pmd
        self.with_hrs = with_hrs
        self.body_sensor_location = body_sensor_location
        self.advertising_interval_ms = advertising_interval_ms
        self.pmd_start_status = pmd_start_status
        self.auto_hr_rr_ms = list(auto_hr_rr_ms)
        self.device: Device | None = None
        self.pmd_commands: list[bytes] = []
        self.ecg_streaming: asyncio.Event | None = None  # events are created on the loop in _build
        self.subscribed: asyncio.Event | None = None
        self.connected: asyncio.Event | None = None
        self.reappeared_at: float | None = None
        self.sensor_time_ns = 700_000_000 * 10**9  # ~2022 in ns since 2000-01-01
        self._hrm: gatt.Characteristic | None = None
        self._pmd_cp: gatt.Characteristic | None = None
        self._pmd_data: gatt.Characteristic | None = None

    def _build(self, link: LocalLink) -> Device:
        controller = Controller(f"strap-{self.name}", link=link)
        device = Device(name=self.name, address=Address(self.address), host=Host(controller, AsyncPipeSink(controller)))
        self.ecg_streaming = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.connected = asyncio.Event()
        services: list[gatt.Service] = []
        ad_uuids = b""
        if self.with_hrs:
            hrs = HeartRateService(
                read_heart_rate_measurement=lambda _conn: HeartRateService.HeartRateMeasurement(heart_rate=60),
                body_sensor_location=HeartRateService.BodySensorLocation(self.body_sensor_location),
            )
            self._hrm = hrs.heart_rate_measurement_characteristic
            services.append(hrs)
            ad_uuids += struct.pack("<H", 0x180D)
        if self.with_pmd:
            self._pmd_cp = gatt.Characteristic(
                PMD_CONTROL_UUID,
                gatt.Characteristic.Properties.READ | gatt.Characteristic.Properties.WRITE | gatt.Characteristic.Properties.INDICATE,
                gatt.Characteristic.READABLE | gatt.Characteristic.WRITEABLE,
                gatt.CharacteristicValue(read=lambda _c: bytes([0x0F, 0x05, 0x00]), write=self._on_pmd_write),
            )
            self._pmd_data = gatt.Characteristic(
                PMD_DATA_UUID, gatt.Characteristic.Properties.NOTIFY, gatt.Characteristic.Permissions(0), b""
            )
            services.append(gatt.Service(PMD_SERVICE_UUID, [self._pmd_cp, self._pmd_data]))
        device.add_services(services)
        device.on("connection", self._on_connection)
        ad = [(AdvertisingData.FLAGS, bytes([0x06])), (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode())]
        if ad_uuids:
            ad.append((AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, ad_uuids))
        device.advertising_data = bytes(AdvertisingData(ad))
        device.gatt_server.on("characteristic_subscription", self._on_subscription)
        self.device = device
        return device

    # -- peripheral-side events ------------------------------------------------------------
    def _on_connection(self, connection: Connection) -> None:
        assert self.connected is not None
        self.connected.set()
        connection.on("disconnection", lambda *_: self._on_disconnection())

    def _on_disconnection(self) -> None:
        assert self.connected is not None and self.subscribed is not None and self.ecg_streaming is not None
        self.connected.clear()
        self.subscribed.clear()
        self.ecg_streaming.clear()

    def _on_subscription(self, _connection: Connection, characteristic: gatt.Characteristic, notify: bool, indicate: bool) -> None:
        if self._hrm is not None and characteristic.handle == self._hrm.handle and (notify or indicate):
            assert self.subscribed is not None
            self.subscribed.set()

    def _on_pmd_write(self, connection: Connection, value: bytes) -> None:
        value = bytes(value)
        self.pmd_commands.append(value)
        op = value[0] if value else 0
        mtype = value[1] if len(value) > 1 else 0
        if op == 0x02:
            status = self.pmd_start_status
            if status == 0 and len(value) >= 2 and mtype == 0:
                assert self.ecg_streaming is not None
                self.ecg_streaming.set()
        elif op == 0x03:
            status = 0
            assert self.ecg_streaming is not None
            self.ecg_streaming.clear()
        else:
            status = 0x01  # invalid op code
        response = bytes([0xF0, op, mtype, status, 0x00])
        assert self.device is not None and self._pmd_cp is not None
        asyncio.get_running_loop().create_task(self.device.indicate_subscriber(connection, self._pmd_cp, response))

    async def auto_stream(self) -> None:
        """Stream like a worn strap (demo/CLI runs): HR notifications about once a second while
        subscribed and, on a strap with PMD, 73-sample ECG frames at 130 Hz while ECG is started.
        Beats follow ``auto_hr_rr_ms`` in a cycle; the ECG is a synthetic PQRST at those beats."""
        await asyncio.gather(self._auto_hr(), self._auto_ecg())

    async def _auto_hr(self) -> None:
        from biofeedback.hrm import encode_heart_rate_measurement

        k = 0
        while True:
            await asyncio.sleep(1.0)
            if self.subscribed is None or not self.subscribed.is_set() or not self.auto_hr_rr_ms:
                continue
            rr = [self.auto_hr_rr_ms[k % len(self.auto_hr_rr_ms)]]
            k += 1
            await self.notify_hr(encode_heart_rate_measurement(round(60000 / rr[0]), rr, sensor_contact=True))

    async def _auto_ecg(self, fs_hz: float = 130.0, frame_samples: int = 73) -> None:
        if not self.with_pmd or not self.auto_hr_rr_ms:
            return
        loop = asyncio.get_running_loop()
        t_s, next_beat_s, k = 0.0, 0.3, 0
        beats: list[float] = []
        while True:
            await asyncio.sleep(frame_samples / fs_hz)
            if self.ecg_streaming is None or not self.ecg_streaming.is_set():
                continue
            t = t_s + np.arange(frame_samples) / fs_hz
            t_s += frame_samples / fs_hz
            while next_beat_s < t_s + 0.5:
                beats.append(next_beat_s)
                next_beat_s += self.auto_hr_rr_ms[k % len(self.auto_hr_rr_ms)] / 1000.0
                k += 1
            beats = [b for b in beats if b > t[0] - 1.0]
            samples = synthetic_ecg_uv(t, np.asarray(beats))
            started = loop.time()
            await self.send_ecg_frame([int(v) for v in samples], sample_period_ns=round(1e9 / fs_hz))
            log.debug("virtual ECG frame sent in %.1f ms", (loop.time() - started) * 1e3)

    # -- test controls -------------------------------------------------------------------------
    async def start_advertising(self) -> None:
        assert self.device is not None
        await self.device.start_advertising(
            advertising_interval_min=self.advertising_interval_ms,
            advertising_interval_max=self.advertising_interval_ms,
            auto_restart=False,
        )

    async def notify_hr(self, payload: bytes) -> None:
        """Send one raw 0x2A37 payload (the adapter passes bytes through untouched)."""
        assert self.device is not None and self._hrm is not None
        await self.device.notify_subscribers(self._hrm, bytes(payload))

    async def send_ecg_frame(self, samples_uv: Sequence[int], *, sample_period_ns: int = round(1e9 / 130)) -> bytes:
        """Send one PMD data notification (a real-format frame); returns the frame bytes."""
        assert self.device is not None and self._pmd_data is not None
        self.sensor_time_ns += sample_period_ns * len(samples_uv)
        frame = encode_ecg_frame(self.sensor_time_ns, samples_uv)
        await self.device.notify_subscribers(self._pmd_data, frame)
        return frame

    async def send_pmd_raw(self, data: bytes) -> None:
        assert self.device is not None and self._pmd_data is not None
        await self.device.notify_subscribers(self._pmd_data, bytes(data))

    async def drop(self) -> None:
        """The strap goes away: drop every link and stop advertising."""
        assert self.device is not None
        await self.device.stop_advertising()
        for connection in list(self.device.connections.values()):
            try:
                await connection.disconnect()
            except Exception as exc:  # already gone
                log.debug("disconnect during drop: %s", exc)

    async def reappear(self) -> None:
        """The strap is back in range and advertising again."""
        self.reappeared_at = asyncio.get_running_loop().time()
        await self.start_advertising()


class VirtualRadio:
    """One LocalLink with a central "adapter" device and any number of virtual straps."""

    def __init__(self, straps: Sequence[VirtualStrap] = (), *, max_mtu: int = 517, rssi_dbm: int = -58) -> None:
        self.straps = list(straps)
        self.max_mtu = max_mtu
        self.rssi_dbm = rssi_dbm
        self.link: LocalLink | None = None
        self.central: Device | None = None
        self._lock: asyncio.Lock | None = None
        self._scan_users = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Power everything on in the running loop (idempotent)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self.central is not None:
            return
        self._loop = loop
        self._lock = asyncio.Lock()
        self._scan_users = 0
        self.link = LocalLink()
        controller = Controller("adapter", link=self.link)
        self.central = Device(name="vrex-host", address=Address("C0:00:00:00:00:01"), host=Host(controller, AsyncPipeSink(controller)))
        await self.central.power_on()
        self._tasks = []
        for strap in self.straps:
            strap._build(self.link)
            await strap.device.power_on()
            await strap.start_advertising()
            if strap.auto_hr_rr_ms:
                self._tasks.append(loop.create_task(strap.auto_stream()))

    def backend(self) -> BleBackend:
        """The scanner/client classes bound to this radio, for vrex's BLE sensors."""
        radio = self

        class Scanner(BumbleScanner):
            _radio = radio

        class Client(BumbleClient):
            _radio = radio

        return BleBackend(scanner=Scanner, client=Client)

    async def acquire_scan(self) -> None:
        assert self._lock is not None and self.central is not None
        async with self._lock:
            self._scan_users += 1
            if self._scan_users == 1:
                await self.central.start_scanning(filter_duplicates=False, scan_interval=60, scan_window=60)

    async def release_scan(self) -> None:
        assert self._lock is not None and self.central is not None
        async with self._lock:
            self._scan_users = max(0, self._scan_users - 1)
            if self._scan_users == 0 and self.central.scanning:
                await self.central.stop_scanning()


class BumbleScanner(BaseBleakScanner):
    """bleak scanner backend: advertisement reports from the virtual radio's central device."""

    _radio: VirtualRadio

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._listener: Callable[..., None] | None = None

    async def start(self) -> None:
        await self._radio.start()
        self.seen_devices = {}
        central = self._radio.central
        assert central is not None

        def on_advertisement(advertisement: Any) -> None:
            data: AdvertisingData = advertisement.data
            names = data.get_all(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get_all(AdvertisingData.SHORTENED_LOCAL_NAME)
            name = names[0] if names else None
            uuids: list[str] = []
            for t in (
                AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
            ):
                for group in data.get_all(t):
                    uuids.extend(_uuid_str(u) for u in group)
            if not self.is_allowed_uuid(uuids):
                return
            address = str(advertisement.address).split("/")[0]
            adv = AdvertisementData(
                local_name=name,
                manufacturer_data={},
                service_data={},
                service_uuids=uuids,
                tx_power=None,
                rssi=self._radio.rssi_dbm,
                platform_data=(advertisement,),
            )
            device = self.create_or_update_device(address, address, name, advertisement.address, adv)
            self.call_detection_callbacks(device, adv)

        self._listener = on_advertisement
        central.on("advertisement", on_advertisement)
        await self._radio.acquire_scan()

    async def stop(self) -> None:
        central = self._radio.central
        if self._listener is not None and central is not None:
            central.remove_listener("advertisement", self._listener)
            self._listener = None
            await self._radio.release_scan()


class BumbleClient(BaseBleakClient):
    """bleak client backend: a bumble LE connection and its GATT client.

    Like BlueZ, the MTU is exchanged by the "OS" right after connecting (up to
    the radio's ``max_mtu``), and the disconnected callback fires for every
    disconnect, including our own.
    """

    _radio: VirtualRadio

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.pop("disconnected_callback", None),
            timeout=kwargs.pop("timeout", 10.0),
        )
        self._details = address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    @property
    def name(self) -> str:
        return self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        await self._radio.start()
        central = self._radio.central
        assert central is not None
        target = self._details if isinstance(self._details, Address) else Address(self.address)
        try:
            connection = await asyncio.wait_for(
                central.connect(target, transport=PhysicalTransport.LE), timeout=self._timeout
            )
        except asyncio.TimeoutError:
            try:
                await central.cancel_connection()
            except Exception as exc:
                log.debug("cancel_connection: %s", exc)
            raise BleakDeviceNotFoundError(self.address, f"device {self.address} not found (connect timed out)") from None
        self._connection = connection
        connection.on("disconnection", self._on_disconnection)
        peer = Peer(connection)
        self._peer = peer
        await self._gatt(lambda p: p.request_mtu(self._radio.max_mtu))
        await self._gatt(lambda p: p.discover_all())
        self.services = self._collect_services(peer)

    def _on_disconnection(self, *_args: Any) -> None:
        self._connection = None
        self._peer = None
        self.services = None
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    def _collect_services(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        for sp in peer.services:
            service = BleakGATTService(sp, sp.handle, _uuid_str(sp.uuid))
            collection.add_service(service)
            for cp in sp.characteristics:
                props = [name for bit, name in _PROPERTY_NAMES.items() if cp.properties & bit]
                char = BleakGATTCharacteristic(
                    cp, cp.handle, _uuid_str(cp.uuid), props, lambda: self.mtu_size - 3, service
                )
                collection.add_characteristic(char)
                for dp in cp.descriptors:
                    collection.add_descriptor(BleakGATTDescriptor(dp, dp.handle, _uuid_str(dp.type), char))
        return collection

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            await connection.disconnect()
        except Exception as exc:
            log.debug("disconnect: %s", exc)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("pairing is not emulated")

    async def unpair(self) -> None:
        raise NotImplementedError("pairing is not emulated")

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    async def _gatt(self, make: Callable[[Peer], Any]) -> Any:
        """Run one GATT operation; like an OS stack, fail it at once if the link drops meanwhile."""
        peer = self._require_peer()
        op = asyncio.ensure_future(make(peer))
        gone = asyncio.get_running_loop().create_future()

        def on_gone(*_args: Any) -> None:
            if not gone.done():
                gone.set_result(None)

        peer.connection.on("disconnection", on_gone)
        try:
            await asyncio.wait({op, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            peer.connection.remove_listener("disconnection", on_gone)
        if not op.done():
            op.cancel()
            raise BleakError(f"{self.address}: disconnected during a GATT operation")
        try:
            return op.result()
        except BleakError:
            raise
        except Exception as exc:  # bumble's ATT errors -> bleak's family, as platform backends do
            raise BleakError(f"{self.address}: GATT operation failed: {exc}") from exc

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        return bytearray(await self._gatt(lambda p: p.read_value(characteristic.obj)))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any) -> bytearray:
        return bytearray(await self._gatt(lambda p: p.read_value(descriptor.obj)))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any, response: bool) -> None:
        await self._gatt(lambda p: p.write_value(characteristic.obj, bytes(data), with_response=response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        await self._gatt(lambda p: p.write_value(descriptor.obj, bytes(data), with_response=True))

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any) -> None:
        def subscriber(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = subscriber
        await self._gatt(lambda p: p.subscribe(characteristic.obj, subscriber, prefer_notify=True))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        subscriber = self._subscribers.pop(characteristic.handle, None)
        await self._gatt(lambda p: p.unsubscribe(characteristic.obj, subscriber))


# PQRST as Gaussians: (offset from the R peak s, amplitude uV, width s).
_PQRST = ((-0.20, 120.0, 0.025), (-0.03, -100.0, 0.010), (0.0, 1200.0, 0.012), (0.03, -250.0, 0.012), (0.25, 300.0, 0.050))


def synthetic_ecg_uv(t_s: np.ndarray, beat_times_s: np.ndarray) -> np.ndarray:
    """A clean synthetic ECG (microvolts) at times ``t_s`` with R peaks at ``beat_times_s``."""
    out = np.zeros_like(t_s, dtype=np.float64)
    for offset, amp, width in _PQRST:
        d = t_s[:, None] - (beat_times_s[None, :] + offset)
        out += amp * np.exp(-0.5 * (d / width) ** 2).sum(axis=1)
    return out


def demo_radio() -> VirtualRadio:
    """Two straps (an HR-only strap and an H10 with ECG) for CLI tests via VREX_BLE_BACKEND."""
    return VirtualRadio(
        [
            VirtualStrap("HRM-Dual 1234", "F0:00:00:00:00:01", auto_hr_rr_ms=[812.0, 790.0, 805.0, 830.0]),
            VirtualStrap("Polar H10 A1B2C3D4", "F0:00:00:00:00:02", with_pmd=True,
                         auto_hr_rr_ms=[845.0, 860.0, 880.0, 870.0, 850.0, 835.0]),
        ]
    )


def demo_backend() -> BleBackend:
    """Entry point for ``VREX_BLE_BACKEND=biofeedback.ble.virtual:demo_backend``."""
    return demo_radio().backend()
