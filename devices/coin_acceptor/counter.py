"""Event counters of acceptors that buffer their credits (ccTalk coin and bill validators).

A ccTalk acceptor numbers every event (credit or error) with a one-byte counter
and keeps the last five events in a buffer that the host reads with header 229
(coin acceptors) or 159 (bill validators).  The counter is 0 after power-up or
a reset and counts ``1..255``, wrapping from 255 to 1 (0 is never reused), so
the host can tell how many events happened since its last read (ccTalk Generic
Specification, Part 2, "Read buffered credit or error codes"; see docs/coins.md).

This module holds the arithmetic only, so every buffering driver shares it:

- ``new = distance(last, now)`` events happened since the counter ``last``;
- when ``new`` exceeds the buffer, ``new - buffer`` events are gone for good:
  they are reported as lost with their count, never guessed;
- a counter back at 0 after a non-zero one means the device reset (power cycle):
  whatever it took since the last read is unknown, reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Events a ccTalk acceptor buffers (five result pairs after the counter).
BUFFER_EVENTS = 5
#: Highest counter value; after it the counter wraps to 1.
COUNTER_MAX = 255


def distance(last: int, now: int) -> int:
    """Events between counter ``last`` and counter ``now`` (both in ``0..255``).

    ``last == 0`` (fresh device) counts from the power-up; the ring skips 0.

    Raises:
        ValueError: a counter outside ``0..255``, or ``now == 0`` after a non-zero
            ``last`` (a reset, see :func:`step`).

    """
    for value in (last, now):
        if not 0 <= value <= COUNTER_MAX:
            raise ValueError(f"event counter {value} outside 0..{COUNTER_MAX}")
    if now == 0:
        if last != 0:
            raise ValueError("a counter back at 0 is a reset, not a distance")
        return 0
    if last == 0 or now >= last:
        return now - last
    return now + COUNTER_MAX - last


def previous(counter: int, back: int) -> int:
    """The counter ``back`` events before ``counter`` on the ``1..255`` ring."""
    return (counter - 1 - back) % COUNTER_MAX + 1


@dataclass(frozen=True, slots=True)
class CounterStep:
    """What one read of the buffer means.

    Attributes:
        new: events of the buffer to process, newest first in the buffer, so
            ``results[:new]`` (at most :data:`BUFFER_EVENTS`).
        lost: events that happened but fell out of the buffer; ``None`` when
            unknown (the device reset).
        reset: the device was reset or power-cycled since the last read.

    """

    new: int
    lost: int | None
    reset: bool

    @property
    def lost_any(self) -> bool:
        """True when events were (or may have been) lost."""
        return self.lost is None or self.lost > 0


def step(last: int | None, now: int, buffer: int = BUFFER_EVENTS) -> CounterStep:
    """Interpret a counter read of ``now`` after the counter ``last``.

    ``last`` is None on first contact (no history in the ledger): nothing is
    processed and nothing is reported lost, the counter becomes the baseline.

    Raises:
        ValueError: a counter outside ``0..255``.

    """
    if last is None:
        distance(0, now)  # validates
        return CounterStep(0, 0, reset=False)
    if now == 0 and last != 0:
        distance(last, last)  # validates last
        return CounterStep(0, None, reset=True)
    new = distance(last, now)
    return CounterStep(min(new, buffer), max(0, new - buffer), reset=False)
