"""The guided flow on a pseudo-terminal: a technician answers, reviews, edits and confirms."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from provisioning.plan import sim_devices, to_toml
from tests.provisioning import boards, support

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A child process on a pty; ``expect`` reads until a text appears, ``send`` types a line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.screen = b""

    def expect(self, text: str, timeout: float = 30) -> None:
        until = time.monotonic() + timeout
        while text.encode() not in ANSI.sub(b"", self.screen):
            left = until - time.monotonic()
            assert left > 0, f"no {text!r} on screen:\n{self.text()}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the child closed the pty
                    chunk = b""
                assert chunk, f"the program ended before {text!r}:\n{self.text()}"
                self.screen += chunk

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def text(self) -> str:
        return ANSI.sub(b"", self.screen).decode(errors="replace")

    def finish(self, timeout: float = 60) -> int:
        until = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < until:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.screen += os.read(self.master, 4096)
                except OSError:
                    break
        code = self.proc.wait(max(0.1, until - time.monotonic()))
        os.close(self.master)
        return code


def test_guided_provisioning(tmp_path: Path) -> None:
    sysfs = boards.build(tmp_path / "board", boards.rpi4())
    root = support.make_image(tmp_path / "image")
    # The technician's editor: replaces the proposal with simulated devices (the real
    # drivers' libraries are not on this machine).
    replacement = tmp_path / "devices.toml"
    replacement.write_text(to_toml({"devices": sim_devices()}))
    editor = tmp_path / "editor"
    editor.write_text(f'#!/bin/sh\ncp {replacement} "$1"\n')
    editor.chmod(0o755)
    port, ws_port = support.ports()
    term = Terminal(
        [
            sys.executable,
            "-m",
            "daemon",
            "provision",
            "--root",
            str(root),
            "--sysfs-root",
            str(sysfs),
            "--no-pcsc",
            "--mqtt-port",
            str(port),
            "--ws-port",
            str(ws_port),
            "--kioskd-bin",
            support.KIOSKD_BIN,
        ],
        env={**os.environ, "EDITOR": str(editor), "COLUMNS": "160", "TERM": "xterm"},
    )
    term.expect("Board id")
    term.send("hcm-q6-0042")
    term.expect("Tenant")
    term.send("hcm")
    term.expect("Site")
    term.send("UBND Phường 6")
    term.expect("Fleet broker URL")
    term.send("")
    term.expect("Detected hardware")
    term.expect("Use this device config?")
    screen = term.text()
    for seen in (
        "/dev/ttyACM0",
        "2341:0043",
        "/dev/usb/lp0",
        "0416:5011",
        "unicam-image",
        "pinctrl-bcm2711",
        'driver = "escpos"',
        'driver = "picamera2"',
        "which device is behind it?",
    ):
        assert seen in screen, seen
    term.send("e")
    term.expect('driver = "sim"')
    term.expect("Use this device config?")
    term.send("y")
    assert term.finish() == 0, term.text()
    assert "✓ install into" in term.text()

    config = tomllib.loads((root / "etc/kioskd/kioskd.toml").read_text())
    assert config["board"] == {"id": "hcm-q6-0042", "tenant": "hcm", "site": "UBND Phường 6"}
    assert config["devices"] == sim_devices()
    rules = (root / "etc/udev/rules.d/91-kioskd-devices.rules").read_text()
    assert 'ATTRS{idVendor}=="0416", ATTRS{idProduct}=="5011", ATTRS{serial}=="Printer"' in rules
    assert support.provision(root, "--check").returncode == 0
