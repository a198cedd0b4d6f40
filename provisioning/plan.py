"""What a provisioned board holds: every file, from the technician's answers.

:func:`plan` turns :class:`Answers` (board id, fleet, ports, devices, ...) into
the list of :class:`~provisioning.files.Wanted` files.  Secrets already on the
target (broker passwords, the fleet key, its CSR) are reused, so a re-run
computes the same files and changes nothing.
"""

from __future__ import annotations

import json
import secrets
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from daemon.config import ConfigError, parse
from devices.registry import UnknownDriverError, resolve

from . import apt, mosquitto, pki
from .files import Wanted, read_existing

CONFIG = "/etc/kioskd/kioskd.toml"
#: The answers of the last run (no secrets): the defaults of the next one and of ``--check``.
RECORD = "/etc/kioskd/provision.json"
CREDENTIALS = "/etc/kioskd/credentials"
FLEET = "/etc/kioskd/fleet"
DAEMON_USER = "kioskd"
TECHNICIAN_USER = "technician"
UNIT_BIN = "/opt/kioskd/bin/kioskd"
#: Where the Debian package puts its units (bookworm's debhelper: /lib; merged /usr: /usr/lib).
PACKAGED_UNIT_DIRS = ("/lib/systemd/system", "/usr/lib/systemd/system")
DAEMON_UNIT = "kioskd.service"
#: ``kioskd ui`` on loopback: the reference UI and its ``/mqtt`` bridge (docs/ui.md).
UI_UNIT = "kioskd-ui.service"
WANTS = "/etc/systemd/system/multi-user.target.wants"

BoardId = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
UserName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
Port = Annotated[int, Meta(ge=1, le=65535)]


class PlanError(ValueError):
    """Answers that cannot make a working board; the message says which and why."""


