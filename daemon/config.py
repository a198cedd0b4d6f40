"""One frozen, validated configuration, loaded from TOML before any hardware opens.

Every error names the file, the key, what was expected and what was found;
``kioskd`` exits 78 (EX_CONFIG) on it.  Defaults live on the types below, once.
Each device table is validated against its driver's own ``Settings`` type, so
a typo in a driver option is an error, not a silently ignored key.
"""

from __future__ import annotations

import os
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from devices.registry import UnknownDriverError, resolve, resolve_simulator
from devices.transports.claims import ClaimsPins

Port = Annotated[int, Meta(ge=1, le=65535)]
Seconds = Annotated[float, Meta(gt=0, le=3600)]
BoardId = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
#: A broker user name, as provisioning creates them (no topic syntax: it is a topic level).
UserName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
DeviceId = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")

EX_CONFIG = 78


class ConfigError(Exception):
    """An invalid configuration; the message names file, key, expectation and value."""


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class BoardConfig(_Section, frozen=True):
    """``[board]``: who this terminal is."""

    id: BoardId
    tenant: str = "default"
    site: str = ""


class MqttConfig(_Section, frozen=True):
    """``[mqtt]``: the local broker the daemon serves on.

    ``keepalive`` and timeouts are seconds; ``reconnect_max`` caps the jittered backoff.
    ``password_file`` names a file holding the password (its first line), so the
    config itself can stay group-readable; it is read when the config is loaded.
    """

    host: str = "127.0.0.1"
    port: Port = 1883
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    client_id: str | None = None
    keepalive: Annotated[int, Meta(ge=5, le=600)] = 30
    connect_timeout: Seconds = 5.0
    reconnect_max: Seconds = 10.0


class BrokerConfig(_Section, frozen=True):
    """``[broker]``: an embedded mosquitto child process (``kioskd run --sim``)."""

    embedded: bool = False
    mosquitto: str = "mosquitto"
    ws_port: Port | None = 9001


class UiConfig(_Section, frozen=True):
    """``[ui]``: what ``kioskd ui`` tells the kiosk's browser.

    ``ws_url`` is where the page connects (default: the UI server's own
    ``/mqtt`` bridge to the broker's TCP listener ``[mqtt] host:port``, which
    delivers pictures as fast as TCP; mosquitto's websockets listener does not,
    docs/performance.md); ``username`` and ``password_file``
    (its first line) are the UI's broker login, which the UI server hands its
    own page only (docs/ui.md); none: an anonymous broker.
    """

    ws_url: Annotated[str, Meta(pattern=r"^wss?://")] | None = None
    username: str | None = None
    password_file: str | None = None


class ApiConfig(_Section, frozen=True):
    """``[api]``: limits of the MQTT API.

    ``idempotency_window`` is seconds (10 min by the contract); ``max_queue`` is
    requests waiting per device beyond which new ones are refused ``deviceNotReady``.
    One client may have at most ``max_queue_per_client`` requests queued or running
    on one device (so it cannot fill a queue for everyone) and at most
    ``idempotency_max_per_client`` remembered side-effect requests (its oldest is
    forgotten beyond that, so it cannot push other clients' records out).

    Requests on ``req/{c}/...`` come from ``{c}``, the broker user the ACL lets publish
    there; ``legacy_request_topics`` also serves ``cmd/...`` and ``dev/{d}/cmd/...``
    (requester taken from the reply topic, which nothing binds to a user: provisioned
    boards turn it off, and requests there are then dropped and logged).
    ``staff_users`` have the technician role: only they may run staff operations
    (``resetTamper``, ``assign``, ``printRaw``, ``chipIO``, ending another client's
    deposit), and only through ``req/{c}/...``.
    """

    max_payload_bytes: Annotated[int, Meta(ge=1024, le=16 * 1024 * 1024)] = 256 * 1024
    idempotency_window: Seconds = 600.0
    idempotency_max_records: Annotated[int, Meta(ge=100, le=1_000_000)] = 10_000
    idempotency_max_per_client: Annotated[int, Meta(ge=10, le=1_000_000)] = 1_000
    max_queue: Annotated[int, Meta(ge=1, le=1000)] = 32
    max_queue_per_client: Annotated[int, Meta(ge=1, le=1000)] = 16
    legacy_request_topics: bool = True
    staff_users: tuple[UserName, ...] = ("technician",)


