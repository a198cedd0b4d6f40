"""Wire simulator ``cctalk``: the emulated acceptor in a process of its own, on a socat pty pair.

The ``cctalk`` driver runs unchanged: :meth:`CctalkSimulator.driver_settings`
points its ``port`` at a pty link, and the device of
:mod:`devices.sim.cctalk_device`, run as ``python -m devices.sim.cctalk_device``,
answers at the other end with the driver's coin list as its coin table.  The sim
actions are the class's (``insertCoin``, ``fault``), sent over the device's
control socket; a coin the device gives back is published on
``sim/{d}/out/returned`` as the behavioural simulator does.

The device outlives a crashed daemon, as a real acceptor on its own power
supply does: it runs in a session of its own, without the parent-death signal
of the daemon's other children, and its files live with the board's durable
state (``{state_dir}/sim-cctalk/{device}/``: the pty link ``line``, the record
``device.json`` naming its pid and control socket, its log ``device.log``).
:meth:`CctalkSimulator.start` reconnects to the device a killed run left (its
buffer, counter and inhibits kept, so the ledger's recovery reads what a real
board's would) or starts one; :meth:`CctalkSimulator.aclose`, a graceful stop,
stops it.  The control socket lives under ``$XDG_RUNTIME_DIR`` (else the temp
folder) under a name derived from that folder, because a Unix socket's path is
limited to 107 bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, Message, NoResult, sim_action
from devices.coin_acceptor.cctalk_acceptor import CctalkSettings
from devices.errors import InvalidData, Offline

from .cctalk_device import MAX_DELAY_MS, CctalkFaultParams, read_state
from .coin_acceptor import InsertCoinParams, ReturnedCoin
from .wire import WireSimulator

log = logging.getLogger(__name__)

#: How long a new device process may take to say ``ready``, in s.
SPAWN_TIMEOUT_S = 10.0
#: How long a control request may take to be answered, in s (a coin under the ``slow``
#: fault adds its delay).
CONTROL_TIMEOUT_S = 2.0
#: How long a device process told to stop may take to exit before it is killed, in s.
STOP_TIMEOUT_S = 3.0
#: Longest Unix socket path (``sun_path`` holds 108 bytes with the NUL).
UNIX_PATH_MAX = 107

T = TypeVar("T")


class _Stats(msgspec.Struct):
    """The part of the device's ``stats`` answer that tells which device it is."""

    pid: int
    coins: list[int]
    address: int
    checksum: str
    echo: bool


class _Inserted(msgspec.Struct):
    accepted: bool


class _Empty(msgspec.Struct):
    pass


