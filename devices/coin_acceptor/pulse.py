"""Driver ``pulse``: a low-cost pulse-output coin acceptor on GPIO (gpiozero).

The acceptor reports each coin as a *train* of N pulses on its credit output;
N identifies the coin (``coins[i]`` is worth ``pulses[i]`` pulses).  It has an
INHIBIT input, and some models an error output.

Decoding, on the event loop with the time each edge was seen:

- *glitch filter*: an active pulse shorter than ``pulse_min_ms`` is noise and
  ignored; one longer than ``pulse_max_ms`` is a stuck line, ignored and logged;
- *train end*: ``train_gap_ms`` of silence after the last pulse ends a train;
  N pulses are then looked up in the table.

Merged trains (two coins inserted so fast that their trains run together)
are guarded against in two ways (docs/coins.md explains the choice):

1. *prevention*: the acceptor is inhibited from the first pulse of a train
   until the train has ended and is credited, so a second coin entering during
   a train is returned by the acceptor, never merged into it;
2. *detection*: a train whose length is in no table entry is not guessed.
   When every coin is worth ``pulses * unit`` (a *linear* table, the
   recommended configuration), any merge still carries the exact money, so the
   train is credited as the fewest table coins that make it up.  Otherwise the
   unknown train is recorded in the ledger and reported as ``eventsLost``
   (``unknownPulseTrain``): a coin of unknown value is in the cash box.

Inhibit: the ``inhibit_pin`` output is driven to ``inhibit_level`` to refuse
coins and to the other level to accept them; :meth:`PulseCoinAcceptor.safe_state`
drives the inhibit level, then releases the line.  Wire the acceptor so that
an undriven line means inhibited (docs/coins.md), so a dead daemon or an
unconfigured pin leaves it refusing coins.  ``fault_pin`` (optional): the
acceptor's error output; while active the device is ``hardwareError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Annotated, Any

from msgspec import Meta

from devices.base import DeviceEnv, DeviceHost, DeviceState
from devices.cash.ledger import LostReason
from devices.errors import HardwareError
from devices.transports.gpio import PinFactoryName, on_loop, open_pin_factory

from .protocol import CoinAcceptor
from .settings import CoinTable

log = logging.getLogger(__name__)


class PulseSettings(CoinTable, frozen=True, forbid_unknown_fields=True):
    """``[devices.<id>]`` options of a pulse coin acceptor.

    Pins are gpiozero names (``GPIO17``, ``BOARD11``).  ``pulse_pin``: credit
    output, ``pulse_active_low`` when it pulls the line low (open collector, the
    usual case; the internal pull-up is enabled).  ``inhibit_pin``: output to
    the acceptor's INHIBIT input; ``inhibit_level`` (``high``/``low``) is the
    level that refuses coins.  ``fault_pin``: optional error output (active low).
    ``pulses``: pulses per coin, pairwise with ``coins``.
    ``pulse_min_ms``/``pulse_max_ms``: valid pulse widths;
    ``train_gap_ms``: silence that ends a train (longer than the acceptor's
    pulse spacing, shorter than its gap between coins).  ``inhibit_during_train``:
    inhibit from a train's first pulse until it is credited (merged-train guard).
    ``pin_factory``: ``""`` for the board's pins, ``mock:<name>`` under a simulator.
    """

    pulse_pin: str = "GPIO17"
    pulse_active_low: bool = True
    inhibit_pin: str = "GPIO27"
    inhibit_level: Annotated[str, Meta(pattern=r"^(high|low)$")] = "high"
    fault_pin: str | None = None
    pulses: tuple[Annotated[int, Meta(ge=1, le=50)], ...] = (1, 2, 5)
    pulse_min_ms: Annotated[int, Meta(ge=1, le=500)] = 10
    pulse_max_ms: Annotated[int, Meta(ge=2, le=2000)] = 150
    train_gap_ms: Annotated[int, Meta(ge=10, le=5000)] = 200
    inhibit_during_train: bool = True
    pin_factory: PinFactoryName = ""

    def __post_init__(self) -> None:
        """Check the coin table and the timing windows."""
        super().__post_init__()
        if len(self.coins) != len(self.pulses):
            raise ValueError("coins and pulses must list one pulse count per coin")
        if len(set(self.pulses)) != len(self.pulses):
            raise ValueError("coins and pulses must be distinct")
        if self.pulse_min_ms >= self.pulse_max_ms:
            raise ValueError("pulse_min_ms must be below pulse_max_ms")


@dataclass(slots=True)
class _Train:
    """The pulse train being received; times are ``loop.time()`` seconds."""

    pulses: int = 0
    glitches: int = 0
    rise: float | None = None
    timer: asyncio.TimerHandle | None = None


def decompose(count: int, table: dict[int, int]) -> list[int] | None:
    """Split ``count`` pulses into the fewest coins of ``table`` (pulses -> value), or None.

    Only meaningful for a linear table (value proportional to pulses), where
    any split carries the same money.
    """
    best: list[list[int] | None] = [[]] + [None] * count
    for n in range(1, count + 1):
        for pulses, value in table.items():
            prev = best[n - pulses] if pulses <= n else None
            if prev is not None and (best[n] is None or len(prev) + 1 < len(best[n] or [])):
                best[n] = [*prev, value]
    return best[count]


class PulseCoinAcceptor(CoinAcceptor[PulseSettings]):
    """A pulse coin acceptor; see the module docstring."""

    Settings = PulseSettings

    settings: PulseSettings

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: PulseSettings
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._table = dict(zip(settings.pulses, settings.coins, strict=True))
        units = {value / pulses for pulses, value in self._table.items()}
        self._linear = len(units) == 1
        self._input: Any = None
        self._inhibit: Any = None
        self._fault: Any = None
        self._factory: Any = None
        self._owns_factory = False
        self._train = _Train()
        self._trains: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        #: Pulses ignored by the glitch filter (diagnostics, tests).
        self.glitches = 0

    def capabilities(self) -> dict[str, object]:
        """The class's, plus: a pulse acceptor cannot report the coins it rejects."""
        return {**super().capabilities(), "reportsRejects": False}

    def acceptor_condition(self) -> DeviceState:
        """Return hardwareError while the acceptor's error output is active."""
        if self._fault is not None and self._fault.is_active:
            return DeviceState.HARDWARE_ERROR
        return super().acceptor_condition()

    # -- pins --------------------------------------------------------------------------------

    def _pin_factory(self) -> Any:
        """The pin factory, opened once (raises :class:`Offline` if there is none here)."""
        if self._factory is None:
            self._factory, self._owns_factory = open_pin_factory(self.settings.pin_factory)
        return self._factory

    def _open_inhibit(self) -> Any:
        if self._inhibit is None:
            from gpiozero import DigitalOutputDevice  # noqa: PLC0415 - gpiozero loads pin libraries

            s = self.settings
            # "on" = inhibited; the initial value inhibits before anything else happens.
            self._inhibit = DigitalOutputDevice(
                s.inhibit_pin,
                active_high=s.inhibit_level == "high",
                initial_value=True,
                pin_factory=self._pin_factory(),
            )
        return self._inhibit

    def _open_inputs(self, loop: asyncio.AbstractEventLoop) -> None:
        from gpiozero import DigitalInputDevice  # noqa: PLC0415 - gpiozero loads pin libraries

        s = self.settings
        factory = self._pin_factory()
        self._input = DigitalInputDevice(
            s.pulse_pin, pull_up=s.pulse_active_low, pin_factory=factory
        )
        self._input.when_activated = on_loop(loop, self._rise)
        self._input.when_deactivated = on_loop(loop, self._fall)
        if s.fault_pin is not None:
            self._fault = DigitalInputDevice(s.fault_pin, pull_up=True, pin_factory=factory)
            self._fault.when_activated = on_loop(loop, self._fault_changed)
            self._fault.when_deactivated = on_loop(loop, self._fault_changed)

    def _close_pins(self) -> None:
        for device in (self._input, self._fault, self._inhibit):
            if device is not None:
                device.close()
        self._input = self._fault = self._inhibit = None
        if self._factory is not None and self._owns_factory:
            self._factory.close()
        self._factory = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim the pins (inhibited), then credit pulse trains until cancelled.

        Raises:
            LedgerError: the ledger cannot be opened or written.
            HardwareError: a pin cannot be claimed.

        """
        await self.open_ledger()
        try:
            self._open_inhibit()
            if self._input is None:
                self._open_inputs(asyncio.get_running_loop())
        except Exception as exc:
            self._close_pins()
            raise HardwareError(f"cannot claim the acceptor's GPIO pins: {exc}") from exc
        await self.hardware_ready()
        while True:
            pulses, glitches = await self._trains.get()
            await self._credit_train(pulses, glitches)

    async def set_inhibit(self, inhibited: bool) -> None:
        """Drive the inhibit line (claiming it if needed, e.g. for ``kioskd safe-state``).

        Raises:
            HardwareError: the pin cannot be claimed.

        """
        try:
            line = self._open_inhibit()
        except Exception as exc:
            raise HardwareError(f"cannot claim the inhibit pin: {exc}") from exc
        line.value = inhibited

    async def safe_state(self) -> None:
        """Drive the inhibit level, then release the pins (undriven = inhibited by wiring).

        Raises:
            HardwareError: the pin cannot be claimed.

        """
        await super().safe_state()
        self._close_pins()

    async def aclose(self) -> None:
        """Release the pins and close the ledger."""
        self._close_pins()
        await super().aclose()

    # -- decoding (on the loop) ----------------------------------------------------------------

    def _rise(self, t: float) -> None:
        train = self._train
        train.rise = t
        if train.timer is not None:
            train.timer.cancel()
            train.timer = None
        if train.pulses == 0 and train.glitches == 0 and self.settings.inhibit_during_train:
            # Merged-train guard: the next coin is refused until this one is credited.
            self._inhibit_now()

    def _fall(self, t: float) -> None:
        train = self._train
        if train.rise is None:
            return
        width_ms = (t - train.rise) * 1000
        train.rise = None
        if width_ms < self.settings.pulse_min_ms:
            train.glitches += 1
            self.glitches += 1
        elif width_ms > self.settings.pulse_max_ms:
            log.warning("%s: a %.0f ms pulse is too long; ignored", self.id, width_ms)
            train.glitches += 1
        else:
            train.pulses += 1
        loop = asyncio.get_running_loop()
        delay = max(0.0, t + self.settings.train_gap_ms / 1000 - loop.time())
        train.timer = loop.call_later(delay, self._train_ended)

    def _train_ended(self) -> None:
        train, self._train = self._train, _Train()
        self._trains.put_nowait((train.pulses, train.glitches))

    def _inhibit_now(self) -> None:
        if self._inhibit is not None:
            self._inhibit.value = True

    def _fault_changed(self, _t: float) -> None:
        self._refresh_condition()

    async def _credit_train(self, pulses: int, glitches: int) -> None:
        if pulses:
            value = self._table.get(pulses)
            if value is not None:
                await self.coin_inserted(value)
            elif self._linear and (coins := decompose(pulses, self._table)) is not None:
                log.warning(
                    "%s: %d pulses are merged trains; credited as %s", self.id, pulses, coins
                )
                for coin in coins:
                    await self.coin_inserted(coin)
            else:
                log.error("%s: a train of %d pulses matches no coin", self.id, pulses)
                await self.events_lost(None, LostReason.UNKNOWN_PULSE_TRAIN)
        elif glitches:
            log.info("%s: %d glitches on the pulse line ignored", self.id, glitches)
        # Re-apply what the deposit wants (the guard inhibited at the first pulse).
        with contextlib.suppress(HardwareError):
            await self.deposits.sync_inhibit(force=True)
