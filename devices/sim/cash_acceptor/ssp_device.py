"""An emulated ITL SSP banknote validator on a pty: the ``ssp`` wire simulator's device.

:class:`SspNoteDevice` answers SSP packets (:mod:`devices.cash_acceptor.ssp`)
as an NV9/NV200 class validator does: the sequence flag (a repeated flag gets
the last reply again, unexecuted), SYNC, HOST_PROTOCOL_VERSION (up to 8),
SETUP_REQUEST (its channels: one per configured note, expanded values),
SET_INHIBITS, ENABLE/DISABLE, POLL and POLL_WITH_ACK/EVENT_ACK, REJECT, HOLD,
LAST_REJECT_CODE, GET_COUNTERS (a stacked count kept across power cycles) and,
with ``essp``, the key exchange and encrypted packets (KEY_NOT_SET until then).

A note fed in (:meth:`SspNoteDevice.insert_note`) is taken in only while the
validator is enabled, its channel not inhibited, the stacker in place with
room and no fault stops it; an unknown note is rejected (READ, REJECTING,
REJECTED).  A known one is held in escrow (READ with its channel); the next
poll stacks it (NOTE CREDIT, STACKING, STACKED), REJECT returns it, and ten
seconds (``escrow_timeout_s``) without a poll return it too, as the manual's
poll timeout does.  Its fate resolves the future ``insert_note`` returns.
Notes are never lost: the device lists stacked and returned ones.

Faults (``kind``): ``disconnect`` (no answer, notes not taken in), ``lineCut``
(no answer, the validator keeps its power: a note in escrow times out),
``hardwareError`` (note path open, reported each poll), ``jam`` (UNSAFE JAM
each poll until ``clear``; a note fed meanwhile jams, cleared from the front),
``slow`` (a note is validated ``delayMs`` late), ``garbage`` (every reply is
noise in a packet's shape), ``crcError`` (the next reply has a bad CRC), ``powerCycle`` (SLAVE
RESET, disabled, inhibits and keys gone; a note in escrow comes back out),
``fraud`` (the next note is pulled back out of escrow), ``clear``.  The
stacker (``sim/{d}/stacker``): ``removed`` (CASHBOX REMOVED each poll),
``full`` (STACKER FULL), ``ok`` (CASHBOX REPLACED after either).

Run alone (``python -m devices.sim.cash_acceptor.ssp_device``) it serves a socat pty pair in
a process of its own, controlled over a Unix socket (:mod:`devices.sim.support.device_process`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from msgspec import Meta

from devices.base import Params
from devices.cash_acceptor.messages import StackerState
from devices.cash_acceptor.settings import VND_NOTES
from devices.cash_acceptor.ssp import (
    PROTOCOL_VERSION,
    STEX,
    STX,
    Command,
    Deframer,
    Event,
    Packet,
    PollEvent,
    Response,
    Setup,
    encode,
    encode_events,
    encode_setup,
)
from devices.cash_acceptor.ssp_crypto import (
    DEFAULT_FIXED_KEY,
    EsspError,
    EsspSession,
    is_prime,
    key_bytes,
)
from devices.errors import Timeout
from devices.sim.cash_acceptor.note_device import Fate, note_arguments, note_controls
from devices.sim.support.device_process import Control, Request, fault_control, run_process
from devices.transports.serial import LineSettings, SerialPort

log = logging.getLogger(__name__)

#: How long a note held in escrow waits for a poll before it is returned, in s (GA138).
ESCROW_TIMEOUT_S = 10.0
#: Longest validation delay of the ``slow`` fault, in ms.
MAX_DELAY_MS = 60_000
#: How long the serve loop waits for bytes before checking again, in s.
IDLE_WAIT_S = 3600.0
#: Reject codes (GA138 "Reject Codes") the device reports.
REJECT_UNRECOGNISED = 0x02
REJECT_CHANNEL_INHIBIT = 0x06
REJECT_BY_HOST = 0x08
REJECT_ESCROW_TIMEOUT = 0x13
#: Events the host acknowledges with EVENT_ACK when it polls with POLL_WITH_ACK.
NEEDS_ACK = frozenset({Event.CREDIT, Event.NOTE_CLEARED_INTO_CASHBOX, Event.FRAUD_ATTEMPT})
#: Commands answered before the eSSP key is set (the rest: KEY_NOT_SET).
OPEN_COMMANDS = frozenset(
    {Command.SYNC, Command.SET_GENERATOR, Command.SET_MODULUS, Command.REQUEST_KEY_EXCHANGE}
)
#: Commands a validator with eSSP accepts encrypted only (GA138 NV9USB).
ENCRYPTED_ONLY = frozenset({Command.POLL_WITH_ACK, Command.EVENT_ACK})


class SspFault(StrEnum):
    """Fault kinds of the SSP device (``sim/{d}/fault``); the first six are the common ones."""

    DISCONNECT = "disconnect"
    HARDWARE_ERROR = "hardwareError"
    JAM = "jam"
    SLOW = "slow"
    GARBAGE = "garbage"
    CLEAR = "clear"
    LINE_CUT = "lineCut"
    CRC_ERROR = "crcError"
    POWER_CYCLE = "powerCycle"
    FRAUD = "fraud"


class SspFaultParams(Params):
    """``sim/{d}/fault`` of the SSP wire simulator; ``delayMs`` applies to ``slow``."""

    kind: SspFault
    delay_ms: Annotated[int, Meta(ge=0, le=MAX_DELAY_MS)] = 2000


class _Escrow:
    """The note held in escrow: its channel, value, whether a poll reported it, its future."""

    def __init__(self, channel: int, value: int, fate: asyncio.Future[Fate], *, pull: bool) -> None:
        self.channel = channel
        self.value = value
        self.fate = fate
        self.pull = pull
        self.reported = False
        self.timer: asyncio.TimerHandle | None = None


class SspNoteDevice:
    """The emulated validator; every method runs on the event loop and never blocks."""

    def __init__(
        self,
        notes: Sequence[int] = VND_NOTES,
        *,
        address: int = 0,
        essp: bool = False,
        fixed_key: int = DEFAULT_FIXED_KEY,
        escrow_timeout_s: float = ESCROW_TIMEOUT_S,
    ) -> None:
        self.notes = list(notes)
        self.address = address
        self.essp = essp
        self.fixed_key = fixed_key
        self.escrow_timeout_s = escrow_timeout_s
        self.fault: SspFault | None = None
        self.validation_s = 0.0
        self.stacker = StackerState.OK
        #: Stacked notes since the device was made, kept across power cycles (GET_COUNTERS).
        self.stacked_count = 0
        #: Values of notes stacked and of notes given back, in order.
        self.stacked: list[int] = []
        self.returned: list[int] = []
        self._pull_next = False
        self._jammed: int | None = None
        self._bad_crc_next = False
        self.power_cycle()

    # -- the physical world ------------------------------------------------------------------

    def power_cycle(self) -> None:
        """Power off and on: disabled, every channel inhibited, keys and sequence forgotten.

        A note held in escrow is cleared from the front at power-up.
        """
        escrow = getattr(self, "_escrow", None)
        self.enabled = False
        self.mask = 0
        self.protocol = 4
        self._last: tuple[bool, bytes] | None = None
        self.session: EsspSession | None = None
        self._dh: dict[str, int] = {}
        self._escrow: _Escrow | None = None
        self._events: list[PollEvent] = [PollEvent(Event.SLAVE_RESET)]
        self._unacked: list[PollEvent] = []
        self._reject_code = 0
        if escrow is not None:
            self._give_back(escrow)
            self._events.append(PollEvent(Event.NOTE_CLEARED_FROM_FRONT, escrow.channel))
        self._events.append(PollEvent(Event.DISABLED))

    @property
    def taking(self) -> bool:
        """True when the bezel would take a note in."""
        return (
            self._answers_power()
            and self.enabled
            and self.mask != 0
            and self.stacker is StackerState.OK
            and self.fault is not SspFault.HARDWARE_ERROR
            and self._jammed is None
            and self._escrow is None
        )

    def _answers_power(self) -> bool:
        return self.fault is not SspFault.DISCONNECT

    def _answers(self) -> bool:
        return self._answers_power() and self.fault is not SspFault.LINE_CUT

    def insert_note(self, value: int, *, pull_back: bool = False) -> asyncio.Future[Fate]:
        """Feed a note of ``value``; the future resolves with its fate."""
        fate: asyncio.Future[Fate] = asyncio.get_running_loop().create_future()
        if not self.taking:
            self.returned.append(value)
            fate.set_result(Fate.RETURNED)
            return fate
        if self.fault is SspFault.JAM:
            self._jammed = value
            self._events.append(PollEvent(Event.READ, 0))
            self.returned.append(value)  # the technician gives it back when clearing the jam
            fate.set_result(Fate.RETURNED)
            return fate
        channel = self.notes.index(value) + 1 if value in self.notes else 0
        allowed = channel and self.mask >> (channel - 1) & 1
        if not allowed:
            self._reject_code = REJECT_UNRECOGNISED if not channel else REJECT_CHANNEL_INHIBIT
            self._events += [
                PollEvent(Event.READ, 0),
                PollEvent(Event.REJECTING),
                PollEvent(Event.REJECTED),
            ]
            self.returned.append(value)
            fate.set_result(Fate.RETURNED)
            return fate
        pull = pull_back or self._pull_next
        self._pull_next = False
        self._escrow = _Escrow(channel, value, fate, pull=pull)
        self._events.append(PollEvent(Event.READ, 0))  # READ with the channel: at each poll
        self._arm_escrow_timer()
        return fate

    def set_fault(self, params: SspFaultParams) -> None:
        """Apply a ``fault`` action."""
        match params.kind:
            case SspFault.CLEAR:
                if self._jammed is not None:
                    self._events.append(PollEvent(Event.NOTE_CLEARED_FROM_FRONT, 0))
                    self._jammed = None
                self.fault, self.validation_s = None, 0.0
                self._pull_next = self._bad_crc_next = False
            case SspFault.POWER_CYCLE:
                self.power_cycle()
            case SspFault.FRAUD:
                self._pull_next = True
            case SspFault.CRC_ERROR:
                self._bad_crc_next = True
            case SspFault.SLOW:
                self.fault, self.validation_s = params.kind, params.delay_ms / 1000
            case _:
                self.fault = params.kind

    def set_stacker(self, state: StackerState) -> None:
        """Remove, fill or put back (emptied) the stacker."""
        before, self.stacker = self.stacker, state
        if state is StackerState.FULL and before is not StackerState.FULL:
            self._events.append(PollEvent(Event.STACKER_FULL))
        elif state is StackerState.OK and before is not StackerState.OK:
            self._events.append(PollEvent(Event.CASHBOX_REPLACED))

    # -- escrow ------------------------------------------------------------------------------

    def _arm_escrow_timer(self) -> None:
        escrow = self._escrow
        if escrow is None:
            return
        if escrow.timer is not None:
            escrow.timer.cancel()
        loop = asyncio.get_running_loop()
        escrow.timer = loop.call_later(self.escrow_timeout_s, self._escrow_timed_out)

    def _escrow_timed_out(self) -> None:
        if self._escrow is not None:
            log.info(
                "note of %d in escrow: no poll for %g s, returned",
                self._escrow.value,
                self.escrow_timeout_s,
            )
            self._return_escrow(REJECT_ESCROW_TIMEOUT)

    def _return_escrow(self, code: int) -> None:
        escrow, self._escrow = self._escrow, None
        if escrow is None:
            return
        self._reject_code = code
        self._events += [PollEvent(Event.REJECTING), PollEvent(Event.REJECTED)]
        self._give_back(escrow)

    def _give_back(self, escrow: _Escrow) -> None:
        if escrow.timer is not None:
            escrow.timer.cancel()
        self.returned.append(escrow.value)
        if not escrow.fate.done():
            escrow.fate.set_result(Fate.RETURNED)

    def _accept_escrow(self) -> None:
        """The poll after the one that reported the note held: stack it (or it is pulled back)."""
        escrow = self._escrow
        if escrow is None or not escrow.reported:
            return
        self._escrow = None
        if escrow.timer is not None:
            escrow.timer.cancel()
        if escrow.pull:
            self._events.append(PollEvent(Event.FRAUD_ATTEMPT, escrow.channel))
            self.returned.append(escrow.value)  # pulled back out on its string
            escrow.fate.set_result(Fate.RETURNED)
            return
        self.stacked_count += 1
        self.stacked.append(escrow.value)
        self._events += [
            PollEvent(Event.CREDIT, escrow.channel),
            PollEvent(Event.STACKING),
            PollEvent(Event.STACKED),
        ]
        escrow.fate.set_result(Fate.STACKED)

    # -- the wire ----------------------------------------------------------------------------

    def handle(self, packet: Packet) -> bytes | None:
        """Answer one command packet (wire bytes); None when the device stays silent."""
        if not self._answers() or packet.address != self.address or not packet.data:
            return None
        encrypted = packet.data[0] == STEX
        data = packet.data
        if encrypted:
            if self.session is None:
                return self._wire(packet, bytes([Response.KEY_NOT_SET]))
            try:
                data = self.session.unwrap(data)
            except EsspError as exc:
                log.warning("eSSP packet refused: %s", exc)
                return None
        if data[0] == Command.SYNC:
            self._last = None
        if self._last is not None and self._last[0] == packet.seq:
            wire = self._last[1]  # the host did not get our reply: repeat it, unexecuted
        else:
            reply = self._execute(data[0], data[1:], encrypted=encrypted)
            if encrypted and self.session is not None:
                reply = self.session.wrap(reply)
            wire = self._wire(packet, reply)
            self._last = (packet.seq, wire)
        if self.fault is SspFault.GARBAGE:
            # Noise shaped like a packet (STX, the length) whose bytes and CRC are wrong.
            noise = os.urandom(len(wire) - 3).replace(bytes([STX]), b"\x00")
            return wire[:3] + noise
        if self._bad_crc_next:
            self._bad_crc_next = False
            return wire[:-1] + bytes([wire[-1] ^ 0x5A])
        return wire

    def _wire(self, packet: Packet, reply: bytes) -> bytes:
        return encode(Packet(self.address, packet.seq, reply))

    def _execute(self, code: int, args: bytes, *, encrypted: bool) -> bytes:  # noqa: C901, PLR0911, PLR0912 - one dispatch
        ok = bytes([Response.OK])
        if self.essp and self.session is None and code not in OPEN_COMMANDS:
            return bytes([Response.KEY_NOT_SET])
        if self.essp and code in ENCRYPTED_ONLY and not encrypted:
            return bytes([Response.KEY_NOT_SET])
        if code not in (Command.POLL, Command.POLL_WITH_ACK):
            self._arm_escrow_timer()  # any command but a poll holds the note (GA138 "Hold")
        match code:
            case Command.SYNC:
                return ok
            case Command.RESET:
                self.power_cycle()
                return ok
            case Command.HOST_PROTOCOL_VERSION:
                if len(args) != 1:
                    return bytes([Response.WRONG_PARAMETERS])
                if not 4 <= args[0] <= PROTOCOL_VERSION:  # noqa: PLR2004 - the oldest version
                    return bytes([Response.FAIL])
                self.protocol = args[0]
                return ok
            case Command.SETUP_REQUEST:
                values = tuple(self.notes)
                return encode_setup(
                    Setup(0, "0420", "VND", max(self.protocol, 6), values, ("VND",) * len(values))
                )
            case Command.SET_INHIBITS:
                if not 1 <= len(args) <= 2:  # noqa: PLR2004 - 8 or 16 channels
                    return bytes([Response.WRONG_PARAMETERS])
                self.mask = int.from_bytes(args, "little")
                return ok
            case Command.ENABLE:
                self.enabled = True
                return ok
            case Command.DISABLE:
                self.enabled = False
                return ok
            case Command.POLL:
                return self._poll(with_ack=False)
            case Command.POLL_WITH_ACK:
                return self._poll(with_ack=True)
            case Command.EVENT_ACK:
                if not self._unacked:
                    return bytes([Response.CANNOT_PROCESS])
                self._unacked = []
                return ok
            case Command.REJECT:
                if self._escrow is None:
                    return bytes([Response.CANNOT_PROCESS])
                self._return_escrow(REJECT_BY_HOST)
                return ok
            case Command.HOLD:
                return ok if self._escrow is not None else bytes([Response.CANNOT_PROCESS])
            case Command.LAST_REJECT_CODE:
                return ok + bytes([self._reject_code])
            case Command.GET_COUNTERS:
                return ok + bytes([5]) + self.stacked_count.to_bytes(4, "little") + bytes(16)
            case Command.GET_SERIAL_NUMBER:
                return ok + (1873452).to_bytes(4, "big")
            case Command.SET_GENERATOR | Command.SET_MODULUS:
                return self._dh_number(code, args)
            case Command.REQUEST_KEY_EXCHANGE:
                return self._key_exchange(args)
            case _:
                return bytes([Response.COMMAND_NOT_KNOWN])

    def _poll(self, *, with_ack: bool) -> bytes:
        if with_ack and self._unacked:
            return encode_events(self._unacked)  # repeated until EVENT_ACK
        self._accept_escrow()
        events, self._events = self._events, []
        if self.stacker is StackerState.REMOVED:
            events.append(PollEvent(Event.CASHBOX_REMOVED))
        if self.fault is SspFault.HARDWARE_ERROR:
            events.append(PollEvent(Event.NOTE_PATH_OPEN))
        if self._jammed is not None or self.fault is SspFault.JAM:
            events.append(PollEvent(Event.UNSAFE_JAM))
        if not self.enabled:
            events.append(PollEvent(Event.DISABLED))
        escrow = self._escrow
        if escrow is not None:  # held: reported by every poll until stacked or returned
            events.append(PollEvent(Event.READ, escrow.channel))
            escrow.reported = True
            self._arm_escrow_timer()  # the timeout runs from the last poll (GA138 "Hold")
        if with_ack and any(e.code in NEEDS_ACK for e in events):
            self._unacked = events
        return encode_events(events)

    def _dh_number(self, code: int, args: bytes) -> bytes:
        if len(args) != 8:  # noqa: PLR2004 - 64-bit numbers
            return bytes([Response.WRONG_PARAMETERS])
        number = int.from_bytes(args, "little")
        if not is_prime(number):
            return bytes([Response.PARAMETER_OUT_OF_RANGE])
        self._dh["generator" if code == Command.SET_GENERATOR else "modulus"] = number
        return bytes([Response.OK])

    def _key_exchange(self, args: bytes) -> bytes:
        generator, modulus = self._dh.get("generator"), self._dh.get("modulus")
        if generator is None or modulus is None or len(args) != 8:  # noqa: PLR2004 - 64 bits
            return bytes([Response.FAIL])
        secret = secrets.randbelow(modulus - 2) + 1
        slave_inter = pow(generator, secret, modulus)
        key = pow(int.from_bytes(args, "little"), secret, modulus)
        self.session = EsspSession(key_bytes(self.fixed_key, key), slave=True)
        return bytes([Response.OK]) + slave_inter.to_bytes(8, "little")

    async def serve(self, path: Path) -> None:
        """Answer packets arriving on the pty at ``path`` until cancelled.

        Raises:
            Offline: the pty cannot be opened or closed under the device.

        """
        deframer = Deframer()
        async with await SerialPort.open(
            str(path), LineSettings(stopbits=2), timeout_s=5.0
        ) as port:
            while True:
                try:
                    chunk = await port.read(timeout_s=IDLE_WAIT_S)
                except Timeout:
                    continue
                for packet in deframer.feed(chunk):
                    reply = self.handle(packet)
                    if reply is not None:
                        await port.write(reply, timeout_s=IDLE_WAIT_S)

    # -- control (one JSON object a line, devices.sim.support.device_process) ------------

    def controls(self) -> dict[str, Control]:
        """The control requests of the device process: insertNote, stacker, fault, stats."""
        fault = fault_control(self.set_fault, SspFaultParams)
        return {**note_controls(self), "fault": fault, "stats": self._stats}

    async def _stats(self, _request: Request) -> Request:
        return {
            "stacked": self.stacked,
            "returned": self.returned,
            "stackedCount": self.stacked_count,
            "enabled": self.enabled,
            "notes": self.notes,
            "address": self.address,
            "essp": self.essp,
        }


def main(argv: Sequence[str] | None = None) -> None:
    """Run the validator alone on a socat pty pair, controlled over a Unix socket."""
    parser = note_arguments(__doc__.split("\n\n")[0], escrow_timeout_s=ESCROW_TIMEOUT_S)
    parser.add_argument("--address", type=int, default=0)
    parser.add_argument("--essp", action="store_true", help="require eSSP encryption")
    parser.add_argument("--fixed-key", default=f"{DEFAULT_FIXED_KEY:016X}")
    args = parser.parse_args(argv)
    device = SspNoteDevice(
        args.notes,
        address=args.address,
        essp=args.essp,
        fixed_key=int(args.fixed_key, 16),
        escrow_timeout_s=args.escrow_timeout,
    )
    run_process(args, serve=device.serve, controls=device.controls())


if __name__ == "__main__":
    main()
