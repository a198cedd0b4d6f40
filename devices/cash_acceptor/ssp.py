"""ITL SSP (Smiley Secure Protocol) codec: frames, commands, poll events, the setup table.

The specification is ITL's "SSP Protocol Manual" GA138 (issue GA138_2_2_2129A),
whose packet examples are this module's test vectors (tests/devices/test_ssp.py):

- A packet is ``STX(0x7F) SEQ/ID LENGTH DATA CRCL CRCH``.  Bit 7 of the second
  byte is the sequence flag, bits 6-0 the slave address (banknote validators: 0).
  ``LENGTH`` counts ``DATA`` only.  The CRC is a forward CRC-16, polynomial
  0x8005 (X16 + X15 + X2 + 1), seed 0xFFFF, over every byte but STX, low byte
  first, computed before byte stuffing.  Every 0x7F after the STX is sent twice
  (the CRC bytes too); a lone 0x7F inside a packet starts a new one.
- The slave repeats its last reply instead of executing a command whose
  sequence flag equals the previous command's.  SYNC (0x11) resets it: the host
  sends SYNC with the flag set (manual example ``7F 80 01 11 65 82``), the
  slave then expects the flag clear, and the host alternates from there.
- Every reply's first data byte is a generic response (0xF0 OK, ...); a poll's
  reply is OK followed by events, each a code and, for some codes, one data
  byte (the channel) at protocol versions below 9.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

#: Start of a packet (and the byte that is stuffed).
STX = 0x7F
#: Start of an eSSP encrypted block inside DATA.
STEX = 0x7E
#: The sequence flag in the SEQ/ID byte.
SEQ_FLAG = 0x80
#: Highest slave address.
MAX_ADDRESS = 0x7D
#: Most data bytes one packet carries.
MAX_DATA = 0xFF
#: CRC-16 of SSP: forward (MSB first), polynomial 0x8005, seed 0xFFFF.
CRC_POLY = 0x8005
CRC_SEED = 0xFFFF
#: Protocol version the driver asks for (the events below are those of versions 4-8).
PROTOCOL_VERSION = 8
#: Channels a validator's inhibit mask covers (two bytes).
CHANNELS = 16


class Command(IntEnum):
    """SSP command codes a banknote validator driver uses (GA138, NV9USB command table)."""

    RESET = 0x01
    SET_INHIBITS = 0x02
    SETUP_REQUEST = 0x05
    HOST_PROTOCOL_VERSION = 0x06
    POLL = 0x07
    REJECT = 0x08
    DISABLE = 0x09
    ENABLE = 0x0A
    GET_SERIAL_NUMBER = 0x0C
    SYNC = 0x11
    LAST_REJECT_CODE = 0x17
    HOLD = 0x18
    SET_GENERATOR = 0x4A
    SET_MODULUS = 0x4B
    REQUEST_KEY_EXCHANGE = 0x4C
    POLL_WITH_ACK = 0x56
    EVENT_ACK = 0x57
    GET_COUNTERS = 0x58


class Response(IntEnum):
    """Generic responses: the first data byte of every reply (GA138 "Generic Commands")."""

    OK = 0xF0
    COMMAND_NOT_KNOWN = 0xF2
    WRONG_PARAMETERS = 0xF3
    PARAMETER_OUT_OF_RANGE = 0xF4
    CANNOT_PROCESS = 0xF5
    SOFTWARE_ERROR = 0xF6
    FAIL = 0xF8
    KEY_NOT_SET = 0xFA


class Event(IntEnum):
    """Poll events of a banknote validator (GA138 NV9USB event table; NV200 adds the cashbox).

    ``READ`` with channel 0 means a note is being read; with a channel, the note
    is held in escrow (the next poll stacks it, REJECT returns it).  ``CREDIT``
    is the credit point: the note is past where the citizen could pull it back.
    """

    SLAVE_RESET = 0xF1
    READ = 0xEF
    CREDIT = 0xEE
    REJECTING = 0xED
    REJECTED = 0xEC
    STACKING = 0xCC
    STACKED = 0xEB
    SAFE_JAM = 0xEA
    UNSAFE_JAM = 0xE9
    DISABLED = 0xE8
    FRAUD_ATTEMPT = 0xE6
    STACKER_FULL = 0xE7
    NOTE_CLEARED_FROM_FRONT = 0xE1
    NOTE_CLEARED_INTO_CASHBOX = 0xE2
    CASHBOX_REMOVED = 0xE3
    CASHBOX_REPLACED = 0xE4
    NOTE_PATH_OPEN = 0xE0
    CHANNEL_DISABLE = 0xB5
    INITIALISING = 0xB6


#: Events followed by one data byte (a channel, 0 = unknown) at protocol versions 4-8.
EVENTS_WITH_CHANNEL = frozenset(
    {
        Event.READ,
        Event.CREDIT,
        Event.FRAUD_ATTEMPT,
        Event.NOTE_CLEARED_FROM_FRONT,
        Event.NOTE_CLEARED_INTO_CASHBOX,
    }
)


class FrameError(ValueError):
    """Bytes that are not a valid SSP packet (bad CRC, length, stuffing)."""


class SspError(ValueError):
    """A reply that is well framed but not what the command calls for."""


def crc16(data: bytes) -> int:
    """SSP's CRC-16 of ``data`` (forward, polynomial 0x8005, seed 0xFFFF)."""
    crc = CRC_SEED
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def crc_bytes(data: bytes) -> bytes:
    """The two CRC bytes of ``data`` as sent: low byte first."""
    return crc16(data).to_bytes(2, "little")


