"""``python -m bench.card_read``: a full identity read through pcscd, vpcd and the virtual card.

Runs the ``pcsc`` driver against the project's virtual card on vpcd slot 0 or 1
(starting ``pcscd -f`` if none runs) and splits each read's wall time:

- **PC/SC round trips**: time spent awaiting PC/SC calls (each APDU's transmit,
  the status refresh, connect and disconnect: the worker thread hop, pcsc-lite,
  pcscd, vpcd's socket and the card's answer);
- of which **card**: the virtual chip's own APDU processing (its crypto);
- **daemon**: everything else (key derivation, secure messaging, TLV and LDS
  parsing, passive authentication, status refresh, connect/disconnect).

Chip turnaround 0 ms measures the stack alone; 10 ms per APDU is what the wire
simulator uses to look like a contactless chip.  The default specimen chip
offers PACE (brainpoolP256r1), Chip and Active Authentication, so a read runs
all three (with the MRZ data or the CAN).  One configuration loads Germany's
master list (589 CSCAs) into ``csca_dir``: passive authentication then walks
them all (its document signer chains to none of them).  A ticker on the loop records the
longest stall during the reads: the elliptic curve work must stay off the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from devices.base import CommandContext
from devices.card_reader.pcsc import PcscCardReader, PcscSettings
from devices.card_reader.protocol import AccessKey, ReadIdentityParams
from devices.sim.card_reader.actions import PresentCardParams
from devices.sim.card_reader.pcsc import VirtualCardSimulator
from devices.transports.pcsc import PcscCard, PcscContext
from tests.pcsc_stack import pcscd_running
from tests.support import RecordingHost, make_env, running

from .stats import Stats

KEY = AccessKey(
    document_number="079099000123", date_of_birth="1990-01-15", date_of_expiry="2030-01-15"
)
CAN = AccessKey(can="123456")
MASTER_LISTS = Path(__file__).resolve().parent.parent / "tests" / "data" / "icao" / "masterlists"
GERMAN_LIST, GERMAN_ROOT = "DE_ML_2026-05-28-08-28-45.ml", "DE_ROOT_CA_CSCA07.cer"
_TICK_S = 0.001


async def ticker(worst: list[float]) -> None:
    """Sleep 1 ms at a time; keep the longest overshoot (the loop's worst stall) in ``worst``."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(_TICK_S)
        worst[0] = max(worst[0], loop.time() - start - _TICK_S)


@contextlib.contextmanager
def pcscd() -> Any:
    if pcscd_running():
        yield
        return
    if shutil.which("pcscd") is None:
        raise SystemExit("pcscd is not installed: ./dev setup")
    proc = subprocess.Popen(["pcscd", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until = time.monotonic() + 10
        while not pcscd_running():
            if time.monotonic() > until:
                raise SystemExit("pcscd did not start")
            time.sleep(0.05)
        time.sleep(0.5)
        yield
    finally:
        proc.terminate()
        proc.wait(5)


class Timers:
    """Accumulated seconds in PC/SC transmits and in the card, plus APDU count."""

    def __init__(self) -> None:
        self.transmit = 0.0
        self.card = 0.0
        self.apdus = 0

    def reset(self) -> None:
        self.transmit = self.card = 0.0
        self.apdus = 0


def instrument(timers: Timers) -> Callable[[], None]:
    """Time the PC/SC calls of a read (transmit, connect, disconnect); return the undo.

    The status refresh is timed on the reader's own I/O context (:func:`measure`):
    the status watcher's waits are not part of a read.
    """
    patched: list[tuple[Any, str, Any]] = []

    def wrap(cls: Any, name: str, *, counts: bool) -> None:
        original = getattr(cls, name)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                timers.transmit += time.perf_counter() - start
                timers.apdus += counts

        setattr(cls, name, timed)
        patched.append((cls, name, original))

    wrap(PcscCard, "transmit", counts=True)
    wrap(PcscCard, "disconnect", counts=False)
    wrap(PcscContext, "connect", counts=False)

    def undo() -> None:
        for cls, name, original in patched:
            setattr(cls, name, original)

    return undo


@contextlib.asynccontextmanager
async def reader(
    tmp: Path, chunk: int, csca_dir: Path | None = None
) -> AsyncIterator[tuple[PcscCardReader, VirtualCardSimulator]]:
    host = RecordingHost()
    env = make_env(tmp)
    sim = VirtualCardSimulator("cardReader", host, env)
    folder = str(csca_dir) if csca_dir is not None else None
    settings = sim.driver_settings(PcscSettings(read_chunk_bytes=chunk, csca_dir=folder))
    assert isinstance(settings, PcscSettings)
    await sim.start()
    device = PcscCardReader("cardReader", host, env, settings)
    try:
        async with running(device, host):
            yield device, sim
    finally:
        await sim.aclose()


async def measure(
    count: int,
    chip_ms: float,
    chunk: int,
    key: AccessKey,
    timers: Timers,
    *,
    csca_dir: Path | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with reader(Path(tmp), chunk, csca_dir) as (device, sim):
            await sim.sim_present_card(PresentCardParams())
            sim._apdu_s = chip_ms / 1000  # noqa: SLF001 - the bench sets the chip's speed
            card = sim._card  # noqa: SLF001
            assert card is not None
            card.apdu_delay_s = chip_ms / 1000
            chip = card.chip
            process = chip.process

            def timed_process(raw: bytes) -> bytes:
                start = time.perf_counter()
                try:
                    return process(raw)
                finally:
                    timers.card += time.perf_counter() - start

            chip.process = timed_process  # type: ignore[method-assign]
            await device.wait_until(lambda: device.card_present, 5)
            io = device._io  # noqa: SLF001 - the bench times the driver's status refresh
            assert io is not None
            refresh = io.wait_status

            async def timed_refresh(*args: Any) -> Any:
                start = time.perf_counter()
                try:
                    return await refresh(*args)
                finally:
                    timers.transmit += time.perf_counter() - start

            io.wait_status = timed_refresh  # type: ignore[method-assign]
            totals, transmits, cards, apdus = [], [], [], 0
            loop = asyncio.get_running_loop()
            worst = [0.0]
            ticking = asyncio.create_task(ticker(worst))
            for i in range(count + 3):
                timers.reset()
                ctx = CommandContext("b", "bench", loop.time() + 30, lambda _n, _d: None)
                start = time.perf_counter()
                identity = await device.execute(
                    "readIdentity", ReadIdentityParams(access_key=key), ctx
                )
                assert identity.chip_authentication
                assert identity.active_authentication
                elapsed = time.perf_counter() - start
                if i >= 3:  # warm-up reads are not timed
                    totals.append(elapsed)
                    transmits.append(timers.transmit)
                    cards.append(timers.card + timers.apdus * chip_ms / 1000)
                    apdus = timers.apdus
                if i == 2:  # the last warm-up read: the stall is measured over the timed ones
                    worst[0] = 0.0
            ticking.cancel()
    total, transmit = Stats.of(totals), Stats.of(transmits)
    daemon = Stats.of([t - x for t, x in zip(totals, transmits, strict=True)])
    return {
        "chipMsPerApdu": chip_ms,
        "chunkBytes": chunk,
        "apdus": apdus,
        "totalMs": asdict(total),
        "pcscMs": asdict(transmit),
        "cardMs": round(sum(cards) / len(cards) * 1000, 3),
        "daemonMs": asdict(daemon),
        "worstLoopStallMs": round(worst[0] * 1000, 2),
    }


async def chip_share(count: int) -> dict[str, Any]:
    """``./dev bench`` row (j): reads of a 10 ms/APDU chip (MRZ key, 223-byte reads).

    Starts pcscd when none runs; ``daemonShare`` is the daemon's p50 over the total p50.
    """
    timers = Timers()
    undo = instrument(timers)
    try:
        with pcscd():
            row = await measure(count, 10.0, 223, KEY, timers)
    finally:
        undo()
    return row | {"daemonShare": round(row["daemonMs"]["p50"] / row["totalMs"]["p50"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.card_read", description=__doc__)
    parser.add_argument("--count", type=int, default=30, help="timed reads per configuration")
    args = parser.parse_args()
    timers = Timers()
    undo = instrument(timers)
    rows: list[tuple[str, Any]] = []
    try:
        with pcscd(), tempfile.TemporaryDirectory() as lists:
            # Passive authentication against Germany's master list (589 CSCAs).
            for name in (GERMAN_LIST, GERMAN_ROOT):
                shutil.copy(MASTER_LISTS / name, lists)
            rows.append(
                (
                    "chip 0 ms/APDU, READ BINARY 223 B, MRZ, csca_dir = German master list",
                    asyncio.run(measure(args.count, 0.0, 223, KEY, timers, csca_dir=Path(lists))),
                )
            )
            for chip_ms, chunk, key, name in (
                (0.0, 223, KEY, "MRZ"),
                (0.0, 223, CAN, "CAN"),
                (0.0, 1024, KEY, "MRZ"),
                (10.0, 223, KEY, "MRZ"),
            ):
                rows.append(
                    (
                        f"chip {chip_ms:g} ms/APDU, READ BINARY {chunk} B, {name}",
                        asyncio.run(measure(args.count, chip_ms, chunk, key, timers)),
                    )
                )
    finally:
        undo()
    for label, row in rows:
        print(label)
        print(f"  APDUs per read: {row['apdus']}")
        print(f"  total   {row['totalMs']}")
        print(f"  PC/SC   {row['pcscMs']}  (card's own work, mean: {row['cardMs']} ms)")
        print(f"  daemon  {row['daemonMs']}")
        print(f"  worst event loop stall during the reads: {row['worstLoopStallMs']} ms")


if __name__ == "__main__":
    main()
