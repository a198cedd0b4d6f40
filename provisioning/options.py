"""What a technician asked ``kioskd provision`` for: its command-line options, typed and frozen.

Declared apart from the flow so the CLI builds it without importing the flow
(rich, cryptography, ...).  ``None`` means the option was not given: the
answer then comes from a batch row, what the last run recorded, or a prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionOptions:
    """The options of one ``kioskd provision`` run (see ``kioskd provision --help``).

    Attributes:
        board, tenant, site: the board's identity answers.
        fleet_url, fleet_ca, fleet_cert, fleet_password_file: the fleet broker.
        apt_url, apt_key: the fleet's signed package repository and its public key.
        mqtt_port, ws_port, ws_bind: the local broker (``ws_port`` 0: no websockets).
        ui: MQTT users of kiosk UIs.
        ui_service: enable ``kioskd-ui.service`` (None: as recorded, else yes).
        assign: what a serial port holds, ``PORT=CLASS``.
        devices: a TOML file of ``[devices.<id>]`` tables (no detection).
        simulate: configure every device simulated.
        redetect: detect hardware again even if the last run recorded devices.
        pcsc: ask pcscd for its readers.
        batch: a TOML ``[[boards]]`` or CSV file of boards.
        root: install into this root (``{board}`` is replaced per board).
        sysfs_root: detect hardware below this root (None: ``/``).
        kioskd_bin: the kioskd path written into the unit.
        yes: non-interactive.
        dry_run: show what would change, write nothing.
        check: report drift, exit 1 if any.

    """

    board: str | None = None
    tenant: str | None = None
    site: str | None = None
    fleet_url: str | None = None
    fleet_ca: Path | None = None
    fleet_cert: Path | None = None
    fleet_password_file: Path | None = None
    apt_url: str | None = None
    apt_key: Path | None = None
    mqtt_port: int | None = None
    ws_port: int | None = None
    ws_bind: str | None = None
    ui: tuple[str, ...] = ()
    ui_service: bool | None = None
    assign: tuple[str, ...] = ()
    devices: Path | None = None
    simulate: bool = False
    redetect: bool = False
    pcsc: bool = True
    batch: Path | None = None
    root: Path = Path("/")
    sysfs_root: Path | None = None
    kioskd_bin: str | None = None
    yes: bool = False
    dry_run: bool = False
    check: bool = False

    def answers(self) -> dict[str, object]:
        """The plan answers these options give (the fleet password not read yet)."""
        given: dict[str, object | None] = {
            "board": self.board,
            "tenant": self.tenant,
            "site": self.site,
            "fleet_url": self.fleet_url,
            "fleet_ca": str(self.fleet_ca) if self.fleet_ca else None,
            "fleet_cert": str(self.fleet_cert) if self.fleet_cert else None,
            "apt_url": self.apt_url,
            "apt_key": str(self.apt_key) if self.apt_key else None,
            "mqtt_port": self.mqtt_port,
            "ws_bind": self.ws_bind,
            "uis": self.ui or None,
            "ui_service": self.ui_service,
            "kioskd_bin": self.kioskd_bin,
        }
        answers = {k: v for k, v in given.items() if v is not None}
        if self.ws_port is not None:
            answers["ws_port"] = self.ws_port or None
        return answers
