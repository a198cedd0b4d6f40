"""Connections to an ESC/POS printer: network (TCP 9100), USB, serial and a device file.

Every call blocks and is bounded by the timeout it is given: the ``escpos``
driver makes them from its one I/O thread, never from the event loop.  The USB
and serial connections are python-escpos's printer classes (:mod:`escpos.printer`,
imported when such a link opens: the library loads its printer capabilities,
barcode and QR code modules, ~10 MiB), with the timeouts the library leaves open
filled in: its USB class writes with no
timeout by default (it would block forever on a stalled printer), its serial
class has no write timeout, and its file class opens the device write-only,
which can neither read status nor time out; the file connection here opens the
device read-write and waits with ``select``, and the network connection is a
plain TCP socket.

Errors: a vanished or refused connection raises :class:`Offline`; a write the
printer does not take in time raises :class:`HardwareError` (the link is then
out of step with the printer and must be reopened).
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import select
import socket
import termios
import time
from typing import Any, Literal

import serial

from devices.errors import HardwareError, Offline

#: Largest piece written at once; each piece gets the full write timeout.
CHUNK_BYTES = 4096
_READ_BYTES = 64

Connection = Literal["network", "usb", "serial", "file"]


class Link(abc.ABC):
    """An open connection to a printer; used from one thread at a time."""

    name: str

    def write(self, data: bytes, timeout_s: float) -> None:
        """Send ``data``, each :data:`CHUNK_BYTES` piece within ``timeout_s`` seconds.

        Raises:
            HardwareError: the printer held a piece off for longer (flow control).
            Offline: the connection is gone.

        """
        for start in range(0, len(data), CHUNK_BYTES):
            try:
                self._write(data[start : start + CHUNK_BYTES], timeout_s)
            except TimeoutError:
                raise HardwareError(
                    f"the printer did not take data within {timeout_s * 1000:.0f} ms",
                ) from None

    def drain(self) -> None:
        """Drop bytes already received (late answers to an earlier request)."""
        while self.read(0):
            pass

    @abc.abstractmethod
    def _write(self, data: bytes, timeout_s: float) -> None:
        """Send ``data`` or raise ``TimeoutError`` after ``timeout_s`` seconds."""

    @abc.abstractmethod
    def read(self, timeout_s: float) -> bytes:
        """Return the bytes that arrive within ``timeout_s`` seconds (``b""`` if none).

        Raises:
            Offline: the connection is gone.

        """

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection; idempotent, never raises."""


class NetworkLink(Link):
    """A raw TCP connection (port 9100, "JetDirect")."""

    def __init__(self, host: str, port: int, connect_timeout_s: float) -> None:
        self.name = f"{host}:{port}"
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout_s)
        except OSError as exc:
            raise Offline(f"cannot connect to the printer at {self.name}") from exc
        # Status requests are a few bytes: send them now, not after a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def _write(self, data: bytes, timeout_s: float) -> None:
        self._sock.settimeout(timeout_s)
        try:
            self._sock.sendall(data)
        except TimeoutError:
            raise
        except OSError as exc:
            raise Offline(f"lost the connection to the printer at {self.name}") from exc

    def read(self, timeout_s: float) -> bytes:  # noqa: D102 - documented on Link
        self._sock.settimeout(timeout_s)
        try:
            data = self._sock.recv(_READ_BYTES)
        except TimeoutError:
            return b""
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise Offline(f"lost the connection to the printer at {self.name}") from exc
        if not data:
            raise Offline(f"the printer at {self.name} closed the connection")
        return data

    def close(self) -> None:  # noqa: D102 - documented on Link
        with contextlib.suppress(OSError):
            self._sock.close()


