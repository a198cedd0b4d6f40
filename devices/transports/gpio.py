"""GPIO through gpiozero: pin factories chosen by name, edges brought onto the event loop.

Drivers never touch gpiozero's global ``Device.pin_factory`` (gpiozero issue
#1087): each passes ``pin_factory=`` explicitly, resolved from its settings by
:func:`pin_factory`:

- ``""`` -> gpiozero's default (lgpio on a Raspberry Pi 5);
- ``"mock:<name>"`` -> a :class:`gpiozero.pins.mock.MockFactory` registered
  under that name by a wire simulator in the same process
  (:func:`register_mock`), whose pins the simulator drives.

gpiozero calls edge callbacks on its own threads (a MockPin calls them in the
thread that drives it); :func:`on_loop` wraps a callback so it runs on the
loop with the time the edge was seen (``time.monotonic()``, the loop's clock).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from gpiozero.pins.mock import MockFactory

from devices.errors import InvalidData

_MOCKS: dict[str, MockFactory] = {}
MOCK_PREFIX = "mock:"


def register_mock(name: str) -> MockFactory:
    """Create and register a MockFactory that ``pin_factory("mock:<name>")`` returns."""
    factory = MockFactory()
    _MOCKS[name] = factory
    return factory


def unregister_mock(name: str) -> None:
    """Forget a registered MockFactory (its pins stay usable by who holds them)."""
    _MOCKS.pop(name, None)


def pin_factory(spec: str) -> Any:
    """The gpiozero pin factory named by a driver setting; None means gpiozero's default.

    Raises:
        InvalidData: ``mock:<name>`` with no simulator registered under that name.

    """
    if not spec:
        return None
    if spec.startswith(MOCK_PREFIX):
        name = spec.removeprefix(MOCK_PREFIX)
        if name not in _MOCKS:
            raise InvalidData(f"no mock pin factory {name!r} (is its simulator running?)")
        return _MOCKS[name]
    raise InvalidData(f"unknown pin factory {spec!r} (use '' or 'mock:<name>')")


def on_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[[float], None]
) -> Callable[[], None]:
    """Wrap ``callback(t)`` for a gpiozero edge: stamped in the caller's thread, run on the loop.

    ``t`` is ``time.monotonic()`` at the edge, in s (the same clock as ``loop.time()``).
    """

    def edge() -> None:
        stamp = time.monotonic()
        loop.call_soon_threadsafe(callback, stamp)

    return edge
