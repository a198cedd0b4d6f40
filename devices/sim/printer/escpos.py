"""Wire simulator ``escpos``: an ESC/POS slip printer at the far end of the ``escpos`` driver.

It serves where the driver's ``connection`` points: ``network`` -> a loopback
TCP port (a free one, bound when the daemon starts), ``serial`` or ``file`` ->
a pty whose path is linked at ``{runtime_dir}/{device}.escpos``.  It parses the
byte stream (:mod:`devices.sim.printer.escpos_stream`), prints rasters on a paper roll,
and at each cut saves the slip as ``{runtime_dir}/{device}-slips/slip-NNNN.png``
and publishes it as ``sim/{d}/out/slip``.  It answers ``DLE EOT 1..4`` in real
time from its sensors (:mod:`devices.printer.status`) and ``GS r 1`` once the
bytes before it are printed.

Sim actions, as the behavioural printer's (:mod:`devices.sim.printer.behaviour`):
``paper {level}`` (``full`` loads a roll; ``low`` may add ``remainingDots``: the
roll ends after that many more dot rows, mid-slip if need be), ``cover {open}``,
``fault {kind}``: ``disconnect`` (connections dropped, new ones closed at once;
the pty vanishes), ``hardwareError`` (unrecoverable error), ``jam`` (autocutter
error), ``slow`` (each job takes ``delayMs`` longer to print: ``GS r 1`` is
answered that late, while real-time status answers stay prompt, as on a real
printer), ``garbage`` (every status answer is garbage until ``clear``),
``unresponsive`` (takes bytes, answers nothing), ``clear``.

While the printer is stopped (paper out, cover open, an error) it answers the
real-time requests and discards everything else, and a slip in progress is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import tty
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import ClassVar

import msgspec
from PIL import Image

from devices.base import DeviceEnv, DeviceHost, Message, NoResult
from devices.printer.escpos import EscposSettings
from devices.printer.protocol import PaperLevel
from devices.printer.slip import encode_png
from devices.printer.status import STATUS_COUNT, PrinterStatus
from devices.sim.printer.actions import COVER, ESCPOS_PAPER, CoverParams, EscposPaperParams
from devices.sim.printer.behaviour import SlipOutput
from devices.sim.printer.escpos_stream import (
    Cut,
    EscposParser,
    Init,
    PrintedRequest,
    Raster,
    StatusRequest,
)
from devices.sim.support.faults import FAULT_ACTION, FaultKind, FaultParams
from devices.sim.support.wire import WireSimulator

log = logging.getLogger(__name__)

_GARBAGE = b"\xff\x00"

Send = Callable[[bytes], None]


def _stopped(s: PrinterStatus) -> bool:
    return s.paper_out or s.cover_open or s.cutter_jam or s.mechanical_error


class _Session:
    """One connection's parser and its way back to the driver."""

    def __init__(self, send: Send) -> None:
        self.parser = EscposParser()
        self.send = send


