"""The wire messages of the ``cashAcceptor`` class: events and state detail of notes.

A deposit's commands, their results and the transaction record are the
coinAcceptor's (:mod:`devices.coin_acceptor.messages`): one deposit vocabulary
for every acceptor (a transaction's ``coins`` list holds its notes here).
Amounts are whole currency units (VND); times are Unix epoch ms.  These types
are the wire schema (v1 only grows).
"""

from __future__ import annotations

from enum import StrEnum

from devices.base import Message


class StackerState(StrEnum):
    """Values of the detail field ``stacker``.

    ``ok``: in place with room; ``full``: the validator reports it full, or it
    holds ``stackerCapacity`` notes since its last collection; ``removed``: taken
    out of the validator (XFS4IoT: the cash unit is missing).
    """

    OK = "ok"
    FULL = "full"
    REMOVED = "removed"


class ReturnReason(StrEnum):
    """Why a note held in escrow went back to the citizen (``noteReturned.reason``).

    ``depositOver``: no deposit takes money now (none active, ending, inhibited).
    ``overpayment``: the note would pay more than ``maxOverpayment`` above
    ``amountDue`` (the kiosk gives no change).  ``notAccepted``: a note this kiosk
    does not take (not in its ``notes`` setting).  ``validator``: the validator
    returned it on its own (escrow timeout, power cycle).
    """

    DEPOSIT_OVER = "depositOver"
    OVERPAYMENT = "overpayment"
    NOT_ACCEPTED = "notAccepted"
    VALIDATOR = "validator"


class NoteRejectReason(StrEnum):
    """Why the validator refused a note without escrowing it (``noteRejected.reason``).

    ``unknownNote``: not a note of its table (foreign, counterfeit, damaged);
    ``validationFailed``: it could not validate it (the citizen may try again);
    ``jam``: the note stuck in the transport (XFS4IoT ``depositFailure``).
    """

    UNKNOWN_NOTE = "unknownNote"
    VALIDATION_FAILED = "validationFailed"
    JAM = "jam"


class NoteEscrowed(Message):
    """``evt/noteEscrowed``: a note is held in escrow, not yet money.

    ``value`` is whole VND; ``transactionId`` the deposit it will be stacked
    for, null when it is going back (``noteReturned`` follows).
    """

    value: int
    transaction_id: str | None = None


class NoteStacked(Message):
    """``evt/noteStacked``: a note is in the stacker and in the ledger.

    Like ``coinAccepted``: ``index`` (1 = first item of the transaction),
    ``value`` and ``total`` (after it) in whole VND, ``overpaid`` when ``total``
    exceeds ``amountDue``.
    """

    transaction_id: str
    index: int
    value: int
    total: int
    overpaid: bool = False


class NoteReturned(Message):
    """``evt/noteReturned``: a note held in escrow went back to the citizen.

    ``value`` is whole VND, null when the validator did not say; ``reason`` is a
    :class:`ReturnReason` value.
    """

    reason: ReturnReason
    value: int | None = None


class NoteRejected(Message):
    """``evt/noteRejected``: the validator refused a note before escrow.

    ``reason`` is ``unknownNote``, ``validationFailed`` or ``jam``.
    """

    reason: NoteRejectReason


class StackerReport(Message):
    """``evt/stackerFull`` and ``evt/stackerRemoved``: the stacker changed.

    ``notes`` counts notes credited into it since its last collection.
    """

    notes: int


class CashAcceptorDetail(Message):
    """State detail.

    ``inhibited``: the validator refuses notes (true unless a deposit takes them).
    ``transactionId``, ``total`` and ``amountDue`` (whole VND) describe the active
    deposit, null without one.  ``escrow``: value (whole VND) of the note held in
    escrow, null without one.  ``stacker`` is ``ok``, ``full`` or ``removed``;
    ``stackerNotes`` counts notes in it since its last collection (its level;
    the capacity is in ``capabilities``).  ``unsettled`` counts ``unknown``
    transactions waiting for ``depositEnd``.
    """

    inhibited: bool = True
    transaction_id: str | None = None
    total: int | None = None
    amount_due: int | None = None
    escrow: int | None = None
    stacker: StackerState = StackerState.OK
    stacker_notes: int = 0
    unsettled: int = 0
