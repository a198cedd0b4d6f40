"""docs/ is generated from the wire types: stale docs fail here."""

from __future__ import annotations

import json
from typing import Any

from daemon.mqtt import asyncapi
from devices.registry import DEVICE_CLASSES


def test_docs_are_current() -> None:
    assert asyncapi.main([]) == 0, "run: python -m daemon.mqtt.asyncapi --write"


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
