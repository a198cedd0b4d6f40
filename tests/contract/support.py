"""Helpers of the contract suites: events, retained state, status, replies, over MQTT only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from tests.uiclient import Received, Request, UiClient

Payload = dict[str, Any]


def ok(completion: Payload) -> Any:
    """Assert a completion is ``success`` and return its result."""
    assert completion["type"] == "completion", completion
    assert completion["completionCode"] == "success", completion
    return completion.get("result")


def failed(completion: Payload, code: str) -> str:
    """Assert a completion has ``code`` and no result; return its error description."""
    assert completion["type"] == "completion", completion
    assert completion["completionCode"] == code, completion
    assert completion.get("result") is None, completion
    return str(completion.get("errorDescription") or "")


async def acked(request: Request, timeout: float = 2.0) -> Request:
    """Assert the first reply to a queued command is its ack."""
    first = await request.next(timeout)
    assert first == {"type": "ack", "requestId": request.request_id}, first
    return request


async def start(
    ui: UiClient, device: str, command: str, params: Payload | None = None, **kw: Any
) -> Request:
    """Send a device command and return its request handle."""
    return await ui.start(ui.request_topic(command, device), params, **kw)


async def sim_call(
    ui: UiClient, device: str, action: str, params: Payload | None = None
) -> Payload:
    """Run a sim action and return its completion, whatever its code."""
    return await ui.call(f"{ui.root}/sim/{device}/{action}", params, timeout=3.0)


class Events:
    """Live ``evt/`` messages of one device, in arrival order."""

    def __init__(self, queue: asyncio.Queue[Received]) -> None:
        self.queue = queue

    async def next(self, name: str, timeout: float = 2.0) -> Payload:
        """Wait for event ``name`` (skipping others) and return its envelope.

        Checks the envelope every event has: ``session``, ``seq``, ``ts``, ``data``.
        """
        async with asyncio.timeout(timeout):
            while True:
                message = await self.queue.get()
                assert not message.retain, f"events are never retained: {message.topic}"
                if message.topic.rsplit("/", 1)[-1] != name:
                    continue
                payload = message.payload
                assert isinstance(payload, dict)
                assert {"session", "seq", "ts", "data"} <= set(payload), payload
                return payload

    def names(self) -> list[str]:
        """Names of the events received so far and not yet consumed (drains them)."""
        return [m.topic.rsplit("/", 1)[-1] for m in drain(self.queue)]

    async def none(self, within: float = 0.2) -> list[str]:
        """Return what arrives within ``within`` seconds (expected: nothing)."""
        await asyncio.sleep(within)
        return self.names()


@contextlib.asynccontextmanager
async def events(ui: UiClient, device: str) -> AsyncIterator[Events]:
    """Collect ``kiosk/v1/{b}/dev/{device}/evt/#`` while the context is open."""
    async with ui.subscription(f"{ui.root}/dev/{device}/evt/#") as queue:
        yield Events(queue)


@contextlib.asynccontextmanager
async def outputs(ui: UiClient, device: str, what: str) -> AsyncIterator[asyncio.Queue[Received]]:
    """Collect a simulator's ``sim/{device}/out/{what}`` while the context is open."""
    async with ui.subscription(f"{ui.root}/sim/{device}/out/{what}") as queue:
        yield queue


def drain(queue: asyncio.Queue[Received]) -> list[Received]:
    """Everything queued so far."""
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def state(
    ui: UiClient,
    device: str,
    predicate: Callable[[Payload], bool] = lambda _s: True,
    timeout: float = 2.0,
) -> Payload:
    """The device's retained ``state`` message, waiting until ``predicate`` holds for it.

    The first message is the retained one; live updates follow in order.
    """
    seen: list[Payload] = []
    async with ui.subscription(f"{ui.root}/dev/{device}/state") as queue:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = await queue.get()
                    payload = message.payload
                    assert isinstance(payload, dict)
                    seen.append(payload)
                    if predicate(payload):
                        return payload
        except TimeoutError:
            raise AssertionError(f"{device} state never matched; seen {seen}") from None


async def status(ui: UiClient) -> Payload:
    """The daemon status (``getStatus``)."""
    result = ok(await ui.daemon("getStatus"))
    assert isinstance(result, dict)
    return result


async def wait_status(
    ui: UiClient, predicate: Callable[[Payload], bool], timeout: float = 2.0
) -> Payload:
    """Poll ``getStatus`` until ``predicate`` holds for it."""
    last: Payload = {}
    try:
        async with asyncio.timeout(timeout):
            while True:
                last = await status(ui)
                if predicate(last):
                    return last
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"status never matched; last {last}") from None


async def device_info(ui: UiClient, device: str) -> Payload:
    """The device's entry of ``description`` (``getCapabilities``)."""
    description = ok(await ui.daemon("getCapabilities"))
    for info in description["devices"]:
        if info["id"] == device:
            return info
    raise AssertionError(f"no device {device} in the description")


async def check_description(
    ui: UiClient,
    device: str,
    device_class: str,
    driver: str,
    commands: set[str],
    events_: set[str],
) -> Payload:
    """Assert the description lists the class's contract commands and events."""
    info = await device_info(ui, device)
    assert info["class"] == device_class
    assert info["driver"] == driver
    assert commands <= set(info["commands"]), info["commands"]
    assert events_ <= set(info["events"]), info["events"]
    for name, command in info["commands"].items():
        assert 0 < command["defaultTimeoutMs"] <= command["maxTimeoutMs"], name
    return info


def published_by_a_ui(topic: str) -> bool:
    """Requests and sim actions: what the test itself sends, not what the daemon publishes."""
    parts = topic.split("/")[3:]
    return (
        parts[:1] in (["req"], ["cmd"])
        or (parts[:1] == ["dev"] and parts[2:3] == ["cmd"])
        or (parts[:1] == ["sim"] and parts[2:3] != ["out"])
    )
