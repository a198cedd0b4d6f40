"""ESC/POS status bytes: the real-time ``DLE EOT n`` answers and the ``GS r 1`` answer.

Shared by the ``escpos`` driver (which decodes them) and its wire simulator
(which encodes them), so both read the bits the same way.  Bit meanings are
those of the Epson ESC/POS reference, which Epson-compatible printers
(Bixolon, Citizen, Sewoo, Xprinter, ...) follow:

- ``DLE EOT 1`` printer status: bit 3 offline.
- ``DLE EOT 2`` offline cause: bit 2 cover open, bit 5 printing stopped by
  paper end, bit 6 an error occurred.
- ``DLE EOT 3`` error cause: bit 2 mechanical error, bit 3 autocutter error
  (a jam at the cutter), bit 5 unrecoverable error, bit 6 auto-recoverable
  error (head too hot, cover opened while printing).
- ``DLE EOT 4`` roll sensors: bits 2-3 near-end, bits 5-6 roll end.

Every ``DLE EOT`` answer has bits 1 and 4 set and bits 0 and 7 clear; the
answer to ``GS r 1`` (paper sensors: bits 0-1 near-end, bits 2-3 paper end)
has bit 4 clear, which tells the two apart on one byte stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.errors import ProtocolError

DLE_EOT = b"\x10\x04"
#: The real-time status requests ``DLE EOT n``: their number, and all four sent at once.
STATUS_COUNT = 4
STATUS_REQUESTS = b"".join(DLE_EOT + bytes((n,)) for n in range(1, STATUS_COUNT + 1))
#: ``GS r 1``: answered only once every byte before it is processed (printed and cut).
PRINTED_REQUEST = b"\x1dr\x01"

_FIXED_MASK = 0x93  # bits 0, 1, 4, 7
_FIXED = 0x12  # bits 1 and 4 on, 0 and 7 off

OFFLINE = 0x08  # n=1
COVER_OPEN = 0x04  # n=2
PAPER_END_STOP = 0x20  # n=2
ERROR_OCCURRED = 0x40  # n=2
MECHANICAL_ERROR = 0x04  # n=3
AUTOCUTTER_ERROR = 0x08  # n=3
UNRECOVERABLE_ERROR = 0x20  # n=3
AUTO_RECOVERABLE_ERROR = 0x40  # n=3
NEAR_END = 0x0C  # n=4
ROLL_END = 0x60  # n=4
PRINTED_NEAR_END = 0x03  # GS r 1
PRINTED_PAPER_END = 0x0C  # GS r 1


def is_realtime_answer(byte: int) -> bool:
    """True if ``byte`` has the fixed bits of a ``DLE EOT`` answer."""
    return byte & _FIXED_MASK == _FIXED


def is_printed_answer(byte: int) -> bool:
    """True if ``byte`` can be the answer to ``GS r 1`` (bits 4 and 7 clear)."""
    return byte & 0x90 == 0


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What a printer's four real-time status bytes say.

    Attributes:
        offline: the printer is offline (any of the conditions below, or feeding).
        cover_open: the paper compartment lid is open.
        paper_out: the roll-end sensor sees no paper, or printing stopped at paper end.
        paper_low: the near-end sensor sees the end of the roll (a few metres left).
        cutter_jam: autocutter error: paper stuck at the cutter (cleared by a person,
            then by ``DLE ENQ`` or a power cycle).
        mechanical_error: mechanical or unrecoverable error: a technician is needed.
        recovering: auto-recoverable error (print head too hot): printing pauses.

    """

    offline: bool = False
    cover_open: bool = False
    paper_out: bool = False
    paper_low: bool = False
    cutter_jam: bool = False
    mechanical_error: bool = False
    recovering: bool = False

    @classmethod
    def decode(cls, answers: bytes) -> PrinterStatus:
        """Decode the answers to :data:`STATUS_REQUESTS` (four bytes, in order).

        Raises:
            ProtocolError: not four bytes, or a byte without the fixed bits of an answer.

        """
        if len(answers) != STATUS_COUNT or not all(is_realtime_answer(b) for b in answers):
            raise ProtocolError(f"the printer answered a status request with {answers.hex(' ')}")
        printer, offline, error, paper = answers
        return cls(
            offline=bool(printer & OFFLINE),
            cover_open=bool(offline & COVER_OPEN),
            paper_out=bool(paper & ROLL_END or offline & PAPER_END_STOP),
            paper_low=bool(paper & NEAR_END),
            cutter_jam=bool(error & AUTOCUTTER_ERROR),
            mechanical_error=bool(error & (MECHANICAL_ERROR | UNRECOVERABLE_ERROR)),
            recovering=bool(error & AUTO_RECOVERABLE_ERROR),
        )

    def answer(self, n: int) -> int:
        """Encode the answer byte to ``DLE EOT n`` (1..4), as a printer sends it.

        Raises:
            ValueError: ``n`` is not 1..4.

        """
        error = self.cutter_jam or self.mechanical_error or self.recovering
        match n:
            case 1:
                bits = OFFLINE if self.offline else 0
            case 2:
                bits = (
                    (COVER_OPEN if self.cover_open else 0)
                    | (PAPER_END_STOP if self.paper_out else 0)
                    | (ERROR_OCCURRED if error else 0)
                )
            case 3:
                bits = (
                    (AUTOCUTTER_ERROR if self.cutter_jam else 0)
                    | (UNRECOVERABLE_ERROR if self.mechanical_error else 0)
                    | (AUTO_RECOVERABLE_ERROR if self.recovering else 0)
                )
            case 4:
                bits = (ROLL_END if self.paper_out else 0) | (NEAR_END if self.paper_low else 0)
            case _:
                raise ValueError(f"DLE EOT {n} is not a status request")
        return _FIXED | bits

    def printed_answer(self) -> int:
        """Encode the answer byte to ``GS r 1``."""
        return (PRINTED_PAPER_END if self.paper_out else 0) | (
            PRINTED_NEAR_END if self.paper_low else 0
        )
