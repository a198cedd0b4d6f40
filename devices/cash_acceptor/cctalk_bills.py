"""ccTalk bill validator vocabulary: headers, bill event codes, bill ids and their values.

The frames, the checksums, the link and the event counter are the coin
acceptor's (:mod:`devices.coin_acceptor.cctalk`, ``cctalk_link``, ``counter``):
a bill validator answers header 159 (read buffered bill events) with the same
``counter, 1A, 1B, ... 5A, 5B`` layout as a coin acceptor's 229.  What differs
(ccTalk generic specification, part 3, "Bill validator"; the values as
github.com/ashaduri/qt-cctalk cctalk/cctalk_enums.h at e93e8d95 lists them):

- result A 1-16 is a bill type: result B 0 = validated and sent to the stacker
  (credit), 1 = validated and held in escrow (the host routes it);
- result A 0 is a status or error: result B is :class:`BillStatus`;
- header 154 routes the bill in escrow: 0 return, 1 stack, 255 hold longer;
  its ACK carries no data when routed, 254 when the escrow is empty, 255 when
  it could not route;
- header 157 names a bill type (``VN0500A``: country, a 4-digit value code,
  issue), 156 gives a country's scaling factor and decimal places, 153 sets
  the operating mode (bit 0 stacker, bit 1 escrow).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

#: The usual ccTalk address of a bill validator.
BILL_VALIDATOR_ADDRESS = 40
#: Operating mode of header 153: use the stacker (bit 0) and escrow (bit 1).
MODE_STACKER_AND_ESCROW = 0b11


class BillHeader(IntEnum):
    """ccTalk headers of a bill validator the driver uses beyond the coin acceptor's."""

    MODIFY_BILL_OPERATING_MODE = 153
    ROUTE_BILL = 154
    REQUEST_COUNTRY_SCALING_FACTOR = 156
    REQUEST_BILL_ID = 157
    READ_BUFFERED_BILL_EVENTS = 159


class Route(IntEnum):
    """Data of header 154."""

    RETURN = 0
    STACK = 1
    HOLD = 255


class RouteReply(IntEnum):
    """Data of the ACK to header 154 when the bill was not routed."""

    ESCROW_EMPTY = 254
    FAILED = 255


class BillStatus(IntEnum):
    """Result B of a bill event whose result A is 0."""

    MASTER_INHIBIT_ACTIVE = 0
    RETURNED_FROM_ESCROW = 1
    INVALID_BILL_VALIDATION = 2
    INVALID_BILL_TRANSPORT = 3
    INHIBITED_BILL_SERIAL = 4
    INHIBITED_BILL_DIP = 5
    JAMMED_IN_TRANSPORT_UNSAFE = 6
    JAMMED_IN_STACKER = 7
    PULLED_BACKWARDS = 8
    TAMPER = 9
    STACKER_OK = 10
    STACKER_REMOVED = 11
    STACKER_INSERTED = 12
    STACKER_FAULTY = 13
    STACKER_FULL = 14
    STACKER_JAMMED = 15
    JAMMED_IN_TRANSPORT_SAFE = 16
    OPTO_FRAUD = 17
    STRING_FRAUD = 18
    ANTI_STRING_FAULTY = 19
    BARCODE_DETECTED = 20
    UNKNOWN_BILL_STACKED = 21


#: Statuses that are a fraud attempt (the validator took nothing).
FRAUD = frozenset(
    {BillStatus.PULLED_BACKWARDS, BillStatus.TAMPER, BillStatus.OPTO_FRAUD, BillStatus.STRING_FRAUD}
)
#: Statuses of a jammed bill.
JAMS = frozenset(
    {
        BillStatus.JAMMED_IN_TRANSPORT_UNSAFE,
        BillStatus.JAMMED_IN_STACKER,
        BillStatus.STACKER_JAMMED,
        BillStatus.JAMMED_IN_TRANSPORT_SAFE,
    }
)

_BILL_ID = re.compile(r"^(?P<country>[A-Z]{2})(?P<value>[0-9]{4})[A-Z0-9]$")


@dataclass(frozen=True, slots=True)
class Scaling:
    """Reply to header 156: value codes times ``factor``, over 10^``decimals``."""

    factor: int
    decimals: int


def parse_scaling(data: bytes) -> Scaling | None:
    """Parse a reply to header 156; None when the country is not supported (all zero)."""
    if len(data) != 3 or data == bytes(3):  # noqa: PLR2004 - factor LSB, MSB, decimals
        return None
    return Scaling(int.from_bytes(data[:2], "little"), data[2])


def bill_value(bill_id: str, country: str, scaling: Scaling | None) -> int | None:
    """Whole currency units of a bill id of ``country``; None for another or an empty slot."""
    match = _BILL_ID.match(bill_id)
    if match is None or match["country"] != country or scaling is None:
        return None
    minor = int(match["value"]) * scaling.factor
    value, rest = divmod(minor, 10**scaling.decimals)
    return value if value > 0 and rest == 0 else None


def bill_id_for(value: int, scaling: Scaling, country: str = "VN", issue: str = "A") -> str:
    """The bill id a validator reports for ``value`` whole units (the simulator's side).

    Raises:
        ValueError: the value has no 4-digit code at this scaling.

    """
    code, rest = divmod(value * 10**scaling.decimals, scaling.factor)
    if rest or not 0 < code <= 9999:  # noqa: PLR2004 - four digits
        raise ValueError(f"{value} has no bill value code at scaling {scaling}")
    return f"{country}{code:04d}{issue}"
