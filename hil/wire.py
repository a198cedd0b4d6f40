"""Waiting for what the daemon publishes: retained state, live events, status."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.uiclient import Received, UiClient


def _brief(message: Received) -> str:
    payload = message.payload
    if isinstance(payload, dict):
        payload = {k: v for k, v in payload.items() if k not in ("session", "ts")}
    text = f"{message.topic} {payload!r}"
    return text if len(text) <= 300 else text[:300] + "..."


async def expect(
    queue: asyncio.Queue[Received],
    match: Callable[[Received], bool],
    timeout: float,
    what: str,
) -> Received:
    """Return the first message in ``queue`` that ``match``es, dropping the others.

    Raises:
        AssertionError: none within ``timeout`` seconds (lists what came instead).

    """
    seen: list[Received] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await queue.get()
                if match(message):
                    return message
                seen.append(message)
    except TimeoutError:
        tail = "\n  ".join(_brief(m) for m in seen[-10:]) or "nothing"
        raise AssertionError(f"no {what} within {timeout:g} s; got:\n  {tail}") from None


async def expect_payload(
    queue: asyncio.Queue[Received],
    match: Callable[[dict[str, Any]], bool],
    timeout: float,
    what: str,
) -> dict[str, Any]:
    """:func:`expect` on the decoded payload map."""
    message = await expect(
        queue,
        lambda m: isinstance(m.payload, dict) and match(m.payload),
        timeout,
        what,
    )
    assert isinstance(message.payload, dict)
    return message.payload


async def retained(ui: UiClient, topic: str, timeout: float = 5.0) -> dict[str, Any]:
    """The retained message on ``topic`` (status, description, a device's state)."""
    async with ui.subscription(topic) as queue:
        message = await expect(queue, lambda m: m.retain, timeout, f"retained {topic}")
    assert isinstance(message.payload, dict), message
    return message.payload


def state_topic(ui: UiClient, device_id: str) -> str:
    return f"{ui.root}/dev/{device_id}/state"


def event_topic(ui: UiClient, device_id: str, event: str = "+") -> str:
    return f"{ui.root}/dev/{device_id}/evt/{event}"


def sim_out_topic(ui: UiClient, device_id: str, what: str = "+") -> str:
    return f"{ui.root}/sim/{device_id}/out/{what}"


def in_state(*states: str) -> Callable[[dict[str, Any]], bool]:
    """Match a device state message whose ``state`` is one of ``states``."""
    return lambda p: p.get("state") in states


def detail_has(**want: Any) -> Callable[[dict[str, Any]], bool]:
    """Match a device state message whose ``detail`` holds these values."""
    return lambda p: all((p.get("detail") or {}).get(k) == v for k, v in want.items())


def ok(completion: dict[str, Any]) -> dict[str, Any]:
    """Assert a completion is ``success``; return its result (``{}`` when none)."""
    assert completion.get("type") == "completion", completion
    assert completion.get("completionCode") == "success", completion
    result = completion.get("result")
    return result if isinstance(result, dict) else {}


async def expect_event(
    queue: asyncio.Queue[Received],
    event: str,
    timeout: float,
    match: Callable[[dict[str, Any]], bool] = lambda _data: True,
) -> dict[str, Any]:
    """Wait for a live ``evt/{event}`` on a subscription; return its ``data`` map.

    Raises:
        AssertionError: none within ``timeout`` seconds.

    """

    def _is(message: Received) -> bool:
        payload = message.payload
        return (
            not message.retain
            and message.topic.endswith(f"/evt/{event}")
            and isinstance(payload, dict)
            and match(payload.get("data") or {})
        )

    message = await expect(queue, _is, timeout, f"event {event}")
    assert isinstance(message.payload, dict)
    data = message.payload.get("data") or {}
    assert isinstance(data, dict), message
    return data


async def expect_state(
    queue: asyncio.Queue[Received],
    match: Callable[[dict[str, Any]], bool],
    timeout: float,
    what: str,
) -> dict[str, Any]:
    """Wait for a *live* (not retained) device state message that ``match``es."""
    message = await expect(
        queue,
        lambda m: not m.retain and isinstance(m.payload, dict) and match(m.payload),
        timeout,
        what,
    )
    assert isinstance(message.payload, dict)
    return message.payload