class Answers(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything provisioning needs to know about one board.

    Ports are the local broker's; ``fleet_*`` paths are files on the
    technician's machine, copied onto the board.  ``devices`` are the
    ``[devices.<id>]`` tables of the daemon config.
    """

    board: BoardId
    tenant: str = "default"
    site: str = ""
    fleet_url: str | None = None
    fleet_ca: str | None = None
    fleet_cert: str | None = None
    fleet_password: str | None = None
    apt_url: str | None = None
    apt_key: str | None = None
    health_interval_s: Annotated[float, Meta(gt=0, le=3600)] = 60.0
    mqtt_port: Port = 1883
    ws_port: Port | None = 9001
    ws_bind: str = "lo"
    uis: tuple[UserName, ...] = ("ui",)
    #: Enable ``kioskd-ui.service`` (off on a board whose UI is served elsewhere).
    ui_service: bool = True
    devices: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    udev_rules: str = ""
    kioskd_bin: str = UNIT_BIN
    log_level: str = "info"


def recorded(root: Path) -> dict[str, Any]:
    """The answers the last run recorded on the target (empty if none)."""
    data = read_existing(root, RECORD)
    if data is None:
        return {}
    try:
        answers: dict[str, Any] = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise PlanError(f"{RECORD} is damaged ({exc}): remove it and answer again") from None
    return answers


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table (GPIO pins, locker compartments)
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise PlanError(f"cannot write {value!r} into the config")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def to_toml(tables: dict[str, dict[str, Any]]) -> str:
    """A TOML document of tables (one level, plus ``devices.<id>`` sub-tables)."""
    out: list[str] = ["# kioskd configuration, written by `kioskd provision`."]
    for name, table in tables.items():
        if name == "devices":
            for device_id, options in table.items():
                out += ["", f"[devices.{_toml_key(device_id)}]"]
                out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in options.items()]
            continue
        out += ["", f"[{name}]"]
        out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(out) + "\n"


def sim_devices() -> dict[str, dict[str, Any]]:
    """Every device class with its ``sim`` driver (the tables of ``kioskd run --sim``)."""
    import tomllib  # noqa: PLC0415 - only simulated provisioning needs it

    text = resources.files("daemon").joinpath("sim.toml").read_text(encoding="utf-8")
    devices: dict[str, dict[str, Any]] = tomllib.loads(text)["devices"]
    return devices


def _secret(root: Path, path: str) -> str:
    """The secret stored at ``path`` on the target, or a new one (32 url-safe chars)."""
    old = read_existing(root, path)
    if old is not None and old.strip():
        return old.decode().splitlines()[0]
    return secrets.token_urlsafe(24)


def _asset(name: str) -> bytes:
    """A file of ``provisioning/systemd/``, packaged data (a wheel, the Debian package)."""
    return resources.files(__package__).joinpath("systemd", name).read_bytes()


def packaged_unit(root: Path, name: str = DAEMON_UNIT) -> str | None:
    """The unit ``name`` the Debian package installed under ``root``, if any.

    The package ships the units, sysusers.d, tmpfiles.d and udev rules under
    ``/usr/lib``; copies in ``/etc`` would shadow a newer package's, so
    provisioning then only enables the packaged units.
    """
    for directory in PACKAGED_UNIT_DIRS:
        path = f"{directory}/{name}"
        if (root / path.lstrip("/")).is_file():
            return path
    return None


def _read_local(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise PlanError(f"cannot read the {what} {path}: {exc.strerror}") from None


def _fleet(answers: Answers, root: Path) -> tuple[list[Wanted], dict[str, Any] | None]:
    if answers.fleet_url is None:
        return [], None
    if answers.fleet_password is not None and not answers.fleet_url.startswith("mqtts://"):
        # The board would send its fleet password in clear to whoever is on the path.
        raise PlanError(
            f"--fleet-password-file needs a TLS fleet URL: give --fleet-url mqtts://..."
            f" (found {answers.fleet_url!r})"
        )
    installed_ca = read_existing(root, f"{FLEET}/ca.pem")
    if answers.fleet_ca is not None:
        ca = _read_local(answers.fleet_ca, "fleet CA")
    elif installed_ca is not None:
        ca = installed_ca
    else:
        raise PlanError("a fleet URL needs the fleet CA (--fleet-ca)")
    try:
        pki.check_ca(ca)
        key = read_existing(root, f"{FLEET}/key.pem") or pki.new_key()
        csr = pki.csr(key, answers.board, answers.tenant, read_existing(root, f"{FLEET}/csr.pem"))
        cert = read_existing(root, f"{FLEET}/cert.pem")
        if answers.fleet_cert is not None:
            cert = _read_local(answers.fleet_cert, "fleet certificate")
        if cert is not None:
            pki.check_certificate(cert, key)
    except pki.PkiError as exc:
        raise PlanError(str(exc)) from None
    files = [
        Wanted(f"{FLEET}/ca.pem", ca, 0o644),
        Wanted(f"{FLEET}/key.pem", key, 0o600, DAEMON_USER, DAEMON_USER, secret=True),
        Wanted(f"{FLEET}/csr.pem", csr, 0o644),
    ]
    if cert is not None:
        files.append(Wanted(f"{FLEET}/cert.pem", cert, 0o644))
    uplink: dict[str, Any] = {
        # Telemetry starts once the fleet's CA has signed the CSR and the certificate is imported.
        "enabled": cert is not None,
        "url": answers.fleet_url,
        "ca_file": f"{FLEET}/ca.pem",
        "cert_file": f"{FLEET}/cert.pem",
        "key_file": f"{FLEET}/key.pem",
        "username": answers.board,
        "health_interval_s": answers.health_interval_s,
    }
    if answers.fleet_password is not None:
        files.append(
            Wanted(
                f"{FLEET}/password",
                answers.fleet_password.encode() + b"\n",
                0o600,
                DAEMON_USER,
                DAEMON_USER,
                secret=True,
            )
        )
        uplink["password_file"] = f"{FLEET}/password"
    return files, uplink


def _apt(answers: Answers, root: Path) -> list[Wanted]:
    """The signed repository's source entry and key, if the board has a repository."""
    if answers.apt_url is None:
        return []
    if answers.apt_key is not None:
        key = _read_local(answers.apt_key, "repository key")
    else:
        installed = read_existing(root, apt.KEYRING)
        if installed is None:
            raise PlanError("a repository URL needs its signing key (--apt-key)")
        key = installed
    try:
        return apt.files(answers.apt_url, key)
    except apt.AptError as exc:
        raise PlanError(str(exc)) from None


def config_tables(answers: Answers, uplink: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The daemon config of the board, as TOML tables."""
    tables: dict[str, dict[str, Any]] = {
        "board": {"id": answers.board, "tenant": answers.tenant, "site": answers.site},
        "mqtt": {
            "host": "127.0.0.1",
            "port": answers.mqtt_port,
            "username": DAEMON_USER,
            "password_file": f"{CREDENTIALS}/{DAEMON_USER}.password",
        },
        "daemon": {
            "state_dir": "/var/lib/kioskd",
            "runtime_dir": "/run/kioskd",
            "log_level": answers.log_level,
        },
        # Requesters are broker users (use_username_as_clientid, ACL on req/%u/):
        # the legacy topics, where a client names itself, are not served.
        "api": {"legacy_request_topics": False, "staff_users": [TECHNICIAN_USER]},
    }
    if uplink is not None:
        tables["uplink"] = uplink
    if answers.uis:
        # What `kioskd ui` hands the kiosk's browser: the first UI's login. The page
        # connects to the UI server's /mqtt bridge to the TCP listener (no ws_url).
        tables["ui"] = {
            "username": answers.uis[0],
            "password_file": f"{CREDENTIALS}/{answers.uis[0]}.password",
        }
    tables["devices"] = answers.devices
    return tables


def validate(tables: dict[str, dict[str, Any]]) -> list[str]:
    """Check the config as the daemon will; returns devices whose driver is not on this machine.

    A driver missing here (a laptop provisioning an image, picamera2 off a Pi)
    cannot be checked, and is reported rather than refused.

    Raises:
        PlanError: the config, or a device table whose driver is here, is invalid.

    """
    base = {k: v for k, v in tables.items() if k != "devices"}
    try:
        parse({**base, "devices": {}}, CONFIG)
    except ConfigError as exc:
        raise PlanError(str(exc)) from None
    unchecked = []
    for device_id, table in tables.get("devices", {}).items():
        try:
            resolve(str(table.get("class")), str(table.get("driver")))
        except (UnknownDriverError, ImportError):
            unchecked.append(device_id)
            continue
        try:
            parse({**base, "devices": {device_id: table}}, CONFIG)
        except ConfigError as exc:
            raise PlanError(str(exc)) from None
    return unchecked


def _unit(name: str, kioskd_bin: str, packaged: str | None, *, enabled: bool) -> list[Wanted]:
    """A unit (the package's, or a copy running ``kioskd_bin``) and its enable link or none."""
    files = []
    path = packaged
    if path is None:
        path = f"/etc/systemd/system/{name}"
        files.append(Wanted(path, _asset(name).replace(UNIT_BIN.encode(), kioskd_bin.encode())))
    enable = f"{WANTS}/{name}"
    files.append(Wanted(enable, link=path) if enabled else Wanted(enable, absent=True))
    return files


def _system_files(answers: Answers, root: Path) -> list[Wanted]:
    """The units, sysusers.d, tmpfiles.d and udev rules: the package's, or copies.

    The daemon's unit is enabled; the UI's when ``answers.ui_service`` (else its
    enable link is removed).
    """
    packaged = packaged_unit(root)
    units = [
        *_unit(DAEMON_UNIT, answers.kioskd_bin, packaged, enabled=True),
        *_unit(
            UI_UNIT, answers.kioskd_bin, packaged_unit(root, UI_UNIT), enabled=answers.ui_service
        ),
    ]
    if packaged is not None:
        return units
    return [
        *units,
        Wanted("/etc/sysusers.d/kioskd.conf", _asset("kioskd.sysusers")),
        Wanted("/etc/tmpfiles.d/kioskd.conf", _asset("kioskd.tmpfiles")),
        Wanted("/etc/udev/rules.d/90-kioskd.rules", _asset("90-kioskd.rules")),
    ]


def _hardening() -> list[Wanted]:
    """Swap off the SD card and no core dumps: identity data must not reach storage."""
    return [
        Wanted(
            "/etc/sysctl.d/90-kioskd.conf",
            b"# kioskd: no core dumps (they could hold identity data)\n"
            b"kernel.core_pattern=|/bin/false\nfs.suid_dumpable=0\n",
        ),
        Wanted(
            "/etc/systemd/coredump.conf.d/90-kioskd.conf",
            b"# kioskd: keep no core dumps\n[Coredump]\nStorage=none\nProcessSizeMax=0\n",
        ),
        Wanted(
            "/etc/security/limits.d/90-kioskd.conf",
            b"# kioskd: no core dumps for login sessions either\n*    hard    core    0\n",
        ),
        # Raspberry Pi OS swaps to a file on the SD card; masked, memory pressure goes to zram.
        Wanted("/etc/systemd/system/dphys-swapfile.service", link="/dev/null"),
        Wanted(
            "/etc/systemd/zram-generator.conf",
            b"# kioskd: compressed swap in RAM instead of the SD card\n"
            b"[zram0]\nzram-size = ram / 4\ncompression-algorithm = zstd\n",
        ),
    ]


def plan(answers: Answers, root: Path) -> list[Wanted]:
    """Every file the board should hold.

    Raises:
        PlanError: a missing fleet CA, an unusable key or certificate, a device
            config the daemon would refuse, a UI user named like another user, ...

    """
    if answers.ui_service and not answers.uis:
        # The page would have no broker login, and the broker refuses anonymous clients.
        raise PlanError("the UI service needs a UI user: give --ui NAME, or --no-ui-service")
    taken = {DAEMON_USER, TECHNICIAN_USER}
    if taken & set(answers.uis) or len(set(answers.uis)) != len(answers.uis):
        # A user name is a requester: a UI named like the technician would be staff.
        raise PlanError(
            f"UI user names must be distinct and not {DAEMON_USER!r} or {TECHNICIAN_USER!r}"
            f" (given: {', '.join(answers.uis)})"
        )
    fleet_files, uplink = _fleet(answers, root)
    tables = config_tables(answers, uplink)
    config_text = to_toml(tables)
    validate(tables)
    users = mosquitto.Users(DAEMON_USER, answers.uis, TECHNICIAN_USER)
    passwords = {
        user: _secret(root, f"{CREDENTIALS}/{user}.password")
        for user in (DAEMON_USER, *answers.uis, TECHNICIAN_USER)
    }
    existing_passwd = (read_existing(root, "/etc/mosquitto/kioskd.passwd") or b"").decode()
    broker = mosquitto.BrokerSettings(answers.mqtt_port, answers.ws_port, answers.ws_bind)
    files = [
        Wanted(CONFIG, config_text.encode(), 0o640, "root", DAEMON_USER),
        *[
            Wanted(
                f"{CREDENTIALS}/{user}.password",
                f"{password}\n".encode(),
                # `kioskd ui` (run as kioskd) reads a UI's to hand it to its own page.
                0o640 if user in answers.uis else 0o600,
                DAEMON_USER if user == DAEMON_USER else "root",
                "root" if user == TECHNICIAN_USER else DAEMON_USER,
                secret=True,
            )
            for user, password in passwords.items()
        ],
        *fleet_files,
        Wanted("/etc/mosquitto/conf.d/kioskd.conf", mosquitto.broker_conf(broker).encode(), 0o644),
        Wanted(
            broker.password_file,
            mosquitto.password_file(passwords, existing_passwd).encode(),
            0o600,
            "mosquitto",
            "mosquitto",
            secret=True,
        ),
        Wanted(
            broker.acl_file,
            mosquitto.acl_file(answers.board, users).encode(),
            0o640,
            "root",
            "mosquitto",
        ),
        *_system_files(answers, root),
        Wanted(
            "/etc/udev/rules.d/91-kioskd-devices.rules",
            (
                "# kioskd: stable names of the devices found at provisioning\n" + answers.udev_rules
            ).encode(),
        ),
        *_hardening(),
        *_apt(answers, root),
    ]
    record = msgspec.structs.replace(
        answers, fleet_ca=None, fleet_cert=None, fleet_password=None, apt_key=None
    )
    files.append(
        Wanted(
            RECORD,
            msgspec.json.format(msgspec.json.encode(record)) + b"\n",
            0o640,
            "root",
            DAEMON_USER,
        )
    )
    return files
