"""Hardware detection: what is plugged into the board, read from sysfs and PC/SC.

Everything is read below a root directory (``/`` on the board), from the same
sysfs attributes pyserial's ``list_ports`` and libusb read (``idVendor``,
``idProduct``, ``serial``, ``bInterfaceClass``, ...), so a listing recorded on a
real board replays unchanged in tests.  Nothing is opened or written: detection
is safe while the daemon runs.

Found here: USB serial ports with VID:PID (``ttyUSB*``, ``ttyACM*``), USB
printers (interface class 7, with or without ``usblp``), CCID smart card
readers (class 0x0b) and the PC/SC reader names pcscd reports, HID POS scanners
(hidraw with usage page 0x8C) and keyboard-wedge scanners of known vendors,
V4L2 capture devices (the Pi's CSI receiver or a UVC camera), GPIO chips and
I2C buses.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

USB_CLASS_HID = "03"
USB_CLASS_PRINTER = "07"
USB_CLASS_SMART_CARD = "0b"
USB_CLASS_VIDEO = "0e"

#: Vendors whose HID keyboards are barcode scanners, not keyboards.
SCANNER_VENDORS = {
    "05e0": "Zebra (Symbol)",
    "0c2e": "Honeywell (Metrologic)",
    "05f9": "Datalogic",
    "1eab": "Newland",
    "23d0": "Zebex",
    "0536": "Hand Held Products",
}
#: Camera nodes that are codecs or ISPs of the SoC, not cameras.
_NOT_A_CAMERA = re.compile(r"^(bcm2835-(codec|isp)|rpivid|pispbe|rpi-hevc|hantro|rkvdec)")
_LONG_ITEM = 0xFE
#: CSI receivers driven through libcamera (picamera2).
_CSI_RECEIVERS = re.compile(r"^(unicam|rp1-cfe)")


@dataclass(frozen=True, slots=True)
class Usb:
    """The USB device a node belongs to."""

    vid: str
    pid: str
    manufacturer: str = ""
    product: str = ""
    serial: str = ""
    port: str = ""  # kernel name, e.g. "1-1.2": where it is plugged in

    @property
    def vid_pid(self) -> str:
        """``vvvv:pppp``, lower-case hex, as lsusb prints it."""
        return f"{self.vid}:{self.pid}"


@dataclass(frozen=True, slots=True)
class Found:
    """One detected device.

    Attributes:
        kind: ``serial``, ``printer``, ``smartcard``, ``hidpos``, ``hid``,
            ``camera``, ``gpiochip`` or ``i2c``.
        node: device node (``/dev/ttyUSB0``), or the reader name for ``pcsc``.
        usb: the USB device, if any.
        label: what the device calls itself (V4L2 name, chip label, product).
        detail: small facts for the technician (``lines=58``, ``driver=usblp``).

    """

    kind: str
    node: str
    usb: Usb | None = None
    label: str = ""
    detail: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Inventory:
    """Everything detection found on one board."""

    devices: tuple[Found, ...]
    pcsc_readers: tuple[str, ...]

    def of_kind(self, kind: str) -> list[Found]:
        """The devices of one kind, in node order."""
        return [d for d in self.devices if d.kind == kind]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _node_number(name: str) -> tuple[str, int]:
    match = re.match(r"^(.*?)(\d+)$", name)
    return (match.group(1), int(match.group(2))) if match else (name, -1)


def _entries(directory: Path, pattern: str) -> list[Path]:
    try:
        names = [p for p in directory.iterdir() if re.fullmatch(pattern, p.name)]
    except OSError:
        return []
    return sorted(names, key=lambda p: _node_number(p.name))


def _resolve(root: Path, link: Path) -> Path | None:
    """Resolve a sysfs symlink, keeping absolute links inside ``root``."""
    try:
        target = str(link.readlink())
    except OSError:
        return None
    resolved = (link.parent / target) if not target.startswith("/") else root / target[1:]
    return Path(os.path.normpath(resolved))


def _usb_parents(root: Path, device_dir: Path) -> tuple[Usb | None, str]:
    """The USB device above ``device_dir`` and the class of the interface on the way."""
    interface_class = ""
    sys_root = root / "sys"
    current = device_dir
    while current != sys_root and sys_root in current.parents:
        if not interface_class and (current / "bInterfaceClass").exists():
            interface_class = _read(current / "bInterfaceClass").lower()
        if (current / "idVendor").exists():
            usb = Usb(
                vid=_read(current / "idVendor").lower(),
                pid=_read(current / "idProduct").lower(),
                manufacturer=_read(current / "manufacturer"),
                product=_read(current / "product"),
                serial=_read(current / "serial"),
                port=current.name,
            )
            return usb, interface_class
        current = current.parent
    return None, interface_class


def _class_devices(root: Path, cls: str, pattern: str) -> list[tuple[str, Path]]:
    """``(name, device dir)`` of ``/sys/class/<cls>`` entries matching ``pattern``."""
    found = []
    for entry in _entries(root / "sys" / "class" / cls, pattern):
        node_dir = _resolve(root, entry) or entry
        device = _resolve(root, node_dir / "device") or node_dir
        found.append((entry.name, device))
    return found


def serial_ports(root: Path) -> list[Found]:
    """USB serial ports (``ttyUSB*``, ``ttyACM*``) with the VID:PID of their adapter."""
    found = []
    for name, device in _class_devices(root, "tty", r"tty(USB|ACM)\d+"):
        usb, _ = _usb_parents(root, device)
        driver_link = _resolve(root, device / "driver")
        detail = {"driver": driver_link.name} if driver_link is not None else {}
        found.append(Found("serial", f"/dev/{name}", usb, usb.product if usb else "", detail))
    return found


def _usb_interfaces(root: Path) -> list[tuple[Path, str]]:
    """Every USB interface directory (``1-1.2:1.0``) with its class."""
    result = []
    for entry in _entries(root / "sys" / "bus" / "usb" / "devices", r"[\d.-]+:\d+\.\d+"):
        directory = _resolve(root, entry) or entry
        result.append((directory, _read(directory / "bInterfaceClass").lower()))
    return result


def usb_printers(root: Path) -> list[Found]:
    """USB printers: interface class 7, bound to ``usblp`` (``/dev/usb/lpN``) or not."""
    lp_nodes: dict[Path, str] = {}
    for name, device in _class_devices(root, "usbmisc", r"lp\d+"):
        lp_nodes[device] = f"/dev/usb/{name}"
    found = []
    for interface, cls in _usb_interfaces(root):
        if cls != USB_CLASS_PRINTER:
            continue
        usb, _ = _usb_parents(root, interface)
        if usb is None:
            continue
        node = lp_nodes.get(interface, f"usb:{usb.vid_pid}")
        detail = {"ieee1284": _read(interface / "ieee1284_id")} if lp_nodes.get(interface) else {}
        found.append(
            Found("printer", node, usb, usb.product, {k: v for k, v in detail.items() if v})
        )
    return found


def smart_card_readers(root: Path) -> list[Found]:
    """CCID readers (USB interface class 0x0b), whether pcscd runs or not."""
    found = []
    for interface, cls in _usb_interfaces(root):
        if cls == USB_CLASS_SMART_CARD:
            usb, _ = _usb_parents(root, interface)
            if usb is not None:
                found.append(Found("smartcard", f"usb:{usb.vid_pid}", usb, usb.product))
    return found


def _has_pos_usage_page(descriptor: bytes) -> bool:
    """True if a HID report descriptor declares usage page 0x8C (bar code scanner)."""
    i = 0
    while i < len(descriptor):
        prefix = descriptor[i]
        if prefix == _LONG_ITEM:  # size in the next byte
            i += 3 + (descriptor[i + 1] if i + 1 < len(descriptor) else 0)
            continue
        size = (0, 1, 2, 4)[prefix & 0x03]
        data = int.from_bytes(descriptor[i + 1 : i + 1 + size], "little")
        if prefix & 0xFC == 0x04 and data == 0x8C:  # global item: Usage Page  # noqa: PLR2004
            return True
        i += 1 + size
    return False


def hid_scanners(root: Path) -> list[Found]:
    """HID POS scanners (usage page 0x8C on hidraw) and keyboard wedges of scanner vendors."""
    found = []
    seen: set[str] = set()
    for name, device in _class_devices(root, "hidraw", r"hidraw\d+"):
        try:
            descriptor = (device / "report_descriptor").read_bytes()
        except OSError:
            continue
        if _has_pos_usage_page(descriptor):
            usb, _ = _usb_parents(root, device)
            found.append(Found("hidpos", f"/dev/{name}", usb, usb.product if usb else ""))
            if usb is not None:
                seen.add(usb.port)
    for name, device in _class_devices(root, "input", r"event\d+"):
        usb, cls = _usb_parents(root, device)
        if usb is None or cls != USB_CLASS_HID or usb.vid not in SCANNER_VENDORS:
            continue
        if usb.port not in seen:
            seen.add(usb.port)
            found.append(Found("hid", f"/dev/input/{name}", usb, SCANNER_VENDORS[usb.vid]))
    return found


def cameras(root: Path) -> list[Found]:
    """V4L2 capture devices: CSI receivers (libcamera) and UVC cameras (first node each)."""
    found = []
    for name, device in _class_devices(root, "video4linux", r"video\d+"):
        node_dir = root / "sys" / "class" / "video4linux" / name
        label = _read(node_dir / "name")
        if _NOT_A_CAMERA.match(label):
            continue
        usb, cls = _usb_parents(root, device)
        if usb is not None:
            if cls != USB_CLASS_VIDEO or _read(node_dir / "index") not in ("", "0"):
                continue
            found.append(Found("camera", f"/dev/{name}", usb, label, {"bus": "usb"}))
        elif _CSI_RECEIVERS.match(label):
            found.append(Found("camera", f"/dev/{name}", None, label, {"bus": "csi"}))
    return found


def gpio_chips(root: Path) -> list[Found]:
    """GPIO character devices with their label and line count."""
    labels: dict[str, tuple[str, str]] = {}
    for entry in _entries(root / "sys" / "class" / "gpio", r"gpiochip\d+"):
        directory = _resolve(root, entry) or entry
        device = _resolve(root, directory / "device")
        if device is not None:
            labels[device.name] = (_read(directory / "label"), _read(directory / "ngpio"))
    found = []
    for entry in _entries(root / "sys" / "bus" / "gpio" / "devices", r"gpiochip\d+"):
        label, lines = labels.get(entry.name, ("", ""))
        detail = {"lines": lines} if lines else {}
        found.append(Found("gpiochip", f"/dev/{entry.name}", None, label, detail))
    return found


def i2c_buses(root: Path) -> list[Found]:
    """I2C buses with a character device (``/dev/i2c-N``), for I/O expanders."""
    return [
        Found("i2c", f"/dev/{entry.name}", None, _read(entry / "name"))
        for entry in _entries(root / "sys" / "class" / "i2c-dev", r"i2c-\d+")
    ]


def pcsc_reader_names() -> tuple[str, ...]:
    """Reader names from pcscd (empty when pcscd or pyscard is not there)."""
    try:
        from smartcard.System import readers  # noqa: PLC0415 - optional at run time
    except ImportError:
        return ()
    with contextlib.suppress(Exception):  # pcscd absent or stopped: no readers to offer
        return tuple(str(r) for r in readers())
    return ()


def detect(root: Path, pcsc: Callable[[], tuple[str, ...]] = pcsc_reader_names) -> Inventory:
    """Everything below ``root`` (``/`` on the board) plus the PC/SC readers ``pcsc`` names."""
    devices = (
        serial_ports(root)
        + usb_printers(root)
        + smart_card_readers(root)
        + hid_scanners(root)
        + cameras(root)
        + gpio_chips(root)
        + i2c_buses(root)
    )
    return Inventory(tuple(devices), pcsc())
