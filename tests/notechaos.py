"""Note chaos harness: the coin chaos harness with a note validator in the acceptor's place.

Shared by the CI test (tests/devices/test_note_kill_chaos.py, SSP) and the
benchmark (``python -m bench.coins --note-chaos N``, SSP and ccTalk:
:class:`CctalkNoteChaos`).  The run is :mod:`tests.coinchaos`'s
(``kill -9`` at random moments, an exit right after a ledger commit and before
the publish, notes fed while the daemon is down, a graceful stop and one more
start at the end, the three accounts compared), with the ``ssp`` driver on the
emulated validator (``python -m devices.sim.cash_acceptor.ssp_device``, its own process on a
socat pty pair, so it outlives every kill as a real one does) and notes:

- a note fed is held in escrow until the daemon's poll stacks it; the harness
  moves on without waiting for its fate about half of the time, so the next
  kill may land while it is in escrow or after it is stacked and before its
  credit is committed, and about one note in seven is followed by a kill within
  :data:`ESCROW_KILL_S` (the note's way from the bezel to the commit takes
  about two polls).  Each kill counts the notes still in flight and the
  notes the validator stacked that the ledger has not credited yet
  (:attr:`NoteChaosCounts.kills_stacked_not_committed`);
- a note held in escrow when the daemon dies is returned (the next start's
  REJECT, else the validator's ten-second escrow timeout), never credited; a
  note fed while the validator is disabled or holds another is returned at once;
- the device's credits are its stacked notes in order, numbered by its stacked
  count (GET COUNTERS), which is what the driver commits as the event counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.cash.ledger import LEDGER_FILE
from tests.coinchaos import DEVICE_CREDITS, Chaos, ChaosCounts, Insertion, _now_ms

NOTES = (10_000, 20_000, 50_000)
#: A note fed is followed by a kill this often, within this many s.
ESCROW_KILL_P, ESCROW_KILL_S = 0.15, 0.12
#: How long a note's fate may take when the daemon runs (poll, stack, commit), in s.
FATE_TIMEOUT_S = 3.0
#: How long a note in flight may take to be settled at the end (escrow timeout and margin), in s.
SETTLE_TIMEOUT_S = 15.0


@dataclass
class NoteChaosCounts(ChaosCounts):
    """:class:`ChaosCounts` and what only notes have."""

    #: Kills (SIGKILL or exit after a commit) with a note fed and its fate not yet known.
    kills_with_note_in_flight: int = 0
    #: Kills after which the validator had stacked more notes than the ledger had credits.
    kills_stacked_not_committed: int = 0


class NoteChaos(Chaos):
    """A chaos run on the SSP note validator; see the module docstring."""

    dev = "cashAcceptor"
    pty_name = "notes.pty"
    credit_event = "noteStacked"
    device_command = ("devices.sim.cash_acceptor.ssp_device", "--notes", ",".join(map(str, NOTES)))

    def device_section(self, pty: Path) -> str:
        """The ``ssp`` driver on ``pty``, polling every 50 ms, plain SSP."""
        return f"""
