"""Mixed chaos: one daemon with a coin acceptor and a note validator, killed at random.

Shared by the CI test (tests/devices/test_mixed_chaos.py) and the benchmark
(``python -m bench.coins --mixed-chaos N``).  It composes the two chaos
harnesses: :class:`MixedChaos` is :class:`tests.notechaos.NoteChaos` (the
validator's process, its notes through escrow, kills while a note is in flight)
and runs the one daemon; its :attr:`~MixedChaos.coins` is a
:class:`tests.coinchaos.Chaos` for the ccTalk coin acceptor on its own wire
device process, with the run's daemon and UI.  The daemon's config has both
devices, so both join the board's till: one deposit takes coins and notes.

Each iteration starts the deposit on one device or the other (at random), after
a restart sometimes as soon as that device is online, before the other (which
may still be reading what it buffered while the daemon was down), feeds
coins and notes at random (a note through escrow, sometimes followed by a kill
within 120 ms), and ends it with ``depositEnd`` on that device, or kills the
daemon (``kill -9``, or an exit right after a ledger commit and before its
publish: ``tests.chaosdaemon``, which both acceptors' services share).  After
every start the UI reconciles as a kiosk's does: ``depositStatus`` on both
devices, ``depositEnd`` on every ``unknown`` transaction.  Then:

- each device's account is compared as in its own harness: the validator's
  stacked notes and the coin acceptor's accepted coins against the ledger's
  credits of that device, each announced (its event, ``depositRecovered`` or
  ``depositStatus``), none doubled, none lost unreported, and no coin fed while
  the daemon was down credited to a deposit started after it (a later payment's);
- every transaction is closed: one ``depositEnded``, from the device it was
  started on, whose ``devices`` shares are the ledger's per device, or settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from devices.cash.ledger import LEDGER_FILE
from tests.coinchaos import BOARD, Chaos, ChaosCounts, DeviceProcess
from tests.notechaos import CctalkNoteChaos, NoteChaos, NoteChaosCounts
from tests.uiclient import UiClient, connect

#: The share of items fed that are coins (the rest are notes).
COIN_SHARE = 0.5
#: After a start, the UI starts the deposit this often as soon as the device it starts it
#: on is online, before the other device is (which may still read what it buffered).
EAGER_P = 0.4
#: Counts of the run (one daemon, one list of errors), not of the coin acceptor's account.
RUN_COUNTS = frozenset(
    (
        "iterations",
        "daemon_starts",
        "sigkills",
        "exits_after_commit",
        "other_exits",
        "unread_at_stop",
        "errors",
    )
)


@dataclass
class MixedChaosCounts(NoteChaosCounts):
    """The validator's :class:`NoteChaosCounts`, the coin acceptor's, and the transactions'."""

    deposits_started_on_coins: int = 0
    deposits_started_on_notes: int = 0
    #: Deposits started before the other device of a new daemon was online.
    deposits_started_early: int = 0
    #: Transactions with credits from both devices.
    mixed_transactions: int = 0
    #: Ended transactions with exactly one ``depositEnded``, from the device that opened it.
    ends_announced: int = 0
    #: Ended transactions no ``depositEnded`` announced.
    ends_unannounced: int = 0
    #: Transactions with more than one ``depositEnded``.
    ends_doubled: int = 0
    #: ``depositEnded`` from a device other than the one the transaction was started on.
    ends_from_other_device: int = 0
    #: ``depositEnded`` whose ``devices`` shares differ from the ledger's credits per device.
    ends_with_wrong_shares: int = 0
    #: ``unknown`` transactions (crashed deposits, orphans) the UI settled, in the ledger.
    transactions_settled: int = 0
    #: Transactions still ``active`` or ``unknown`` after the last start's reconciliation.
    left_open: int = 0
    coins: ChaosCounts | None = None

    def as_dict(self) -> dict[str, Any]:
        """The validator's counts, the coin acceptor's under ``coins``, and the transactions'."""
        out = super().as_dict()
        if self.coins is not None:
            # The coin acceptor's account; the daemon's life and the errors are the run's.
            out["coins"] = {k: v for k, v in self.coins.as_dict().items() if k not in RUN_COUNTS}
        return out


