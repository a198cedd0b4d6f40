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


#: Deepest nesting of maps and arrays a request may have.  No command needs more than a
#: few levels; the limit keeps every later step (conversion, encoding) far from Python's
#: recursion limit, which the decoders themselves hit at about 1 000 levels.
MAX_DEPTH = 32
_TOO_DEEP = f"payload nests maps or arrays deeper than {MAX_DEPTH} levels"


class DecodeError(ValueError):
    """The payload is not a well-formed document of its codec."""


def _too_deep(doc: Any, limit: int) -> bool:
    """Whether ``doc`` nests maps/arrays deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


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
            DecodeError: malformed payload, or nested deeper than :data:`MAX_DEPTH`.

        """
        try:
            doc = self._decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise DecodeError(f"payload is not valid {self.name}: {exc}") from None
        except RecursionError:
            raise DecodeError(_TOO_DEEP) from None
        if _too_deep(doc, MAX_DEPTH):
            raise DecodeError(_TOO_DEEP)
        return doc

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
