"""What the scanner wire simulators (``serial``, ``hid``, ``hidpos``) share: the sim actions.

The actions are those of the behavioural scanner (:mod:`devices.sim.scanner.behaviour`):
``scan {text, symbology}`` makes the simulated scanner send the code the way the
real one would, and ``fault`` acts on the transport:

- ``disconnect``: the device disappears (the driver sees the port vanish);
  ``clear`` plugs it back in.
- ``hardwareError`` / ``jam``: the line fills with noise (what a wrong baud rate
  or a damaged cable delivers) until ``clear``; scans fail.
- ``garbage``: until ``clear``, bursts of undecodable frames and frames cut
  short; scans fail.  Either way the driver sees the noise and turns
  ``hardwareError``; after ``clear`` it is ``online`` once the line is quiet.
- ``slow``: every scan is sent ``delayMs`` late.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from typing import ClassVar

from devices.base import DeviceEnv, DeviceHost, NoResult
from devices.errors import HardwareError, InvalidData, Offline, Unsupported
from devices.scanner.frames import AIM_IDENTIFIERS
from devices.sim.scanner.actions import SCAN, ScanParams
from devices.sim.support.faults import FAULT_ACTION, FaultKind, FaultParams
from devices.sim.support.wire import WireSimulator

#: Faults that fill the line with bytes the driver cannot decode.
_NOISY = (FaultKind.HARDWARE_ERROR, FaultKind.JAM, FaultKind.GARBAGE)
#: Seconds between two noise bursts while ``hardwareError`` is active.
NOISE_PERIOD_S = 0.1
#: How long ``scan`` waits for the driver to take the bytes, in seconds.
DELIVERY_TIMEOUT_S = 1.0
#: How long nothing may be pending before the driver counts as having the bytes, in s.
SETTLE_S = 0.003


class ScannerWireSimulator(WireSimulator):
    """Base of scanner wire simulators: faults and the ``scan`` action over :meth:`send_code`."""

    device_class: ClassVar[str] = "scanner"

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        self._fault: FaultKind | None = None
        self._delay_s = 0.0
        self._noise: asyncio.Task[None] | None = None

    @abc.abstractmethod
    async def plug(self) -> None:
        """Make the device appear (start serving)."""

    @abc.abstractmethod
    async def unplug(self) -> None:
        """Make the device disappear; idempotent."""

    @abc.abstractmethod
    def send_code(self, text: str, symbology: str) -> None:
        """Send one code as the real scanner would."""

    @abc.abstractmethod
    def pending(self) -> int:
        """Bytes sent that the driver has not read yet."""

    @abc.abstractmethod
    def send_noise(self) -> None:
        """Send one burst of noise: at least three undecodable frames."""

    @abc.abstractmethod
    def send_garbage(self) -> None:
        """Send an undecodable frame and then a frame cut short."""

    async def start(self) -> None:
        """Plug the device in."""
        await self.plug()

    async def aclose(self) -> None:
        """Stop the noise and unplug; idempotent."""
        await self._stop_noise()
        await self.unplug()

    @staticmethod
    def aim_identifier(symbology: str) -> str:
        """The AIM identifier the scanner sends for ``symbology``.

        Raises:
            InvalidData: a symbology without one.

        """
        try:
            return AIM_IDENTIFIERS[symbology]
        except KeyError:
            known = ", ".join(AIM_IDENTIFIERS)
            raise InvalidData(f"symbology {symbology!r} is not one of {known}") from None

    @SCAN
    async def sim_scan(self, params: ScanParams) -> NoResult:
        """``sim/{d}/scan``: present a code to the scanner.

        Raises:
            Offline: the scanner is unplugged.
            HardwareError: the scanner is faulted.
            InvalidData: an unknown symbology.

        """
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        if self._fault is FaultKind.DISCONNECT:
            raise Offline("simulated scanner is unplugged")
        if self._fault in _NOISY:
            raise HardwareError("simulated scanner is faulted")
        self.send_code(params.text, params.symbology)
        await self._delivered()
        return NoResult()

    async def _delivered(self) -> None:
        """Wait (bounded) until the driver has read what was sent.

        Like a person who scans one code after the other: ``scan`` then means
        the host has the code.
        """
        loop = asyncio.get_running_loop()
        until = loop.time() + DELIVERY_TIMEOUT_S
        quiet_since = None
        # Bytes pass a kernel worker between socat's write and the tty's input
        # queue, where no ioctl sees them: "taken" means nothing pending for 3 ms.
        while loop.time() < until:
            if self.pending():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = loop.time()
            elif loop.time() - quiet_since >= SETTLE_S:
                break
            await asyncio.sleep(0.001)

    @FAULT_ACTION
    async def sim_fault(self, params: FaultParams) -> NoResult:
        """``sim/{d}/fault``: act on the transport (see the module doc).

        Raises:
            Unsupported: ``unresponsive``: a scanner only sends, so silence is no fault.

        """
        kind = params.kind
        if kind is FaultKind.UNRESPONSIVE:
            raise Unsupported("a scanner only sends: unresponsive is no fault it can show")
        await self._stop_noise()
        self._delay_s = params.delay_ms / 1000 if kind is FaultKind.SLOW else 0.0
        if kind is FaultKind.DISCONNECT:
            self._fault = kind
            await self.unplug()
            return NoResult()
        if self._fault is FaultKind.DISCONNECT:
            await self.plug()
        self._fault = None
        if kind in (*_NOISY, FaultKind.SLOW):
            self._fault = kind
        if kind in _NOISY:
            # Garbage starts with frames cut short, then both keep the line noisy.
            (self.send_garbage if kind is FaultKind.GARBAGE else self.send_noise)()
            self._noise = asyncio.create_task(self._keep_noisy(), name=f"{self.device_id}-noise")
        return NoResult()

    async def _keep_noisy(self) -> None:
        while True:
            await asyncio.sleep(NOISE_PERIOD_S)
            with contextlib.suppress(OSError):
                self.send_noise()

    async def _stop_noise(self) -> None:
        task, self._noise = self._noise, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
