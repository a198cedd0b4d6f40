"""An emulated ccTalk bill validator with escrow on a pty (the ``cctalk`` note wire simulator).

:class:`CctalkBillDevice` is the ccTalk coin device's slave engine (frames,
checksums, the five-event buffer and its counter, inhibits, master inhibit,
self-check, faults:
:class:`~devices.sim.coin_acceptor.cctalk_device.CctalkCoinDevice`) answering
as a bill validator (:mod:`devices.cash_acceptor.cctalk_bills`): bill ids (157) and
the country scaling factor (156, 100 for VND: ``VN5000A`` is 500 000), the
operating mode (153), buffered bill events (159) and route bill (154).

A note fed in (:meth:`CctalkBillDevice.insert_note`) is held in escrow (event
type, 1) when the validator is enabled for it and the stacker is in place;
routing it stacks it (type, 0) or returns it (0, 1 returned from escrow); it
goes back by itself after ``escrow_timeout_s`` without a route.  An unknown
note is rejected (0, 2); under ``jam`` it jams (0, 6; self-check fault until
``clear``); under ``fraud`` or with ``pullBack`` it is pulled back out of
escrow when routed (0, 8).  The stacker: removed (0, 11), inserted (0, 12),
full (0, 14).  Its future resolves with its fate; nothing is ever lost.

Run alone (``python -m devices.sim.cash_acceptor.cctalk_device``) it serves a socat pty
pair in a process of its own, controlled over a Unix socket
(:mod:`devices.sim.support.device_process`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from devices.cash_acceptor.cctalk_bills import (
    BILL_VALIDATOR_ADDRESS,
    MODE_STACKER_AND_ESCROW,
    BillHeader,
    BillStatus,
    Route,
    RouteReply,
    Scaling,
    bill_id_for,
)
from devices.cash_acceptor.messages import StackerState
from devices.cash_acceptor.settings import VND_NOTES
from devices.coin_acceptor.cctalk import CHANNELS, Checksum, Header
from devices.sim.cash_acceptor.note_device import Fate, note_arguments, note_controls
from devices.sim.coin_acceptor.cctalk_device import (
    CctalkCoinDevice,
    CctalkFault,
    CctalkFaultParams,
    bus_arguments,
)
from devices.sim.support.device_process import Control, Request, fault_control, run_process

log = logging.getLogger(__name__)

#: VND bill value codes are hundreds of dong (four digits reach 500 000).
VND_SCALING = Scaling(factor=100, decimals=0)
#: How long a bill waits in escrow for a route before it goes back, in s.
ESCROW_TIMEOUT_S = 10.0


class _Held:
    def __init__(
        self, bill_type: int, value: int, fate: asyncio.Future[Fate], *, pull: bool
    ) -> None:
        self.bill_type = bill_type
        self.value = value
        self.fate = fate
        self.pull = pull
        self.timer: asyncio.TimerHandle | None = None


class CctalkBillDevice(CctalkCoinDevice):
    """The emulated bill validator; every method runs on the event loop and never blocks."""

    def __init__(
        self,
        notes: Sequence[int] = VND_NOTES,
        *,
        address: int = BILL_VALIDATOR_ADDRESS,
        checksum: Checksum = Checksum.SIMPLE,
        echo: bool = False,
        escrow_timeout_s: float = ESCROW_TIMEOUT_S,
    ) -> None:
        if len(notes) > CHANNELS:
            raise ValueError(f"at most {CHANNELS} notes")
        super().__init__((), address=address, checksum=checksum, echo=echo)
        self.notes = list(notes)
        self.bill_ids = [bill_id_for(v, VND_SCALING) for v in notes]
        self.bill_ids += ["......."] * (CHANNELS - len(notes))
        self.escrow_timeout_s = escrow_timeout_s
        self.stacker = StackerState.OK
        self.held: _Held | None = None
        self.mode = 0
        #: Values of notes stacked, in order.
        self.stacked: list[int] = []

    @property
    def taking(self) -> bool:
        """True when the validator would hold a note of an enabled type in escrow."""
        return self.enabled and self.stacker is StackerState.OK and self.held is None

    def power_cycle(self) -> None:
        """Power off and on (the coin device's reset); a note in escrow comes back out."""
        held = getattr(self, "held", None)
        super().power_cycle()
        self.held = None
        self.mode = 0
        if held is not None:
            self._give_back(held)

    def insert_note(self, value: int, *, pull_back: bool = False) -> asyncio.Future[Fate]:
        """Feed a note of ``value`` whole units; the future resolves with its fate."""
        fate: asyncio.Future[Fate] = asyncio.get_running_loop().create_future()
        bill_type = self.notes.index(value) + 1 if value in self.notes else 0
        if not self._powered() or not self.master_enabled or not self.taking:
            self.returned.append(value)
            fate.set_result(Fate.RETURNED)
            return fate
        status: int | None = None
        if self.fault is CctalkFault.JAM:
            status = BillStatus.JAMMED_IN_TRANSPORT_UNSAFE
        elif not bill_type:
            status = BillStatus.INVALID_BILL_VALIDATION
        elif not self.mask >> (bill_type - 1) & 1:
            status = BillStatus.INHIBITED_BILL_SERIAL
        if status is not None:
            self._event(0, status)
            self.returned.append(value)  # a jammed note: the technician gives it back
            fate.set_result(Fate.RETURNED)
            return fate
        pull = pull_back or self.fraud_code is not None
        self.fraud_code = None
        held = _Held(bill_type, value, fate, pull=pull)
        self.held = held
        self._event(bill_type, 1)
        held.timer = asyncio.get_running_loop().call_later(self.escrow_timeout_s, self._timed_out)
        return fate

    def set_stacker(self, state: StackerState) -> None:
        """Remove, fill or put back (emptied) the stacker."""
        before, self.stacker = self.stacker, state
        if state is before:
            return
        if state is StackerState.REMOVED:
            self._event(0, BillStatus.STACKER_REMOVED)
        elif state is StackerState.FULL:
            self._event(0, BillStatus.STACKER_FULL)
        else:
            self._event(0, BillStatus.STACKER_INSERTED)

    def _timed_out(self) -> None:
        if self.held is not None:
            self._route(Route.RETURN)

    def _give_back(self, held: _Held) -> None:
        if held.timer is not None:
            held.timer.cancel()
        self.returned.append(held.value)
        if not held.fate.done():
            held.fate.set_result(Fate.RETURNED)

    def _route(self, route: int) -> bytes:
        held = self.held
        if held is None:
            return bytes([RouteReply.ESCROW_EMPTY])
        if route == Route.HOLD:
            if held.timer is not None:
                held.timer.cancel()
            loop = asyncio.get_running_loop()
            held.timer = loop.call_later(self.escrow_timeout_s, self._timed_out)
            return b""
        self.held = None
        if route == Route.STACK and held.pull:
            self._event(0, BillStatus.PULLED_BACKWARDS)
            self._give_back(held)
        elif route == Route.STACK:
            if held.timer is not None:
                held.timer.cancel()
            self._event(held.bill_type, 0)
            self.stacked.append(held.value)
            self.accepted.append((self.counter, held.value))
            held.fate.set_result(Fate.STACKED)
        else:
            self._event(0, BillStatus.RETURNED_FROM_ESCROW)
            self._give_back(held)
        return b""

    def _reply_data(self, header: int, data: bytes) -> bytes | None:  # noqa: PLR0911 - dispatch
        """Bill validator headers here, the rest as the ccTalk coin device answers them."""
        if header == BillHeader.REQUEST_BILL_ID:
            if len(data) == 1 and 1 <= data[0] <= CHANNELS:
                return self.bill_ids[data[0] - 1].encode("ascii")
            return None
        if header == BillHeader.REQUEST_COUNTRY_SCALING_FACTOR:
            if data != b"VN":
                return bytes(3)
            return VND_SCALING.factor.to_bytes(2, "little") + bytes([VND_SCALING.decimals])
        if header == BillHeader.MODIFY_BILL_OPERATING_MODE:
            if len(data) != 1:
                return None
            self.mode = data[0] & MODE_STACKER_AND_ESCROW
            return b""
        if header == BillHeader.ROUTE_BILL:
            if len(data) != 1:
                return None
            return self._route(data[0])
        if header == BillHeader.READ_BUFFERED_BILL_EVENTS:
            # The same buffer layout as a coin acceptor's header 229.
            return super()._reply_data(Header.READ_BUFFERED_CREDIT, data)
        return super()._reply_data(header, data)

    def _fixed_replies(self) -> dict[int, bytes]:
        replies = super()._fixed_replies()
        replies[Header.REQUEST_EQUIPMENT_CATEGORY] = b"Bill Validator"
        return replies

    def controls(self) -> dict[str, Control]:
        """The control requests of the device process: insertNote, stacker, fault, stats."""
        fault = fault_control(self.set_fault, CctalkFaultParams)
        return {**note_controls(self), "fault": fault, "stats": self._bill_stats}

    async def _bill_stats(self, _request: Request) -> Request:
        return {
            "stacked": self.stacked,
            "accepted": self.accepted,
            "returned": self.returned,
            "counter": self.counter,
            "enabled": self.enabled,
            "notes": self.notes,
            "address": self.address,
            "checksum": self.checksum.value,
            "echo": self.echo,
        }


def main(argv: Sequence[str] | None = None) -> None:
    """Run the validator alone on a socat pty pair, controlled over a Unix socket."""
    parser = note_arguments(__doc__.split("\n\n")[0], escrow_timeout_s=ESCROW_TIMEOUT_S)
    bus_arguments(parser, address=BILL_VALIDATOR_ADDRESS)
    args = parser.parse_args(argv)
    device = CctalkBillDevice(
        args.notes,
        address=args.address,
        checksum=Checksum(args.checksum),
        echo=args.echo,
        escrow_timeout_s=args.escrow_timeout,
    )
    run_process(args, serve=device.serve, controls=device.controls())


if __name__ == "__main__":
    main()
