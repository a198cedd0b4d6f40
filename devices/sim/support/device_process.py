"""An emulated serial device in a process of its own, that outlives a crashed daemon.

A real acceptor on its own power supply keeps its state when the daemon dies;
so do the ccTalk coin acceptor and the SSP note validator of the wire
simulators.  Both halves of that arrangement live here, once:

- the device's side, :func:`run_process` (:class:`ProcessRunner`): serves the
  device on a socat pty pair and takes control requests (one JSON object a
  line) on a Unix socket; prints ``ready`` once both serve; records ``{"pid",
  "control"}`` in its state file, and stops by itself within
  :data:`STATE_CHECK_S` once that file is gone or names another process.
  ``stop`` ends it (as SIGTERM does); every other request goes to the device's
  :data:`Control` for its ``action`` (an unknown one is answered with an
  error), and ``stats`` answers are given the process's ``pid``.
- the daemon's side, :class:`DeviceProcess`: reconnects to the device a killed
  run left (when it answers with the same settings) or starts one in a session
  of its own, without the parent-death signal of the daemon's other children;
  stops it at a graceful stop.

The control socket lives under ``$XDG_RUNTIME_DIR`` (else the temp folder),
named from the device's folder, because a Unix socket's path is limited to 107
bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from devices.errors import Offline
from devices.sim.support.pty import PtyPair

log = logging.getLogger(__name__)

#: How long a new device process may take to say ``ready``, in s.
SPAWN_TIMEOUT_S = 10.0
#: How long a control request may take to be answered, in s.
CONTROL_TIMEOUT_S = 2.0
#: How long a device process told to stop may take to exit before it is killed, in s.
STOP_TIMEOUT_S = 3.0
#: Longest Unix socket path (``sun_path`` holds 108 bytes with the NUL).
UNIX_PATH_MAX = 107
#: How often a device run with ``--state-file`` checks that the file still names it, in s.
STATE_CHECK_S = 2.0

T = TypeVar("T")
P = TypeVar("P")
Request = dict[str, Any]
#: Answers one control request (a decoded JSON object) with a JSON object; a
#: ``ValueError`` or ``KeyError`` (or msgspec's errors) becomes ``{"error": ...}``.
Control = Callable[[Request], Awaitable[Request]]


class StateRecord(msgspec.Struct, frozen=True):
    """``--state-file``: which process is the device and where its control socket is."""

    pid: int
    control: str


def read_state(path: Path) -> StateRecord | None:
    """The record at ``path``; None when missing or unreadable (a crash mid-write, a stranger)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=StateRecord)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def _write_state(path: Path, record: StateRecord) -> None:
    partial = path.with_name(path.name + ".new")
    partial.write_bytes(msgspec.json.encode(record))
    partial.replace(path)  # whole or absent, never half written


def control_path(folder: Path, prefix: str) -> Path:
    """The control socket of the device whose files are in ``folder``.

    Raises:
        Offline: the path would exceed :data:`UNIX_PATH_MAX` bytes.

    """
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    path = base / f"kioskd-{prefix}-{digest}.sock"
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise Offline(f"{path} is too long for a Unix socket: set a shorter TMPDIR")
    return path


# -- the device's side -----------------------------------------------------------------------


