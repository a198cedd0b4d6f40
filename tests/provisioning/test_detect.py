"""Hardware detection against sysfs trees rebuilt from listings recorded on real boards."""

from __future__ import annotations

from pathlib import Path

from provisioning.detect import Usb, _has_pos_usage_page, detect
from tests.provisioning import boards


def test_raspberry_pi_4(tmp_path: Path) -> None:
    found = detect(boards.build(tmp_path, boards.rpi4()), pcsc=lambda: boards.PI4_PCSC)
    serial = found.of_kind("serial")
    assert [(s.node, s.usb.vid_pid if s.usb else None) for s in serial] == [
        ("/dev/ttyACM0", "2341:0043"),
        ("/dev/ttyACM1", "1a86:55d4"),
        ("/dev/ttyACM2", "1a86:55d4"),
    ]
    assert serial[0].usb is not None
    assert serial[0].usb.port == "1-1.3.2"
    [printer] = found.of_kind("printer")
    assert printer.node == "/dev/usb/lp0"
    assert printer.usb == Usb("0416", "5011", "", "POS58 Printer USB", "Printer", "1-1.4")
    assert "ESC/POS" in printer.detail["ieee1284"]
    [reader] = found.of_kind("smartcard")
    assert reader.usb is not None
    assert reader.usb.vid_pid == "072f:b100"
    assert found.pcsc_readers == ("ACS ACR39U ICC Reader 00 00",)
    # The SoC's codec, ISP and HEVC nodes are not cameras; the CSI receiver is.
    [camera] = found.of_kind("camera")
    assert (camera.node, camera.label, camera.detail) == (
        "/dev/video0",
        "unicam-image",
        {"bus": "csi"},
    )
    chips = found.of_kind("gpiochip")
    assert [(c.node, c.label, c.detail["lines"]) for c in chips] == [
        ("/dev/gpiochip0", "pinctrl-bcm2711", "58"),
        ("/dev/gpiochip1", "raspberrypi-exp-gpio", "8"),
    ]
    assert [i.node for i in found.of_kind("i2c")] == ["/dev/i2c-1"]


def test_raspberry_pi_3_usb_serial_adapter(tmp_path: Path) -> None:
    found = detect(boards.build(tmp_path, boards.rpi3()), pcsc=tuple)
    [port] = found.of_kind("serial")
    assert port.node == "/dev/ttyUSB0"
    assert port.usb == Usb("1a86", "7523", "", "USB2.0-Serial", "", "1-1.2")
    assert port.detail == {"driver": "ch341-uart"}
    assert found.of_kind("printer") == found.of_kind("camera") == []


def test_raspberry_pi_5_gpio_and_no_camera(tmp_path: Path) -> None:
    found = detect(boards.build(tmp_path, boards.rpi5()), pcsc=tuple)
    chips = {c.label: (c.node, c.detail["lines"]) for c in found.of_kind("gpiochip")}
    assert chips["pinctrl-rp1"] == ("/dev/gpiochip4", "54")
    assert len(chips) == 5
    assert found.of_kind("camera") == []


def test_nothing_attached(tmp_path: Path) -> None:
    found = detect(tmp_path, pcsc=tuple)
    assert found.devices == ()
    assert found.pcsc_readers == ()


def test_hid_pos_usage_page() -> None:
    # HID POS Usage Tables 1.02, bar code scanner: Usage Page (0x8C), Usage (Bar Code Scanner 0x02)
    assert _has_pos_usage_page(bytes.fromhex("058c0902a101"))
    assert _has_pos_usage_page(bytes.fromhex("068c000902a101"))
    # a keyboard: Usage Page (Generic Desktop), Usage (Keyboard), key codes 0x8c in data items
    assert not _has_pos_usage_page(bytes.fromhex("05010906a1010507198c298c"))