@dataclass(frozen=True, slots=True)
class Packet:
    """One SSP packet: ``address`` (0-0x7D), the sequence flag ``seq`` and its ``data``."""

    address: int
    seq: bool
    data: bytes


def encode(packet: Packet) -> bytes:
    """The packet's bytes on the wire: STX, header, data and CRC, 0x7F stuffed.

    Raises:
        ValueError: address above 0x7D, or no data / more than 255 bytes.

    """
    if not 0 <= packet.address <= MAX_ADDRESS:
        raise ValueError(f"SSP address {packet.address} out of 0..{MAX_ADDRESS}")
    if not 1 <= len(packet.data) <= MAX_DATA:
        raise ValueError(f"SSP data of {len(packet.data)} bytes (1..{MAX_DATA})")
    body = bytes([packet.address | (SEQ_FLAG if packet.seq else 0), len(packet.data)])
    body += packet.data
    body += crc_bytes(body)
    return bytes([STX]) + body.replace(bytes([STX]), bytes([STX, STX]))


def decode_body(body: bytes) -> Packet:
    """Check and split an unstuffed packet without its STX (header, data, CRC).

    Raises:
        FrameError: wrong length or CRC.

    """
    if len(body) < 4 or len(body) != body[1] + 4:  # noqa: PLR2004 - header + CRC
        raise FrameError(f"SSP packet of {len(body)} bytes, length byte {body[1:2].hex()}")
    if crc_bytes(body[:-2]) != body[-2:]:
        raise FrameError(f"SSP CRC {body[-2:].hex()} should be {crc_bytes(body[:-2]).hex()}")
    return Packet(address=body[0] & ~SEQ_FLAG & 0xFF, seq=bool(body[0] & SEQ_FLAG), data=body[2:-2])


class Deframer:
    """Splits a byte stream into packets (STX hunting, unstuffing, length, CRC).

    Feed it what the line delivers; :meth:`feed` returns the packets completed
    and the count of packets dropped for a bad CRC since the last call is in
    :attr:`dropped`.  A lone 0x7F inside a packet (not doubled) starts a new
    packet, as the manual requires of a slave.
    """

    def __init__(self) -> None:
        self._body = bytearray()
        self._in_packet = False
        self._stx_pending = False
        #: Packets dropped for a bad length or CRC (not reset by :meth:`feed`).
        self.dropped = 0

    def reset(self) -> None:
        """Forget a partial packet."""
        self._body.clear()
        self._in_packet = False
        self._stx_pending = False

    def feed(self, data: bytes) -> list[Packet]:
        """Take ``data``; return the packets it completes, in order."""
        packets: list[Packet] = []
        for byte in data:
            if self._stx_pending:
                self._stx_pending = False
                if byte == STX:  # a stuffed data byte
                    self._append(STX, packets)
                    continue
                # A lone STX: a new packet starts; this byte is its first.
                self._body.clear()
                self._in_packet = True
                self._append(byte, packets)
                continue
            if byte == STX:
                if self._in_packet:
                    self._stx_pending = True
                else:
                    self._in_packet = True
                    self._body.clear()
                continue
            if self._in_packet:
                self._append(byte, packets)
        return packets

    def _append(self, byte: int, packets: list[Packet]) -> None:
        body = self._body
        body.append(byte)
        if len(body) >= 2 and len(body) == body[1] + 4:  # noqa: PLR2004 - header + CRC
            raw = bytes(body)
            self.reset()
            try:
                packets.append(decode_body(raw))
            except FrameError:
                self.dropped += 1