def process_arguments(description: str) -> argparse.ArgumentParser:
    """The command line every device process takes; the device adds its own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--pty", required=True, help="path of the driver's end of the pty pair")
    parser.add_argument("--control", required=True, help="Unix socket for control commands")
    parser.add_argument(
        "--state-file",
        help="write the pid and control socket here once ready; stop when it names another",
    )
    return parser


class ProcessRunner:
    """The device as a process: its control clients, how it stops, where it is recorded.

    Args:
        args: the parsed :func:`process_arguments`.
        serve: serves the device on the pty at the given path until cancelled.
        controls: the device's control requests by ``action``.

    """

    def __init__(
        self,
        args: argparse.Namespace,
        *,
        serve: Callable[[Path], Coroutine[Any, Any, None]],
        controls: Mapping[str, Control],
    ) -> None:
        self.args = args
        self.serve = serve
        self.controls = controls
        self.stop = asyncio.Event()
        self.writers: set[asyncio.StreamWriter] = set()

    async def answer(self, request: Request) -> Request:
        """Answer ``stop`` here, the rest with the device's control; ``stats`` gets the pid."""
        action = request.get("action")
        if action == "stop":
            self.stop.set()
            return {}
        control = self.controls.get(action) if isinstance(action, str) else None
        if control is None:
            return {"error": f"unknown action {action!r}"}
        reply = await control(request)
        if action == "stats":
            reply["pid"] = os.getpid()
        return reply

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one control connection until it closes."""
        self.writers.add(writer)
        try:
            with contextlib.closing(writer):
                while line := await reader.readline():
                    try:
                        request = msgspec.json.decode(line, type=dict[str, Any])
                        reply = await self.answer(request)
                    except (
                        msgspec.ValidationError,
                        msgspec.DecodeError,
                        ValueError,
                        KeyError,
                    ) as exc:
                        reply = {"error": str(exc)}
                    writer.write(msgspec.json.encode(reply) + b"\n")
                    await writer.drain()
        except ConnectionError:
            pass  # the client went (a daemon killed mid-request): nothing to answer
        finally:
            self.writers.discard(writer)

    def owns(self, path: Path) -> bool:
        """True while the state file names this process."""
        record = read_state(path)
        return record is not None and record.pid == os.getpid()

    def displaced(self, path: Path) -> bool:
        """True when the state file names another process."""
        record = read_state(path)
        return record is not None and record.pid != os.getpid()

    async def watch_state(self, path: Path) -> None:
        """Stop once ``path`` is gone (the board's state was removed) or names another process.

        Displaced by another process, it leaves at once: the pty links and the
        control socket are that process's now, and a clean stop would remove them.
        """
        while self.owns(path):  # noqa: ASYNC110 - other processes change the file
            await asyncio.sleep(STATE_CHECK_S)
        log.warning("%s no longer names this process: stopping", path)
        if self.displaced(path):
            logging.shutdown()
            os._exit(0)  # socat goes with it (parent-death signal)
        self.stop.set()

    async def run(self) -> None:
        """Serve until ``stop``, SIGTERM or SIGINT.

        Raises:
            Offline: socat is missing or the pty cannot be opened.

        """
        args = self.args
        host, control = Path(args.pty), Path(args.control)
        state = Path(args.state_file) if args.state_file else None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        async with await PtyPair.start(host, host.with_name(host.name + ".device")) as pair:
            server = await asyncio.start_unix_server(self.client, path=control)
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(self.serve(pair.device), name="device")]
                    if state is not None:
                        _write_state(state, StateRecord(os.getpid(), str(control)))
                        tasks.append(group.create_task(self.watch_state(state), name="state"))
                    print("ready", flush=True)  # noqa: T201 - the parent waits for this line
                    await self.stop.wait()
                    for task in tasks:
                        task.cancel()
            finally:
                server.close()
                for writer in list(self.writers):  # so that wait_closed() has none to wait for
                    writer.close()
                await server.wait_closed()
                self.forget(control, state)

    def forget(self, control: Path, state: Path | None) -> None:
        """Remove the control socket, and the state file while it names this process."""
        control.unlink(missing_ok=True)
        if state is not None and self.owns(state):
            state.unlink()


def fault_control(apply: Callable[[P], None], params: type[P]) -> Control:
    """The ``fault`` control of a device process: ``apply`` the request read as ``params``.

    ``{"action": "fault", ...}`` (the fault's parameters, as the wire simulator sends
    them) -> ``{}``; parameters that do not fit ``params`` are answered with an error.
    """

    async def fault(request: Request) -> Request:
        apply(msgspec.convert(request, params))
        return {}

    return fault


def run_process(
    args: argparse.Namespace,
    *,
    serve: Callable[[Path], Coroutine[Any, Any, None]],
    controls: Mapping[str, Control],
) -> None:
    """Run a device process (a module's ``main``) until it is stopped or its pty is gone.

    Warnings and errors are logged to stderr (the daemon's side keeps them in
    ``device.log``).  Arguments as for :class:`ProcessRunner`.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(Offline):
        asyncio.run(ProcessRunner(args, serve=serve, controls=controls).run())


# -- the daemon's side -----------------------------------------------------------------------


class _Control:
    """A device process's control socket: one request at a time, reconnected after a failure."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
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

    async def call(self, request: Request, answer: type[T], timeout_s: float) -> T:
        """Send ``request``; return its answer.

        Raises:
            Offline: no process answers, it did not answer within ``timeout_s``
                seconds, or it refused the request.

        """
        async with self._lock:
            line = await self._exchange(request, timeout_s)
        try:
            reply = msgspec.json.decode(line)
            if isinstance(reply, dict) and "error" in reply:
                raise Offline(f"{self.what} refused {request}: {reply['error']}")
            return msgspec.convert(reply, answer)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Offline(f"{self.what} answered {line!r}: {exc}") from exc

    async def _exchange(self, request: Request, timeout_s: float) -> bytes:
        if not await self.connect() or self._streams is None:
            raise Offline(f"{self.what} process is gone ({self.path} does not answer)")
        reader, writer = self._streams
        answered = False
        try:
            writer.write(msgspec.json.encode(request) + b"\n")
            async with asyncio.timeout(timeout_s):
                await writer.drain()
                line = await reader.readline()
            answered = line.endswith(b"\n")
        except (OSError, TimeoutError) as exc:
            raise Offline(f"{self.what} process does not answer: {exc!r}") from exc
        finally:
            if not answered:  # a late answer would be taken for the next request's
                self.close()
        return line

    async def stop_process(self, pid: int, module: str) -> None:
        """Tell process ``pid`` to stop and wait until it exits; SIGKILL after a timeout."""
        try:
            await self.call({"action": "stop"}, dict, CONTROL_TIMEOUT_S)
            if self._streams is not None:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    while await self._streams[0].read(4096):  # EOF: the process exited
                        pass
        except (Offline, OSError, TimeoutError):
            if runs_module(pid, module):
                log.warning("%s (pid %d) did not stop: killed", self.what, pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection (idempotent; the next call connects again)."""
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


def runs_module(pid: int, module: str) -> bool:
    """True when ``pid`` runs ``python -m module`` (so a recycled pid is never signalled)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return module.encode() in cmdline


class DeviceProcess:
    """The daemon's handle on a device process.

    Args:
        module: the device's module, run as ``python -m module``.
        folder: where its files live (the pty link ``line``, the record
            ``device.json``, its log ``device.log``), with the board's durable state.
        prefix: names its control socket (``kioskd-{prefix}-...``).
        what: names it in logs and errors (``the simulated acceptor``).

    """

    def __init__(self, module: str, folder: Path, *, prefix: str, what: str) -> None:
        self.module = module
        self.folder = folder
        self.prefix = prefix
        self.what = what
        #: The pty link the driver opens.
        self.line = folder / "line"
        self.record = folder / "device.json"
        self._control: _Control | None = None
        self._proc: asyncio.subprocess.Process | None = None
        #: The device process's pid once started or found.
        self.pid: int | None = None

    async def start(self, options: Sequence[str], matches: Callable[[Request], bool]) -> None:
        """Reconnect to the device a killed run left, else start one; return once it serves.

        ``options`` are the device's own command-line options; a live device is
        taken over when its ``stats`` answer ``matches``.  One that answers
        otherwise, or that no record names, is stopped first (up to
        :data:`STOP_TIMEOUT_S`); one that does not answer is killed.

        Raises:
            Offline: socat is missing, the device did not start within
                :data:`SPAWN_TIMEOUT_S`, or its control socket path is too long.
            OSError: the folder cannot be created.

        """
        control = control_path(self.folder, self.prefix)
        await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)
        if not await self._adopt(control, matches):
            await self._spawn(options, control)

    async def _adopt(self, control: Path, matches: Callable[[Request], bool]) -> bool:
        """Take over a live device recorded for this board; stop any other one found."""
        record = read_state(self.record)
        paths = (
            [control] if record is None else list(dict.fromkeys([Path(record.control), control]))
        )
        for path in paths:
            conn = _Control(path, self.what)
            if not await conn.connect():
                continue
            try:
                stats = await conn.call({"action": "stats"}, dict[str, Any], CONTROL_TIMEOUT_S)
            except Offline:
                continue
            pid = int(stats.get("pid", 0))
            if record is not None and pid == record.pid and matches(stats):
                log.info("%s (pid %d) outlived the last run; its state is kept", self.what, pid)
                self._control, self.pid = conn, pid
                return True
            log.info(
                "stopping %s (pid %d): %s",
                self.what,
                pid,
                "another board's or unrecorded" if record is None else "its settings changed",
            )
            await conn.stop_process(pid, self.module)
        if record is not None and runs_module(record.pid, self.module):  # alive, not answering
            log.warning("killing the hung %s %d", self.what, record.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGKILL)
        return False

    async def _spawn(self, options: Sequence[str], control: Path) -> None:
        argv = [
            sys.executable,
            "-m",
            self.module,
            f"--pty={self.line}",
            f"--control={control}",
            f"--state-file={self.record}",
            *options,
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
        if proc.stdout is None:
            raise RuntimeError("the device process's stdout must be a pipe")
        try:
            async with asyncio.timeout(SPAWN_TIMEOUT_S):
                ready = await proc.stdout.readline()
        except TimeoutError:
            raise Offline(f"{self.what} did not start in {SPAWN_TIMEOUT_S:g} s") from None
        conn = _Control(control, self.what)
        if ready != b"ready\n" or not await conn.connect():
            raise Offline(f"{self.what} did not start (see {self.folder}/device.log)")
        return conn

    async def aclose(self) -> None:
        """Stop the device process (a graceful stop powers the simulated device off)."""
        control, self._control = self._control, None
        if control is not None and self.pid is not None:
            await control.stop_process(self.pid, self.module)
        proc, self._proc = self._proc, None
        if proc is not None:  # started by this run: reap it
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()

    @property
    def running(self) -> bool:
        """True once started or adopted, until :meth:`aclose`."""
        return self._control is not None

    async def call(
        self, request: Request, answer: type[T], timeout_s: float = CONTROL_TIMEOUT_S
    ) -> T:
        """Send a control request to the device.

        Raises:
            Offline: the process is gone or did not answer within ``timeout_s`` seconds.
            RuntimeError: not started.

        """
        if self._control is None:
            raise RuntimeError(f"{self.what} is not running")
        return await self._control.call(request, answer, timeout_s)
