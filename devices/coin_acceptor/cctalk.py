"""ccTalk codec: frames, checksums, the headers a coin acceptor needs, error codes.

Sources (public): ccTalk Generic Specification issue 4.7, Part 1 (message
structure, checksums) and Part 2 (headers), Part 3 table "Coin Acceptor Error
Codes" (https://fr.scribd.com/document/55268604/cctalk44-3); the buffered credit
reply layout as described in http://balda.ch/posts/2013/Aug/19/cctalk-part2 and
the error code list of github.com/vltgroup/ccTalk
(``devices/CoinAcceptorEventCodes.java``).  docs/coins.md has the details.

A frame is ``[dest, len, src, header, data * len, checksum]``:

- *simple checksum*: the 8-bit sum of every byte including the checksum is 0;
- *CRC-16*: CRC-16/CCITT (polynomial 0x1021, initial value 0, no reflection)
  over ``dest, len, header, data``; its low byte takes the place of ``src`` and
  its high byte the place of the checksum (the source address is implied).

A reply from the device has header 0 (ACK) or 5 (NAK) and the host's address
as destination.  Nothing here does I/O; the link (:mod:`.cctalk_link`) and the
wire simulator (:mod:`devices.sim.coin_acceptor.cctalk_device`) both use it.
"""

from __future__ import annotations

import binascii
import enum
import re
from dataclasses import dataclass
from enum import IntEnum

#: Address of the host (the daemon) on the bus.
HOST_ADDRESS = 1
#: Default address of a coin acceptor.
COIN_ACCEPTOR_ADDRESS = 2
#: Longest data field (the length byte).
MAX_DATA = 255
#: Bytes of a frame around its data.
OVERHEAD = 5
#: Coin channels of a coin acceptor (two inhibit mask bytes).
CHANNELS = 16


class Checksum(enum.StrEnum):
    """The two checksum variants of ccTalk."""

    SIMPLE = "simple"
    CRC16 = "crc16"


class Header(IntEnum):
    """ccTalk headers used by the coin acceptor driver (Part 2)."""

    REPLY = 0
    RESET = 1
    NAK = 5
    REQUEST_COIN_ID = 184
    MODIFY_MASTER_INHIBIT = 228
    READ_BUFFERED_CREDIT = 229
    REQUEST_INHIBIT_STATUS = 230
    MODIFY_INHIBIT_STATUS = 231
    REQUEST_MANUFACTURER_ID = 246
    REQUEST_EQUIPMENT_CATEGORY = 245
    PERFORM_SELF_CHECK = 232
    SIMPLE_POLL = 254


#: Data lengths of the ACK to the requests the driver sends (Part 2).  ccTalk replies
#: carry no request id: a reply of another length is a late answer to an earlier
#: request, and the link treats it as a bad frame (and retries).
REPLY_DATA_LENGTHS: dict[int, frozenset[int]] = {
    Header.RESET: frozenset({0}),
    Header.REQUEST_COIN_ID: frozenset({6}),
    Header.MODIFY_MASTER_INHIBIT: frozenset({0}),
    Header.READ_BUFFERED_CREDIT: frozenset({11}),
    Header.MODIFY_INHIBIT_STATUS: frozenset({0}),
    Header.PERFORM_SELF_CHECK: frozenset({1, 2}),
    Header.SIMPLE_POLL: frozenset({0}),
}


