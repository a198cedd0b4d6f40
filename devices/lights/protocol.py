"""The ``lights`` device class: guide lights at named positions (beside each device).

``set`` changes one position; the state detail holds every position.  Flash
rates are the driver's (typically slow about 1 Hz, medium 2 Hz, quick 4 Hz).
Positions come from the driver's settings; an unknown one is invalidData.  Not
every light has colours: ``capabilities.positionColors`` says, per position,
which colours ``set`` accepts; a single-colour light (an empty list) refuses
any ``color`` with unsupportedCommand.
"""

from __future__ import annotations

import abc
from enum import StrEnum
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from devices.base import CommandContext, Device, Message, Params, SettingsT_co, command
from devices.errors import InvalidData, Unsupported

#: Positions of a standard kiosk, in the order they are listed.
DEFAULT_POSITIONS: tuple[str, ...] = (
    "scanner",
    "cardReader",
    "printer",
    "coinAcceptor",
    "documentSlot",
    "lockers",
    "camera",
)


class LightMode(StrEnum):
    """What a light does."""

    OFF = "off"
    ON = "on"
    SLOW_FLASH = "slowFlash"
    MEDIUM_FLASH = "mediumFlash"
    QUICK_FLASH = "quickFlash"


class LightColor(StrEnum):
    """Colours a guide light may show (the CEN/XFS guide light set)."""

    WHITE = "white"
    RED = "red"
    GREEN = "green"
    YELLOW = "yellow"
    BLUE = "blue"
    CYAN = "cyan"
    MAGENTA = "magenta"


class LightState(Message):
    """One position in the state detail."""

    mode: LightMode = LightMode.OFF
    color: Annotated[
        LightColor | None,
        Meta(description="null: the fixture's own colour"),
    ] = None


class LightsDetail(Message):
    """State detail of the lights: every configured position."""

    positions: dict[str, LightState] = msgspec.field(default_factory=dict)


class SetParams(Params):
    """``set`` parameters."""

    position: Annotated[str, Meta(description="a configured position (`capabilities.positions`)")]
    mode: LightMode
    color: Annotated[
        LightColor | None,
        Meta(
            description=(
                "omitted: the fixture's own colour; only a colour of the position's "
                "`capabilities.positionColors`"
            )
        ),
    ] = None


class LightsCapabilities(Message):
    """``capabilities`` of a lights device in ``description``."""

    positions: Annotated[list[str], Meta(description="the configured positions, in order")]
    colors: Annotated[
        list[LightColor],
        Meta(description="every colour of the set; which position shows which: `positionColors`"),
    ]
    position_colors: Annotated[
        dict[str, list[LightColor]],
        Meta(
            description=(
                "per position, the colours `set` accepts; empty: a single-colour light "
                "(omit `color`, or the command fails with unsupportedCommand)"
            )
        ),
    ]


class Light(Message):
    """Result of ``set`` (and what a simulator shows on ``out/light``)."""

    position: str
    mode: LightMode
    color: LightColor | None = None


class Lights(Device[SettingsT_co, LightsDetail]):
    """Base of light drivers."""

    device_class: ClassVar[str] = "lights"
    events: ClassVar[dict[str, type[Message]]] = {}
    detail_type = LightsDetail

    @property
    @abc.abstractmethod
    def positions(self) -> tuple[str, ...]:
        """The configured positions."""

    @abc.abstractmethod
    def colors(self, position: str) -> tuple[LightColor, ...]:
        """The colours a configured ``position`` can show (empty: a single-colour light)."""

    @abc.abstractmethod
    async def _show(self, light: Light) -> None:
        """Drive one position's light."""

    def all_off_reported(self) -> None:
        """Record every position off (drivers call it after switching them all off)."""
        self.update_detail(positions={p: LightState() for p in self.positions})

    @command("set", SetParams, Light, 2_000, 10_000)
    async def set_light(self, params: SetParams, _ctx: CommandContext) -> Light:
        """Set one position's mode and colour.

        Raises:
            InvalidData: the position is not configured.
            Unsupported: a ``color`` the position cannot show (a single-colour light).
            Offline, HardwareError: the controller is unreachable or failed.

        """
        if params.position not in self.positions:
            known = ", ".join(self.positions)
            raise InvalidData(f"no light position {params.position!r} (known: {known})")
        if params.color is not None and params.color not in self.colors(params.position):
            raise Unsupported(
                f"light {params.position!r} has one colour of its own: omit `color` "
                "(capabilities.positionColors)"
                if not self.colors(params.position)
                else f"light {params.position!r} cannot show {params.color}"
            )
        light = Light(position=params.position, mode=params.mode, color=params.color)
        await self._show(light)
        state = LightState(mode=light.mode, color=light.color)
        self.update_detail(positions={**self.detail.positions, light.position: state})
        return light

    def capabilities(self) -> dict[str, object]:
        """:class:`LightsCapabilities`: ``positions``, ``colors`` and ``positionColors``."""
        caps = LightsCapabilities(
            positions=list(self.positions),
            colors=list(LightColor),
            position_colors={p: list(self.colors(p)) for p in self.positions},
        )
        built = msgspec.to_builtins(caps)
        assert isinstance(built, dict)
        return built

    async def safe_state(self) -> None:
        """Every light off."""
        for position in self.positions:
            await self._show(Light(position=position, mode=LightMode.OFF))
        self.all_off_reported()
