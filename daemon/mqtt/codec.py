"""Payload codecs: MessagePack by default, JSON when the request asks for it.

A request whose MQTT 5 content type is ``application/json`` is answered in
JSON (bytes as base64 strings); everything else is MessagePack (bytes as bin).
A request without a content type (every MQTT 3.1.1 request) is JSON when its
payload starts with ``{``, which no MessagePack map does (see :func:`for_request`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

MSGPACK = "application/msgpack"
JSON = "application/json"


class DecodeError(ValueError):
    """The payload is not a well-formed document of its codec."""


@dataclass(frozen=True, slots=True)
class Codec:
    """One wire encoding."""

    content_type: str
    _encoder: msgspec.msgpack.Encoder | msgspec.json.Encoder
    _decode: Any

    def encode(self, obj: Any) -> bytes:
        """Encode a message struct or builtin value."""
        return self._encoder.encode(obj)

    def decode(self, payload: bytes) -> Any:
        """Decode to builtin values.

        Raises:
            DecodeError: malformed payload.

        """
        try:
            return self._decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise DecodeError(f"payload is not valid {self.name}: {exc}") from None

    @property
    def name(self) -> str:
        """Short name for messages."""
        return "JSON" if self.content_type == JSON else "MessagePack"


MSGPACK_CODEC = Codec(MSGPACK, msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder().decode)
JSON_CODEC = Codec(JSON, msgspec.json.Encoder(), msgspec.json.Decoder().decode)


def for_content_type(content_type: str | None) -> Codec:
    """The codec a request asked for (JSON only when explicitly ``application/json``)."""
    if content_type is not None and content_type.split(";", 1)[0].strip().lower() == JSON:
        return JSON_CODEC
    return MSGPACK_CODEC


# A MessagePack map starts with 0x80-0x8f, 0xde or 0xdf; 0x7b (``{``) is the positive
# fixint 123 and JSON's whitespace bytes are fixints too, so such a payload is never a map.
_JSON_START = re.compile(rb"[ \t\r\n]*\{")


def for_request(content_type: str | None, payload: bytes) -> Codec:
    """The codec of a request, which its replies use too.

    The content type decides when there is one (see :func:`for_content_type`); without
    one (MQTT 3.1.1 has none) a payload whose first non-whitespace byte is ``{`` is JSON
    and anything else MessagePack.
    """
    if content_type is None and _JSON_START.match(payload):
        return JSON_CODEC
    return for_content_type(content_type)
