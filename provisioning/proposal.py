"""From detected hardware to a proposed device config and the udev rules that name it.

Each recognised device gets a stable name under ``/dev/kiosk/`` (a udev
symlink matched on VID:PID, plus the USB serial number or, when the device has
none, the port it is plugged into) and a ``[devices.<id>]`` table naming the
driver.  A USB-serial adapter says nothing about what is behind it (a scanner?
a ccTalk coin acceptor?), so the technician assigns it: ``ttyUSB0=coinAcceptor``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .detect import SCANNER_VENDORS, Found, Inventory

#: What an assignment may name, with the driver of a serial device of that class.
SERIAL_CLASSES = {"scanner": "serial", "coinAcceptor": "cctalk"}
_STABLE = {"scanner": "scanner", "coinAcceptor": "coin", "printer": "printer", "camera": "camera"}
_GROUP = {
    "tty": "dialout",
    "usbmisc": "lp",
    "hidraw": "plugdev",
    "input": "input",
    "video4linux": "video",
}


class ProposalError(ValueError):
    """An assignment that names no detected port or an unknown class."""


@dataclass
class Proposal:
    """Proposed device tables, udev rules, and what was left out (with the reason)."""

    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def udev_rules(self) -> str:
        """The text of ``91-kioskd-devices.rules``."""
        return "".join(f"{rule}\n" for rule in self.rules)


def _rule(found: Found, subsystem: str, name: str, extra: str = "") -> str:
    assert found.usb is not None
    match = [
        f'SUBSYSTEM=="{subsystem}"',
        f'ATTRS{{idVendor}}=="{found.usb.vid}"',
        f'ATTRS{{idProduct}}=="{found.usb.pid}"',
    ]
    if found.usb.serial:
        match.append(f'ATTRS{{serial}}=="{found.usb.serial}"')
    else:
        # No serial number: the USB port it is plugged into tells twins apart.
        match.append(f'KERNELS=="{found.usb.port}"')
    if extra:
        match.append(extra)
    return ", ".join(
        [*match, f'SYMLINK+="kiosk/{name}"', f'GROUP="{_GROUP[subsystem]}"', 'MODE="0660"'],
    )


def _serial(proposal: Proposal, port: Found, device_class: str) -> None:
    name = _STABLE[device_class]
    proposal.devices[device_class] = {
        "class": device_class,
        "driver": SERIAL_CLASSES[device_class],
        "port": f"/dev/kiosk/{name}",
    }
    if port.usb is not None:
        proposal.rules.append(_rule(port, "tty", name))


def _check_assign(assign: dict[str, str], ports: dict[str, Found]) -> None:
    for port_name, device_class in assign.items():
        if port_name not in ports:
            raise ProposalError(f"no serial port {port_name} was detected")
        if device_class != "none" and device_class not in SERIAL_CLASSES:
            raise ProposalError(
                f"{port_name}: assign one of {', '.join(SERIAL_CLASSES)} or none, "
                f"not {device_class!r}",
            )


def _serial_ports(proposal: Proposal, inventory: Inventory, assign: dict[str, str]) -> None:
    ports = {p.node.removeprefix("/dev/"): p for p in inventory.of_kind("serial")}
    _check_assign(assign, ports)
    for port_name, port in ports.items():
        wanted = assign.get(port_name)
        if wanted is None and port.usb is not None and port.usb.vid in SCANNER_VENDORS:
            wanted = "scanner"
        if wanted is None:
            what = f"{port.usb.vid_pid} {port.usb.product}" if port.usb else "on-board UART"
            proposal.notes.append(
                f"{port.node} ({what}): which device is behind it? "
                f"assign it, e.g. {port_name}=coinAcceptor",
            )
        elif wanted != "none" and wanted not in proposal.devices:
            _serial(proposal, port, wanted)


def _hid_scanner(proposal: Proposal, inventory: Inventory) -> None:
    scanners = inventory.of_kind("hidpos") + inventory.of_kind("hid")
    if not scanners or "scanner" in proposal.devices:
        return
    scanner = scanners[0]
    driver = scanner.kind  # "hidpos" or "hid": the driver names
    proposal.devices["scanner"] = {
        "class": "scanner",
        "driver": driver,
        "device": "/dev/kiosk/scanner",
    }
    if driver == "hidpos":
        proposal.rules.append(_rule(scanner, "hidraw", "scanner"))
    else:
        proposal.rules.append(_rule(scanner, "input", "scanner", 'KERNEL=="event*"'))


def _printer(proposal: Proposal, inventory: Inventory) -> None:
    printers = inventory.of_kind("printer")
    if not printers or printers[0].usb is None:
        return
    printer = printers[0]
    assert printer.usb is not None
    settings: dict[str, Any] = {"class": "printer", "driver": "escpos"}
    if printer.node.startswith("/dev/usb/lp"):
        # Bound to usblp: the kernel's device file, under its stable name.
        settings |= {"connection": "file", "device": "/dev/kiosk/printer"}
        proposal.rules.append(_rule(printer, "usbmisc", "printer"))
    else:
        settings |= {
            "connection": "usb",
            "usb_vendor_id": int(printer.usb.vid, 16),
            "usb_product_id": int(printer.usb.pid, 16),
        }
    proposal.devices["printer"] = settings


def _card_reader(proposal: Proposal, inventory: Inventory) -> None:
    if not inventory.of_kind("smartcard") and not inventory.pcsc_readers:
        return
    reader: dict[str, Any] = {"class": "cardReader", "driver": "pcsc"}
    if inventory.pcsc_readers:
        # A pattern on the name without pcscd's slot numbers, which change with the USB port.
        name = re.sub(r"( \d\d)+$", "", inventory.pcsc_readers[0])
        reader["reader"] = "^" + re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", name)
    else:
        proposal.notes.append("a CCID reader is plugged in but pcscd lists no reader")
    proposal.devices["cardReader"] = reader


def _camera(proposal: Proposal, inventory: Inventory) -> None:
    cameras = inventory.of_kind("camera")
    if not cameras:
        return
    camera = cameras[0]
    if camera.detail.get("bus") == "csi":
        proposal.devices["camera"] = {"class": "camera", "driver": "picamera2"}
        return
    proposal.devices["camera"] = {
        "class": "camera",
        "driver": "v4l2",
        "device": "/dev/kiosk/camera",
    }
    proposal.rules.append(_rule(camera, "video4linux", "camera", 'ATTR{index}=="0"'))


def propose(inventory: Inventory, assign: dict[str, str] | None = None) -> Proposal:
    """The proposed devices for what ``inventory`` holds.

    ``assign`` maps a serial port (``ttyUSB0`` or ``/dev/ttyUSB0``) to ``scanner``,
    ``coinAcceptor`` or ``none``.

    Raises:
        ProposalError: an assignment names no detected port or an unknown class.

    """
    proposal = Proposal()
    _serial_ports(
        proposal, inventory, {k.removeprefix("/dev/"): v for k, v in (assign or {}).items()}
    )
    _hid_scanner(proposal, inventory)
    _printer(proposal, inventory)
    _card_reader(proposal, inventory)
    _camera(proposal, inventory)
    header = [c for c in inventory.of_kind("gpiochip") if c.label.startswith("pinctrl-")]
    if header:
        proposal.notes.append(
            f"GPIO header on {header[0].node} ({header[0].label}): add the document slot, "
            "lockers, lights and sensors tables for this cabinet's wiring",
        )
    return proposal