class CoinError(IntEnum):
    """Coin acceptor error codes reported in a buffered event (result A = 0).

    Codes 128-159 are "inhibited coin (type n)", see :func:`is_inhibited_coin`.
    """

    NULL_EVENT = 0
    REJECT_COIN = 1
    INHIBITED_COIN = 2
    MULTIPLE_WINDOW = 3
    WAKE_UP_TIMEOUT = 4
    VALIDATION_TIMEOUT = 5
    CREDIT_SENSOR_TIMEOUT = 6
    SORTER_OPTO_TIMEOUT = 7
    SECOND_CLOSE_COIN = 8
    ACCEPT_GATE_NOT_READY = 9
    CREDIT_SENSOR_NOT_READY = 10
    SORTER_NOT_READY = 11
    REJECT_COIN_NOT_CLEARED = 12
    VALIDATION_SENSOR_NOT_READY = 13
    CREDIT_SENSOR_BLOCKED = 14
    SORTER_OPTO_BLOCKED = 15
    CREDIT_SEQUENCE_ERROR = 16
    COIN_GOING_BACKWARDS = 17
    COIN_TOO_FAST_CREDIT = 18
    COIN_TOO_SLOW_CREDIT = 19
    COIN_ON_STRING = 20
    DCE_OPTO_TIMEOUT = 21
    DCE_OPTO_NOT_SEEN = 22
    CREDIT_SENSOR_TOO_EARLY = 23
    REJECT_COIN_REPEATED_TRIP = 24
    REJECT_SLUG = 25
    REJECT_SENSOR_BLOCKED = 26
    GAMES_OVERLOAD = 27
    MAX_METER_PULSES = 28
    ACCEPT_GATE_OPEN_NOT_CLOSED = 29
    ACCEPT_GATE_CLOSED_NOT_OPEN = 30
    MANIFOLD_OPTO_TIMEOUT = 31
    MANIFOLD_OPTO_BLOCKED = 32
    MANIFOLD_NOT_READY = 33
    SECURITY_STATUS_CHANGED = 34
    MOTOR_EXCEPTION = 35
    SWALLOWED_COIN = 36
    COIN_TOO_FAST_VALIDATION = 37
    COIN_TOO_SLOW_VALIDATION = 38
    COIN_INCORRECTLY_SORTED = 39
    EXTERNAL_LIGHT_ATTACK = 40
    DATA_BLOCK_REQUEST = 253
    FLIGHT_DECK_OPEN = 254
    UNSPECIFIED_ALARM = 255


class ErrorKind(enum.Enum):
    """What the daemon does with an error code."""

    #: Nothing happened to money (null event, data block request).
    IGNORE = "ignore"
    #: The coin came back out: ``coinRejected``.
    REJECTED = "rejected"
    #: A coin of an inhibited channel came back out (no event, as the coin was not wanted).
    INHIBITED = "inhibited"
    #: Manipulation: ``fraudAttempt`` event and state, acceptor inhibited.
    FRAUD = "fraud"
    #: The mechanism failed; the coin (if any) came back: ``coinRejected``, logged.
    FAULT = "fault"


_FRAUD = frozenset(
    {
        CoinError.CREDIT_SEQUENCE_ERROR,
        CoinError.COIN_GOING_BACKWARDS,
        CoinError.COIN_TOO_FAST_CREDIT,
        CoinError.COIN_TOO_SLOW_CREDIT,
        CoinError.COIN_ON_STRING,
        CoinError.DCE_OPTO_NOT_SEEN,
        CoinError.CREDIT_SENSOR_TOO_EARLY,
        CoinError.REJECT_COIN_REPEATED_TRIP,
        CoinError.REJECT_SLUG,
        CoinError.SECURITY_STATUS_CHANGED,
        CoinError.COIN_TOO_FAST_VALIDATION,
        CoinError.COIN_TOO_SLOW_VALIDATION,
        CoinError.EXTERNAL_LIGHT_ATTACK,
    },
)
_REJECTED = frozenset(
    {
        CoinError.REJECT_COIN,
        CoinError.MULTIPLE_WINDOW,
        CoinError.SECOND_CLOSE_COIN,
        CoinError.ACCEPT_GATE_NOT_READY,
        CoinError.CREDIT_SENSOR_NOT_READY,
        CoinError.SORTER_NOT_READY,
        CoinError.REJECT_COIN_NOT_CLEARED,
        CoinError.MANIFOLD_NOT_READY,
        CoinError.FLIGHT_DECK_OPEN,
    },
)
_IGNORED = frozenset({CoinError.NULL_EVENT, CoinError.DATA_BLOCK_REQUEST})
_INHIBITED_TYPES = range(128, 160)


