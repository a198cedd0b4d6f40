"""Self-test of every configured device, through the running daemon's MQTT API.

The self-test is a client like any UI (the ``technician`` broker user): it
reads the retained ``description`` to learn the devices, then runs one check
per device, asking a person (:class:`Hands`) to do what only hands can:

- printer: a test slip with the board id as QR code;
- scanner: "scan the QR code on the test slip" (the code must be the board id);
- cardReader: "present a card" (``waitForCard``; the card is never read);
- coinAcceptor: "insert a coin": a deposit, then the ledger's record of it;
- documentSlot: "insert a sheet", then it is ejected and taken;
- lockers: compartment 1 opens, "close it";
- camera: a picture is taken (its bytes are discarded);
- lights: every position on, then off;
- sensors: "open the cabinet door, then close it".

The report (JSON) holds pass/fail, timings and error codes; never a scanned
code, card data or picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiomqtt
import typer
from rich.console import Console
from rich.markup import escape

from daemon.api.topics import Topics
from daemon.mqtt.codec import DecodeError, for_content_type
from daemon.mqtt.link import publish_properties

JSON = "application/json"
NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Hands(Protocol):
    """Whoever does the physical part of a check (a technician, or a test)."""

    async def do(self, device: str, action: str, instruction: str) -> None:
        """Ask for ``instruction`` (``action`` names it for automation); returns at once."""


class SelfTestError(Exception):
    """A check failed; the message says what was expected and what happened."""


@dataclass
class Result:
    """One device's check."""

    device: str
    device_class: str
    check: str
    passed: bool
    detail: str = ""
    ms: int = 0


