"""Behavioural banknote validator simulator: ``sim/{d}/insertNote`` feeds a note.

The simulated validator powers up inhibited.  A note fed while it is
inhibited or faulted never goes in (``out/returned``); a note it does not
know (not a VND note) is rejected (``noteRejected``, returned); any other is
held in escrow and the class decides: stacked (credited, ledger first) or
returned (``noteReturned``).  ``pullBack`` pulls the note back out of escrow
on a string: a fraud attempt, never credited.  ``sim/{d}/stacker`` removes,
fills or puts back the stacker.  Notes are never lost: each one is credited
or comes back out.

Faults: ``disconnect`` -> offline; ``hardwareError``, ``unresponsive`` ->
hardwareError; ``jam`` -> hardwareError, and a fed note jams
(``noteRejected`` ``jam``, given back by the technician: ``out/returned``);
``garbage`` -> hardwareError (the validator is polled), and a note's report is
garbled (``noteRejected`` ``validationFailed``); ``slow`` -> each note is
validated ``delayMs`` late.
"""

from __future__ import annotations

from typing import ClassVar

from devices.base import Message, NoResult
from devices.cash_acceptor.messages import CashAcceptorDetail, NoteRejectReason
from devices.cash_acceptor.protocol import CashAcceptor, Verdict
from devices.cash_acceptor.settings import VND_NOTES, NoteTable
from devices.errors import HardwareError, Offline, ProtocolError
from devices.sim.cash_acceptor.actions import INSERT_NOTE, STACKER, InsertNoteParams, StackerParams
from devices.sim.support.acceptor import FAULTY, SimulatedAcceptor
from devices.sim.support.faults import FaultKind


class ReturnedNote(Message):
    """``sim/{d}/out/returned``: a note given back to the citizen, ``value`` whole VND."""

    value: int


class SimCashAcceptorSettings(NoteTable, frozen=True, forbid_unknown_fields=True):
    """``[devices.<id>]`` options of the simulated validator: the note table alone."""


class SimCashAcceptor(
    SimulatedAcceptor[SimCashAcceptorSettings, CashAcceptorDetail],
    CashAcceptor[SimCashAcceptorSettings],
):
    """A banknote validator whose notes come from ``sim/{d}/insertNote``."""

    Settings = SimCashAcceptorSettings
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"returned": ReturnedNote}

    settings: SimCashAcceptorSettings

    async def set_inhibit(self, inhibited: bool) -> None:
        """Set the simulated inhibit; inhibiting works on a faulty validator, enabling not.

        Raises:
            Offline: disconnected.
            HardwareError: enabling while a hardwareError/jam/unresponsive fault is set.

        """
        if self._disconnected():
            raise Offline("simulated device is disconnected")
        if not inhibited and self.fault in FAULTY:
            raise HardwareError(f"simulated {self.fault}")
        self._hw_inhibited = inhibited

    @INSERT_NOTE
    async def sim_insert_note(self, params: InsertNoteParams) -> NoResult:
        """Feed a note: credited once stacked, or given back; never lost.

        Raises:
            Offline: the validator is disconnected (the note is not taken in).
            HardwareError: a hardwareError or unresponsive fault is set.

        """
        value = params.value
        if self._hw_inhibited or self._disconnected():
            self._give_back(value)
            return NoResult()
        if self.fault is FaultKind.JAM:
            self.note_rejected(NoteRejectReason.JAM)
            self._give_back(value)
            return NoResult()
        try:
            await self.check_faults()
        except ProtocolError:
            self.note_rejected(NoteRejectReason.VALIDATION_FAILED)
            self._give_back(value)
            return NoResult()
        except (HardwareError, Offline):
            self._give_back(value)
            raise
        if value not in VND_NOTES:
            self.note_rejected(NoteRejectReason.UNKNOWN_NOTE)
            self._give_back(value)
            return NoResult()
        verdict = self.note_escrowed(value)
        if params.pull_back:
            await self.fraud_detected("notePulledBack")
            self._give_back(value)
        elif verdict is Verdict.STACK:
            await self.note_stacked(value)
        else:
            self.note_returned(value)
            self._give_back(value)
        return NoResult()

    @STACKER
    async def sim_stacker(self, params: StackerParams) -> NoResult:
        """Remove, fill or put back the stacker (emptying it is ``kioskd ledger collect``)."""
        await self.stacker_changed(params.state)
        return NoResult()

    def _give_back(self, value: int) -> None:
        self.host.sim_output(self.id, "returned", ReturnedNote(value=value))