def is_inhibited_coin(code: int) -> bool:
    """True for codes 128-159, "inhibited coin (type 1-32)"."""
    return code in _INHIBITED_TYPES


def classify(code: int) -> ErrorKind:
    """What an error code means for the deposit (unknown codes count as faults)."""
    if code in _IGNORED:
        return ErrorKind.IGNORE
    if code in _FRAUD:
        return ErrorKind.FRAUD
    if code == CoinError.INHIBITED_COIN or is_inhibited_coin(code):
        return ErrorKind.INHIBITED
    if code in _REJECTED:
        return ErrorKind.REJECTED
    return ErrorKind.FAULT


def error_name(code: int) -> str:
    """A lowerCamel name for an error code (``coinOnString``, ``inhibitedCoin7``, ``error99``)."""
    if is_inhibited_coin(code):
        return f"inhibitedCoin{code - 127}"
    try:
        name = CoinError(code).name
    except ValueError:
        return f"error{code}"
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


class FrameError(ValueError):
    """Bytes that are not a valid ccTalk frame (bad length, checksum, addresses)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded ccTalk frame; ``source`` is None in CRC-16 mode (implied)."""

    destination: int
    source: int | None
    header: int
    data: bytes


def crc16(data: bytes) -> int:
    """CRC-16/CCITT with initial value 0 (ccTalk's CRC variant)."""
    return binascii.crc_hqx(data, 0)


def encode(
    destination: int,
    source: int,
    header: int,
    data: bytes = b"",
    checksum: Checksum = Checksum.SIMPLE,
) -> bytes:
    """Build a frame.

    Raises:
        FrameError: an address or header outside a byte, or more than 255 data bytes.

    """
    if len(data) > MAX_DATA:
        raise FrameError(f"ccTalk data is at most {MAX_DATA} bytes, got {len(data)}")
    for name, value in (("destination", destination), ("source", source), ("header", header)):
        if not 0 <= value <= MAX_DATA:
            raise FrameError(f"ccTalk {name} {value} is not a byte")
    if checksum is Checksum.CRC16:
        crc = crc16(bytes([destination, len(data), header]) + data)
        return bytes([destination, len(data), crc & 0xFF, header, *data, crc >> 8])
    body = bytes([destination, len(data), source, header]) + data
    return body + bytes([(-sum(body)) & 0xFF])


def frame_length(head: bytes) -> int:
    """Total length of the frame whose first two bytes are ``head`` (dest, len)."""
    return head[1] + OVERHEAD


def decode(raw: bytes, checksum: Checksum = Checksum.SIMPLE) -> Frame:
    """Parse one complete frame.

    Raises:
        FrameError: wrong length or checksum.

    """
    if len(raw) < OVERHEAD or len(raw) != frame_length(raw):
        raise FrameError(f"ccTalk frame of {len(raw)} bytes does not match its length byte")
    destination, length, third, header = raw[:4]
    data = bytes(raw[4 : 4 + length])
    if checksum is Checksum.CRC16:
        expected = crc16(bytes([destination, length, header]) + data)
        if (third | raw[-1] << 8) != expected:
            raise FrameError("ccTalk CRC-16 mismatch")
        return Frame(destination, None, header, data)
    if sum(raw) & 0xFF:
        raise FrameError("ccTalk checksum mismatch")
    return Frame(destination, third, header, data)


# -- payloads --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BufferedEvent:
    """One result pair of header 229: a credit (``channel`` 1-16) or an error (``channel`` 0).

    ``code`` is the sorter path of a credit or the error code of an error.
    """

    channel: int
    code: int

    @property
    def is_credit(self) -> bool:
        """True for a coin accepted into channel ``channel``."""
        return self.channel != 0


@dataclass(frozen=True, slots=True)
class BufferedCredits:
    """Reply to header 229: the event counter and up to five events, newest first."""

    counter: int
    events: tuple[BufferedEvent, ...]


