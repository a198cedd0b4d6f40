"""sysfs trees of real boards, rebuilt from listings recorded on them (see boards.md).

Each :class:`Node` is one sysfs device directory with the attributes a recording
shows (``udevadm info -a``, ``lsusb``, ``v4l2-ctl --list-devices``, ``gpiodetect``,
``pcsc_scan``).  :func:`build` lays a tree out under a temporary root the way the
kernel does: device directories under ``sys/devices``, relative symlinks from
``sys/class/<class>/<name>`` and ``sys/bus/<bus>/devices/<name>``, a ``device``
link in every class node, a ``driver`` link where a driver is bound.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Node:
    devpath: str
    attrs: dict[str, str | bytes] = field(default_factory=dict)
    cls: str | None = None  # class directory it is listed in (tty, video4linux, ...)
    bus: str | None = None  # bus it is listed in (usb, gpio)
    driver: str | None = None
    device: str | None = None  # devpath its `device` link points to (default: the grandparent)


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent))


def build(root: Path, nodes: list[Node]) -> Path:
    """Lay ``nodes`` out under ``root/sys``; returns ``root``."""
    sys_dir = root / "sys"
    for node in nodes:
        path = sys_dir / node.devpath.lstrip("/")
        path.mkdir(parents=True, exist_ok=True)
        for name, value in node.attrs.items():
            data = value if isinstance(value, bytes) else (value + "\n").encode()
            (path / name).write_bytes(data)
        name = PurePosixPath(node.devpath).name
        if node.cls is not None:
            _link(sys_dir / "class" / node.cls / name, path)
            device = node.device or str(PurePosixPath(node.devpath).parent.parent)
            _link(path / "device", sys_dir / device.lstrip("/"))
        if node.bus is not None:
            _link(sys_dir / "bus" / node.bus / "devices" / name, path)
        if node.driver is not None:
            driver_dir = sys_dir / "bus" / (node.bus or "usb") / "drivers" / node.driver
            driver_dir.mkdir(parents=True, exist_ok=True)
            _link(path / "driver", driver_dir)
    return root


def usb_device(
    devpath: str,
    vid: str,
    pid: str,
    *,
    product: str = "",
    manufacturer: str = "",
    serial: str = "",
    device_class: str = "00",
) -> Node:
    attrs: dict[str, str | bytes] = {
        "idVendor": vid,
        "idProduct": pid,
        "bDeviceClass": device_class,
    }
    attrs |= {
        k: v
        for k, v in (("product", product), ("manufacturer", manufacturer), ("serial", serial))
        if v
    }
    return Node(devpath, attrs, bus="usb", driver="usb")


def usb_interface(
    devpath: str, interface_class: str, driver: str | None = None, **extra: str
) -> Node:
    return Node(
        devpath,
        {"bInterfaceClass": interface_class, "bInterfaceNumber": "00", **extra},
        bus="usb",
        driver=driver,
    )


# -- Raspberry Pi 4 B -----------------------------------------------------------------

PI4_USB = "/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb1"
PI4_SOC = "/devices/platform/soc"


def _acm(port: str, n: int, vid: str, pid: str, product: str) -> list[Node]:
    dev = f"{PI4_USB}/1-1/1-1.3/{port}"
    return [
        usb_device(dev, vid, pid, product=product),
        usb_interface(f"{dev}/{port}:1.0", "02", "cdc_acm"),
        Node(f"{dev}/{port}:1.0/tty/ttyACM{n}", {"dev": f"166:{n}"}, cls="tty"),
    ]


def rpi4() -> list[Node]:
    """Raspberry Pi 4 B: CSI camera, three CDC ACM devices behind hubs, POS58 printer, ACR39U."""
    nodes = [
        usb_device(PI4_USB, "1d6b", "0002", product="xHCI Host Controller", device_class="09"),
        usb_device(f"{PI4_USB}/1-1", "2109", "3431", product="USB2.0 Hub", device_class="09"),
        usb_device(
            f"{PI4_USB}/1-1/1-1.3", "1a40", "0101", product="USB 2.0 Hub", device_class="09"
        ),
        *_acm("1-1.3.2", 0, "2341", "0043", "Arduino Uno"),
        *_acm("1-1.3.3", 1, "1a86", "55d4", "USB Single Serial"),
        *_acm("1-1.3.4", 2, "1a86", "55d4", "USB Single Serial"),
        # POS58 slip printer on usblp
        usb_device(
            f"{PI4_USB}/1-1/1-1.4", "0416", "5011", product="POS58 Printer USB", serial="Printer"
        ),
        usb_interface(
            f"{PI4_USB}/1-1/1-1.4/1-1.4:1.0",
            "07",
            "usblp",
            ieee1284_id="MFG:STMicroelectronics;CMD:ESC/POS;MDL:POS58;CLS:PRINTER;",
        ),
        Node(f"{PI4_USB}/1-1/1-1.4/1-1.4:1.0/usbmisc/lp0", {"dev": "180:0"}, cls="usbmisc"),
        # ACR39U chip card reader (CCID), seen by pcscd as "ACS ACR39U ICC Reader 00 00"
        usb_device(
            f"{PI4_USB}/1-1/1-1.1", "072f", "b100", product="ACR39U ICC Reader", manufacturer="ACS"
        ),
        usb_interface(f"{PI4_USB}/1-1/1-1.1/1-1.1:1.0", "0b"),
        # CSI camera and the SoC's codec, ISP and HEVC nodes (v4l2-ctl --list-devices)
        Node(
            f"{PI4_SOC}/fe801000.csi/video4linux/video0",
            {"name": "unicam-image", "index": "0"},
            cls="video4linux",
        ),
    ]
    for n, name in (
        (10, "bcm2835-codec-decode"),
        (11, "bcm2835-codec-encode"),
        (12, "bcm2835-codec-isp"),
        (18, "bcm2835-codec-image_fx"),
        (31, "bcm2835-codec-encode_image"),
        (13, "bcm2835-isp0-output0"),
        (14, "bcm2835-isp0-capture1"),
        (15, "bcm2835-isp0-capture2"),
        (16, "bcm2835-isp0-capture3"),
        (19, "rpivid"),
    ):
        nodes.append(
            Node(
                f"{PI4_SOC}/soc:bcm2835-codec/video4linux/video{n}",
                {"name": name},
                cls="video4linux",
            )
        )
    nodes += [
        Node(f"{PI4_SOC}/fe200000.gpio/gpiochip0", {}, bus="gpio"),
        Node(
            f"{PI4_SOC}/fe200000.gpio/gpio/gpiochip512",
            {"label": "pinctrl-bcm2711", "ngpio": "58", "base": "512"},
            cls="gpio",
            device=f"{PI4_SOC}/fe200000.gpio/gpiochip0",
        ),
        Node(f"{PI4_SOC}/soc:firmware/soc:firmware:gpio/gpiochip1", {}, bus="gpio"),
        Node(
            f"{PI4_SOC}/soc:firmware/soc:firmware:gpio/gpio/gpiochip570",
            {"label": "raspberrypi-exp-gpio", "ngpio": "8", "base": "570"},
            cls="gpio",
            device=f"{PI4_SOC}/soc:firmware/soc:firmware:gpio/gpiochip1",
        ),
        Node(
            f"{PI4_SOC}/fe804000.i2c/i2c-1/i2c-dev/i2c-1",
            {"name": "bcm2835 (i2c@7e804000)"},
            cls="i2c-dev",
        ),
    ]
    return nodes


PI4_PCSC = ("ACS ACR39U ICC Reader 00 00",)

# -- Raspberry Pi 3 B: a CH340 USB-serial adapter -----------------------------------

PI3_USB = "/devices/platform/soc/3f980000.usb/usb1"


def rpi3() -> list[Node]:
    """Raspberry Pi 3 B with a CH340 RS-485/serial adapter (no serial number) on port 1-1.2."""
    dev = f"{PI3_USB}/1-1/1-1.2"
    return [
        usb_device(PI3_USB, "1d6b", "0002", product="DWC OTG Controller", device_class="09"),
        usb_device(f"{PI3_USB}/1-1", "0424", "9514", device_class="09"),
        usb_device(dev, "1a86", "7523", product="USB2.0-Serial", device_class="ff"),
        usb_interface(f"{dev}/1-1.2:1.0", "ff", "ch341"),
        Node(
            f"{dev}/1-1.2:1.0/ttyUSB0", {"port_number": "0"}, bus="usb-serial", driver="ch341-uart"
        ),
        Node(f"{dev}/1-1.2:1.0/ttyUSB0/tty/ttyUSB0", {"dev": "188:0"}, cls="tty"),
    ]


# -- Raspberry Pi 5: GPIO on the RP1, no camera attached --------------------------------

PI5_AXI = "/devices/platform/axi"


def rpi5() -> list[Node]:
    """Raspberry Pi 5 (early kernel): five GPIO chips, the header on pinctrl-rp1; codec nodes only."""
    nodes = []
    chips = (
        ("107d508500.gpio", "gpio-brcmstb@107d508500", 32),
        ("107d508520.gpio", "gpio-brcmstb@107d508520", 4),
        ("107d517c00.gpio", "gpio-brcmstb@107d517c00", 17),
        ("107d517c20.gpio", "gpio-brcmstb@107d517c20", 6),
        ("1000120000.pcie/1f000d0000.gpio", "pinctrl-rp1", 54),
    )
    base = 512
    for n, (where, label, lines) in enumerate(chips):
        chip_dir = f"{PI5_AXI}/{where}/gpiochip{n}"
        nodes.append(Node(chip_dir, {}, bus="gpio"))
        nodes.append(
            Node(
                f"{PI5_AXI}/{where}/gpio/gpiochip{base}",
                {"label": label, "ngpio": str(lines), "base": str(base)},
                cls="gpio",
                device=chip_dir,
            )
        )
        base += lines
    nodes.append(
        Node(
            f"{PI5_AXI}/1000800000.codec/video4linux/video19", {"name": "rpivid"}, cls="video4linux"
        )
    )
    nodes += [
        Node(
            f"{PI5_AXI}/1000880000.pisp_be/video4linux/video{n}",
            {"name": f"pispbe-{n}"},
            cls="video4linux",
        )
        for n in range(20, 24)
    ]
    return nodes
