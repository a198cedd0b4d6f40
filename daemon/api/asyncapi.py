"""Generate the AsyncAPI 3 document and the reference tables of docs/ from the code.

The wire schema is code: every request, result, event and state detail is a
msgspec type, and this module turns them into ``docs/asyncapi.json`` and the
generated sections of ``docs/api.md`` and ``docs/configuration.md`` (every
config option with its default, from the same frozen types the loader uses).
A test fails when any of them is stale; ``python -m daemon.api.asyncapi
--write`` refreshes them.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from daemon import __version__
from daemon.mqtt.codec import JSON, MSGPACK
from devices.base import AnyDevice, Command
from devices.registry import DEVICE_CLASSES, DRIVERS, resolve

from .schema import (
    Ack,
    CancelParams,
    CancelResult,
    Completion,
    Description,
    DeviceStateMessage,
    Envelope,
    EventMessage,
    EventReply,
    Snapshot,
    Status,
    VietQRParams,
    VietQRResult,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
BEGIN = "<!-- BEGIN GENERATED: python -m daemon.api.asyncapi --write -->"
END = "<!-- END GENERATED -->"
_REF = "#/components/schemas/{name}"
#: Keys whose values are data, not schemas: never rewritten by :func:`_normalise`.
_DATA_KEYS = frozenset({"default", "examples", "enum", "const"})
_BYTES_NOTE = "Bytes: MessagePack bin; in JSON a padded base64 string (RFC 4648)"


def device_classes() -> dict[str, type[AnyDevice]]:
    """Each device class's base type (the simulator's class ABC), by wire class name."""
    found: dict[str, type[AnyDevice]] = {}
    for name in DEVICE_CLASSES:
        driver = resolve(name, "sim").cls
        base = next(c for c in driver.__mro__ if c.__dict__.get("device_class") == name)
        found[name] = base
    return found


def _schema_types() -> list[Any]:
    types: list[Any] = [
        Envelope,
        Ack,
        EventReply,
        Completion,
        Status,
        Description,
        DeviceStateMessage,
        EventMessage,
        Snapshot,
        CancelParams,
        CancelResult,
        VietQRParams,
        VietQRResult,
    ]
    for cls in device_classes().values():
        types.append(cls.detail_type)
        for command in cls.commands.values():
            types += [command.params, command.result, *command.events.values()]
        types += list(cls.events.values())
        types += [retired.data for retired in cls.retired_events.values()]
    for name in DEVICE_CLASSES:
        sim = resolve(name, "sim").cls
        types += [action.params for action in sim.sim_actions.values()]
        types += list(sim.sim_outputs.values())
    return list(dict.fromkeys(types))


def _ref(tp: type) -> dict[str, str]:
    return {"$ref": _REF.format(name=tp.__name__)}


def _bytes_field(node: dict[str, Any]) -> None:
    """Say that a bytes field is bin in MessagePack (msgspec describes only JSON's base64).

    JSON Schema has no binary type, so the field keeps msgspec's base64 string for
    JSON validators and gains a description and an ``x-msgpack-type`` extension.
    """
    note = _BYTES_NOTE
    if "minLength" in node or "maxLength" in node:
        note += "; the length limits count base64 characters"
    own = node.get("description")
    node["description"] = f"{own}. {note}" if own else note
    node["x-msgpack-type"] = "bin"


def _normalise(node: Any) -> Any:
    """Make generated schemas independent of msgspec's cosmetics, in place.

    Descriptions are cleaned with :func:`inspect.cleandoc` (msgspec 0.22 kept a
    docstring's indentation, 0.23 dedents it), and bytes fields describe both
    encodings.
    """
    if isinstance(node, list):
        for item in node:
            _normalise(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = inspect.cleandoc(value)
            elif key not in _DATA_KEYS:
                _normalise(value)
        if node.get("type") == "string" and node.get("contentEncoding") == "base64":
            _bytes_field(node)
    return node


def _optional_envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope of a sim action: ``requestId`` is needed only with a reply topic."""
    return {
        "type": "object",
        "title": "SimEnvelope",
        "description": (
            "Envelope keys of a sim action. Without a reply topic the action is "
            "performed and nothing is answered; with one (MQTT 5 response topic or "
            "``replyTo``) ``requestId`` is required, as in Envelope, and a completion follows."
        ),
        "properties": envelope["properties"],
    }


_PARAMS = {
    "board": {"description": "Board id, e.g. hcm-q6-0001"},
    "device": {"description": "Device id from the board's config"},
    "client": {
        "description": (
            "The requester: its MQTT client id, which is its broker user name on a "
            "provisioned board"
        )
    },
    "suffix": {
        "description": (
            "The rest of the reply topic, chosen by the requester "
            "(one or more topic levels, e.g. 1 or ui/42)"
        )
    },
}


def _channel(
    key: str, address: str, message: str, action: str, summary: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A channel carrying ``message`` at ``address`` and its operation."""
    used = {p: _PARAMS[p] for p in _PARAMS if "{" + p + "}" in address}
    return (
        {
            "address": address,
            "parameters": used,
            "messages": {message: {"$ref": f"#/components/messages/{message}"}},
        },
        {"action": action, "channel": {"$ref": f"#/channels/{key}"}, "summary": summary},
    )


def _command_summary(cls_name: str, name: str, command: Command) -> str:
    summary = f"{cls_name} {name}; completion result: {command.result.__name__}."
    if command.staff:
        summary += " A staff operation: the technician role only (else userError)."
    return summary


def _events(cls_name: str, cls: type[AnyDevice]) -> list[tuple[str, dict[str, Any], str]]:
    """A class's broadcast events, then its retired ones (deprecated): name, payload, summary."""
    found = []
    for name, data in cls.events.items():
        payload: dict[str, Any] = {
            "allOf": [_ref(EventMessage), {"properties": {"data": _ref(data)}}]
        }
        found.append((name, payload, f"{cls_name} event {name}."))
    for name, retired in cls.retired_events.items():
        payload = {
            "allOf": [_ref(EventMessage), {"properties": {"data": _ref(retired.data)}}],
            "deprecated": True,
        }
        summary = f"{cls_name} event {name}: deprecated, no longer published; {retired.instead}."
        found.append((name, payload, summary))
    return found


def build() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of wire API v1."""
    _, schemas = msgspec.json.schema_components(_schema_types(), ref_template=_REF)
    _normalise(schemas)
    schemas["SimEnvelope"] = _optional_envelope(schemas[Envelope.__name__])
    sim_envelope = {"$ref": _REF.format(name="SimEnvelope")}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}

    def request(params: type) -> dict[str, Any]:
        """A request payload: the envelope (``requestId`` ...) and the command's parameters."""
        return {"allOf": [_ref(Envelope), _ref(params)]}

    def add(key: str, address: str, payload: Any, action: str, summary: str) -> None:
        messages[key] = {"name": key, "summary": summary, "payload": payload}
        channels[key], operations[key] = _channel(key, address, key, action, summary)

    def add_request(key: str, where: str, payload: Any, summary: str) -> None:
        """A request, on ``req/{client}/{where}`` and on its legacy topic ``{where}``."""
        add(key, f"{root}/req/{{client}}/{where}", payload, "receive", summary)
        legacy = f"legacy.{key}"
        channels[legacy], operations[legacy] = _channel(
            legacy,
            f"{root}/{where}",
            key,
            "receive",
            f"{summary} Legacy topic: the requester is taken from the reply topic; "
            "served only with [api] legacy_request_topics (off on provisioned boards).",
        )

    root = "kiosk/v1/{board}"
    add("status", f"{root}/status", _ref(Status), "send", "Retained daemon status (and LWT).")
    add(
        "description",
        f"{root}/description",
        _ref(Description),
        "send",
        "Retained device description.",
    )
    add(
        "reply",
        f"{root}/reply/{{client}}/{{suffix}}",
        {"oneOf": [_ref(Ack), _ref(EventReply), _ref(Completion)]},
        "send",
        "Replies to a request, only to the requester's reply subtree.",
    )
    daemon_results = {"getStatus": Status, "getCapabilities": Description, "resync": Snapshot}
    for name, result in daemon_results.items():
        add_request(
            f"daemon.{name}",
            f"cmd/{name}",
            _ref(Envelope),  # no parameters besides the envelope
            f"Daemon command {name}; completion result: {result.__name__}.",
        )
    add_request(
        "daemon.cancel",
        "cmd/cancel",
        request(CancelParams),
        "Cancel the requester's queued or running long commands; result: CancelResult.",
    )
    add_request(
        "daemon.vietqrPayload",
        "cmd/vietqrPayload",
        request(VietQRParams),
        "A dynamic VietQR code for one payment into the [vietqr] account; result: "
        "VietQRResult. Listed in description.daemonCommands only when [vietqr] is configured.",
    )
    for cls_name, cls in device_classes().items():
        add(
            f"{cls_name}.state",
            f"{root}/dev/{{device}}/state",
            {
                "allOf": [
                    _ref(DeviceStateMessage),
                    {"properties": {"detail": _ref(cls.detail_type)}},
                ]
            },
            "send",
            f"Retained state of a {cls_name}.",
        )
        for name, command in cls.commands.items():
            add_request(
                f"{cls_name}.cmd.{name}",
                f"dev/{{device}}/cmd/{name}",
                request(command.params),
                _command_summary(cls_name, name, command),
            )
        for name, payload, summary in _events(cls_name, cls):
            add(
                f"{cls_name}.evt.{name}",
                f"{root}/dev/{{device}}/evt/{name}",
                payload,
                "send",
                summary,
            )
        sim = resolve(cls_name, "sim").cls
        for name, output in sim.sim_outputs.items():
            add(
                f"{cls_name}.sim.out.{name}",
                f"{root}/sim/{{device}}/out/{name}",
                _ref(output),
                "send",
                f"What a simulated {cls_name} shows the world: {name}.",
            )
        for name, action in sim.sim_actions.items():
            add(
                f"{cls_name}.sim.{name}",
                f"{root}/sim/{{device}}/{name}",
                {"allOf": [sim_envelope, _ref(action.params)]},
                "receive",
                f"Simulator action: {action.doc}.",
            )
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "kioskd local MQTT API",
            "version": "1",
            "description": (
                f"Generated from kioskd {__version__} message types. See docs/api.md. "
                f"Payloads are {MSGPACK} unless a request asks for {JSON}: by its MQTT 5 "
                "content type, or, without a content type (MQTT 3.1.1), by a payload "
                "that starts with '{'; replies use the request's encoding."
            ),
        },
        "defaultContentType": MSGPACK,
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _deprecated(field: msgspec.inspect.Field) -> bool:
    """The field is marked ``deprecated`` in its JSON schema (kept on the wire for v1)."""
    kind = field.type
    return (
        isinstance(kind, msgspec.inspect.Metadata)
        and (kind.extra_json_schema or {}).get("deprecated") is True
    )


def _fields(tp: type) -> str:
    if not issubclass(tp, msgspec.Struct):
        return ""
    info = msgspec.inspect.type_info(tp)
    assert isinstance(info, msgspec.inspect.StructType)
    parts = []
    for field in info.fields:
        optional = "?" if not field.required else ""
        deprecated = " (deprecated)" if _deprecated(field) else ""
        parts.append(f"`{field.encode_name}{optional}`{deprecated}")
    return ", ".join(parts) or "—"


def reference_markdown() -> str:
    """The generated per-class reference tables of docs/api.md."""
    lines = [BEGIN, "", "### Device classes (generated from the code)", ""]
    for cls_name, cls in device_classes().items():
        lines += [
            f"#### `{cls_name}`",
            "",
            f"State detail ({_type_name(cls.detail_type)}): {_fields(cls.detail_type)}",
            "",
        ]
        lines += [
            "| command | params | result | default / max ms | kind |",
            "|---|---|---|---|---|",
        ]
        for name, c in cls.commands.items():
            kind = (
                ", ".join(
                    k
                    for k, on in (
                        ("long", c.long),
                        ("queued", c.queued),
                        ("side effect", c.side_effect),
                        ("not interruptible", not c.interruptible),
                        ("**staff**", c.staff),
                    )
                    if on
                )
                or "immediate"
            )
            lines.append(
                f"| `{name}` | {_fields(c.params)} | {_fields(c.result)} | "
                f"{c.default_timeout_ms} / {c.max_timeout_ms} | {kind} |",
            )
            for ev_name, ev in c.events.items():
                lines.append(f"| ↳ event `{ev_name}` | | {_fields(ev)} | | to requester |")
        lines += ["", "| event | data |", "|---|---|"]
        lines += [f"| `{name}` | {_fields(data)} |" for name, data in cls.events.items()]
        lines += [
            f"| `{name}` (deprecated: no longer published; {r.instead}) | {_fields(r.data)} |"
            for name, r in cls.retired_events.items()
        ]
        sim = resolve(cls_name, "sim").cls.sim_actions
        lines += ["", "| sim action | params | what it does |", "|---|---|---|"]
        lines += [f"| `{name}` | {_fields(a.params)} | {a.doc} |" for name, a in sim.items()]
        outputs = resolve(cls_name, "sim").cls.sim_outputs
        if outputs:
            lines += ["", "| sim output | content |", "|---|---|"]
            lines += [f"| `out/{name}` | {_fields(o)} |" for name, o in outputs.items()]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def _default(field: msgspec.inspect.Field) -> str:
    if field.required:
        return "required"
    value = field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
    return f"`{msgspec.json.encode(value).decode()}`"


def _settings_table(tp: type[msgspec.Struct]) -> list[str]:
    info = msgspec.inspect.type_info(tp)
    assert isinstance(info, msgspec.inspect.StructType)
    if not info.fields:
        return ["No options.", ""]
    rows = ["| key | default |", "|---|---|"]
    rows += [f"| `{f.encode_name}` | {_default(f)} |" for f in info.fields]
    return [*rows, ""]


def config_markdown() -> str:
    """The generated option tables of docs/configuration.md."""
    from daemon import config  # noqa: PLC0415 - config imports the registry; keep this module light

    lines = [BEGIN, ""]
    for section, tp in (
        ("board", config.BoardConfig),
        ("mqtt", config.MqttConfig),
        ("broker", config.BrokerConfig),
        ("api", config.ApiConfig),
        ("daemon", config.DaemonConfig),
        ("uplink", config.UplinkConfig),
        ("ui", config.UiConfig),
        ("vietqr", config.VietQRConfig),
    ):
        summary = (tp.__doc__ or "").strip().splitlines()[0].split(":", 1)[-1].strip()
        lines += [f"### `[{section}]`", "", summary[0].upper() + summary[1:], ""]
        lines += _settings_table(tp)
    lines += ["### Drivers (`[devices.<id>]` with `class` and `driver`)", ""]
    for (device_class, driver), target in DRIVERS.items():
        lines += [f"#### `{device_class}` / `{driver}` ({target.partition(':')[2]})", ""]
        lines += _settings_table(resolve(device_class, driver).settings_type)
    lines.append(END)
    return "\n".join(lines)


def _splice(current: str, generated: str) -> str:
    head, _, rest = current.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + generated + tail


def asyncapi_text() -> str:
    """The AsyncAPI document as committed (sorted, indented JSON)."""
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``--write`` refreshes docs/; without it, exit 1 when any generated doc is stale."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    api_md, config_md = DOCS / "api.md", DOCS / "configuration.md"
    wanted = {
        DOCS / "asyncapi.json": asyncapi_text(),
        api_md: _splice(api_md.read_text("utf-8"), reference_markdown()),
        config_md: _splice(config_md.read_text("utf-8"), config_markdown()),
    }
    stale = [path for path, text in wanted.items() if path.read_text("utf-8") != text]
    if args.write:
        for path in stale:
            path.write_text(wanted[path], encoding="utf-8")
        return 0
    for path in stale:
        sys.stderr.write(f"{path} is stale: run python -m daemon.api.asyncapi --write\n")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
