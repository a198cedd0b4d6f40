"""``python -m bench.fuzz [--count 100000]``: hostile messages; every answerable one answered?

Starts ``python -m daemon run --sim`` (embedded broker) and sends ``--count`` messages
from one client, ``--concurrency`` at a time, each built from a seeded random mix:
well-formed requests with random parameters on every command topic (side effects
included), random maps, non-maps, truncated and garbage bytes, deep nesting (up to
100 000 levels), huge strings (up to 200 kB), over-long request ids, in MessagePack
and JSON, with an MQTT 5 response topic or a ``replyTo`` key.  A tenth carry an
unusable reply topic (U+0000, control characters, over 1 024 bytes, another client's
subtree, a wildcard): those must get no reply at all.

Reported: unanswered (an answerable message without exactly one completion within
``--timeout``), duplicate completions, replies to unanswerable messages, the
daemon's reconnects to its broker (seen from outside: it republishes ``description``
on every connect; the broker publishes its will on a loss), tracebacks and unretrieved
task exceptions in the daemon log, RSS before and after, and getStatus latency before
and after.  JSON in ``bench/results/fuzz.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import string
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from tests.uiclient import JSON, MSGPACK, UiClient, connect

from . import procs
from .stats import Stats
from .traffic import BOARD, Caller, log_problems, wait_ready, watch_link

RESULTS = Path(__file__).resolve().parent / "results"
TOPICS = (
    "cmd/getStatus",
    "cmd/getCapabilities",
    "cmd/cancel",
    "cmd/resync",
    "cmd/nope",
    "cmd/vietqrPayload",
    "dev/scanner/cmd/setMode",
    "dev/scanner/cmd/read",
    "dev/printer/cmd/cut",
    "dev/printer/cmd/printSlip",
    "dev/printer/cmd/printRaw",
    "dev/coinAcceptor/cmd/depositStart",
    "dev/coinAcceptor/cmd/depositEnd",
    "dev/coinAcceptor/cmd/depositStatus",
    "dev/cardReader/cmd/waitForCard",
    "dev/cardReader/cmd/chipIO",
    "dev/lights/cmd/set",
    "dev/lockers/cmd/open",
    "dev/camera/cmd/takePicture",
    "dev/documentSlot/cmd/close",
    "dev/sensors/cmd/resetTamper",
    "dev/ghost/cmd/x",
    "sim/scanner/scan",
)
KEYS = (
    "requestId",
    "timeoutMs",
    "template",
    "fields",
    "copies",
    "data",
    "position",
    "mode",
    "color",
    "currency",
    "amountDue",
    "transactionId",
    "compartment",
    "purpose",
    "apdu",
    "continuous",
    "requestIds",
    "text",
    "amount",
    "reference",
)


class Fuzzer:
    """Seeded message generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def scalar(self) -> Any:
        r = self.rng
        return r.choice(
            [
                None,
                True,
                r.randint(-(2**63), 2**64 - 1),
                r.random() * 10 ** r.randint(-5, 30),
                "".join(r.choices(string.printable + "ệàđ\u0000\U0001f600", k=r.randint(0, 40))),
                r.randbytes(r.randint(0, 40)),
                "VND",
                "on",
                "appointment",
                r.randint(0, 700_000),
            ]
        )

    def value(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if depth < 4 and r < 0.15:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        if depth < 4 and r < 0.3:
            return {self.key(): self.value(depth + 1) for _ in range(self.rng.randint(0, 4))}
        return self.scalar()

    def key(self) -> str:
        if self.rng.random() < 0.7:
            return self.rng.choice(KEYS)
        return "".join(self.rng.choices(string.ascii_letters, k=self.rng.randint(0, 12)))

    def request_id(self) -> Any:
        r = self.rng.random()
        if r < 0.8:
            return f"fz-{self.rng.getrandbits(48):x}"
        if r < 0.9:
            return "i" * self.rng.choice([0, 129, 5000, 200_000])
        return self.scalar()

    def document(self) -> Any:
        """The decoded payload (or raw bytes for unreadable ones)."""
        r = self.rng.random()
        if r < 0.55:
            doc = {self.key(): self.value() for _ in range(self.rng.randint(0, 6))}
            doc["requestId"] = self.request_id()
            return doc
        if r < 0.65:
            return self.value()
        if r < 0.75:
            depth = self.rng.choice([33, 100, 1000, 100_000])
            inner: Any = {"requestId": "deep"}
            if depth > 100:
                return ("deep", depth)
            for _ in range(depth):
                inner = [inner]
            return {"requestId": "deep", "x": inner}
        if r < 0.85:
            huge = "h" * self.rng.choice([1000, 50_000, 200_000])
            key = self.rng.choice(["transactionId", "template", "text", "position", huge])
            return {"requestId": self.request_id(), key: huge, "fields": {huge[:5000]: huge}}
        return self.rng.randbytes(self.rng.randint(0, 300))

    def encode(self, doc: Any, content_type: str) -> bytes:
        if isinstance(doc, bytes):
            return doc
        if isinstance(doc, tuple):
            depth: int = doc[1]
            if content_type == JSON:
                return b"[" * depth + b"]" * depth
            return b"\x91" * depth + b"\xc0"
        try:
            if content_type == JSON:
                return msgspec.json.encode(_jsonable(doc))
            return msgspec.msgpack.encode(doc)
        except (OverflowError, TypeError, ValueError, msgspec.EncodeError):
            return b"\xc1"

    def bad_reply_topic(self, ui: UiClient) -> tuple[str, bool]:
        """An unusable reply topic, and whether the broker accepts it as a response topic.

        mosquitto disconnects a client whose response topic has a wildcard or U+0000,
        so those travel in ``replyTo`` (as MQTT 3.1.1 clients send them).
        """
        base = f"{ui.root}/reply/{ui.client_id}"
        return self.rng.choice(
            [
                (f"{base}/a\x00b", False),
                (f"{base}/\x01", False),
                (f"{base}/\u0085", False),
                (f"{base}/+", False),
                (f"{base}/" + "x" * 1100, True),
                (f"{ui.root}/reply/someone-else/r", True),
                ("elsewhere/r", True),
            ]
        )


def _jsonable(doc: Any) -> Any:
    if isinstance(doc, bytes):
        return doc.hex()
    if isinstance(doc, list):
        return [_jsonable(v) for v in doc]
    if isinstance(doc, dict):
        return {str(k): _jsonable(v) for k, v in doc.items()}
    return doc


@dataclasses.dataclass
class Tally:
    sent: int = 0
    answerable: int = 0
    completed: int = 0
    unanswered: int = 0
    duplicates: int = 0
    answered_unanswerable: int = 0
    codes: Counter[str] = dataclasses.field(default_factory=Counter)


async def fuzz_one(fz: Fuzzer, caller: Caller, tally: Tally, timeout: float) -> None:
    ui = caller.ui
    topic = fz.rng.choice(TOPICS)
    content_type = fz.rng.choice([MSGPACK, JSON])
    doc = fz.document()
    usable = fz.rng.random() >= 0.1
    response_topic = ui.reply_topic("fz")
    if not usable:
        response_topic, as_property = fz.bad_reply_topic(ui)
        if not as_property:
            doc = {"requestId": "bad-reply", "replyTo": response_topic}
            response_topic = ""
    raw = fz.encode(doc, content_type)
    tally.sent += 1
    replies = await caller.call(
        topic,
        raw=raw,
        content_type=content_type,
        response_topic=response_topic,
        # Every deadline ends within seconds, so a missing completion is a lost one.
        expiry=5,
        timeout=timeout if usable else 0.5,
    )
    if not usable:
        # An unusable topic of our own subtree would still reach us; others cannot.
        tally.answered_unanswerable += replies is not None
        return
    tally.answerable += 1
    if replies is None:
        tally.unanswered += 1
        return
    tally.completed += 1
    tally.codes[str(replies[-1].get("completionCode"))] += 1


async def latency(caller: Caller, n: int = 200) -> dict[str, Any]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        replies = await caller.call("cmd/getStatus", {"requestId": caller.next_id("lat")})
        if replies is not None:
            samples.append(time.perf_counter() - started)
    return dataclasses.asdict(Stats.of(samples))


async def fuzz(count: int, concurrency: int, seed: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kioskd-fuzz-") as tmp:
        xdg = Path(tmp)
        setup = procs.sim_setup(xdg)
        async with (
            procs.run_daemon(setup, xdg) as daemon,
            connect(daemon.port, BOARD, "fuzz-ui") as ui,
            connect(daemon.port, BOARD, "probe-ui") as probe,
        ):
            await wait_ready(ui)
            caller, prober = Caller(ui), Caller(probe)
            before = await latency(prober)
            rss_before = procs.rss_kib(daemon.pid)
            tally = Tally()
            fz = Fuzzer(seed)
            started = time.monotonic()
            async with watch_link(probe) as link:
                sem = asyncio.Semaphore(concurrency)

                async def one() -> None:
                    try:
                        await fuzz_one(fz, caller, tally, timeout)
                    finally:
                        sem.release()

                tasks: set[asyncio.Task[None]] = set()
                for i in range(count):
                    await sem.acquire()
                    task = asyncio.create_task(one())
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    if i % 5000 == 0:
                        print(f"[fuzz] {i}/{count}", file=sys.stderr, flush=True)
                await asyncio.gather(*tasks)
                elapsed = time.monotonic() - started
                after = await latency(prober)
            return {
                "count": count,
                "seed": seed,
                "seconds": round(elapsed, 1),
                "answerable": tally.answerable,
                "completed": tally.completed,
                "unanswered": tally.unanswered,
                "answeredUnanswerable": tally.answered_unanswerable,
                "codes": dict(tally.codes),
                "reconnects": link.reconnects,
                "offlineWills": link.offline,
                "log": log_problems(daemon),
                "rssKiB": {"before": rss_before, "after": procs.rss_kib(daemon.pid)},
                "getStatusMs": {"before": before, "after": after},
            }


def render(result: dict[str, Any]) -> str:
    rss = result["rssKiB"]
    return "\n".join(
        [
            f"fuzz: {result['count']} messages in {result['seconds']} s (seed {result['seed']})",
            (
                f"  answerable {result['answerable']}: completed {result['completed']}, "
                f"unanswered {result['unanswered']}; unanswerable but answered "
                f"{result['answeredUnanswerable']}"
            ),
            (
                f"  reconnects {result['reconnects']}, wills {result['offlineWills']}, "
                f"log {result['log']}"
            ),
            (
                f"  RSS KiB before {rss['before']}, after {rss['after']} "
                f"({rss['after'] - rss['before']:+d})"
            ),
            (
                f"  getStatus p50/p99 ms before {result['getStatusMs']['before']['p50']}/"
                f"{result['getStatusMs']['before']['p99']}, after "
                f"{result['getStatusMs']['after']['p50']}/{result['getStatusMs']['after']['p99']}"
            ),
            f"  codes {result['codes']}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    parser.add_argument("--count", type=int, default=100_000, help="messages to send")
    parser.add_argument("--concurrency", type=int, default=32, help="messages in flight")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to a completion")
    parser.add_argument("--out", type=Path, default=RESULTS / "fuzz.json", help="JSON results")
    args = parser.parse_args()
    result = asyncio.run(fuzz(args.count, args.concurrency, args.seed, args.timeout))
    print(render(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"  JSON: {args.out}")


if __name__ == "__main__":
    main()
