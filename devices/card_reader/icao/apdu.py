"""Command and response APDUs (ISO/IEC 7816-4 section 5.1), short and extended length."""

from __future__ import annotations

from dataclasses import dataclass

from devices.errors import InvalidData, ProtocolError

#: Largest READ BINARY that fits a short response under 3DES secure messaging.
SHORT_READ_MAX = 0xDF

SHORT_MAX_DATA = 255
SHORT_MAX_LE = 256
EXTENDED_MAX_LE = 65_536
_HEADER = 4
_SW_BYTES = 2

SW_OK = 0x9000


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """A command APDU.

    Attributes:
        cla, ins, p1, p2: the header bytes.
        data: command data (empty for none).
        le: expected response length in bytes (``None``: no response data expected;
            256 or 65536 mean "as much as the card has", encoded as zero).

    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    @property
    def header(self) -> bytes:
        """CLA INS P1 P2."""
        return bytes((self.cla, self.ins, self.p1, self.p2))

    @property
    def extended(self) -> bool:
        """True when the command needs extended length fields."""
        return len(self.data) > SHORT_MAX_DATA or (self.le or 0) > SHORT_MAX_LE

    def encode(self) -> bytes:
        """Return the APDU bytes (cases 1 to 4, short or extended)."""
        out = bytearray(self.header)
        if self.extended:
            out.append(0)
            if self.data:
                out += len(self.data).to_bytes(2, "big") + self.data
            if self.le is not None:
                out += (self.le % EXTENDED_MAX_LE).to_bytes(2, "big")
            return bytes(out)
        if self.data:
            out.append(len(self.data))
            out += self.data
        if self.le is not None:
            out.append(self.le % SHORT_MAX_LE)
        return bytes(out)

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        """Decode APDU bytes (the four ISO 7816-4 cases, short or extended).

        Raises:
            InvalidData: the lengths do not add up.

        """
        if len(raw) < _HEADER:
            raise InvalidData("APDU shorter than its 4-byte header")
        cla, ins, p1, p2 = raw[:_HEADER]
        body = raw[_HEADER:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, le=body[0] or SHORT_MAX_LE)
        if body[0] != 0 or len(body) == 1 + body[0]:
            return cls._parse_short(cla, ins, p1, p2, body)
        return cls._parse_extended(cla, ins, p1, p2, body)

    @classmethod
    def _parse_short(cls, cla: int, ins: int, p1: int, p2: int, body: bytes) -> CommandApdu:
        lc = body[0]
        if len(body) == 1 + lc:
            return cls(cla, ins, p1, p2, body[1:])
        if len(body) == 2 + lc:
            return cls(cla, ins, p1, p2, body[1:-1], body[-1] or SHORT_MAX_LE)
        raise InvalidData("APDU: Lc does not match the data")

    @classmethod
    def _parse_extended(cls, cla: int, ins: int, p1: int, p2: int, body: bytes) -> CommandApdu:
        if len(body) == 3:  # noqa: PLR2004 - 00 Le Le
            return cls(cla, ins, p1, p2, le=int.from_bytes(body[1:3], "big") or EXTENDED_MAX_LE)
        lc = int.from_bytes(body[1:3], "big")
        rest = body[3:]
        if len(rest) == lc:
            return cls(cla, ins, p1, p2, rest)
        if len(rest) == lc + 2:
            le = int.from_bytes(rest[lc:], "big") or EXTENDED_MAX_LE
            return cls(cla, ins, p1, p2, rest[:lc], le)
        raise InvalidData("APDU: extended Lc does not match the data")


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    """A response APDU: data and the status word ``SW1 SW2`` as one integer."""

    data: bytes
    sw: int

    @property
    def ok(self) -> bool:
        """True for ``9000``."""
        return self.sw == SW_OK

    def encode(self) -> bytes:
        """Return data followed by SW1 SW2."""
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def parse(cls, raw: bytes) -> ResponseApdu:
        """Split response bytes into data and status word.

        Raises:
            ProtocolError: fewer than two bytes.

        """
        if len(raw) < _SW_BYTES:
            raise ProtocolError("response APDU shorter than its status word")
        return cls(bytes(raw[:-_SW_BYTES]), int.from_bytes(raw[-_SW_BYTES:], "big"))
