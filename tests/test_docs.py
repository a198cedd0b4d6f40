"""docs/ is generated from the wire types: stale docs fail here."""

from __future__ import annotations

import json
from typing import Any

from daemon.api import asyncapi
from devices.registry import DEVICE_CLASSES


def test_docs_are_current() -> None:
    assert asyncapi.main([]) == 0, "run: python -m daemon.api.asyncapi --write"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_asyncapi_references_resolve_and_cover_every_class() -> None:
    doc = json.loads(asyncapi.asyncapi_text())
    assert doc["asyncapi"] == "3.0.0"
    for ref in _refs(doc):
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert node, ref
    for name in DEVICE_CLASSES:
        assert f"{name}.state" in doc["channels"]
    assert (
        doc["channels"]["printer.sim.out.slip"]["address"]
        == "kiosk/v1/{board}/sim/{device}/out/slip"
    )
    assert "scanner.cmd.read" in doc["operations"]
    assert doc["components"]["schemas"]["Completion"]["properties"]["completionCode"]


def test_api_md_lists_every_command_of_every_class() -> None:
    text = asyncapi.reference_markdown()
    for cls in asyncapi.device_classes().values():
        for command in cls.commands:
            assert f"| `{command}` |" in text


def test_generated_text_does_not_depend_on_docstring_indentation() -> None:
    """msgspec 0.22 kept a docstring's indentation in schema descriptions; 0.23 dedents."""
    as_022 = {
        "description": "Summary.\n\n    Details,\n    more.",
        "default": {"description": "  x"},
    }
    as_023 = {"description": "Summary.\n\nDetails,\nmore.", "default": {"description": "  x"}}
    assert asyncapi._normalise(as_022) == asyncapi._normalise(as_023) == as_023
    assert as_022["default"] == {"description": "  x"}, "data values are not rewritten"


def test_every_request_requires_a_request_id() -> None:
    doc = json.loads(asyncapi.asyncapi_text())
    envelope = doc["components"]["schemas"]["Envelope"]
    assert "requestId" in envelope["required"]
    for key, channel in doc["channels"].items():
        if "/cmd/" not in channel["address"]:
            continue
        # A legacy topic's channel carries the message of its req/{client}/ twin.
        (ref,) = [m["$ref"] for m in channel["messages"].values()]
        payload = doc["components"]["messages"][ref.rsplit("/", 1)[1]]["payload"]
        refs = [payload] if "$ref" in payload else payload["allOf"]
        assert {"$ref": "#/components/schemas/Envelope"} in refs, key


def test_bytes_fields_describe_both_encodings() -> None:
    schemas = json.loads(asyncapi.asyncapi_text())["components"]["schemas"]
    apdu = schemas["ChipIoParams"]["properties"]["apdu"]
    assert apdu["contentEncoding"] == "base64"
    assert apdu["x-msgpack-type"] == "bin"
    assert "MessagePack bin" in apdu["description"]
    assert "base64" in apdu["description"]


def test_overpayment_fields_say_what_they_hold() -> None:
    schemas = json.loads(asyncapi.asyncapi_text())["components"]["schemas"]
    accepted = schemas["CoinAccepted"]["properties"]
    ended = schemas["DepositEnded"]["properties"]
    assert accepted["overpaid"]["type"] == "boolean"
    assert ended["overpaymentAmount"]["type"] == "integer"
    assert accepted["overpayment"]["deprecated"] is True
    assert ended["overpayment"]["deprecated"] is True
    assert "`overpayment?` (deprecated)" in asyncapi.reference_markdown()
