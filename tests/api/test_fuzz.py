"""Hypothesis fuzzing of request payloads: never a crash, always exactly one completion."""

from __future__ import annotations

import asyncio
import itertools

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Broker, RunningDaemon
from tests.uiclient import JSON, MSGPACK, UiClient

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_known_keys = st.sampled_from(
    [
        "requestId",
        "timeoutMs",
        "replyTo",
        "continuous",
        "template",
        "fields",
        "copies",
        "data",
        "currency",
        "amountDue",
        "transactionId",
        "accessKey",
        "apdu",
        "compartment",
        "purpose",
        "position",
        "mode",
        "color",
        "requestIds",
        "kind",
        "text",
        "value",
        "amount",
        "reference",
    ],
)
_payloads = st.dictionaries(st.one_of(_known_keys, st.text(max_size=10)), _values, max_size=6)
_topics = st.sampled_from(
    [
        "cmd/getStatus",
        "cmd/cancel",
        "cmd/resync",
        "cmd/nope",
        "cmd/vietqrPayload",
        "dev/scanner/cmd/setMode",
        "dev/printer/cmd/printSlip",
        "dev/printer/cmd/printRaw",
        "dev/coinAcceptor/cmd/depositStatus",
        "dev/cardReader/cmd/chipIO",
        "dev/lights/cmd/set",
        "dev/lockers/cmd/open",
        "dev/camera/cmd/takePicture",
        "dev/documentSlot/cmd/close",
        "dev/sensors/cmd/resetTamper",
        "dev/ghost/cmd/x",
        "sim/scanner/fault",
    ],
)
_counter = itertools.count()


async def _one(ui: UiClient, topic: str, raw: bytes, content_type: str) -> list[dict]:
    correlation = f"fz{next(_counter)}".encode()
    queue = ui._reply_queue(correlation)
    await ui.send(
        f"{ui.root}/{topic}",
        None,
        raw=raw,
        content_type=content_type,
        response_topic=ui.reply_topic("fuzz"),
        correlation=correlation,
        expiry=2,
    )
    replies = []
    async with asyncio.timeout(5):
        while True:
            reply = (await queue.get()).payload
            replies.append(reply)
            if reply["type"] == "completion":
                break
    await asyncio.sleep(0.05)
    while not queue.empty():
        replies.append(queue.get_nowait().payload)
    return replies


def test_fuzzed_requests_each_get_exactly_one_completion(
    broker: Broker, daemon: RunningDaemon, ui: UiClient
) -> None:
    loop = asyncio.get_event_loop()
    seen_codes: set[str] = set()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        topic=_topics,
        payload=_payloads,
        as_json=st.booleans(),
        garbage=st.binary(max_size=30),
        use_garbage=st.booleans(),
    )
    def check(topic: str, payload: dict, as_json: bool, garbage: bytes, use_garbage: bool) -> None:
        content_type = JSON if as_json else MSGPACK
        if use_garbage:
            raw = garbage
        else:
            try:
                raw = msgspec.json.encode(payload) if as_json else msgspec.msgpack.encode(payload)
            except (TypeError, OverflowError, msgspec.EncodeError):
                return
        replies = asyncio.run_coroutine_threadsafe(_one(ui, topic, raw, content_type), loop).result(
            10
        )
        completions = [r for r in replies if r["type"] == "completion"]
        assert len(completions) == 1, replies
        seen_codes.add(completions[0]["completionCode"])

    async def drive() -> None:
        # Hypothesis drives synchronously from a thread; the daemon and client run on this loop.
        await asyncio.to_thread(check)
        status = await ui.daemon("getStatus")
        assert status["completionCode"] == "success", "the daemon keeps serving after the fuzzing"

    assert not loop.is_running()
    loop.run_until_complete(drive())
    assert "invalidData" in seen_codes