def _is_device(pid: int) -> bool:
    """True when ``pid`` runs the device module (so a recycled pid is never signalled)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"devices.sim.cctalk_device" in cmdline


class _Control:
    """A device process's control socket: one request at a time, reconnected after a failure."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> bool:
        """Connect unless connected; False when no process answers at :attr:`path`."""
        if self._streams is None:
            try:
                async with asyncio.timeout(CONTROL_TIMEOUT_S):
                    self._streams = await asyncio.open_unix_connection(str(self.path))
            except (OSError, TimeoutError):
                return False
        return True

    async def call(
        self, request: dict[str, Any], answer: type[T], timeout_s: float = CONTROL_TIMEOUT_S
    ) -> T:
        """Send ``request``; return its answer.

        Raises:
            Offline: no process answers at :attr:`path`, it did not answer within
                ``timeout_s`` seconds, or it refused the request.

        """
        async with self._lock:
            line = await self._exchange(request, timeout_s)
        try:
            reply = msgspec.json.decode(line)
            if isinstance(reply, dict) and "error" in reply:
                raise Offline(f"the simulated acceptor refused {request}: {reply['error']}")
            return msgspec.convert(reply, answer)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Offline(f"the simulated acceptor answered {line!r}: {exc}") from exc

    async def _exchange(self, request: dict[str, Any], timeout_s: float) -> bytes:
        if not await self.connect() or self._streams is None:
            raise Offline(f"the simulated acceptor process is gone ({self.path} does not answer)")
        reader, writer = self._streams
        answered = False
        try:
            writer.write(msgspec.json.encode(request) + b"\n")
            async with asyncio.timeout(timeout_s):
                await writer.drain()
                line = await reader.readline()
            answered = line.endswith(b"\n")
        except (OSError, TimeoutError) as exc:
            raise Offline(f"the simulated acceptor process does not answer: {exc!r}") from exc
        finally:
            if not answered:  # a late answer would be taken for the next request's
                self.close()
        return line

    async def stop_process(self, pid: int) -> None:
        """Tell process ``pid`` to stop and wait until it exits; SIGKILL after a timeout."""
        try:
            await self.call({"action": "stop"}, _Empty)
            if self._streams is not None:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    while await self._streams[0].read(4096):  # EOF: the process exited
                        pass
        except (Offline, OSError, TimeoutError):
            if _is_device(pid):
                log.warning("the simulated acceptor (pid %d) did not stop: killed", pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection (idempotent; the next call connects again)."""
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


def control_path(folder: Path) -> Path:
    """The control socket of the device whose files are in ``folder``.

    Raises:
        Offline: the path would exceed :data:`UNIX_PATH_MAX` bytes.

    """
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    path = base / f"kioskd-cctalk-{digest}.sock"
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise Offline(f"{path} is too long for a Unix socket: set a shorter TMPDIR")
    return path


class CctalkSimulator(WireSimulator):
    """A ccTalk coin acceptor, in its own process, at the far end of the driver's serial port."""

    device_class: ClassVar[str] = "coinAcceptor"
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"returned": ReturnedCoin}

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        #: Where the device's files live; it outlives the daemon's runtime folder.
        self.folder = env.state_dir / "sim-cctalk" / device_id
        self._link = self.folder / "line"
        self._record = self.folder / "device.json"
        self._settings: CctalkSettings | None = None
        self._control: _Control | None = None
        self._proc: asyncio.subprocess.Process | None = None
        #: The device process's pid once started or found.
        self.pid: int | None = None

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """The driver's settings with ``port`` on the pty link; the device copies its coins."""
        if not isinstance(settings, CctalkSettings):
            raise TypeError(f"the cctalk simulator serves the cctalk driver, not {settings!r}")
        self._settings = settings
        return msgspec.structs.replace(settings, port=str(self._link))

    def _matches(self, stats: _Stats) -> bool:
        s = self._settings
        return s is not None and (stats.coins, stats.address, stats.checksum, stats.echo) == (
            list(s.coins),
            s.address,
            s.checksum.value,
            s.echo,
        )

    async def start(self) -> None:
        """Reconnect to the device a killed run left, else start one; return once it serves.

        A device that answers with other settings, or that no record names, is
        stopped first (up to :data:`STOP_TIMEOUT_S`); one that does not answer within
        :data:`CONTROL_TIMEOUT_S` is killed.

        Raises:
            Offline: socat is missing, the device process did not start within
                :data:`SPAWN_TIMEOUT_S`, or its control socket path is too long.
            OSError: the device's folder cannot be created under ``state_dir``.

        """
        settings = self._settings
        if settings is None:
            raise RuntimeError("driver_settings() must run before start()")
        control = control_path(self.folder)
        await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)
        if not await self._adopt(control):
            await self._spawn(settings, control)

    async def _adopt(self, control: Path) -> bool:
        """Take over a live device recorded for this board; stop any other one found."""
        record = read_state(self._record)
        paths = (
            [control] if record is None else list(dict.fromkeys([Path(record.control), control]))
        )
        for path in paths:
            conn = _Control(path)
            if not await conn.connect():
                continue
            try:
                stats = await conn.call({"action": "stats"}, _Stats)
            except Offline:
                continue
            if record is not None and stats.pid == record.pid and self._matches(stats):
                log.info(
                    "%s: the simulated acceptor (pid %d) outlived the last run; its buffer is kept",
                    self.device_id,
                    stats.pid,
                )
                self._control, self.pid = conn, stats.pid
                return True
            log.info(
                "%s: stopping the simulated acceptor (pid %d): %s",
                self.device_id,
                stats.pid,
                "another board's or unrecorded" if record is None else "its settings changed",
            )
            await conn.stop_process(stats.pid)
        if record is not None and _is_device(record.pid):  # alive but not answering: hung
            log.warning("%s: killing the hung simulated acceptor %d", self.device_id, record.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGKILL)
        return False

    async def _spawn(self, settings: CctalkSettings, control: Path) -> None:
        argv = [
            sys.executable,
            "-m",
            "devices.sim.cctalk_device",
            f"--pty={self._link}",
            f"--control={control}",
            f"--state-file={self._record}",
            f"--coins={','.join(map(str, settings.coins))}",
            f"--address={settings.address}",
            f"--checksum={settings.checksum.value}",
            *(["--echo"] if settings.echo else []),
        ]
        with (self.folder / "device.log").open("ab") as stderr:
            # Its own session and no parent-death signal: it survives the daemon's kill -9
            # and a Ctrl-C meant for the daemon, which stops it in aclose().
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
            )
        try:
            conn = await self._ready(proc, control)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        self._proc, self._control, self.pid = proc, conn, proc.pid

    async def _ready(self, proc: asyncio.subprocess.Process, control: Path) -> _Control:
        """Wait for the new process's ``ready`` line and connect to its control socket.

        Raises:
            Offline: it exited, said something else, or took over :data:`SPAWN_TIMEOUT_S`.

        """
        if proc.stdout is None:
            raise RuntimeError("the device process's stdout must be a pipe")
        try:
            async with asyncio.timeout(SPAWN_TIMEOUT_S):
                ready = await proc.stdout.readline()
        except TimeoutError:
            raise Offline(
                f"the simulated acceptor did not start in {SPAWN_TIMEOUT_S:g} s"
            ) from None
        conn = _Control(control)
        if ready != b"ready\n" or not await conn.connect():
            raise Offline(f"the simulated acceptor did not start (see {self.folder}/device.log)")
        return conn

    async def aclose(self) -> None:
        """Stop the device process (a graceful stop powers the simulated board off)."""
        control, self._control = self._control, None
        if control is not None and self.pid is not None:
            await control.stop_process(self.pid)
        proc, self._proc = self._proc, None
        if proc is not None:  # started by this run: reap it
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()

    async def call(
        self, request: dict[str, Any], answer: type[T], timeout_s: float = CONTROL_TIMEOUT_S
    ) -> T:
        """Send a control request to the device (see :mod:`devices.sim.cctalk_device`).

        Raises:
            InvalidData: the simulator is not running.
            Offline: the device process is gone or did not answer within ``timeout_s`` s.

        """
        if self._control is None:
            raise InvalidData("the simulator is not running")
        return await self._control.call(request, answer, timeout_s)

    @sim_action("insertCoin", InsertCoinParams, "drop a coin into the slot")
    async def sim_insert_coin(self, params: InsertCoinParams) -> NoResult:
        """Drop a coin: the device credits it (read at the next poll) or gives it back.

        Under the ``slow`` fault the coin is validated (and this completes) ``delayMs`` late.
        """
        inserted = await self.call(
            {"action": "insertCoin", "value": params.value},
            _Inserted,
            CONTROL_TIMEOUT_S + MAX_DELAY_MS / 1000,
        )
        if not inserted.accepted:
            self.host.sim_output(self.device_id, "returned", ReturnedCoin(value=params.value))
        return NoResult()

    @sim_action(
        "fault", CctalkFaultParams, "inject a fault (also checksumError, powerCycle, fraud)"
    )
    async def sim_fault(self, params: CctalkFaultParams) -> NoResult:
        """Apply a fault to the device."""
        await self.call({"action": "fault", **msgspec.to_builtins(params)}, _Empty)
        return NoResult()
