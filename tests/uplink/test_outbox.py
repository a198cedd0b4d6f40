"""The SQLite outbox on its own: order, PUBACK deletes, bounds by bytes and age, state across reopen."""

from __future__ import annotations

import time
from pathlib import Path

from daemon.uplink.outbox import ROW_OVERHEAD, Outbox, Row


def row(outbox: Outbox, size: int = 100, age_s: float = 0.0) -> Row:
    msg_id = outbox.next_id()
    ts = time.time_ns() // 1_000_000 - int(age_s * 1000)
    if age_s:
        msg_id = ts * 1000  # ids are creation microseconds
    return Row(msg_id, ts, "fleet/v1/t/b/health", b"x" * size)


async def test_rows_come_back_in_order_and_go_after_delete(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1 << 20, max_age_s=3600)
    await outbox.open()
    rows = [row(outbox) for _ in range(10)]
    for r in rows:
        outbox.append(r)
    assert [r.id for r in await outbox.batch(0, None, 100)] == [r.id for r in rows]
    assert [r.id for r in await outbox.batch(rows[2].id, rows[5].id, 100)] == [
        r.id for r in rows[3:6]
    ]
    await outbox.delete([r.id for r in rows[:4]] + [12345])
    stats = await outbox.stats()
    assert stats.messages == 6
    assert stats.bytes == 6 * (100 + len(rows[0].topic) + ROW_OVERHEAD)
    assert stats.oldest_ts == rows[4].ts_ms
    await outbox.close()


async def test_byte_bound_drops_oldest_and_counts_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, max_bytes=65_536, max_age_s=3600)
    await outbox.open()
    rows = [row(outbox, size=1000) for _ in range(100)]
    for r in rows:
        outbox.append(r)
    stats = await outbox.stats()
    assert stats.bytes <= 65_536
    kept = [r.id for r in await outbox.batch(0, None, 1000)]
    assert kept == [r.id for r in rows[-len(kept) :]], "the newest stay"
    assert stats.dropped == 100 - len(kept)
    first_bd = await outbox.next_bd_seq(256)
    await outbox.close()

    again = Outbox(path, max_bytes=65_536, max_age_s=3600)
    await again.open()
    assert (await again.stats()).dropped == stats.dropped
    assert await again.next_bd_seq(256) == (first_bd + 1) % 256
    assert again.next_id() > rows[-1].id
    await again.close()


async def test_age_bound(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1 << 20, max_age_s=60)
    await outbox.open()
    old = row(outbox, age_s=120)
    outbox.append(old)
    fresh = row(outbox)
    outbox.append(fresh)
    assert [r.id for r in await outbox.batch(0, None, 10)] == [fresh.id]
    assert (await outbox.stats()).dropped == 1
    await outbox.close()


async def test_a_row_read_for_sending_counts_as_dropped_only_without_its_puback(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=65_536, max_age_s=3600)
    await outbox.open()
    rows = [row(outbox, size=1000) for _ in range(80)]
    fit = 65_536 // (1000 + len(rows[0].topic) + ROW_OVERHEAD)  # 62 rows
    for r in rows[:60]:
        outbox.append(r)
    claimed = await outbox.batch(0, None, 10)  # a connection reads the ten oldest
    for r in rows[60:]:
        outbox.append(r)  # the bound removes the ten claimed rows, then more
    stats = await outbox.stats()
    assert stats.messages == fit
    assert stats.dropped == 80 - fit - 10, "claimed rows are not counted yet"
    await outbox.delete([r.id for r in claimed[:7]])  # seven PUBACKs came
    assert (await outbox.stats()).dropped == 80 - fit - 10
    await outbox.release()  # the connection ends: three never arrived
    assert (await outbox.stats()).dropped == 80 - fit - 7
    await outbox.release()
    assert (await outbox.stats()).dropped == 80 - fit - 7, "counted once"
    kept = await outbox.batch(0, None, 100)
    assert [r.id for r in kept] == [r.id for r in rows[-fit:]]
    await outbox.close()