class EscposPrinterSimulator(WireSimulator):
    """A simulated ESC/POS printer on loopback TCP or a pty."""

    device_class: ClassVar[str] = "printer"
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"slip": SlipOutput}

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        #: Where each slip is saved as PNG.
        self.slip_dir = env.runtime_dir / f"{device_id}-slips"
        self.slips = 0
        self._sensors = PrinterStatus()
        self._remaining_dots: int | None = None
        self._fault: FaultKind | None = None
        self._delay_s = 0.0
        self._canvas: list[Image.Image] = []
        self._listener: socket.socket | None = None
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._pty_link: Path | None = None
        self._pty: tuple[int, int] | None = None  # master, slave
        self._pty_task: asyncio.Task[None] | None = None
        self._pty_queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ WireSimulator

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """Point the driver at this printer: a loopback port, or the pty link.

        Raises:
            TypeError: the settings are not the ``escpos`` driver's.
            ValueError: ``usb`` connections cannot be simulated.

        """
        if not isinstance(settings, EscposSettings):
            raise TypeError("the escpos simulator serves the escpos driver only")
        if settings.connection == "network":
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", 0))  # a free port, held until start() listens
            self._listener = listener
            port: int = listener.getsockname()[1]
            return msgspec.structs.replace(settings, host="127.0.0.1", port=port)
        if settings.connection in ("serial", "file"):
            self._pty_link = self.env.runtime_dir / f"{self.device_id}.escpos"
            return msgspec.structs.replace(settings, device=str(self._pty_link))
        raise ValueError("the escpos simulator serves network, serial and file connections")

    async def start(self) -> None:
        """Listen on the port or create the pty; log where slips are saved."""
        self.slip_dir.mkdir(parents=True, exist_ok=True)
        if self._listener is not None:
            self._server = await asyncio.start_server(self._serve_client, sock=self._listener)
            where = f"127.0.0.1:{self._listener.getsockname()[1]}"
        else:
            self._open_pty()
            where = str(self._pty_link)
        log.info(
            "%s: ESC/POS printer simulator on %s; slips saved in %s",
            self.device_id,
            where,
            self.slip_dir,
        )

    async def aclose(self) -> None:
        """Stop serving; drop connections and the pty."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self._drop_clients()  # their handlers see the connection end and return
        self._close_pty()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)

    # ------------------------------------------------------------ transports

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self._fault is FaultKind.DISCONNECT:
            writer.transport.abort()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._clients.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        session = _Session(writer.write)
        try:
            while data := await reader.read(65536):
                await self._process(session, data)
        except ConnectionError:
            pass
        finally:
            self._clients.discard(writer)
            writer.transport.abort()
            if task is not None:
                self._tasks.discard(task)

    def _drop_clients(self) -> None:
        for writer in list(self._clients):
            writer.transport.abort()
        self._clients.clear()

    def _open_pty(self) -> None:
        assert self._pty_link is not None
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no newline translation: a byte pipe like a serial line
        os.set_blocking(master, False)
        self._pty_link.parent.mkdir(parents=True, exist_ok=True)
        self._pty_link.unlink(missing_ok=True)
        self._pty_link.symlink_to(os.ttyname(slave))
        self._pty = (master, slave)
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._pty_readable, master)
        session = _Session(lambda data: self._pty_write(master, data))
        self._pty_task = self._spawn(self._serve_pty(session), "pty")

    def _pty_readable(self, master: int) -> None:
        try:
            data = os.read(master, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: no process has the other end open right now
            return
        self._pty_queue.put_nowait(data)

    def _pty_write(self, master: int, data: bytes) -> None:
        with contextlib.suppress(OSError):  # a closed or full pty: the answer is lost
            os.write(master, data)

    async def _serve_pty(self, session: _Session) -> None:
        while True:
            await self._process(session, await self._pty_queue.get())

    def _close_pty(self) -> None:
        if self._pty is None:
            return
        master, slave = self._pty
        self._pty = None
        asyncio.get_running_loop().remove_reader(master)
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._pty_task is not None:
            self._pty_task.cancel()  # it ends at once: it only waits on the queue
            self._pty_task = None
        self._pty_queue = asyncio.Queue()
        if self._pty_link is not None:
            self._pty_link.unlink(missing_ok=True)

    def _spawn(self, coro: Coroutine[None, None, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"{self.device_id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------ the printer

    @property
    def stopped(self) -> bool:
        """True while the printer does not print (paper out, cover open, an error)."""
        return _stopped(self._sensors)

    def _set(self, **changes: bool) -> None:
        """Change sensor readings; a printer that stops loses the slip it was printing."""
        sensors = dataclasses.replace(self._sensors, **changes)
        self._sensors = dataclasses.replace(sensors, offline=_stopped(sensors))
        if self.stopped and self._canvas:
            log.info("%s: printer stopped: the slip in progress is lost", self.device_id)
            self._canvas = []

    async def _process(self, session: _Session, data: bytes) -> None:
        if self._fault is FaultKind.UNRESPONSIVE:
            return
        for op in session.parser.feed(data):
            match op:
                case StatusRequest(n=n) if 1 <= n <= STATUS_COUNT:
                    await self._answer_status(session, n)
                case PrintedRequest(n=1) if not self.stopped:
                    if self._fault is FaultKind.SLOW:
                        await asyncio.sleep(self._delay_s)
                    session.send(bytes((self._sensors.printed_answer(),)))
                case _ if self.stopped:
                    pass  # a stopped printer discards what it cannot print
                case Raster(image=image):
                    self._print_raster(image)
                case Cut():
                    await self._cut()
                case Init():
                    pass
                case _:
                    pass  # text, feeds and settings leave no trace on the saved slip

    async def _answer_status(self, session: _Session, n: int) -> None:
        if self._fault is FaultKind.GARBAGE:
            session.send(_GARBAGE)
            return
        session.send(bytes((self._sensors.answer(n),)))

    def _print_raster(self, image: Image.Image) -> None:
        if self._remaining_dots is not None and image.height >= self._remaining_dots:
            self._canvas.append(image.crop((0, 0, image.width, self._remaining_dots)))
            self._remaining_dots = 0
            self._set(paper_out=True)  # the slip in progress stays in the printer
            return
        if self._remaining_dots is not None:
            self._remaining_dots -= image.height
        self._canvas.append(image)

    async def _cut(self) -> None:
        if not self._canvas:
            return
        strips, self._canvas = self._canvas, []
        width = max(s.width for s in strips)
        slip = Image.new("1", (width, sum(s.height for s in strips)), 1)
        y = 0
        for strip in strips:
            slip.paste(strip, (0, y))
            y += strip.height
        self.slips += 1
        png = await asyncio.to_thread(encode_png, slip)
        path = self.slip_dir / f"slip-{self.slips:04d}.png"
        await asyncio.to_thread(path.write_bytes, png)
        self.host.sim_output(self.device_id, "slip", SlipOutput(png=png, width_dots=slip.width))

    # ------------------------------------------------------------ sim actions

    @ESCPOS_PAPER
    async def sim_paper(self, params: EscposPaperParams) -> NoResult:
        """Load a roll (``full``), or set ``low`` (optionally ``remainingDots``) or ``out``."""
        match params.level:
            case PaperLevel.FULL:
                self._remaining_dots = None
                self._set(paper_out=False, paper_low=False)
            case PaperLevel.LOW:
                self._remaining_dots = params.remaining_dots
                self._set(paper_out=params.remaining_dots == 0, paper_low=True)
            case PaperLevel.OUT:
                self._remaining_dots = 0
                self._set(paper_out=True, paper_low=True)
        return NoResult()

    @COVER
    async def sim_cover(self, params: CoverParams) -> NoResult:
        """Open or close the paper lid."""
        self._set(cover_open=params.open)
        return NoResult()

    @FAULT_ACTION
    async def sim_fault(self, params: FaultParams) -> NoResult:
        """Inject a fault (see the module docstring), or clear it."""
        kind = None if params.kind is FaultKind.CLEAR else params.kind
        was = self._fault
        self._fault = kind
        self._delay_s = params.delay_ms / 1000 if kind is FaultKind.SLOW else 0.0
        self._set(
            cutter_jam=kind is FaultKind.JAM,
            mechanical_error=kind is FaultKind.HARDWARE_ERROR,
        )
        if kind is FaultKind.DISCONNECT:
            self._drop_clients()
            self._close_pty()
        elif was is FaultKind.DISCONNECT and self._pty_link is not None and self._pty is None:
            self._open_pty()
        return NoResult()
