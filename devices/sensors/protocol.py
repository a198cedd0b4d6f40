"""The ``sensors`` device class: the cabinet door switch and the tamper switch.

Drivers report through :meth:`Sensors.door_sensed` and
:meth:`Sensors.tamper_detected`; one with a proximity (PIR) sensor also emits
``presence`` events (a UI may wake its screen).  Tamper is latched: it stays set until a
technician sends ``resetTamper``.  The device stays ``online`` while the door
is open or tamper is latched, but both make the daemon ``degraded``
(:meth:`Sensors.status_reasons`: ``door:open``, ``tamper``).
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from msgspec import Meta

from devices.base import (
    CommandContext,
    Device,
    Message,
    NoParams,
    NoResult,
    OpenClosed,
    SettingsT_co,
    command,
)


class SensorsDetail(Message):
    """State detail of the cabinet sensors."""

    door: OpenClosed = OpenClosed.CLOSED
    tamper: Annotated[
        bool,
        Meta(description="latched since a tamper switch tripped; cleared by `resetTamper`"),
    ] = False


class DoorOpened(Message):
    """``evt/doorOpened``: the cabinet door was opened."""


class DoorClosed(Message):
    """``evt/doorClosed``: the cabinet door was closed."""


class Tamper(Message):
    """``evt/tamper``: a tamper switch tripped (sent on every trip, latched or not)."""


class Presence(Message):
    """``evt/presence``: a proximity (PIR) sensor saw someone arrive or the space empty."""

    present: bool


class Sensors(Device[SettingsT_co, SensorsDetail]):
    """Base of cabinet sensor drivers."""

    device_class: ClassVar[str] = "sensors"
    events: ClassVar[dict[str, type[Message]]] = {
        "doorOpened": DoorOpened,
        "doorClosed": DoorClosed,
        "tamper": Tamper,
        "presence": Presence,
    }
    detail_type = SensorsDetail

    def door_sensed(self, door: OpenClosed) -> None:
        """Report the door switch; a change raises ``doorOpened`` or ``doorClosed``."""
        if door is self.detail.door:
            return
        self.update_detail(door=door)
        self.emit(
            "doorOpened" if door is OpenClosed.OPEN else "doorClosed",
            DoorOpened() if door is OpenClosed.OPEN else DoorClosed(),
        )

    def tamper_detected(self) -> None:
        """Report a tamper trip: latch it and raise ``tamper``."""
        self.update_detail(tamper=True)
        self.emit("tamper", Tamper())

    def status_reasons(self) -> list[str]:
        """``door:open`` while the door is open, ``tamper`` while tamper is latched."""
        reasons = []
        if self.detail.door is OpenClosed.OPEN:
            reasons.append("door:open")
        if self.detail.tamper:
            reasons.append("tamper")
        return reasons

    # Staff: clearing the latch hides that the cabinet was forced.
    @command("resetTamper", NoParams, NoResult, 2_000, 10_000, side_effect=True, staff=True)
    async def reset_tamper(self, _params: NoParams, _ctx: CommandContext) -> NoResult:
        """Clear the tamper latch (a technician, after inspecting the cabinet).

        A switch still tripped trips the latch again at its next report.

        Raises:
            Offline, HardwareError: the sensor board is unreachable or failed.

        """
        self.update_detail(tamper=False)
        return NoResult()

    async def safe_state(self) -> None:
        """Sensors drive nothing."""
