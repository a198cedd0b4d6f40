"""Coin chaos harness: a daemon killed at random while coins go in; nothing lost, nothing doubled.

Shared by the CI test (tests/devices/test_coin_chaos.py, >= 50 iterations) and
the benchmark (``python -m bench.coins``, 200 iterations).  Three processes:

- the emulated ccTalk acceptor (``python -m devices.sim.coin_acceptor.cctalk_device``) on a
  socat pty pair, driven here over its control socket, so coins go in while
  the daemon is down (sometimes more than its five-event buffer holds);
- the daemon (``python -m daemon run --config``) on the pty, killed with
  SIGKILL at random moments, or made to exit right after a ledger commit and
  before the publish (``python -m tests.chaosdaemon N``, which injects that crash
  point into the deposit service);
- this harness, a UI on the broker recording what the daemon reports.

The run ends like a kiosk's day: a graceful stop (SIGTERM), then one more
start with no coin going in, which credits whatever the stop left in the
acceptor's buffer, and a UI's reconciliation.  Then three accounts must agree:

- the device's list of accepted coins (counter, value), in order;
- the ledger's credits in commit order, plus the events it reports lost: the
  credits must be exactly the device's list with the lost ones left out
  (nothing doubled, nothing invented) and the lost count must equal the
  coins left out (nothing lost silently);
- what the daemon reported over MQTT: ``coinAccepted`` events, the coins of
  ``depositRecovered`` events and of ``depositStatus`` after each restart
  (the UI's reconciliation path) must cover every credit, with equal values.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from devices.cash.ledger import LEDGER_FILE
from devices.coin_acceptor.counter import distance
from tests.uiclient import UiClient, connect

REPO = Path(__file__).resolve().parents[1]
BOARD = "chaos-0001"
DEV = "coins"
COINS = (1000, 2000, 5000)
#: The emulated coin acceptor's module and options.
COIN_DEVICE = ("devices.sim.coin_acceptor.cctalk_device", "--coins", ",".join(map(str, COINS)))
#: An iteration ends its deposit with ``depositEnd`` (not a kill) at least this often, so
#: a run of a few iterations still covers ended deposits (announced ends, their shares).
ENDS_AT_LEAST_EVERY = 4
#: A failing run's diagnostics show what the daemons did this long around each coin, in ms.
DIAGNOSIS_WINDOW_MS = 2000
#: The ledger's credits of one device (``?``): a credit names the device that took it, or
#: (NULL) is its transaction's device's.
DEVICE_CREDITS = (
    "credits c JOIN transactions t ON t.id = c.transaction_id"
    " WHERE coalesce(c.device_id, t.device_id) = ?"
)


@dataclass
class ChaosCounts:
    """What happened, for the assertions and the benchmark's printout."""

    iterations: int = 0
    daemon_starts: int = 0
    sigkills: int = 0
    exits_after_commit: int = 0
    #: Daemons found ended with another status (on their own) when the harness came to kill them.
    other_exits: int = 0
    inserted: int = 0
    inserted_while_down: int = 0
    accepted_by_device: int = 0
    returned_by_device: int = 0
    ledger_credits: int = 0
    reported_lost: int = 0
    unknown_losses: int = 0
    reported_by_event: int = 0
    reported_by_recovery: int = 0
    reported_by_status: int = 0
    missing_from_mqtt: int = 0
    value_mismatches: int = 0
    doubled_or_invented: int = 0
    #: Credits of an accepted coin (same event counter) at another value.
    wrong_values: int = 0
    #: Coins fed while the daemon was down credited to a deposit started after them (a later
    #: payment's): they belong to the deposit a crash left open, else to an orphan.
    credited_to_later_deposit: int = 0
    #: Coins the device accepted that the ledger does not credit (reported lost or not).
    lost_coins: int = 0
    #: Lost coins no lost-events row covers.
    lost_silently: int = 0
    #: Lost events reported beyond the lost coins: returned coins (error events) can be among
    #: the events of a counter jump, and the daemon cannot tell which they were.
    lost_events_not_coins: int = 0
    settled: int = 0
    #: Acceptor events the last graceful stop left unread (the next start reads them).
    unread_at_stop: int = 0
    errors: list[str] = field(default_factory=list)
    #: For a failing run: each coin lost silently or doubled, with its story.
    diagnostics: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Counts as a plain dict (errors shortened; diagnostics only when there are some)."""
        out = {k: v for k, v in vars(self).items() if k not in ("errors", "diagnostics")}
        out["errors"] = self.errors[:5]
        if self.diagnostics:
            out["diagnostics"] = self.diagnostics
        return out


def assert_accounts_agree(counts: ChaosCounts, summary: str) -> None:
    """The device's, the ledger's and MQTT's accounts agree (the module's three), else AssertionError.

    No credit doubled, invented or at a wrong value; no coin lost silently or beyond
    what the lost events cover; every credit reported over MQTT at its value; every
    coin the device accepted credited or counted lost.  ``summary`` is the message.
    """
    assert counts.doubled_or_invented == 0, summary
    assert counts.wrong_values == 0, summary
    assert counts.lost_silently == 0, summary
    assert counts.unknown_losses == 0, summary
    assert counts.missing_from_mqtt == 0, summary
    assert counts.value_mismatches == 0, summary
    assert counts.ledger_credits + counts.lost_coins == counts.accepted_by_device, summary


@dataclass(frozen=True, slots=True)
class Insertion:
    """One coin dropped into the device, for the post-mortem of a failing run.

    ``at_ms`` is wall-clock (Unix epoch ms, like the ledger's and the daemon log's
    times); ``daemon`` is the pid of the daemon process at that moment, if any.
    """

    counter: int
    value: int
    accepted: bool
    iteration: int
    at_ms: int
    daemon: int | None
    down: bool


class DeviceProcess:
    """The emulated acceptor in its own process, with a JSON-lines control socket."""

    def __init__(self, proc: asyncio.subprocess.Process, control: Path) -> None:
        self.proc = proc
        self.control = control
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, pty: Path, control: Path, command: Sequence[str] = COIN_DEVICE
    ) -> AsyncIterator[DeviceProcess]:
        """Run ``python -m`` ``command`` (a device module and its options) on ``pty``."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            *command,
            "--pty",
            str(pty),
            "--control",
            str(control),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
        )
        device = cls(proc, control)
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 10)
            assert line.strip() == b"ready", line
            device._reader, device._writer = await asyncio.open_unix_connection(str(control))
            yield device
        finally:
            if device._writer is not None:
                device._writer.close()
            if proc.returncode is None:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), 10)

    async def call(self, **request: Any) -> dict[str, Any]:
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(msgspec.json.encode(request) + b"\n")
        reply: dict[str, Any] = msgspec.json.decode(
            await asyncio.wait_for(self._reader.readline(), 5)
        )
        assert "error" not in reply, reply
        return reply