class CoinSide(Chaos):
    """The coin acceptor of a mixed run: its device, coins and account; the daemon is the run's."""

    def __init__(self, run: MixedChaos, device: DeviceProcess, seed: int) -> None:
        self.run = run
        super().__init__(run.tmp, run.broker_port, device, run.ui, seed)

    @property  # type: ignore[override]
    def daemon(self) -> asyncio.subprocess.Process | None:
        """The run's daemon process (None when it is down)."""
        return self.run.daemon

    @daemon.setter
    def daemon(self, _process: asyncio.subprocess.Process | None) -> None:
        """Only the run starts and kills the daemon."""


class MixedChaos(NoteChaos):
    """A mixed chaos run (SSP note validator and ccTalk coin acceptor); see the module docstring."""

    def __init__(
        self,
        tmp: Path,
        broker_port: int,
        device: DeviceProcess,
        ui: UiClient,
        seed: int,
        coins: DeviceProcess,
    ) -> None:
        super().__init__(tmp, broker_port, device, ui, seed)
        self.coins = CoinSide(self, coins, seed + 1)
        self.counts: MixedChaosCounts = MixedChaosCounts(coins=self.coins.counts)
        # One UI: a report names its transaction and index, whichever device's topic it came on.
        self.coins.reported = self.reported
        self.coins.ended = self.ended
        self.coins.counts.errors = self.counts.errors
        #: The device this iteration's deposit is started and ended on.
        self._opener: Chaos = self
        #: This iteration's deposit may start before the other device is online (EAGER_P).
        self._eager = False
        #: After a start: the device not waited for before the deposit starts.
        self._late: Chaos | None = None

    def device_section(self, pty: Path) -> str:
        """The note validator on ``pty`` and the coin acceptor on its own pty."""
        return super().device_section(pty) + self.coins.device_section(
            self.tmp / self.coins.pty_name
        )

    async def insert(self, count: int, *, down: bool) -> None:
        """Feed ``count`` items, each a coin or a note at random."""
        for _ in range(count):
            if self.rng.random() < COIN_SHARE:
                await self.coins.insert(1, down=down)
            else:
                await super().insert(1, down=down)

    async def iteration(self) -> None:
        """:meth:`Chaos.iteration`, the deposit started and ended on either device."""
        self._opener = self.rng.choice((self, self.coins))
        self._eager = self.rng.random() < EAGER_P
        try:
            await super().iteration()
        finally:
            self._eager = False
        if self._opener is self:
            self.counts.deposits_started_on_notes += 1
        else:
            self.counts.deposits_started_on_coins += 1

    async def request(self, command: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """A command's result; the deposit's start and end go to this iteration's device.

        After a deposit started early, wait for the other device and reconcile it.
        """
        if command in ("depositStart", "depositEnd") and self._opener is not self:
            result = await self._opener.request(command, params)
        else:
            result = await super().request(command, params)
        late = self._late
        if late is not None and command == "depositStart" and result is not None:
            self._late = None
            self.counts.deposits_started_early += 1
            if await self._online(late, 15.0) and not await self._reconciled(late) and self.alive():
                self.counts.errors.append(f"{late.dev} did not reconcile after an early start")
        return result

    async def _online(self, side: Chaos, timeout: float) -> bool:
        """:meth:`Chaos.wait_online` of one device, for the daemon started last."""
        if side is self:
            return await super().wait_online(timeout)
        return await side.wait_online(timeout, since_ms=self.started_ms)

    async def _reconciled(self, side: Chaos) -> bool:
        """:meth:`Chaos.reconcile` of one device."""
        return await (super().reconcile() if side is self else side.reconcile())

    async def wait_online(self, timeout: float = 15.0, since_ms: int | None = None) -> bool:
        """Wait for the devices of a new daemon to be online.

        Both, or (in an iteration, :data:`EAGER_P`) the one the deposit starts on,
        the other then waited for and reconciled once it started (:meth:`request`).
        """
        self._late = None
        if self._eager:
            self._late = self.coins if self._opener is self else self
        for side in (self, self.coins):
            if side is not self._late and not await self._online(side, timeout):
                self._late = None
                return False
        return True

    async def reconcile(self) -> bool:
        """Read and settle the unsettled transactions of the devices online."""
        for side in (self, self.coins):
            if side is not self._late and not await self._reconciled(side):
                self._late = None
                return False
        return True

    @contextlib.asynccontextmanager
    async def recording(self) -> AsyncIterator[None]:
        """Record both devices' events and states (one UI watches both)."""
        async with self.coins.recording(), super().recording():
            yield

    async def unread(self) -> int:
        """Items both devices counted past the ledger's event counters."""
        return await super().unread() + await self.coins.unread()

    async def compare(self) -> None:
        """Compare each device's account, then the transactions' ends."""
        await super().compare()
        await self.coins.compare()
        self._compare_transactions()

    def _compare_transactions(self) -> None:
        """Every transaction ended with one ``depositEnded`` (right shares) or settled."""
        counts = self.counts
        for name in (f.name for f in fields(MixedChaosCounts) if f.name.startswith("ends_")):
            setattr(counts, name, 0)
        counts.mixed_transactions = counts.left_open = counts.transactions_settled = 0
        conn = sqlite3.connect(self.tmp / "state" / LEDGER_FILE)
        try:
            transactions = conn.execute("SELECT id, device_id, state FROM transactions").fetchall()
            shares = conn.execute(
                "SELECT c.transaction_id, coalesce(c.device_id, t.device_id), count(*),"
                " sum(c.value) FROM credits c JOIN transactions t ON t.id = c.transaction_id"
                " GROUP BY 1, 2"
            ).fetchall()
        finally:
            conn.close()
        by_tx: dict[str, dict[str, tuple[int, int]]] = {}
        for tx, device, items, total in shares:
            by_tx.setdefault(tx, {})[device] = (items, total)
        ends = Counter(tx for tx, _device, _data in self.ended)
        counts.ends_doubled = sum(n > 1 for n in ends.values())
        for tx, opener, state in transactions:
            ledger_shares = by_tx.get(tx, {})
            counts.mixed_transactions += len(ledger_shares) > 1
            counts.left_open += state in ("active", "unknown")
            counts.transactions_settled += state == "settled"
            if state != "ended":
                continue
            heard = [(device, data) for t, device, data in self.ended if t == tx]
            if not heard:
                counts.ends_unannounced += 1
                continue
            counts.ends_announced += len(heard) == 1
            for device, data in heard:
                counts.ends_from_other_device += device != opener
                announced = {d["deviceId"]: (d["items"], d["total"]) for d in data["devices"]}
                counts.ends_with_wrong_shares += announced != ledger_shares


class CctalkMixedChaos(MixedChaos, CctalkNoteChaos):
    """A mixed chaos run with the ccTalk bill validator in the SSP validator's place."""


async def run_mixed_chaos(
    tmp: Path, broker_port: int, iterations: int, seed: int, kind: type[MixedChaos] = MixedChaos
) -> MixedChaosCounts:
    """Run ``iterations`` mixed chaos iterations: both device processes, one UI; the counts."""
    async with (
        DeviceProcess.running(
            tmp / kind.pty_name, tmp / "notes-control.sock", kind.device_command
        ) as notes,
        DeviceProcess.running(
            tmp / CoinSide.pty_name, tmp / "coins-control.sock", CoinSide.device_command
        ) as coins,
        connect(broker_port, BOARD, "chaos-ui") as ui,
    ):
        chaos = kind(tmp, broker_port, notes, ui, seed, coins)
        await chaos.run(iterations)
        return chaos.counts