class DaemonConfig(_Section, frozen=True):
    """``[daemon]``: where state lives and how loud the log is."""

    state_dir: str = "/var/lib/kioskd"
    runtime_dir: str = "/run/kioskd"
    log_level: Annotated[str, Meta(pattern=r"^(debug|info|warning|error)$")] = "info"


class VietQRConfig(_Section, frozen=True):
    """``[vietqr]``: the office account VietQR transfers pay into (docs/payments.md).

    ``bin`` is the receiving bank's 6-digit NAPAS BIN; ``account`` the account number
    (``service = "account"``, NAPAS QRIBFTTA) or card number (``"card"``, QRIBFTTC);
    ``account_name`` is shown beside the code so the citizen sees who is paid.
    Without this table the daemon has no ``vietqrPayload`` command.
    """

    bin: Annotated[str, Meta(pattern=r"^[0-9]{6}$")]
    account: Annotated[str, Meta(pattern=r"^[0-9A-Za-z]{1,19}$")]
    service: Literal["account", "card"] = "account"
    account_name: Annotated[str, Meta(max_length=50)] = ""


FleetCommand = Literal["rebirth", "getHealth", "restartDevice", "update"]
#: MQTT URL of the fleet broker: ``mqtts://`` (TLS, port 8883 by default) or ``mqtt://`` (lab only).
FleetUrl = Annotated[str, Meta(pattern=r"^(mqtts?://[^/:@\s]+(:\d{1,5})?)?$")]


class UplinkConfig(_Section, frozen=True):
    """``[uplink]``: health telemetry to the fleet broker, with a store-and-forward outbox.

    ``url`` is ``mqtts://host[:port]`` (port 8883 by default); ``ca_file`` pins
    the fleet CA; ``cert_file``/``key_file`` are this board's client certificate
    (mutual TLS); ``password_file`` holds the optional password (first line).
    ``health_interval_s`` is seconds between health messages.  The outbox keeps
    at most ``outbox_max_bytes`` bytes and nothing older than ``outbox_max_age_s``
    seconds (oldest dropped first, counted).  ``commands`` lists the fleet
    commands this board obeys.  ``replay_rate`` caps replayed messages per second
    (0: no cap) so live messages keep flowing; ``inflight`` is how many QoS 1
    publishes may await their PUBACK at once.  ``keepalive`` and
    ``connect_timeout`` are seconds; ``reconnect_max_s`` caps the full-jitter backoff.
    """

    enabled: bool = False
    url: FleetUrl = ""
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    client_id: str | None = None
    health_interval_s: Annotated[float, Meta(ge=0.05, le=86_400)] = 30.0
    outbox_max_bytes: Annotated[int, Meta(ge=65_536, le=4 * 1024**3)] = 32 * 1024**2
    outbox_max_age_s: Annotated[float, Meta(ge=1, le=366 * 86_400)] = 7 * 86_400.0
    commands: list[FleetCommand] = msgspec.field(default_factory=lambda: ["rebirth", "getHealth"])
    replay_rate: Annotated[int, Meta(ge=0, le=1_000_000)] = 1000
    inflight: Annotated[int, Meta(ge=1, le=1000)] = 64
    keepalive: Annotated[int, Meta(ge=5, le=3600)] = 60
    connect_timeout: Seconds = 10.0
    reconnect_max_s: Seconds = 120.0


class DeviceConfig(msgspec.Struct, frozen=True):
    """One ``[devices.<id>]`` table after validation against its driver."""

    id: str
    device_class: str
    driver: str
    settings: msgspec.Struct
    #: Wire simulator serving the driver's far end (``simulator = "<name>"``), if any.
    simulator: str | None = None


class _Raw(_Section, frozen=True):
    board: BoardConfig
    mqtt: MqttConfig = msgspec.field(default_factory=MqttConfig)
    broker: BrokerConfig = msgspec.field(default_factory=BrokerConfig)
    api: ApiConfig = msgspec.field(default_factory=ApiConfig)
    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    uplink: UplinkConfig = msgspec.field(default_factory=UplinkConfig)
    ui: UiConfig = msgspec.field(default_factory=UiConfig)
    vietqr: VietQRConfig | None = None
    devices: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """The whole validated configuration."""

    source: str
    board: BoardConfig
    mqtt: MqttConfig
    broker: BrokerConfig
    api: ApiConfig
    daemon: DaemonConfig
    uplink: UplinkConfig = msgspec.field(default_factory=UplinkConfig)
    ui: UiConfig = msgspec.field(default_factory=UiConfig)
    vietqr: VietQRConfig | None = None
    devices: tuple[DeviceConfig, ...]

    def replace(self, **changes: Any) -> Config:
        """A copy with top-level sections replaced."""
        return msgspec.structs.replace(self, **changes)


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def _key_path(path: str) -> str:
    return re.sub(r"\[(\d+)\]", r".\1", path).lstrip(".")