def parse_buffered(data: bytes) -> BufferedCredits:
    """Parse the data of a reply to header 229 (``counter, 1A, 1B, ..., 5A, 5B``).

    Raises:
        FrameError: not an odd number of bytes (counter + pairs) or a channel above 16.

    """
    if not data or len(data) % 2 != 1:
        raise FrameError(f"buffered credit reply of {len(data)} bytes")
    events = tuple(BufferedEvent(data[i], data[i + 1]) for i in range(1, len(data), 2))
    for event in events:
        if event.channel > CHANNELS:
            raise FrameError(f"buffered credit in channel {event.channel}")
    return BufferedCredits(data[0], events)


def inhibit_mask(enabled_channels: set[int]) -> bytes:
    """Data of header 231: two bytes, bit n-1 set = channel n enabled (low byte first).

    Raises:
        ValueError: a channel outside 1-16.

    """
    mask = 0
    for channel in enabled_channels:
        if not 1 <= channel <= CHANNELS:
            raise ValueError(f"coin channel {channel} outside 1-{CHANNELS}")
        mask |= 1 << (channel - 1)
    return bytes([mask & 0xFF, mask >> 8])


def enabled_channels(mask: bytes) -> set[int]:
    """Inverse of :func:`inhibit_mask`."""
    value = int.from_bytes(mask[:2].ljust(2, b"\0"), "little")
    return {n + 1 for n in range(CHANNELS) if value >> n & 1}


_MULTIPLIERS = {"m": 1, ".": 1000, "K": 1000**2, "M": 1000**3, "G": 1000**4}
_COIN_ID = re.compile(r"^[A-Z]{2}(?P<value>[0-9mKMG.]{3})[A-Z0-9]$")


def coin_value(coin_id: str) -> int | None:
    """Value in whole currency units of a standard coin id ``CCVVVR``, or None.

    ``VVV`` is three characters where a letter marks the decimal point and the
    scale (Part 3, Appendix 3): ``500`` = 500, ``1K0`` = 1000, ``2K5`` = 2500,
    ``10K`` = 10000; ``.`` and ``m`` mark fractions, which whole-unit money
    cannot hold (None).  An empty channel (``......``, blanks) gives None.
    """
    match = _COIN_ID.match(coin_id.strip())
    if match is None:
        return None
    text = match["value"]
    letters = [c for c in text if c in _MULTIPLIERS]
    if not letters:
        return int(text) if int(text) > 0 else None
    if len(letters) != 1:
        return None
    letter = letters[0]
    whole, _, frac = text.partition(letter)
    # Value in thousandths of a unit, to stay in integers.
    milli = int(whole or "0") * _MULTIPLIERS[letter]
    if frac:
        milli += int(frac) * _MULTIPLIERS[letter] // 10 ** len(frac)
    if milli <= 0 or milli % 1000:
        return None
    return milli // 1000


def coin_id_for(value: int, country: str = "VN", issue: str = "A") -> str:
    """The standard coin id ``CCVVVR`` of a whole-unit ``value`` (inverse of :func:`coin_value`).

    Raises:
        ValueError: ``value`` has no three-character form (e.g. 1234).

    """
    for scale, letter in ((1, ""), (1000, "K"), (1000**2, "M"), (1000**3, "G")):
        if letter == "":
            text = f"{value:03d}" if 0 < value < 1000 else ""  # noqa: PLR2004 - three digits
        else:
            whole, frac = divmod(value, scale)
            digits = str(whole) if whole else ""
            rest = f"{frac * 1000 // scale:03d}".rstrip("0") if frac else ""
            text = f"{digits}{letter}{rest}".ljust(3, "0")
        if len(text) == 3 and coin_value(f"{country}{text}{issue}") == value:  # noqa: PLR2004
            return f"{country}{text}{issue}"
    raise ValueError(f"no ccTalk coin id for the value {value}")