@dataclass(frozen=True, slots=True)
class PollEvent:
    """One event of a poll reply: its code and channel (0 when it has none or is unknown)."""

    code: int
    channel: int = 0


def parse_events(data: bytes) -> list[PollEvent]:
    """The events of a poll reply's data after the OK byte, oldest first.

    Raises:
        SspError: an event code whose size is unknown (a newer protocol version),
            or a channel byte missing at the end.

    """
    events: list[PollEvent] = []
    i = 0
    while i < len(data):
        code = data[i]
        i += 1
        if code not in Event.__members__.values():
            raise SspError(f"unknown SSP event 0x{code:02X} in {data.hex()}")
        if code in EVENTS_WITH_CHANNEL:
            if i >= len(data):
                raise SspError(f"SSP event 0x{code:02X} without its channel in {data.hex()}")
            events.append(PollEvent(code, data[i]))
            i += 1
        else:
            events.append(PollEvent(code))
    return events


def encode_events(events: list[PollEvent]) -> bytes:
    """A poll reply's data: OK and the events (the simulator's side of :func:`parse_events`)."""
    out = bytearray([Response.OK])
    for event in events:
        out.append(event.code)
        if event.code in EVENTS_WITH_CHANNEL:
            out.append(event.channel)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Setup:
    """A banknote validator's setup (reply to SETUP_REQUEST, GA138 "Banknote Validator").

    ``values`` are whole currency units per channel (index 0 = channel 1), from
    the 4-byte expanded values at protocol version 6 and above, else the
    one-byte channel values times the value multiplier.
    """

    unit_type: int
    firmware: str
    currency: str
    protocol_version: int
    values: tuple[int, ...]
    currencies: tuple[str, ...]


def parse_setup(data: bytes) -> Setup:
    """Parse the data of a SETUP_REQUEST reply, OK byte included.

    Raises:
        SspError: not OK, not a banknote validator's, or too short for its channels.

    """
    if not data or data[0] != Response.OK:
        raise SspError(f"setup request answered {data[:1].hex()}")
    d = data[1:]
    if len(d) < 12:  # noqa: PLR2004 - the fixed head
        raise SspError(f"setup reply of {len(d)} bytes")
    n = d[11]
    if n > 2 * CHANNELS or len(d) < 16 + 2 * n:
        raise SspError(f"setup reply of {len(d)} bytes for {n} channels")
    multiplier = int.from_bytes(d[8:11], "big")
    version = d[15 + 2 * n]
    one_byte = tuple(v * multiplier for v in d[12 : 12 + n])
    currency = d[5:8].decode("ascii", "replace")
    if version >= 6 and len(d) >= 16 + 7 * n:  # noqa: PLR2004 - expanded segment
        base = 16 + 2 * n
        currencies = tuple(
            d[base + 3 * i : base + 3 * i + 3].decode("ascii", "replace") for i in range(n)
        )
        base += 3 * n
        values = tuple(
            int.from_bytes(d[base + 4 * i : base + 4 * i + 4], "little") for i in range(n)
        )
    else:
        currencies, values = (currency,) * n, one_byte
    return Setup(
        unit_type=d[0],
        firmware=d[1:5].decode("ascii", "replace"),
        currency=currency,
        protocol_version=version,
        values=values,
        currencies=currencies,
    )


def encode_setup(setup: Setup) -> bytes:
    """A protocol version >= 6 setup reply with multiplier 0 (the simulator's side)."""
    n = len(setup.values)
    out = bytearray([Response.OK, setup.unit_type])
    out += setup.firmware.encode("ascii")[:4].ljust(4, b"0")
    out += setup.currency.encode("ascii")
    out += (0).to_bytes(3, "big")  # 0: the values are in the expanded segment
    out.append(n)
    out += bytes(n)  # one-byte channel values: 0 with multiplier 0
    out += bytes(n)  # channel security: obsolete, 0
    out += (1).to_bytes(3, "big")  # real value multiplier
    out.append(setup.protocol_version)
    for code in setup.currencies:
        out += code.encode("ascii")
    for value in setup.values:
        out += value.to_bytes(4, "little")
    return bytes(out)


def inhibit_mask(channels: set[int]) -> bytes:
    """SET_INHIBITS data: a bit set per channel (1-16) that may take notes, channel 1 lowest."""
    mask = 0
    for channel in channels:
        if not 1 <= channel <= CHANNELS:
            raise ValueError(f"channel {channel} out of 1..{CHANNELS}")
        mask |= 1 << (channel - 1)
    return mask.to_bytes(2, "little")