def _lookup(data: Any, key: str) -> Any:
    node = data
    for part in key.split(".") if key else []:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _error(source: str, exc: msgspec.ValidationError, data: Any, prefix: str = "") -> ConfigError:
    match = _AT.match(str(exc))
    msg = match.group("msg") if match else str(exc)
    key = _key_path(match.group("path") or "") if match else ""
    found = _lookup(data, key)
    full = ".".join(p for p in (prefix, key) if p) or "(top level)"
    text = f"{source}: key `{full}`: {msg[0].lower()}{msg[1:]}"
    if found is not None and not isinstance(found, dict | list):
        text += f" (found {found!r})"
    return ConfigError(text)


def _device(source: str, dev_id: str, table: dict[str, Any]) -> DeviceConfig:
    where = f"devices.{dev_id}"
    if not DeviceId.match(dev_id):
        raise ConfigError(
            f"{source}: key `{where}`: a device id is letters, digits, '-' and '_', "
            f"starting with a letter (found {dev_id!r})",
        )
    options = dict(table)
    device_class = options.pop("class", None)
    driver = options.pop("driver", None)
    simulator = options.pop("simulator", None)
    for name, value in (("class", device_class), ("driver", driver)):
        if not isinstance(value, str):
            raise ConfigError(
                f"{source}: key `{where}.{name}`: expected a string (found {value!r})"
            )
    assert isinstance(device_class, str)
    assert isinstance(driver, str)
    try:
        spec = resolve(device_class, driver)
    except UnknownDriverError as exc:
        raise ConfigError(f"{source}: key `{where}`: {exc}") from None
    except ImportError as exc:
        raise ConfigError(
            f"{source}: key `{where}`: driver {driver!r} needs {exc.name or 'a library'}, "
            "which is not installed on this machine",
        ) from None
    if simulator is not None:
        _check_simulator(source, where, device_class, simulator)
    try:
        settings = msgspec.convert(options, spec.settings_type)
    except msgspec.ValidationError as exc:
        raise _error(source, exc, options, where) from None
    return DeviceConfig(dev_id, device_class, driver, settings, simulator)


def _check_simulator(source: str, where: str, device_class: str, simulator: object) -> None:
    if not isinstance(simulator, str):
        raise ConfigError(
            f"{source}: key `{where}.simulator`: expected a string (found {simulator!r})"
        )
    try:
        resolve_simulator(device_class, simulator)
    except UnknownDriverError as exc:
        raise ConfigError(f"{source}: key `{where}.simulator`: {exc}") from None
    except ImportError as exc:
        raise ConfigError(
            f"{source}: key `{where}.simulator`: simulator {simulator!r} needs "
            f"{exc.name or 'a library'}, which is not installed on this machine",
        ) from None


def _check_pins(source: str, devices: tuple[DeviceConfig, ...]) -> None:
    """Refuse a hardware line wired twice, in one device or across devices.

    Raises:
        ConfigError: naming both keys that wire the line.

    """
    uses: dict[str, str] = {}
    for entry in devices:
        if not isinstance(entry.settings, ClaimsPins):
            continue
        for claim in entry.settings.pin_claims():
            key = f"devices.{entry.id}.{claim.use}"
            if claim.pin in uses:
                raise ConfigError(
                    f"{source}: key `{key}`: {claim.pin} is already used by `{uses[claim.pin]}`"
                )
            uses[claim.pin] = key


