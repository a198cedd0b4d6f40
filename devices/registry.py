"""The one place that knows concrete drivers, by ``(class, driver)`` name.

Drivers are imported lazily, so a driver whose library is missing (picamera2
off a Raspberry Pi, pyscard without pcsclite) only fails when configured.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import msgspec

from .base import AnyDevice, DeviceEnv, DeviceHost, WireSimulatorFactory

#: ``(device class, driver name) -> "module:Class"``.
DRIVERS: dict[tuple[str, str], str] = {
    ("scanner", "sim"): "devices.sim.scanner.behaviour:SimScanner",
    ("scanner", "serial"): "devices.scanner.serial:SerialScanner",
    ("scanner", "hid"): "devices.scanner.hid:HidScanner",
    ("scanner", "hidpos"): "devices.scanner.hidpos:HidPosScanner",
    ("cardReader", "sim"): "devices.sim.card_reader.behaviour:SimCardReader",
    ("printer", "sim"): "devices.sim.printer.behaviour:SimPrinter",
    ("printer", "escpos"): "devices.printer.escpos:EscposPrinter",
    ("coinAcceptor", "sim"): "devices.sim.coin_acceptor.behaviour:SimCoinAcceptor",
    ("cashAcceptor", "sim"): "devices.sim.cash_acceptor.behaviour:SimCashAcceptor",
    ("cashAcceptor", "ssp"): "devices.cash_acceptor.ssp_validator:SspValidator",
    ("cashAcceptor", "cctalk"): "devices.cash_acceptor.cctalk_validator:CctalkBillValidator",
    ("documentSlot", "sim"): "devices.sim.document_slot.behaviour:SimDocumentSlot",
    ("documentSlot", "gpio"): "devices.document_slot.gpio:GpioDocumentSlot",
    ("lockers", "sim"): "devices.sim.lockers.behaviour:SimLockers",
    ("lockers", "gpio"): "devices.lockers.gpio:GpioLockers",
    ("camera", "sim"): "devices.sim.camera.behaviour:SimCamera",
    ("camera", "v4l2"): "devices.camera.v4l2:V4l2Camera",
    ("camera", "picamera2"): "devices.camera.picamera2:Picamera2Camera",
    ("lights", "sim"): "devices.sim.lights.behaviour:SimLights",
    ("lights", "gpio"): "devices.lights.gpio:GpioLights",
    ("sensors", "sim"): "devices.sim.sensors.behaviour:SimSensors",
    ("coinAcceptor", "cctalk"): "devices.coin_acceptor.cctalk_acceptor:CctalkCoinAcceptor",
    ("coinAcceptor", "pulse"): "devices.coin_acceptor.pulse:PulseCoinAcceptor",
    ("sensors", "gpio"): "devices.sensors.gpio:GpioSensors",
    ("cardReader", "pcsc"): "devices.card_reader.pcsc:PcscCardReader",
}

#: ``(device class, simulator name) -> "module:Class"`` of wire simulators
#: (:mod:`devices.sim.support.wire`); by convention named after the driver they serve.
SIMULATORS: dict[tuple[str, str], str] = {
    ("coinAcceptor", "cctalk"): "devices.sim.coin_acceptor.cctalk:CctalkSimulator",
    ("coinAcceptor", "pulse"): "devices.sim.coin_acceptor.pulse:PulseSimulator",
    ("cashAcceptor", "ssp"): "devices.sim.cash_acceptor.ssp:SspSimulator",
    ("cashAcceptor", "cctalk"): "devices.sim.cash_acceptor.cctalk:CctalkBillSimulator",
    ("cardReader", "pcsc"): "devices.sim.card_reader.pcsc:VirtualCardSimulator",
    ("camera", "v4l2"): "devices.sim.camera.v4l2:V4l2CameraSimulator",
    ("documentSlot", "gpio"): "devices.sim.document_slot.gpio:GpioDocumentSlotSimulator",
    ("lockers", "gpio"): "devices.sim.lockers.gpio:GpioLockersSimulator",
    ("sensors", "gpio"): "devices.sim.sensors.gpio:GpioSensorsSimulator",
    ("lights", "gpio"): "devices.sim.lights.gpio:GpioLightsSimulator",
    ("printer", "escpos"): "devices.sim.printer.escpos:EscposPrinterSimulator",
    ("scanner", "serial"): "devices.sim.scanner.serial:SerialScannerSimulator",
    ("scanner", "hid"): "devices.sim.scanner.hid:HidScannerSimulator",
    ("scanner", "hidpos"): "devices.sim.scanner.hidpos:HidPosScannerSimulator",
}

DEVICE_CLASSES: tuple[str, ...] = tuple(dict.fromkeys(cls for cls, _ in DRIVERS))


class UnknownDriverError(LookupError):
    """No driver of that name for that device class."""


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """A resolved driver: its class and its settings type."""

    device_class: str
    name: str
    cls: type[AnyDevice]

    @property
    def settings_type(self) -> type[msgspec.Struct]:
        """The msgspec type a device's config table is validated into."""
        return self.cls.Settings

    def create(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: msgspec.Struct,
    ) -> AnyDevice:
        """Instantiate the driver (opens nothing; :meth:`Device.run` does)."""
        return self.cls(device_id, host, env, settings)


def drivers_for(device_class: str) -> list[str]:
    """Driver names available for a device class."""
    return [name for cls, name in DRIVERS if cls == device_class]


def resolve(device_class: str, driver: str) -> DriverSpec:
    """Import and return the driver named in config.

    Raises:
        UnknownDriverError: the class or driver name is not registered.
        ImportError: the driver's library is not installed on this machine.

    """
    target = DRIVERS.get((device_class, driver))
    if target is None:
        known = ", ".join(drivers_for(device_class)) or "none"
        raise UnknownDriverError(
            f"no driver {driver!r} for class {device_class!r} (known: {known})",
        )
    return DriverSpec(device_class, driver, _load(target))


def resolve_simulator(device_class: str, name: str) -> WireSimulatorFactory:
    """Import and return the wire simulator named in config.

    Raises:
        UnknownDriverError: no wire simulator of that name for that class.
        ImportError: its library is not installed on this machine.

    """
    target = SIMULATORS.get((device_class, name))
    if target is None:
        known = ", ".join(n for c, n in SIMULATORS if c == device_class) or "none"
        raise UnknownDriverError(
            f"no wire simulator {name!r} for class {device_class!r} (known: {known})",
        )
    factory: WireSimulatorFactory = _load(target)
    return factory


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