class UsbLink(Link):
    """A USB printer-class device through pyusb (``escpos.printer.Usb``), by vendor/product id."""

    def __init__(
        self, vendor_id: int, product_id: int, in_ep: int, out_ep: int, write_timeout_s: float
    ) -> None:
        self.name = f"USB {vendor_id:04x}:{product_id:04x}"
        self._in_ep = in_ep
        self._out_ep = out_ep
        from escpos.exceptions import DeviceNotFoundError  # noqa: PLC0415
        from escpos.printer import Usb  # noqa: PLC0415

        # The library's default timeout of 0 means "wait forever" to libusb.
        self._printer = Usb(
            vendor_id,
            product_id,
            timeout=max(1, int(write_timeout_s * 1000)),
            in_ep=in_ep,
            out_ep=out_ep,
        )
        try:
            self._printer.open()
        except DeviceNotFoundError as exc:
            raise Offline(f"no printer at {self.name}") from exc
        self._device: Any = self._printer.device

    def _write(self, data: bytes, timeout_s: float) -> None:
        import usb.core  # noqa: PLC0415 - pyusb is only needed for USB printers

        try:
            self._device.write(self._out_ep, data, max(1, int(timeout_s * 1000)))
        except usb.core.USBTimeoutError as exc:
            raise TimeoutError from exc
        except usb.core.USBError as exc:
            raise Offline(f"lost the printer at {self.name}: {exc}") from exc

    def read(self, timeout_s: float) -> bytes:  # noqa: D102 - documented on Link
        import usb.core  # noqa: PLC0415 - pyusb is only needed for USB printers

        try:
            data = self._device.read(self._in_ep, _READ_BYTES, max(1, int(timeout_s * 1000)))
        except usb.core.USBTimeoutError:
            return b""
        except usb.core.USBError as exc:
            raise Offline(f"lost the printer at {self.name}: {exc}") from exc
        return bytes(data)

    def close(self) -> None:  # noqa: D102 - documented on Link
        with contextlib.suppress(Exception):  # pyusb raises backend-specific errors here
            self._printer.close()


class SerialLink(Link):
    """An RS-232 or USB-CDC serial printer through pyserial (``escpos.printer.Serial``)."""

    def __init__(
        self, port: str, baud: int, flow_control: Literal["none", "dsrdtr", "xonxoff"]
    ) -> None:
        from escpos.exceptions import DeviceNotFoundError  # noqa: PLC0415
        from escpos.printer import Serial  # noqa: PLC0415

        self.name = port
        self._printer = Serial(
            port,
            baudrate=baud,
            timeout=0,
            dsrdtr=flow_control == "dsrdtr",
            xonxoff=flow_control == "xonxoff",
        )
        try:
            self._printer.open()
        except DeviceNotFoundError as exc:
            raise Offline(f"cannot open the printer's serial port {port}") from exc
        self._port: serial.Serial = self._printer.device

    def _write(self, data: bytes, timeout_s: float) -> None:
        try:
            if self._port.write_timeout != timeout_s:
                self._port.write_timeout = timeout_s
            self._port.write(data)
        except serial.SerialTimeoutException as exc:
            raise TimeoutError from exc
        except (serial.SerialException, OSError) as exc:
            raise Offline(f"lost the printer's serial port {self.name}") from exc

    def read(self, timeout_s: float) -> bytes:  # noqa: D102 - documented on Link
        try:
            if self._port.timeout != timeout_s:
                self._port.timeout = timeout_s
            data: bytes = self._port.read(1)
            if data and self._port.in_waiting:
                data += self._port.read(self._port.in_waiting)
        except (serial.SerialException, OSError) as exc:
            raise Offline(f"lost the printer's serial port {self.name}") from exc
        return data

    def close(self) -> None:  # noqa: D102 - documented on Link
        # pyserial's own close: python-escpos's would first drain (tcdrain) a port
        # that may be gone, and fail with termios.error.
        with contextlib.suppress(serial.SerialException, OSError, termios.error):
            self._port.close()
        self._printer.device = False


class FileLink(Link):
    """A printer device file (``/dev/usb/lp0`` of the kernel's usblp driver), read-write.

    usblp passes reads through to bidirectional printers, so status works as on
    the other connections; a printer that only takes data times out its status
    requests (use ``wait_printed = false`` and expect ``hardwareError``).
    """

    def __init__(self, path: str) -> None:
        self.name = path
        try:
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError as exc:
            raise Offline(f"cannot open the printer device {path}: {exc.strerror}") from exc

    def _fileno(self) -> int:
        if self._fd is None:
            raise Offline(f"the printer device {self.name} is closed")
        return self._fd

    def _write(self, data: bytes, timeout_s: float) -> None:
        fd = self._fileno()
        until = time.monotonic() + timeout_s
        view = memoryview(data)
        while view:
            remaining = until - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            _, writable, _ = select.select([], [fd], [], remaining)
            if not writable:
                continue
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                continue
            except OSError as exc:
                raise Offline(f"lost the printer device {self.name}: {exc.strerror}") from exc

    def read(self, timeout_s: float) -> bytes:  # noqa: D102 - documented on Link
        fd = self._fileno()
        readable, _, _ = select.select([fd], [], [], timeout_s)
        if not readable:
            return b""
        try:
            data = os.read(fd, _READ_BYTES)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return b""
            raise Offline(f"lost the printer device {self.name}: {exc.strerror}") from exc
        if not data:
            raise Offline(f"the printer device {self.name} was closed")
        return data

    def close(self) -> None:  # noqa: D102 - documented on Link
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