def parse(data: dict[str, Any], source: str) -> Config:
    """Validate a decoded TOML document.

    Raises:
        ConfigError: naming ``source`` and the offending key.

    """
    try:
        raw = msgspec.convert(data, _Raw)
    except msgspec.ValidationError as exc:
        raise _error(source, exc, data) from None
    devices = tuple(_device(source, dev_id, table) for dev_id, table in raw.devices.items())
    _check_pins(source, devices)
    check_uplink(source, raw.uplink, raw.board)
    if raw.vietqr is not None and raw.vietqr.service == "card" and not raw.vietqr.account.isdigit():
        raise ConfigError(
            f"{source}: key `vietqr.account`: a card number is digits only "
            f"(found {raw.vietqr.account!r})"
        )
    return Config(
        source=source,
        board=raw.board,
        mqtt=raw.mqtt,
        broker=raw.broker,
        api=raw.api,
        daemon=raw.daemon,
        uplink=raw.uplink,
        ui=raw.ui,
        vietqr=raw.vietqr,
        devices=devices,
    )


_TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def check_uplink(source: str, uplink: UplinkConfig, board: BoardConfig) -> None:
    """Cross-check an enabled ``[uplink]``: URL, TLS files that go together, a topic-safe tenant.

    Raises:
        ConfigError: naming ``source`` and the key.

    """
    if not uplink.enabled:
        return

    def fail(key: str, text: str) -> ConfigError:
        return ConfigError(f"{source}: key `{key}`: {text}")

    if not uplink.url:
        raise fail("uplink.url", "required when the uplink is enabled (mqtts://host:8883)")
    if (uplink.cert_file is None) != (uplink.key_file is None):
        raise fail("uplink.key_file", "cert_file and key_file go together (mutual TLS)")
    if uplink.url.startswith("mqtts://") and uplink.ca_file is None:
        raise fail("uplink.ca_file", "required for mqtts:// (the fleet CA is pinned)")
    if not uplink.url.startswith("mqtts://") and uplink.cert_file is not None:
        raise fail("uplink.url", f"a client certificate needs mqtts:// (found {uplink.url!r})")
    if not _TOPIC_LEVEL.match(board.tenant):
        raise fail(
            "board.tenant",
            f"the fleet topics need letters, digits, '-' or '_' (found {board.tenant!r})",
        )


def load(path: Path, *, daemon_login: bool = True) -> Config:
    """Read and validate a TOML config file.

    The daemon's broker password is read from ``[mqtt] password_file`` unless
    ``daemon_login`` is False: ``kioskd ui`` never logs in as the daemon, and its
    unit (``kioskd-ui.service``) cannot read that file.

    Raises:
        ConfigError: unreadable file, TOML syntax error or invalid value.

    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    config = parse(data, str(path))
    if config.mqtt.password_file is None or not daemon_login:
        return config
    password = read_secret(config.mqtt.password_file, "mqtt.password_file", str(path))
    return config.replace(mqtt=msgspec.structs.replace(config.mqtt, password=password))


def read_secret(secret_file: str, key: str, source: str) -> str:
    """The first line of ``secret_file``, named by config ``key`` of ``source`` ("" if empty).

    Raises:
        ConfigError: the file cannot be read (naming the key and the config file).

    """
    try:
        lines = Path(secret_file).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(
            f"{source}: key `{key}`: cannot read {secret_file}: {exc.strerror}"
        ) from None
    return lines[0] if lines else ""


#: ``KIOSKD_SIM_FLEET=mqtt://127.0.0.1:1884 ./dev sim`` sends the simulation's telemetry there.
SIM_FLEET_ENV = "KIOSKD_SIM_FLEET"


def sim_state_dir() -> Path:
    """Where ``--sim`` keeps the simulated board's state: ``$XDG_STATE_HOME/kioskd-sim``.

    ``kioskd run --sim`` writes its ledger and audits there and the technician
    commands' ``--sim`` read them there, so both see the same simulated board.
    """
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kioskd-sim"


def sim_config() -> Config:
    """The built-in simulation config: board ``sim-0001``, every device class simulated.

    The uplink is enabled only when ``$KIOSKD_SIM_FLEET`` names a fleet broker
    (a plain ``mqtt://`` URL for a local mosquitto; TLS needs a config file).

    Raises:
        ConfigError: ``$KIOSKD_SIM_FLEET`` is not a broker URL.

    """
    text = resources.files("daemon").joinpath("sim.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    fleet = os.environ.get(SIM_FLEET_ENV)
    if fleet:
        data["uplink"] = {"enabled": True, "url": fleet, "health_interval_s": 10.0}
        source = f"<built-in sim.toml with ${SIM_FLEET_ENV}>"
        if fleet.startswith("mqtts://"):
            raise ConfigError(f"{source}: mqtts:// needs ca_file and certificates: use --config")
        return parse(data, source)
    return parse(data, "<built-in sim.toml>")
