"""A rig: which broker, which board, which devices, and whose hands act on them.

The suite asks a rig for a device *by class* (``rig.device("printer")``), never for a
concrete id or driver, so the same tests run unchanged on the sim rig and on a real
board (the labgrid model).  What the physical world does (a coin dropped, a card
placed, a door pulled) goes through :class:`Hands`: a simulator action on
``kiosk/v1/{b}/sim/{d}/{action}`` or a prompt to a person standing at the rig.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tests.uiclient import UiClient, connect

SIM = "sim"
PERSON = "person"
HANDS = (SIM, PERSON)

#: How long a person is given to do something at the rig, unless ``--person-timeout``.
DEFAULT_PERSON_TIMEOUT_S = 180.0


class RigError(ValueError):
    """A rig file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class RigDevice:
    """One device of the rig: its id on the wire, its class, and who acts on it."""

    id: str
    device_class: str
    hands: str


@dataclass(frozen=True)
class Rig:
    """Where the board's daemon is reached and what is fitted to it."""

    board: str
    host: str
    port: int
    devices: tuple[RigDevice, ...]
    source: str
    username: str | None = None
    password: str | None = None

    @property
    def root(self) -> str:
        return f"kiosk/v1/{self.board}"

    @property
    def broker(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def of_class(self, device_class: str) -> list[RigDevice]:
        return [d for d in self.devices if d.device_class == device_class]

    def device(self, device_class: str) -> RigDevice:
        """Return the rig's first device of a class; skip the test when it has none."""
        found = self.of_class(device_class)
        if not found:
            pytest.skip(f"rig {self.source} has no {device_class}")
        return found[0]

    def by_id(self, device_id: str) -> RigDevice:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)

    def with_broker(self, host: str, port: int) -> Rig:
        return replace(self, host=host, port=port)


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise RigError(f"{where}: [{key}] is missing or not a table")
    return value


def _only(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise RigError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _str(table: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = table.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise RigError(f"{where}: {key} must be a non-empty string (found {value!r})")
    return value


def parse_rig(data: dict[str, Any], source: str) -> Rig:
    """Validate a rig table (the parsed TOML).

    Raises:
        RigError: a missing, unknown or ill-typed key, named with ``source``.

    """
    _only(data, {"broker", "board", "devices"}, source)
    broker = _table(data, "broker", source)
    where = f"{source} [broker]"
    _only(broker, {"host", "port", "username", "password"}, where)
    host = _str(broker, "host", where) or ""
    port = broker.get("port", 1883)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise RigError(f"{where}: port must be an integer 1..65535 (found {port!r})")
    username = _str(broker, "username", where, required=False)
    password = _str(broker, "password", where, required=False)
    if password is not None and username is None:
        raise RigError(f"{where}: password given without username")

    board = _table(data, "board", source)
    _only(board, {"id"}, f"{source} [board]")
    board_id = _str(board, "id", f"{source} [board]") or ""

    devices_table = _table(data, "devices", source)
    devices: list[RigDevice] = []
    for device_id, spec in devices_table.items():
        where = f"{source} [devices.{device_id}]"
        if not isinstance(spec, dict):
            raise RigError(f"{where}: must be a table")
        _only(spec, {"class", "hands"}, where)
        device_class = _str(spec, "class", where) or ""
        hands = spec.get("hands", PERSON)
        if hands not in HANDS:
            raise RigError(f"{where}: hands must be one of {', '.join(HANDS)} (found {hands!r})")
        devices.append(RigDevice(device_id, device_class, hands))
    if not devices:
        raise RigError(f"{source}: [devices] lists no device")
    return Rig(
        board=board_id,
        host=host,
        port=port,
        devices=tuple(devices),
        source=source,
        username=username,
        password=password,
    )


def load_rig(path: str | Path) -> Rig:
    """Read and validate a rig file.

    Raises:
        RigError: unreadable, not TOML, or not a valid rig (the message says where).

    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RigError(f"{path}: not valid TOML: {exc}") from None
    return parse_rig(data, str(path))


_client_ids = itertools.count(1)
#: Differs per run, so a request id is never taken for a retry of an earlier run's
#: (idempotency is per client id, for 10 minutes, across daemon restarts).
_RUN = secrets.token_hex(3)


def new_client_id() -> str:
    """A client id no other HIL client uses (it names the client's reply subtree)."""
    return f"hil-{_RUN}-{next(_client_ids)}"


@contextlib.asynccontextmanager
async def open_ui(rig: Rig, client_id: str | None = None) -> AsyncIterator[UiClient]:
    """Connect a UI-like client to the rig's broker (with credentials when the rig has some)."""
    client_id = client_id or new_client_id()
    async with connect(
        rig.port, rig.board, client_id, host=rig.host, username=rig.username, password=rig.password
    ) as ui:
        yield ui


class Hands:
    """Whoever acts on the physical world at the rig.

    ``sim`` devices are acted on through their simulator's ``sim/`` actions;
    ``person`` devices by a person, who is shown a prompt.  Either way the test then
    waits for the *effect* on the wire, giving a person :meth:`patience`.
    """

    def __init__(
        self,
        ui: UiClient,
        rig: Rig,
        *,
        interactive: bool,
        say: Callable[[str], None],
        person_timeout: float = DEFAULT_PERSON_TIMEOUT_S,
    ) -> None:
        self.ui = ui
        self.rig = rig
        self.interactive = interactive
        self.say = say
        self.person_timeout = person_timeout

    def of(self, device_id: str) -> str:
        return self.rig.by_id(device_id).hands

    def need(self, *device_ids: str) -> None:
        """Skip the test when one of these devices needs a person and nobody can be asked."""
        for device_id in device_ids:
            if self.of(device_id) == PERSON and not self.interactive:
                pytest.skip(
                    f"{device_id} needs a person at the rig (hands = person) "
                    "and stdin is not a terminal",
                )

    def need_sim(self, *device_ids: str) -> None:
        """Skip the test unless these devices are simulated (fault injection, ...)."""
        for device_id in device_ids:
            if self.of(device_id) != SIM:
                pytest.skip(f"{device_id} is not simulated on this rig (hands = sim needed)")

    def patience(self, device_id: str, seconds: float) -> float:
        """How long to wait for an effect of :meth:`do` on this device, seconds."""
        if self.of(device_id) == PERSON:
            return max(seconds, self.person_timeout)
        return seconds

    async def do(
        self,
        device_id: str,
        action: str,
        params: dict[str, Any] | None = None,
        prompt: str = "",
    ) -> None:
        """Act on ``device_id``: its sim action, or ``prompt`` shown to the person.

        A sim action must complete ``success`` (10 s); a prompt returns at once and the
        caller waits for the effect within :meth:`patience`.
        """
        if self.of(device_id) == SIM:
            await self.ui.sim(device_id, action, params or {})
            return
        self.need(device_id)
        wait = self.person_timeout
        self.say(
            f">>> PERSON AT THE RIG ({device_id}): {prompt or action} [waiting up to {wait:g} s]"
        )