@dataclass
class Report:
    """The whole self-test, saved as JSON."""

    board: str
    started: str
    results: list[Result] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every check passed (and there was at least one)."""
        return bool(self.results) and all(r.passed for r in self.results)

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps({**asdict(self), "passed": self.passed}, indent=2, ensure_ascii=False)


class Api:
    """A minimal requester over the broker: JSON requests, replies by correlation."""

    def __init__(self, client: aiomqtt.Client, board: str, client_id: str) -> None:
        self.client = client
        self.topics = Topics(board)
        self.client_id = client_id
        self.root = self.topics.root
        self.reply_topic = self.topics.reply(client_id, "selftest")
        self._ids = itertools.count(1)
        self._replies: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.retained: dict[str, Any] = {}
        self.described = asyncio.Event()

    async def pump(self) -> None:
        """Sort incoming messages into reply queues, events and retained topics."""
        async for message in self.client.messages:
            topic = str(message.topic)
            payload = message.payload if isinstance(message.payload, bytes) else b""
            props = message.properties
            try:
                data = for_content_type(getattr(props, "ContentType", None)).decode(payload)
            except DecodeError:
                continue
            if topic.startswith(self.reply_topic):
                key = bytes(getattr(props, "CorrelationData", b"")).decode()
                self._replies.setdefault(key, asyncio.Queue()).put_nowait(data)
            elif "/evt/" in topic:
                self.events.put_nowait((topic.rsplit("/", 1)[1], data or {}))
            elif message.retain:
                self.retained[topic] = data
                self.described.set()

    async def call(
        self, label: str, topic: str, params: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Send a request to ``topic`` and return its completion, within ``timeout`` seconds.

        ``label`` names the request in errors (``printer/printSlip``).

        Raises:
            SelfTestError: no completion in time, or a completion other than success.

        """
        n = next(self._ids)
        key = f"st{n}"
        queue = self._replies.setdefault(key, asyncio.Queue())
        props = publish_properties(JSON, key.encode())
        props.ResponseTopic = self.reply_topic
        body = json.dumps({"requestId": f"selftest-{time.time_ns()}-{n}", **params})
        await self.client.publish(topic, body, qos=1, properties=props)
        try:
            async with asyncio.timeout(timeout):
                while (reply := await queue.get())["type"] != "completion":
                    pass
        except TimeoutError:
            raise SelfTestError(f"{label}: no answer within {timeout:.0f} s") from None
        if reply["completionCode"] != "success":
            raise SelfTestError(
                f"{label}: {reply['completionCode']} {reply.get('errorDescription', '')}".strip()
            )
        result: dict[str, Any] = reply.get("result") or {}
        return result

    async def device(
        self, device: str, command: str, params: dict[str, Any] | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        """A device command's result."""
        topic = self.topics.request(self.client_id, command, device)
        return await self.call(f"{device}/{command}", topic, params or {}, timeout)

    async def event(self, name: str, timeout: float) -> dict[str, Any]:
        """The next event called ``name`` (others are dropped).

        Raises:
            SelfTestError: none within ``timeout`` seconds.

        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event, message = await self.events.get()
                    if event == name:
                        data: dict[str, Any] = message.get("data") or {}
                        return data
        except TimeoutError:
            raise SelfTestError(f"no {name} within {timeout:.0f} s") from None


Check = Callable[[Api, Hands, str, dict[str, Any], str], Awaitable[str]]


async def _printer(api: Api, _hands: Hands, dev: str, _caps: dict[str, Any], board: str) -> str:
    now = dt.datetime.now().astimezone()
    fields = {
        "office": f"Self-test {board}",
        "procedure": "Kiểm tra thiết bị",
        "dossierCode": board,
        "citizenName": "-",
        "submittedAt": now.strftime("%Y-%m-%dT%H:%M"),
        "appointmentDate": now.date().isoformat(),
        "qr": board,
    }
    await api.device(dev, "printSlip", {"template": "appointment", "fields": fields}, 60)
    return "test slip printed, QR = board id"


async def _scanner(api: Api, hands: Hands, dev: str, _caps: dict[str, Any], board: str) -> str:
    read = asyncio.ensure_future(api.device(dev, "read", {"timeoutMs": 60_000}, 65))
    await asyncio.sleep(0.2)
    await hands.do(dev, "scan", f"Scan the QR code on the test slip ({board})")
    result = await read
    if result.get("text") != board:
        raise SelfTestError("a code was read, but not the test slip's")
    return "test slip's code read"


async def _card(api: Api, hands: Hands, dev: str, _caps: dict[str, Any], _board: str) -> str:
    wait = asyncio.ensure_future(api.device(dev, "waitForCard", {"timeoutMs": 60_000}, 65))
    await asyncio.sleep(0.2)
    await hands.do(dev, "presentCard", "Present a chip ID card to the reader")
    await wait
    await hands.do(dev, "removeCard", "Take the card away")
    return "card detected (not read)"


async def _coins(api: Api, hands: Hands, dev: str, caps: dict[str, Any], _board: str) -> str:
    coins = sorted(caps.get("coins") or [0])
    started = await api.device(
        dev, "depositStart", {"currency": caps.get("currency", "VND"), "timeoutMs": 60_000}
    )
    transaction = started["transactionId"]
    await hands.do(dev, "insertCoin", f"Insert one coin (e.g. {coins[0]})")
    accepted = await api.event("coinAccepted", 60)
    await api.device(dev, "depositEnd", {"transactionId": transaction})
    status = await api.device(dev, "depositStatus", {"transactionId": transaction})
    [record] = [t for t in status["transactions"] if t["transactionId"] == transaction]
    if record["total"] != accepted["total"] or not record["coins"]:
        raise SelfTestError(f"ledger total {record['total']} != accepted {accepted['total']}")
    return f"coin of {accepted['value']} accepted and in the ledger"


async def _slot(api: Api, hands: Hands, dev: str, _caps: dict[str, Any], _board: str) -> str:
    accept = asyncio.ensure_future(api.device(dev, "accept", {"timeoutMs": 60_000}, 65))
    await asyncio.sleep(0.2)
    await hands.do(dev, "insertDocument", "Insert a sheet of paper into the document slot")
    await accept
    eject = asyncio.ensure_future(api.device(dev, "eject", {}, 65))
    await asyncio.sleep(0.2)
    await hands.do(dev, "takeDocument", "Take the sheet back")
    await eject
    return "sheet taken in and given back"


async def _lockers(api: Api, hands: Hands, dev: str, _caps: dict[str, Any], _board: str) -> str:
    # ``open`` completes when the door is seen open: someone has to pull it.
    opened = asyncio.ensure_future(api.device(dev, "open", {"compartment": 1}, 65))
    await asyncio.sleep(0.2)
    await hands.do(dev, "openCompartment", "Compartment 1 is unlocked: pull its door open")
    await opened
    await hands.do(dev, "closeCompartment", "Close compartment 1")
    await api.event("compartmentClosed", 60)
    return "compartment 1 opened and closed"


async def _camera(api: Api, _hands: Hands, dev: str, _caps: dict[str, Any], _board: str) -> str:
    picture = await api.device(dev, "takePicture", {"purpose": "document", "width": 640}, 30)
    if not picture.get("data"):
        raise SelfTestError("the picture is empty")
    return "picture taken (discarded)"


async def _lights(api: Api, _hands: Hands, dev: str, caps: dict[str, Any], _board: str) -> str:
    positions = caps.get("positions") or []
    for position in positions:
        await api.device(dev, "set", {"position": position, "mode": "on"})
    await asyncio.sleep(1)
    for position in positions:
        await api.device(dev, "set", {"position": position, "mode": "off"})
    return f"{len(positions)} lights on, then off"


async def _sensors(api: Api, hands: Hands, dev: str, _caps: dict[str, Any], _board: str) -> str:
    await hands.do(dev, "door", "Open the cabinet door")
    await api.event("doorOpened", 60)
    await hands.do(dev, "door", "Close the cabinet door")
    await api.event("doorClosed", 60)
    return "door switch seen open and closed"


CHECKS: dict[str, tuple[str, Check]] = {
    "printer": ("test slip", _printer),
    "scanner": ("scan a code", _scanner),
    "cardReader": ("present a card", _card),
    "coinAcceptor": ("insert a coin", _coins),
    "documentSlot": ("slot cycle", _slot),
    "lockers": ("open a compartment", _lockers),
    "camera": ("capture", _camera),
    "lights": ("lights cycle", _lights),
    "sensors": ("door switch", _sensors),
}
#: Order that lets the scanner read the slip the printer just printed.
ORDER = list(CHECKS)


async def run(
    board: str,
    hands: Hands,
    *,
    host: str = "127.0.0.1",
    port: int = 1883,
    username: str | None = None,
    password: str | None = None,
    client_id: str = "technician",
    only: list[str] | None = None,
) -> Report:
    """Run every check against the daemon of ``board``.

    ``client_id`` is the requester: the broker user on a provisioned board (whose
    broker makes the user name the client id), and a staff user, since some checks
    (opening a locker without a code) are staff operations.

    Raises:
        SelfTestError: no description from the daemon within 10 s.
        aiomqtt.MqttError: the broker refused or dropped the connection.

    """
    report = Report(board, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    async with aiomqtt.Client(
        host,
        port,
        identifier=client_id,
        username=username,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
        socket_options=[NODELAY],
        timeout=10,
    ) as client:
        api = Api(client, board, client_id)
        pump = asyncio.create_task(api.pump(), name="selftest-pump")
        try:
            await client.subscribe(f"{api.reply_topic}/#", qos=1)
            await client.subscribe(f"{api.root}/description", qos=1)
            await client.subscribe(f"{api.root}/dev/+/evt/+", qos=1)
            async with asyncio.timeout(10):
                await api.described.wait()
            description = api.retained[f"{api.root}/description"]
            devices = sorted(
                description["devices"],
                key=lambda d: ORDER.index(d["class"]) if d["class"] in ORDER else len(ORDER),
            )
            for info in devices:
                if only and info["id"] not in only:
                    continue
                if info["class"] in CHECKS:
                    report.results.append(await _one(api, hands, info, board))
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await pump
    return report


async def _one(api: Api, hands: Hands, info: dict[str, Any], board: str) -> Result:
    name, check = CHECKS[info["class"]]
    started = time.monotonic()
    try:
        detail = await check(api, hands, info["id"], info.get("capabilities") or {}, board)
        passed = True
    except SelfTestError as exc:
        detail, passed = str(exc), False
    ms = int((time.monotonic() - started) * 1000)
    return Result(info["id"], info["class"], name, passed, detail, ms)


class Technician:
    """Hands of a person at the kiosk: instructions printed on the console."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def do(self, device: str, action: str, instruction: str) -> None:
        """Print what to do; the check waits for the device to see it."""
        del action
        self.console.print(f"[bold cyan]→ {escape(device)}:[/bold cyan] {escape(instruction)}")


def main(
    *, config: Path, credentials: Path, report_file: Path | None, only: list[str] | None
) -> None:
    """``kioskd provision self-test``: run, print a summary, save the JSON report.

    Exits 1 when a check failed, 2 when the daemon cannot be reached.
    """
    from daemon.config import ConfigError, load  # noqa: PLC0415

    console = Console(highlight=False)
    try:
        cfg = load(config)
        password = credentials.read_text(encoding="utf-8").splitlines()[0]
    except (ConfigError, OSError, IndexError) as exc:
        console.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    try:
        report = asyncio.run(
            run(
                cfg.board.id,
                Technician(console),
                host=cfg.mqtt.host,
                port=cfg.mqtt.port,
                username="technician",
                password=password,
                client_id="technician",
                only=only,
            )
        )
    except (SelfTestError, aiomqtt.MqttError, TimeoutError) as exc:
        console.print(f"[red]✗[/red] cannot reach the daemon: {escape(str(exc))}")
        raise typer.Exit(2) from None
    for result in report.results:
        mark = "[green]✓[/green]" if result.passed else "[red]✗[/red]"
        console.print(
            f"{mark} {escape(result.device)} ({escape(result.check)}): {escape(result.detail)}"
        )
    path = report_file or Path(cfg.daemon.state_dir) / f"selftest-{int(time.time())}.json"
    path.write_text(report.to_json(), encoding="utf-8")
    console.print(f"report: {path}", markup=False)
    if not report.passed:
        raise typer.Exit(1)
