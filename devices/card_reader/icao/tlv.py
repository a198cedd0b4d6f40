"""BER-TLV as used by ICAO 9303 files and secure messaging (ISO/IEC 7816-4, ITU-T X.690).

Tags are returned as integers of their encoded bytes (``0x5F1F``), lengths in
definite form only (the LDS forbids indefinite lengths).  Malformed input from
a chip raises :class:`TlvError`, a :class:`ProtocolError` (``hardwareError``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from devices.errors import ProtocolError

_CONSTRUCTED = 0x20
_MULTI_BYTE_TAG = 0x1F
_MORE_TAG_BYTES = 0x80
_LONG_LENGTH = 0x80
_MAX_LENGTH_BYTES = 4
_ONE_BYTE_MAX = 0x7F


class TlvError(ProtocolError):
    """Bytes that are not well-formed BER-TLV (truncated, bad length, indefinite length)."""


@dataclass(frozen=True, slots=True)
class Tlv:
    """One decoded data object.

    Attributes:
        tag: the tag bytes as an integer (``0x61``, ``0x5F1F``).
        value: the value bytes.
        end: offset just after this object in the buffer it was read from.

    """

    tag: int
    value: bytes
    end: int

    @property
    def constructed(self) -> bool:
        """True when the value is itself a sequence of data objects."""
        first = self.tag.to_bytes((self.tag.bit_length() + 7) // 8 or 1, "big")[0]
        return bool(first & _CONSTRUCTED)

    def children(self) -> list[Tlv]:
        """Decode the value as a sequence of data objects.

        Raises:
            TlvError: the value is not a sequence of data objects.

        """
        return list(iter_tlv(self.value))


def read_header(data: bytes, offset: int = 0) -> tuple[int, int, int]:
    """Decode the tag and length at ``offset``.

    Returns:
        ``(tag, length, value_offset)``.

    Raises:
        TlvError: truncated header, indefinite length or a length over 4 bytes.

    """
    try:
        first = data[offset]
        tag = first
        pos = offset + 1
        if first & _MULTI_BYTE_TAG == _MULTI_BYTE_TAG:
            while True:
                byte = data[pos]
                tag = (tag << 8) | byte
                pos += 1
                if not byte & _MORE_TAG_BYTES:
                    break
        length = data[pos]
        pos += 1
        if length & _LONG_LENGTH:
            count = length & 0x7F
            if count == 0 or count > _MAX_LENGTH_BYTES:
                raise TlvError("TLV: indefinite or oversized length")
            if pos + count > len(data):
                raise TlvError("TLV: truncated length")
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
    except IndexError:
        raise TlvError("TLV: truncated header") from None
    return tag, length, pos


def read_tlv(data: bytes, offset: int = 0) -> Tlv:
    """Decode one data object at ``offset``.

    Raises:
        TlvError: malformed or truncated.

    """
    tag, length, start = read_header(data, offset)
    end = start + length
    if end > len(data):
        raise TlvError("TLV: value runs past the end of the data")
    return Tlv(tag, bytes(data[start:end]), end)


def iter_tlv(data: bytes) -> Iterator[Tlv]:
    """Decode consecutive data objects filling ``data``.

    Raises:
        TlvError: an object is malformed or truncated.

    """
    offset = 0
    while offset < len(data):
        item = read_tlv(data, offset)
        yield item
        offset = item.end


def find(data: bytes, tag: int) -> Tlv | None:
    """Return the first object with ``tag`` among the data objects in ``data``, if any.

    Raises:
        TlvError: ``data`` is malformed before the object is found.

    """
    for item in iter_tlv(data):
        if item.tag == tag:
            return item
    return None


def encode_length(length: int) -> bytes:
    """Encode a definite length (short form up to 127, then 0x81, 0x82, ...)."""
    if length <= _ONE_BYTE_MAX:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([_LONG_LENGTH | len(body)]) + body


def encode(tag: int, value: bytes) -> bytes:
    """Encode one data object."""
    return tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big") + encode_length(len(value)) + value
