"""An emulated ccTalk coin acceptor at the far end of a pty: the wire simulator's device.

:class:`CctalkCoinDevice` is the device: a coin table (one coin id per
channel), a five-event buffer with its event counter (0 after power-up, then
``1..255`` wrapping to 1), per-channel and master inhibit (both inhibited at
power-up), a self-check fault code, and faults.  It answers the headers the
driver uses (see :mod:`devices.coin_acceptor.cctalk`) and NAKs the others.

A coin dropped in (:meth:`CctalkCoinDevice.insert_coin`) is *accepted* (a
credit event, into the cash box) only when its channel is enabled, the master
inhibit is off and no fault stops it; otherwise it is *returned*, with an error
event when the device was awake to see it (inhibited coin, reject coin, fraud
code).  A coin is never lost: the device counts both lists.

Faults (``kind``): ``disconnect`` (no answer; coins fall through to the return
cup), ``lineCut`` (the serial line is cut but the acceptor keeps its power: no
answer, and it goes on taking coins into its buffer as its inhibits say),
``hardwareError``/``jam`` (self-check reports fault 3; coins returned),
``slow`` (each coin is validated ``delayMs`` late; replies stay prompt, as
ccTalk's reply timeouts demand), ``garbage`` (every reply is noise until
``clear``), ``checksumError`` (the next reply has a bad checksum), ``powerCycle`` (counter
back to 0, buffer and inhibits reset), ``fraud`` (the next coin is pulled back
on a string: error ``code``, 20 by default, and returned), ``clear``.

Run alone, the device serves a socat pty pair and takes commands on a Unix
socket, one JSON object a line (the chaos test and ``kioskd run --sim``'s
:mod:`devices.sim.coin_acceptor.cctalk` drive it this way)::

    python -m devices.sim.coin_acceptor.cctalk_device --pty PATH --control SOCKET \
        [--coins 1000,2000,5000] [--address 2] [--checksum simple|crc16] [--echo] \
        [--state-file PATH]

It prints ``ready`` once both serve, and nothing after (:mod:`devices.sim.support.device_process`).
Control requests:
``{"action": "insertCoin", "value": 1000}`` -> ``{"accepted": true, "counter": 7}``
(under ``slow``, ``delayMs`` later: one coin is validated at a time);
``{"action": "fault", "kind": "powerCycle"}`` -> ``{}``; ``{"action": "stats"}`` ->
``{"accepted": [[counter, value], ...], "returned": [value, ...], "counter": n,
"enabled": bool, "pid": n, "coins": [...], "address": n, "checksum": str, "echo": bool}``;
``{"action": "stop"}`` -> ``{}``, then the process ends (as on SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from devices.base import Params, sim_action
from devices.coin_acceptor.cctalk import (
    CHANNELS,
    COIN_ACCEPTOR_ADDRESS,
    HOST_ADDRESS,
    Checksum,
    CoinError,
    FrameError,
    Header,
    coin_id_for,
    decode,
    encode,
    frame_length,
)
from devices.coin_acceptor.counter import BUFFER_EVENTS, COUNTER_MAX
from devices.errors import Timeout
from devices.sim.support.device_process import (
    Control,
    Request,
    fault_control,
    process_arguments,
    run_process,
)
from devices.transports.serial import SerialPort

log = logging.getLogger(__name__)

#: Self-check fault code the device reports while faulted ("fault on credit sensor").
FAULT_CREDIT_SENSOR = 3
#: Sorter path reported with a credit.
SORTER_PATH = 1
#: A frame whose bytes stop arriving for this long is dropped, in s.
INTER_BYTE_TIMEOUT_S = 0.05
#: How long the serve loop waits for a frame before checking again, in s.
IDLE_WAIT_S = 3600.0
#: Longest validation delay of the ``slow`` fault, in ms.
MAX_DELAY_MS = 60_000


class CctalkFault(StrEnum):
    """Fault kinds of the ccTalk device (``sim/{d}/fault``); the first six are the common ones."""

    DISCONNECT = "disconnect"
    HARDWARE_ERROR = "hardwareError"
    JAM = "jam"
    SLOW = "slow"
    GARBAGE = "garbage"
    CLEAR = "clear"
    CHECKSUM_ERROR = "checksumError"
    POWER_CYCLE = "powerCycle"
    FRAUD = "fraud"
    LINE_CUT = "lineCut"


class CctalkFaultParams(Params):
    """``sim/{d}/fault`` of the ccTalk wire simulator.

    ``delayMs`` applies to ``slow``; ``code`` is the error code of ``fraud``
    (20: coin on a string).
    """

    kind: CctalkFault
    delay_ms: Annotated[int, Meta(ge=0, le=MAX_DELAY_MS)] = 2000
    code: Annotated[int, Meta(ge=0, le=255)] = CoinError.COIN_ON_STRING


#: The ``fault`` action of both ccTalk wire simulators (coins and notes).
CCTALK_FAULT = sim_action(
    "fault", CctalkFaultParams, "inject a fault (also checksumError, powerCycle, fraud)"
)


@dataclass(frozen=True, slots=True)
class Inserted:
    """What happened to an inserted coin: ``accepted`` into the cash box, else returned.

    ``counter`` is the device's event counter afterwards.
    """

    accepted: bool
    counter: int


class CctalkCoinDevice:
    """The emulated acceptor; every method runs on the event loop and never blocks."""

    def __init__(
        self,
        coins: Sequence[int],
        *,
        address: int = 2,
        checksum: Checksum = Checksum.SIMPLE,
        echo: bool = False,
    ) -> None:
        if len(coins) > CHANNELS:
            raise ValueError(f"at most {CHANNELS} coins")
        self.address = address
        self.checksum = checksum
        self.echo = echo
        self.coin_ids = [coin_id_for(v) for v in coins] + ["......"] * (CHANNELS - len(coins))
        self.values = list(coins)
        self.fault: CctalkFault | None = None
        #: Every reply is sent this late, in s (tests set it; no fault does).
        self.delay_s = 0.0
        #: How long the ``slow`` fault makes a coin's validation take, in s.
        self.validation_s = 0.0
        self.fraud_code: int | None = None
        self._garble_next: CctalkFault | None = None
        #: Coins that went into the cash box: ``(event counter, value)``, in order.
        self.accepted: list[tuple[int, int]] = []
        #: Values of coins given back, in order.
        self.returned: list[int] = []
        self.power_cycle()

    # -- the physical world ------------------------------------------------------------------

    def power_cycle(self) -> None:
        """Power off and on: counter 0, empty buffer, every coin and the master inhibited."""
        self.counter = 0
        self.events: deque[tuple[int, int]] = deque(maxlen=BUFFER_EVENTS)
        self.mask = 0
        self.master_enabled = False

    @property
    def enabled(self) -> bool:
        """True when the device would take at least one coin."""
        return self.master_enabled and self.mask != 0 and self._powered()

    def _powered(self) -> bool:
        return self.fault is not CctalkFault.DISCONNECT

    def _answers(self) -> bool:
        return self._powered() and self.fault is not CctalkFault.LINE_CUT

    def _event(self, result_a: int, result_b: int) -> None:
        self.counter = self.counter % COUNTER_MAX + 1
        self.events.appendleft((result_a, result_b))

    def insert_coin(self, value: int) -> Inserted:
        """Drop a coin of ``value`` whole units into the slot."""
        if not self._powered():
            # Unpowered or dead: the coin falls straight through to the return cup.
            self.returned.append(value)
            return Inserted(accepted=False, counter=self.counter)
        channel = self.values.index(value) + 1 if value in self.values else None
        code: int | None = None
        if self.fraud_code is not None:
            code, self.fraud_code = self.fraud_code, None
        elif self.fault in (CctalkFault.HARDWARE_ERROR, CctalkFault.JAM):
            code = CoinError.CREDIT_SENSOR_BLOCKED
        elif channel is None:
            code = CoinError.REJECT_COIN
        elif not (self.master_enabled and self.mask >> (channel - 1) & 1):
            code = CoinError.INHIBITED_COIN
        if code is not None or channel is None:
            self._event(0, code or CoinError.REJECT_COIN)
            self.returned.append(value)
            return Inserted(accepted=False, counter=self.counter)
        self._event(channel, SORTER_PATH)
        self.accepted.append((self.counter, value))
        return Inserted(accepted=True, counter=self.counter)

    def set_fault(self, params: CctalkFaultParams) -> None:
        """Apply a ``fault`` action."""
        match params.kind:
            case CctalkFault.CLEAR:
                self.fault, self.validation_s = None, 0.0
                self.fraud_code, self._garble_next = None, None
            case CctalkFault.POWER_CYCLE:
                self.power_cycle()
            case CctalkFault.FRAUD:
                self.fraud_code = params.code
            case CctalkFault.CHECKSUM_ERROR:
                self._garble_next = params.kind
            case CctalkFault.SLOW:
                self.fault, self.validation_s = params.kind, params.delay_ms / 1000
            case _:
                self.fault = params.kind

    # -- the wire ----------------------------------------------------------------------------

    def handle(self, raw: bytes) -> bytes | None:
        """Answer one request frame; None when the device stays silent."""
        if not self._answers():
            return None
        try:
            frame = decode(raw, self.checksum)
        except FrameError:
            return None  # a real device ignores a frame it cannot read
        if frame.destination != self.address:
            return None
        data = self._reply_data(frame.header, frame.data)
        header = Header.NAK if data is None else Header.REPLY
        reply = encode(HOST_ADDRESS, self.address, header, data or b"", self.checksum)
        garble, self._garble_next = self._garble_next, None
        if self.fault is CctalkFault.GARBAGE:
            reply = os.urandom(len(reply))
        elif garble is CctalkFault.CHECKSUM_ERROR:
            reply = reply[:-1] + bytes([reply[-1] ^ 0x5A])
        return reply

    def _reply_data(self, header: int, data: bytes) -> bytes | None:  # noqa: PLR0911 - dispatch
        """The data of the ACK to ``header``, or None for a NAK."""
        if header == Header.RESET:
            self.power_cycle()
            return b""
        if header == Header.REQUEST_COIN_ID:
            if len(data) == 1 and 1 <= data[0] <= CHANNELS:
                return self.coin_ids[data[0] - 1].encode("ascii")
            return None
        if header == Header.MODIFY_INHIBIT_STATUS:
            if len(data) != 2:  # noqa: PLR2004 - two mask bytes
                return None
            self.mask = int.from_bytes(data, "little")
            return b""
        if header == Header.MODIFY_MASTER_INHIBIT:
            if len(data) != 1:
                return None
            self.master_enabled = bool(data[0] & 1)
            return b""
        if header == Header.READ_BUFFERED_CREDIT:
            pairs = list(self.events) + [(0, 0)] * (BUFFER_EVENTS - len(self.events))
            return bytes([self.counter, *(b for pair in pairs for b in pair)])
        if header == Header.PERFORM_SELF_CHECK:
            faulty = self.fault in (CctalkFault.HARDWARE_ERROR, CctalkFault.JAM)
            return bytes([FAULT_CREDIT_SENSOR if faulty else 0])
        return self._fixed_replies().get(header)

    def _fixed_replies(self) -> dict[int, bytes]:
        return {
            Header.SIMPLE_POLL: b"",
            Header.REQUEST_MANUFACTURER_ID: b"KIO",
            Header.REQUEST_EQUIPMENT_CATEGORY: b"Coin Acceptor",
            Header.REQUEST_INHIBIT_STATUS: self.mask.to_bytes(2, "little"),
        }

    async def serve(self, path: Path) -> None:
        """Answer frames arriving on the pty at ``path`` until cancelled.

        Raises:
            Offline: the pty cannot be opened or closed under the device.

        """
        async with await SerialPort.open(str(path), timeout_s=5.0) as port:
            while True:
                try:
                    head = await port.read_exactly(2, timeout_s=IDLE_WAIT_S)
                    rest = await port.read_exactly(
                        frame_length(head) - 2, timeout_s=INTER_BYTE_TIMEOUT_S
                    )
                except Timeout:
                    port.discard_input()
                    continue
                raw = head + rest
                reply = self.handle(raw)
                if reply is None:
                    continue
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                # On a single-wire bus the host hears its own request before the reply.
                await port.write((raw if self.echo else b"") + reply, timeout_s=IDLE_WAIT_S)

    # -- control (one JSON object a line, devices.sim.support.device_process) ------------

    def controls(self) -> dict[str, Control]:
        """The control requests of the device process: insertCoin, fault, stats."""
        fault = fault_control(self.set_fault, CctalkFaultParams)
        return {"insertCoin": self._insert_coin, "fault": fault, "stats": self._stats}

    async def _insert_coin(self, request: Request) -> Request:
        if self.validation_s:  # the ``slow`` fault: one coin validated at a time
            await asyncio.sleep(self.validation_s)
        result = self.insert_coin(msgspec.convert(request, _InsertCoin).value)
        return {"accepted": result.accepted, "counter": result.counter}

    async def _stats(self, _request: Request) -> Request:
        return {
            "accepted": self.accepted,
            "returned": self.returned,
            "counter": self.counter,
            "enabled": self.enabled,
            "coins": self.values,
            "address": self.address,
            "checksum": self.checksum.value,
            "echo": self.echo,
        }


class _InsertCoin(msgspec.Struct):
    value: int = 0


# -- standalone process ----------------------------------------------------------------------


def bus_arguments(parser: argparse.ArgumentParser, *, address: int) -> None:
    """Add the bus options of a ccTalk device process (coins, notes) to ``parser``.

    ``--address`` (``address`` by default), ``--checksum`` (``simple`` or ``crc16``)
    and ``--echo`` (a single-wire bus: the device echoes requests).
    """
    parser.add_argument("--address", type=int, default=address)
    parser.add_argument("--checksum", choices=[c.value for c in Checksum], default="simple")
    parser.add_argument("--echo", action="store_true", help="single-wire bus: echo requests")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the device alone on a socat pty pair, controlled over a Unix socket."""
    parser = process_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--coins", default="1000,2000,5000", help="coin values, comma separated")
    bus_arguments(parser, address=COIN_ACCEPTOR_ADDRESS)
    args = parser.parse_args(argv)
    coins = [int(v) for v in args.coins.split(",")]
    device = CctalkCoinDevice(
        coins, address=args.address, checksum=Checksum(args.checksum), echo=args.echo
    )
    run_process(args, serve=device.serve, controls=device.controls())


if __name__ == "__main__":
    main()
