"""The PC/SC test stack: one pcscd per machine with vsmartcard's vpcd reader driver.

pcscd 1.9.9 always serves /run/pcscd/pcscd.comm (it ignores PCSCLITE_CSOCK_NAME),
so every test session on the machine (other checkouts, CI, other engineers' runs,
at other commits) shares one instance.  A session reuses the running pcscd or
starts one, detached (it is nobody's child), and never stops it at its end: it
cannot know that no session of an older checkout still uses it.  A session that
stopped the pcscd it had started while an overlapping run used it was the
"cardReader stays OFFLINE" flake of the CPU-hog runs ("SCardEstablishContext:
Service not available" for every later test of the other run); runs overlap
more on a loaded machine.  A pcscd left running is what Debian's socket-activated
pcscd gives a developer machine anyway.

Each session holds a shared lock on :data:`USERS_LOCK` while it uses pcscd, so
the restart test restarts it only when no other session uses it, and only a
pcscd a test session started (:data:`STARTED_PID`); :data:`START_LOCK`
serializes joining, starting and restarting.  Virtual cards take vpcd's two
slots in turn under advisory locks (``devices/sim/card_reader/pcsc.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from devices.sim.card_reader.pcsc import VPCD_SLOTS, slot_lock_path
from devices.sim.card_reader.vcard.vpcd import VPCD_BASE_PORT

PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
#: pcscd writes its pid here (also with ``-f``).
PCSCD_PID = Path("/run/pcscd/pcscd.pid")
#: Every test session using pcscd holds a shared flock on this file; an exclusive
#: one means no other session uses pcscd (to restart it).
USERS_LOCK = Path(tempfile.gettempdir()) / "kioskd-pcscd-users.lock"
#: Held exclusively to join pcscd's users (starting it if needed) or to restart it.
START_LOCK = Path(tempfile.gettempdir()) / "kioskd-pcscd-start.lock"
#: The pid of a pcscd a test session started (only such a pcscd is ever restarted).
STARTED_PID = Path(tempfile.gettempdir()) / "kioskd-pcscd-started.pid"
VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
_START_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 5.0
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


def _read_pid(path: Path) -> int | None:
    try:
        # pcscd 1.9.9 ends its pid file with a NUL byte ("1577\n\0").
        return int(path.read_text(encoding="ascii").replace("\0", "").strip())
    except (OSError, ValueError):
        return None


def _is_pcscd(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="ascii").strip() == "pcscd"
    except OSError:
        return False


def _started_by_tests() -> int | None:
    """The pid of the running pcscd if a test session started it, else None."""
    pid = _read_pid(STARTED_PID)
    if pid is None or pid != _read_pid(PCSCD_PID) or not _is_pcscd(pid):
        return None
    return pid


@contextlib.contextmanager
def _starting() -> Iterator[None]:
    """Hold :data:`START_LOCK` (always taken before :data:`USERS_LOCK`: no deadlock)."""
    with START_LOCK.open("ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@dataclass
class Pcscd:
    """The machine's pcscd as this session uses it (see the module docstring)."""

    log: Path
    users: IO[bytes] | None = None

    @property
    def owned(self) -> bool:
        """The running pcscd was started by a test session (so a test may restart it)."""
        return _started_by_tests() is not None

    def acquire(self) -> None:
        """Join pcscd's users, starting one if none runs."""
        with _starting():
            self.users = USERS_LOCK.open("ab")
            fcntl.flock(self.users, fcntl.LOCK_SH)
            if not pcscd_running():
                self.start()

    def release(self) -> None:
        """Leave pcscd's users (pcscd keeps running for the other sessions)."""
        if self.users is not None:
            self.users.close()
            self.users = None

    @contextlib.contextmanager
    def alone(self) -> Iterator[bool]:
        """Hold pcscd exclusively if no other session uses it; yields whether it could."""
        assert self.users is not None
        with _starting():
            fcntl.flock(self.users, fcntl.LOCK_UN)
            try:
                fcntl.flock(self.users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fcntl.flock(self.users, fcntl.LOCK_SH)
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(self.users, fcntl.LOCK_SH)

    def start(self) -> None:
        """Start ``pcscd -f``, detached, and wait until vpcd's first slot listens.

        vpcd binds its ports without SO_REUSEADDR, so for a minute after a pcscd
        that closed card connections first, a new one cannot bind ("Address
        already in use") and runs without readers: retry until it can.
        """
        until = time.monotonic() + _BIND_RETRY_S
        while True:
            self._spawn()
            pid = self._wait_listening(time.monotonic() + _START_TIMEOUT_S)
            if pid is not None:
                STARTED_PID.write_text(f"{pid}\n", encoding="ascii")
                return
            _terminate(_read_pid(PCSCD_PID))
            if time.monotonic() > until:
                pytest.fail(f"pcscd never served vpcd's readers; see {self.log}")
            time.sleep(1)

    def _spawn(self) -> None:
        PCSCD_PID.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            # setsid --fork: pcscd is not this process's child, so it outlives this
            # session (and its Ctrl-C) for the other sessions that use it.
            subprocess.run(
                ["setsid", "--fork", "pcscd", "-f"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                check=True,
            )

    @staticmethod
    def _wait_listening(until: float) -> int | None:
        """pcscd's pid once it serves vpcd's first slot; None if it does not by ``until``."""
        # The pid file can exist and still be empty: pcscd creates it, then writes it.
        while (pid := _read_pid(PCSCD_PID)) is None or not (
            pcscd_running() and _listening(VPCD_BASE_PORT)
        ):
            if time.monotonic() > until:
                return None
            time.sleep(0.05)
        return pid

    def stop(self) -> None:
        """Stop the running pcscd if a test session started it (any other is left alone)."""
        pid = _started_by_tests()
        if pid is not None:
            _terminate(pid)
        STARTED_PID.unlink(missing_ok=True)


def _terminate(pid: int | None) -> None:
    """SIGTERM pcscd ``pid`` and wait until it is gone (SIGKILL after a while)."""
    if pid is None or not _is_pcscd(pid):
        return
    until = time.monotonic() + _STOP_TIMEOUT_S
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        while _is_pcscd(pid):
            if time.monotonic() > until:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    """pcscd with vpcd, shared with every other test session on this machine."""
    if not (shutil.which("pcscd") and shutil.which("setsid") and VPCD_CONF.exists()):
        pytest.fail("pcscd and vsmartcard-vpcd are not installed: run ./dev test")
    daemon = Pcscd(tmp_path_factory.mktemp("pcscd") / "pcscd.log")
    daemon.acquire()
    try:
        if not _listening(VPCD_BASE_PORT):
            pytest.fail("a pcscd runs on this machine without vpcd's readers; stop it or add vpcd")
        yield daemon
    finally:
        daemon.release()


@contextlib.contextmanager
def all_vpcd_slots() -> Iterator[None]:
    """Hold every vpcd slot (waiting for other virtual cards to finish), e.g. to restart pcscd."""
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