def write_config(tmp: Path, broker_port: int, device: str) -> Path:
    """A daemon config with only ``device`` (its ``[devices.*]`` section)."""
    path = tmp / "kioskd.toml"
    path.write_text(
        f"""
[board]
id = "{BOARD}"

[mqtt]
port = {broker_port}
reconnect_max = 0.5

[daemon]
state_dir = "{tmp / "state"}"
runtime_dir = "{tmp / "run"}"
log_level = "info"
{device}""",
        encoding="utf-8",
    )
    (tmp / "state").mkdir(exist_ok=True)
    (tmp / "run").mkdir(exist_ok=True)
    return path


class Chaos:
    """One chaos run; see the module docstring.

    The acceptor is the ccTalk coin acceptor; :class:`tests.notechaos.NoteChaos`
    puts a note validator in its place (these class attributes and the methods
    that speak to the device).
    """

    #: The device's id in the daemon and on MQTT.
    dev = DEV
    #: Its end of the pty pair, in the run's folder.
    pty_name = "coins.pty"
    #: The event that reports a credit.
    credit_event = "coinAccepted"
    #: The emulated device's module and options (:meth:`DeviceProcess.running`).
    device_command: Sequence[str] = COIN_DEVICE

    def device_section(self, pty: Path) -> str:
        """The daemon config's section for the device on ``pty``."""
        return f"""
[devices.{self.dev}]
class = "coinAcceptor"
driver = "cctalk"
port = "{pty}"
poll_ms = 50
reply_timeout_ms = 100
cash_box_capacity = 100000
coins = [{", ".join(map(str, COINS))}]
"""

    def __init__(
        self, tmp: Path, broker_port: int, device: DeviceProcess, ui: UiClient, seed: int
    ) -> None:
        self.tmp = tmp
        self.broker_port = broker_port
        #: Written at each start, from :meth:`device_section`.
        self.config = tmp / "kioskd.toml"
        self.device = device
        self.ui = ui
        self.rng = random.Random(seed)
        self.counts = ChaosCounts()
        self.daemon: asyncio.subprocess.Process | None = None
        #: When the last daemon was started (Unix epoch ms): older states are a dead one's.
        self.started_ms = 0
        self.session: str | None = None
        #: (transactionId, index) -> value, as reported over MQTT.
        self.reported: dict[tuple[str, int], int] = {}
        self._events: asyncio.Queue[Any] | None = None
        self._states: asyncio.Queue[Any] | None = None
        #: Every coin inserted, and what happened to the daemon, for :meth:`_diagnose`.
        self.insertions: list[Insertion] = []
        self.timeline: list[tuple[int, str]] = []
        #: Coins reported twice over MQTT with different values.
        self._report_mismatches = 0
        #: Every ``depositEnded`` heard: (transactionId, the device it came from, its data).
        self.ended: list[tuple[str, str, dict[str, Any]]] = []
        #: Transactions whose settle (``depositEnd``) a daemon died before answering.
        self._unanswered_settles: set[str] = set()
        #: Iterations since a ``depositEnd`` was answered (see :data:`ENDS_AT_LEAST_EVERY`).
        self._since_end = 0

    # -- daemon --------------------------------------------------------------------------------

    async def start_daemon(self, exit_after_commit: int = 0) -> None:
        entry = ["tests.chaosdaemon", str(exit_after_commit)] if exit_after_commit else ["daemon"]
        write_config(self.tmp, self.broker_port, self.device_section(self.tmp / self.pty_name))
        self.started_ms = _now_ms()
        # The daemons' logs, for a failing run's post-mortem (the child keeps the file open).
        with (self.tmp / "daemon.log").open("ab") as log:
            self.daemon = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                *entry,
                "run",
                "--config",
                str(self.config),
                cwd=REPO,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )
        self.counts.daemon_starts += 1
        self._mark(f"daemon {self.daemon.pid} started (exit after commit {exit_after_commit})")

    def _mark(self, what: str) -> None:
        self.timeline.append((_now_ms(), what))

    def alive(self) -> bool:
        return self.daemon is not None and self.daemon.returncode is None

    async def kill(self) -> None:
        if self.daemon is None:
            return
        if self.daemon.returncode is None:
            self.daemon.send_signal(signal.SIGKILL)
            self.counts.sigkills += 1
            self._mark(f"daemon {self.daemon.pid} SIGKILL")
        elif self.daemon.returncode == 137:
            self.counts.exits_after_commit += 1
            self._mark(f"daemon {self.daemon.pid} had exited after a commit")
        else:
            self.counts.other_exits += 1
            self._mark(f"daemon {self.daemon.pid} had exited with {self.daemon.returncode}")
        await self.daemon.wait()
        self.daemon = None

    async def wait_online(self, timeout: float = 15.0, since_ms: int | None = None) -> bool:
        """Wait for the coin acceptor of a new session to be online; False if the daemon died.

        Only states published since ``since_ms`` (Unix epoch ms; default: this
        harness's last daemon start) count: an earlier one is a dead daemon's.
        """
        since = self.started_ms if since_ms is None else since_ms
        assert self._states is not None
        seen: list[Any] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if not self.alive():
                        return False
                    try:
                        message = await asyncio.wait_for(self._states.get(), 0.2)
                    except TimeoutError:
                        continue
                    payload = message.payload
                    seen.append(payload)
                    if (
                        isinstance(payload, dict)
                        and payload.get("session") != self.session
                        and payload.get("ts", 0) >= since
                        and payload.get("state") in ("online", "busy")
                    ):
                        self.session = payload["session"]
                        self._mark(f"session {self.session} online")
                        return True
        except TimeoutError:
            self.counts.errors.append(f"not online within {timeout} s; states seen: {seen}")
            return False

    async def reconcile(self) -> bool:
        """After a start: read the unsettled transactions (reported) and settle them.

        As a kiosk UI does: a settle a daemon died before answering is sent again
        (a transaction settled already is answered unchanged), and each answer's
        items are read, for an item may have come in after the status was read.
        """
        for tx_id in sorted(self._unanswered_settles):
            if not await self._settle(tx_id):
                return False
        reply = await self.request("depositStatus", {})
        if reply is None:
            return False
        for tx in reply["transactions"]:
            self._report_items(tx)
            if tx["state"] == "unknown" and not await self._settle(tx["transactionId"]):
                return False
        return True

    async def _settle(self, tx_id: str) -> bool:
        """``depositEnd`` an ``unknown`` transaction; False if no answer came (the daemon died)."""
        self._unanswered_settles.add(tx_id)
        ended = await self.request("depositEnd", {"transactionId": tx_id})
        if ended is None:
            return False
        self._unanswered_settles.discard(tx_id)
        self._report_items(ended)
        self.counts.settled += 1
        return True

    def _report_items(self, tx: dict[str, Any]) -> None:
        """Report the items of a transaction as a command's answer gave them."""
        for coin in tx["coins"]:
            self._report((tx["transactionId"], coin["index"]), coin["value"], "status")

    async def request(self, command: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """A device command's result; None when the daemon died (or failed) meanwhile."""
        if not self.alive():
            return None
        try:
            completion = await asyncio.wait_for(self.ui.device(self.dev, command, params), 5)
        except TimeoutError:
            return None
        if completion.get("completionCode") != "success":
            if self.alive():
                self.counts.errors.append(f"{command}: {completion}")
            return None
        result: dict[str, Any] = completion["result"]
        return result

    async def ensure_daemon(self) -> None:
        """(Re)start the daemon unless it runs; after a start, reconcile like a UI does."""
        while not self.alive():
            await self.kill()
            crash_at = self.rng.randint(1, 3) if self.rng.random() < 0.3 else 0
            await self.start_daemon(crash_at)
            if await self.wait_online() and await self.reconcile():
                return
            await self.kill()

    # -- reports -----------------------------------------------------------------------------

    def _report(self, key: tuple[str, int], value: int, how: str) -> None:
        if key in self.reported:
            if self.reported[key] != value:
                self._report_mismatches += 1
            return
        self.reported[key] = value
        setattr(self.counts, f"reported_by_{how}", getattr(self.counts, f"reported_by_{how}") + 1)

    async def _pump_events(self) -> None:
        assert self._events is not None
        while True:
            message = await self._events.get()
            name = message.topic.rsplit("/", 1)[-1]
            data = message.payload.get("data", {}) if isinstance(message.payload, dict) else {}
            if name == self.credit_event:
                self._report((data["transactionId"], data["index"]), data["value"], "event")
            elif name == "depositRecovered":
                for coin in data["coins"]:
                    self._report((data["transactionId"], coin["index"]), coin["value"], "recovery")
            elif name == "depositEnded":
                self.ended.append((data["transactionId"], self.dev, data))

    # -- the run -----------------------------------------------------------------------------

    async def insert(self, count: int, *, down: bool) -> None:
        for _ in range(count):
            await asyncio.sleep(self.rng.uniform(0, 0.04))
            value = self.rng.choice(COINS)
            reply = await self.device.call(action="insertCoin", value=value)
            self.insertions.append(
                Insertion(
                    counter=reply["counter"],
                    value=value,
                    accepted=reply["accepted"],
                    iteration=self.counts.iterations,
                    at_ms=_now_ms(),
                    daemon=self.daemon.pid if self.alive() and self.daemon else None,
                    down=down,
                )
            )
            self.counts.inserted += 1
            self.counts.inserted_while_down += down

    async def iteration(self) -> None:
        started = None
        while started is None:
            # A daemon may die (exit after a commit) or stall on a loaded machine between its
            # reconcile and the deposit: start it again, as a UI would.  A failure answered
            # by a live daemon is an error and ends the iteration uncounted.
            await self.ensure_daemon()
            started = await self.request("depositStart", {"currency": "VND", "timeoutMs": 60_000})
            if started is None and self.alive():
                if self.counts.errors:
                    return
                self._mark("depositStart unanswered within 5 s: daemon killed")
                await self.kill()
        coins = self.rng.randint(1, 6)
        kill_after = self.rng.randint(0, coins) if self.rng.random() < 0.4 else None
        # Ending is left to chance, but not for long: every run covers ended deposits.
        must_end = self._since_end >= ENDS_AT_LEAST_EVERY - 1
        if must_end:
            kill_after = None
        for n in range(coins):
            if kill_after == n:
                await self.kill()
            await self.insert(1, down=not self.alive())
        self._since_end += 1
        if self.alive():
            if must_end or self.rng.random() < 0.5:
                await asyncio.sleep(self.rng.uniform(0, 0.2))
                if await self.request("depositEnd", {"transactionId": started["transactionId"]}):
                    self._since_end = 0
            else:
                await asyncio.sleep(self.rng.uniform(0, 0.15))
                await self.kill()
        if not self.alive() and self.rng.random() < 0.5:
            await self.insert(self.rng.randint(1, 8), down=True)
        self.counts.iterations += 1

    @contextlib.asynccontextmanager
    async def recording(self) -> AsyncIterator[None]:
        """Record the daemon's coin events and states (a UI) while the block runs.

        On the way out a daemon still running is killed.
        """
        async with (
            self.ui.subscription(f"{self.ui.root}/dev/{self.dev}/evt/#") as events,
            self.ui.subscription(f"{self.ui.root}/dev/{self.dev}/state") as states,
        ):
            self._events, self._states = events, states
            pump = asyncio.create_task(self._pump_events())
            try:
                yield
                await asyncio.sleep(0.2)  # the last events reach the pump
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
                if self.alive():
                    await self.kill()

    async def stop_daemon(self) -> None:
        """Stop the running daemon gracefully (SIGTERM, as systemd does) and wait for it."""
        if not self.alive():
            await self.kill()  # it exited on its own (after a commit): nothing to stop
            return
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGTERM)
        self._mark(f"daemon {self.daemon.pid} SIGTERM")
        await asyncio.wait_for(self.daemon.wait(), 15)
        self.daemon = None

    async def next_boot(self) -> None:
        """Start the daemon once more with no coin going in, reconcile like a UI, stop it.

        A graceful stop inhibits the acceptor and reads its buffer once more,
        but a coin it could not read (the line cut, a read that timed out) is
        still there, and the ledger's event counter says so.  It is credited
        at the next start, before the device goes online; only after that start
        may the device's, the ledger's and the UI's accounts be compared.
        """
        await self.start_daemon()
        if not (await self.wait_online() and await self.reconcile()):
            self.counts.errors.append("the last start did not come online and reconcile")
            await self.kill()
            return
        await self.stop_daemon()

    async def unread(self) -> int:
        """Events the acceptor counted since the ledger's counter (no daemon running)."""
        stats = await self.device.call(action="stats")
        conn = sqlite3.connect(self.tmp / "state" / LEDGER_FILE)
        try:
            row = conn.execute(
                "SELECT counter FROM acceptor_counters WHERE device_id = ?", (self.dev,)
            ).fetchone()
        finally:
            conn.close()
        return self.unread_on_device(stats, row[0] if row else None)

    def unread_on_device(self, stats: dict[str, Any], counter: int | None) -> int:
        """Credits the device counted (its ``stats``) past the ledger's event ``counter``."""
        return distance(counter, stats["counter"]) if counter is not None else stats["counter"]

    def credited_by_device(self, stats: dict[str, Any]) -> list[tuple[int, int]]:
        """The device's credits (its ``stats``) in order, as (event counter, value)."""
        return [(counter, value) for counter, value in stats["accepted"]]

    async def run(self, iterations: int) -> ChaosCounts:
        async with self.recording():
            for _ in range(iterations):
                await self.iteration()
            await self.ensure_daemon()  # recover whatever the last kill left
            await self.stop_daemon()
            self.counts.unread_at_stop = await self.unread()
            await self.next_boot()
        await self.compare()
        return self.counts

    async def compare(self) -> None:
        """Compare the device's, the ledger's and the UI's accounts into :attr:`counts`.

        Run it with no daemon running; it may run again later (every count it
        sets is recomputed).
        """
        stats = await self.device.call(action="stats")
        accepted = self.credited_by_device(stats)
        self.counts.accepted_by_device = len(accepted)
        self.counts.returned_by_device = len(stats["returned"])
        conn = sqlite3.connect(self.tmp / "state" / LEDGER_FILE)
        try:
            # Each credit, its transaction's start (NULL for an orphan), and for the
            # diagnostics of a credit nobody heard of: its transaction's state and opener.
            rows = conn.execute(
                "SELECT c.event_counter, c.value, c.transaction_id, c.idx,"
                " CASE WHEN t.orphan THEN NULL ELSE t.started_ms END,"
                " t.state, t.orphan, t.device_id, c.ts_ms"
                f" FROM {DEVICE_CREDITS} ORDER BY c.rowid",
                (self.dev,),
            ).fetchall()
            lost, unknown = conn.execute(
                "SELECT coalesce(sum(count), 0), count(*) - count(count) FROM lost_events"
                " WHERE device_id = ?",
                (self.dev,),
            ).fetchone()
            lost_rows = conn.execute(
                "SELECT ts_ms, count, reason, transaction_id FROM lost_events"
                " WHERE device_id = ? ORDER BY rowid",
                (self.dev,),
            ).fetchall()
            last_counter = conn.execute(
                "SELECT counter FROM acceptor_counters WHERE device_id = ?", (self.dev,)
            ).fetchone()
        finally:
            conn.close()
        self.counts.ledger_credits = len(rows)
        self.counts.reported_lost = lost
        self.counts.unknown_losses = unknown
        # The ledger's credits must be the device's accepted coins in order, minus lost ones:
        # each credit is matched to the next accepted coin with its event counter (unique
        # over 255 events), which must have its value.  A credit with no such coin is
        # doubled or invented and leaves the matching where it was.
        pos = 0
        skipped: list[int] = []
        invented: list[tuple[int, int]] = []
        wrong: list[tuple[int, int]] = []
        fed = [i for i in self.insertions if i.accepted]
        self.counts.credited_to_later_deposit = 0
        later: list[tuple[Insertion, str, int]] = []
        for counter, value, tx, _idx, started_ms, *_where in rows:
            match = next((j for j in range(pos, len(accepted)) if accepted[j][0] == counter), None)
            if match is None:
                invented.append((counter, value))
                continue
            skipped += range(pos, match)
            if accepted[match][1] != value:
                wrong.append((counter, value))
            coin = fed[match] if match < len(fed) else None
            if (
                coin is not None
                and coin.down
                and started_ms is not None
                and started_ms > coin.at_ms
            ):
                self.counts.credited_to_later_deposit += 1
                later.append((coin, tx, started_ms))
            pos = match + 1
        skipped += range(pos, len(accepted))
        self.counts.doubled_or_invented = len(invented)
        self.counts.wrong_values = len(wrong)
        self.counts.lost_coins = len(skipped)
        self.counts.lost_silently = max(0, len(skipped) - lost)
        self.counts.lost_events_not_coins = max(0, lost - len(skipped))
        self.counts.diagnostics = []
        if self.counts.lost_silently or invented or wrong:
            self._diagnose(accepted, skipped, invented + wrong, lost_rows, last_counter)
        for coin, tx, started in later:
            self.counts.diagnostics.append(f"fed while down, credited to {tx} of {started}: {coin}")
            self.counts.diagnostics.extend(self._timeline_near(coin.at_ms))
        self.counts.missing_from_mqtt = 0
        self.counts.value_mismatches = self._report_mismatches
        for _counter, value, tx, idx, _started, state, orphan, opener, ts in rows:
            reported = self.reported.get((tx, idx))
            if reported is None:
                self.counts.missing_from_mqtt += 1
                # A credit no event or status reported: its transaction, the daemons' life.
                self.counts.diagnostics.append(
                    f"credit {tx}#{idx} ({value}) at {ts} never reported: transaction {state},"
                    f" orphan {orphan}, opened on {opener}; its other items heard:"
                    f" {sorted(i for t, i in self.reported if t == tx)}"
                )
                self.counts.diagnostics.extend(self._timeline_near(ts))
            elif reported != value:
                self.counts.value_mismatches += 1

    def _timeline_near(self, *moments: int) -> list[str]:
        """What the harness saw the daemons do within the diagnosis window of any of ``moments``."""
        return [
            f"{at} {what}"
            for at, what in self.timeline
            if any(abs(at - moment) <= DIAGNOSIS_WINDOW_MS for moment in moments)
        ]

    def _diagnose(
        self,
        accepted: list[tuple[int, int]],
        skipped: list[int],
        invented: list[tuple[int, int]],  # and credited at a wrong value
        lost_rows: list[tuple[int, int | None, str, str | None]],
        last_counter: tuple[int] | None,
    ) -> None:
        """Explain a failing run: every coin left out, the losses reported, the daemon's life."""
        out = self.counts.diagnostics
        by_coin = [i for i in self.insertions if i.accepted]
        out.append(f"ledger's last event counter: {last_counter and last_counter[0]}")
        moments: list[int] = []
        for pos in skipped:
            ins = by_coin[pos] if pos < len(by_coin) else None
            out.append(f"device coin #{pos} {accepted[pos]} not credited; inserted: {ins}")
            if ins is not None:
                moments.append(ins.at_ms)
        out.extend(f"credit not on the device as such: {pair}" for pair in invented)
        out.extend(f"lost event row: {row}" for row in lost_rows)
        # What the daemons did around those coins (the reported losses are among them).
        out.extend(self._timeline_near(*moments))


def _now_ms() -> int:
    return int(time.time() * 1000)


async def run_chaos(
    tmp: Path, broker_port: int, iterations: int, seed: int, kind: type[Chaos] = Chaos
) -> ChaosCounts:
    """Run ``iterations`` chaos iterations with a device process and a UI; return the counts.

    ``kind`` is :class:`Chaos` (coins) or :class:`tests.notechaos.NoteChaos`.
    """
    async with (
        DeviceProcess.running(
            tmp / kind.pty_name, tmp / "control.sock", kind.device_command
        ) as device,
        connect(broker_port, BOARD, "chaos-ui") as ui,
    ):
        chaos = kind(tmp, broker_port, device, ui, seed)
        return await chaos.run(iterations)