[devices.{self.dev}]
class = "cashAcceptor"
driver = "ssp"
port = "{pty}"
poll_ms = 50
reply_timeout_ms = 200
notes = [{", ".join(map(str, NOTES))}]
"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts: NoteChaosCounts = NoteChaosCounts()
        #: Notes fed whose fate (stacked or returned) is not known yet.
        self.in_flight: set[asyncio.Task[None]] = set()

    async def _feed(self, value: int, *, down: bool, iteration: int, daemon: int | None) -> None:
        """Feed one note on a control connection of its own and record its fate."""
        reader, writer = await asyncio.open_unix_connection(str(self.device.control))
        try:
            writer.write(json.dumps({"action": "insertNote", "value": value}).encode() + b"\n")
            await writer.drain()
            reply = json.loads(await asyncio.wait_for(reader.readline(), SETTLE_TIMEOUT_S))
        finally:
            writer.close()
        self.insertions.append(
            Insertion(
                counter=0,
                value=value,
                accepted=reply["fate"] == "stacked",
                iteration=iteration,
                at_ms=_now_ms(),
                daemon=daemon,
                down=down,
            )
        )

    async def insert(self, count: int, *, down: bool) -> None:
        """Feed ``count`` notes; while the daemon runs, kill it or wait for the fate (module doc)."""
        for _ in range(count):
            await asyncio.sleep(self.rng.uniform(0, 0.04))
            task = asyncio.create_task(
                self._feed(
                    self.rng.choice(NOTES),
                    down=down,
                    iteration=self.counts.iterations,
                    daemon=self.daemon.pid if self.alive() and self.daemon else None,
                )
            )
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
            self.counts.inserted += 1
            self.counts.inserted_while_down += down
            if down:
                continue
            if self.rng.random() < ESCROW_KILL_P:
                await asyncio.sleep(self.rng.uniform(0, ESCROW_KILL_S))
                await self.kill()
            elif self.rng.random() < 0.5:
                await asyncio.wait([task], timeout=FATE_TIMEOUT_S)
            else:
                await asyncio.sleep(self.rng.uniform(0, 0.3))

    async def kill(self) -> None:
        """:meth:`Chaos.kill`, counting what the kill left between the validator and the ledger."""
        had_daemon = self.daemon is not None
        pending = len(self.in_flight)
        await super().kill()
        if had_daemon:
            self.counts.kills_with_note_in_flight += pending > 0
            self.counts.kills_stacked_not_committed += await self._stacked_not_committed()

    async def _stacked_not_committed(self) -> bool:
        """True when the validator has stacked more notes than the ledger has credits."""
        stacked = len(self.credited_by_device(await self.device.call(action="stats")))
        path = self.tmp / "state" / LEDGER_FILE
        if not path.exists():  # not before the first start made it
            return stacked > 0
        conn = sqlite3.connect(path)
        try:
            (credited,) = conn.execute(
                f"SELECT count(*) FROM {DEVICE_CREDITS}", (self.dev,)
            ).fetchone()
        except sqlite3.OperationalError:  # killed before its tables were made
            credited = 0
        finally:
            conn.close()
        return bool(stacked > credited)

    async def compare(self) -> None:
        """Wait for every note's fate (the last start returned any in escrow), then compare."""
        if self.in_flight:
            done, pending = await asyncio.wait(set(self.in_flight), timeout=SETTLE_TIMEOUT_S)
            for task in done:
                if task.exception() is not None:
                    self.counts.errors.append(f"feeding a note: {task.exception()!r}")
            for task in pending:
                task.cancel()
                self.counts.errors.append("a note's fate unknown at the end")
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await super().compare()

    def unread_on_device(self, stats: dict[str, Any], counter: int | None) -> int:
        """Notes the validator stacked (its stacked count) past the ledger's counter."""
        return int(stats["stackedCount"]) - (counter or 0)

    def credited_by_device(self, stats: dict[str, Any]) -> list[tuple[int, int]]:
        """The stacked notes in order, numbered by the stacked count after each."""
        return [(n, value) for n, value in enumerate(stats["stacked"], start=1)]


class CctalkNoteChaos(NoteChaos):
    """A chaos run on the ccTalk bill validator (``cctalk`` driver, its own process).

    Its credits are numbered by the ccTalk event counter (1..255, a ring over
    every bill event), as the coin acceptor's are.
    """

    pty_name = "bills.pty"
    device_command = (
        "devices.sim.cash_acceptor.cctalk_device",
        "--notes",
        ",".join(map(str, NOTES)),
    )
    unread_on_device = Chaos.unread_on_device
    credited_by_device = Chaos.credited_by_device

    def device_section(self, pty: Path) -> str:
        """The ``cctalk`` driver on ``pty``, polling every 50 ms."""
        return f"""
[devices.{self.dev}]
class = "cashAcceptor"
driver = "cctalk"
port = "{pty}"
poll_ms = 50
reply_timeout_ms = 200
notes = [{", ".join(map(str, NOTES))}]
"""
