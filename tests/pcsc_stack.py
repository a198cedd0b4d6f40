"""The PC/SC test stack: one pcscd per machine with vsmartcard's vpcd reader driver.

pcscd 1.9.9 always serves /run/pcscd/pcscd.comm (it ignores PCSCLITE_CSOCK_NAME),
so every test of the session, and every other process on the machine, shares
one instance.  The session fixture reuses a running pcscd or starts ``pcscd -f``
as a child process (before any virtual card: a card does not reconnect to a
restarted pcscd by itself); virtual cards take vpcd's two slots in turn under
advisory locks (``devices/sim/vcard/simulator.py``).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from devices.sim.vcard.simulator import VPCD_SLOTS, slot_lock_path
from devices.sim.vcard.vpcd import VPCD_BASE_PORT

PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
_START_TIMEOUT_S = 5.0
#: TCP TIME_WAIT lasts 60 s on Linux.
_BIND_RETRY_S = 75.0


def pcscd_running() -> bool:
    """True when some pcscd answers on its socket."""
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(PCSCD_SOCKET))
        except OSError:
            return False
    return True


def _listening(port: int) -> bool:
    """True when a TCP socket listens on ``port`` (read from /proc: probing would insert a card)."""
    want = f":{port:04X} "
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), Path(table).open(encoding="ascii") as rows:
            if any(want in row and row.split()[3] == "0A" for row in rows):
                return True
    return False


@dataclass
class Pcscd:
    """The session's pcscd; ``proc`` is None when another process's pcscd is reused."""

    log: Path
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None

    @property
    def owned(self) -> bool:
        return self.proc is not None

    def start(self) -> None:
        """Start ``pcscd -f`` and wait until vpcd's first slot listens.

        vpcd binds its ports without SO_REUSEADDR, so for a minute after a pcscd
        that closed card connections first, a new one cannot bind ("Address
        already in use") and runs without readers: retry until it can.
        """
        until = time.monotonic() + _BIND_RETRY_S
        while True:
            self._spawn()
            if self._wait_listening(time.monotonic() + _START_TIMEOUT_S):
                return
            self.stop()
            if time.monotonic() > until:
                pytest.fail(f"pcscd never served vpcd's readers; see {self.log}")
            time.sleep(1)

    def _spawn(self) -> None:
        self.log_file = self.log.open("ab")
        self.proc = subprocess.Popen(
            ["pcscd", "-f"], stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=self.log_file
        )

    def _wait_listening(self, until: float) -> bool:
        assert self.proc is not None
        while not (pcscd_running() and _listening(VPCD_BASE_PORT)):
            if self.proc.poll() is not None or time.monotonic() > until:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    """pcscd with vpcd: reused if one runs on this machine, else a child of this session."""
    if shutil.which("pcscd") is None or not VPCD_CONF.exists():
        pytest.fail("pcscd and vsmartcard-vpcd are not installed: run ./dev test")
    daemon = Pcscd(tmp_path_factory.mktemp("pcscd") / "pcscd.log")
    if not pcscd_running():
        daemon.start()
    elif not _listening(VPCD_BASE_PORT):
        pytest.fail("a pcscd runs on this machine without vpcd's readers; stop it or add vpcd")
    yield daemon
    daemon.stop()


@contextlib.contextmanager
def all_vpcd_slots() -> Iterator[None]:
    """Hold every vpcd slot (waiting for other virtual cards to finish), e.g. to restart pcscd."""
    import fcntl

    handles = []
    try:
        for slot in range(VPCD_SLOTS):
            handle = slot_lock_path(slot).open("ab")
            handles.append(handle)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        for handle in handles:
            handle.close()


@pytest.fixture(autouse=True)
def _pcsc_stack_for_pcsc_drivers(request: pytest.FixtureRequest) -> None:
    """Start pcscd for tests that run the ``pcsc`` card reader driver (contract suites)."""
    if "drivers" in request.fixturenames:
        drivers = request.getfixturevalue("drivers")
        if drivers.get("cardReader") == "pcsc":
            request.getfixturevalue("pcscd")
