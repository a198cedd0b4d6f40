"""The production local broker: mosquitto.conf, its password file and its ACL by role.

Password file lines are mosquitto's own ``$7$`` format (mosquitto 2.0
``mosquitto_passwd``): ``user:$7$<iterations>$<base64 salt>$<base64 hash>``,
where the hash is PBKDF2-HMAC-SHA512 of the password over a 12-byte salt,
101 iterations, 64 bytes.

Who asks is who the broker says it is: every listener sets
``use_username_as_clientid``, so a client's id is its user name (it cannot choose
another, take over another user's session, or put topic syntax in it), and the
ACL patterns name ``%u``: a user publishes requests only under
``kiosk/v1/{b}/req/{user}/`` and reads replies only under ``kiosk/v1/{b}/reply/{user}/``.
The daemon takes the requester from the request topic, so nothing a client writes
in a payload or a reply topic makes it someone else.  One connection per user at a
time: a second one with the same credentials replaces the first.

Roles:

- ``daemon`` (one user): reads requests, publishes status, description, states,
  events and replies of its board.
- ``ui`` (one user per kiosk UI): publishes its own requests only; reads status,
  description, states and events, and its own reply subtree.
- ``technician``: the same topics as a UI (never another client's requests or
  replies); the daemon gives it the staff operations (``[api] staff_users``).
  It is also the self-test's and ``kioskd lockers``' identity.

``sim/`` topics are denied to everyone: in production nothing is simulated; the
legacy request topics (``cmd/+``, ``dev/+/cmd/+``) are not writable either.
Anonymous clients are refused on every listener.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64


class PasswordFormatError(ValueError):
    """A password file line that is not mosquitto's ``$7$`` or ``$6$`` format."""


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The ``$7$...`` hash mosquitto_passwd writes for ``password`` (a new salt unless given)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(encoded: str, password: str) -> bool:
    """True if ``password`` matches a ``$7$`` (PBKDF2-SHA512) or ``$6$`` (SHA512) hash.

    Raises:
        PasswordFormatError: ``encoded`` is neither format.

    """
    parts = encoded.split("$")
    try:
        if len(parts) == 5 and parts[1] == "7":  # noqa: PLR2004 - "", "7", iterations, salt, hash
            salt = base64.b64decode(parts[3], validate=True)
            want = base64.b64decode(parts[4], validate=True)
            got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(want))
            return hmac.compare_digest(got, want)
        if len(parts) == 4 and parts[1] == "6":  # noqa: PLR2004 - "", "6", salt, hash
            salt = base64.b64decode(parts[2], validate=True)
            want = base64.b64decode(parts[3], validate=True)
            return hmac.compare_digest(hashlib.sha512(password.encode() + salt).digest(), want)
    except (ValueError, TypeError) as exc:
        raise PasswordFormatError(f"not a mosquitto password hash: {exc}") from None
    raise PasswordFormatError("not a mosquitto password hash ($7$ or $6$)")


def parse_password_file(text: str) -> dict[str, str]:
    """``user -> hash`` from a mosquitto password file (comments and blanks skipped)."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        if sep:
            entries[user] = encoded
    return entries


def password_file(passwords: Mapping[str, str], existing: str = "") -> str:
    """A password file for ``passwords`` (user -> clear text).

    A user whose line in ``existing`` still verifies keeps that line, so a
    re-run of provisioning does not rewrite the file with new salts.
    """
    old = parse_password_file(existing)
    lines = []
    for user, password in sorted(passwords.items()):
        encoded = old.get(user)
        try:
            keep = encoded is not None and verify_password(encoded, password)
        except PasswordFormatError:
            keep = False
        lines.append(f"{user}:{encoded if keep else hash_password(password)}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Users:
    """MQTT user names by role."""

    daemon: str
    uis: tuple[str, ...]
    technician: str


def acl_file(board: str, users: Users) -> str:
    """The ACL file text for one board (deny lines first: mosquitto stops at the first match)."""
    root = f"kiosk/v1/{board}"
    deny_sim = "topic deny kiosk/v1/+/sim/#"
    # Broadcasts only: never requests (they hold access keys and names) nor replies.
    reads = [
        f"topic read {root}/status",
        f"topic read {root}/description",
        f"topic read {root}/dev/+/state",
        f"topic read {root}/dev/+/evt/+",
    ]
    lines = [
        f"# kioskd broker ACL for board {board} (written by kioskd provision)",
        "",
        "# daemon: serves the board's API",
        f"user {users.daemon}",
        deny_sim,
        f"topic readwrite {root}/#",
        "",
    ]
    for ui in users.uis:
        lines += ["# UI: its own requests; broadcast topics and its own replies", f"user {ui}"]
        lines += [deny_sim, *reads, ""]
    lines += [
        "# technician: like a UI; the daemon grants it the staff operations",
        f"user {users.technician}",
        deny_sim,
        *reads,
        "",
        "# every client (its client id is its user name) publishes requests only under",
        "# req/<user>/ and reads only reply/<user>/: the daemon answers there alone",
        f"pattern write {root}/req/%u/#",
        f"pattern read {root}/reply/%u/#",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where the production broker listens and which files it reads."""

    port: int = 1883
    ws_port: int | None = 9001
    ws_bind: str = "lo"
    password_file: str = "/etc/mosquitto/kioskd.passwd"  # noqa: S105 - a path
    acl_file: str = "/etc/mosquitto/kioskd.acl"


def broker_conf(settings: BrokerSettings) -> str:
    """The ``conf.d`` file of the production broker (complete on its own)."""
    auth = [
        "allow_anonymous false",
        # The client id is the user name: the requester the ACL's %u and the daemon see.
        "use_username_as_clientid true",
        f"password_file {settings.password_file}",
        f"acl_file {settings.acl_file}",
    ]
    lines = [
        "# kioskd production broker (written by kioskd provision; re-run it, do not edit)",
        "per_listener_settings true",
        # Replies may hold identity data: never write them to disk.
        "persistence false",
        "autosave_interval 0",
        "set_tcp_nodelay true",
        "max_inflight_messages 20",
        "max_queued_messages 1000",
        "message_size_limit 4194304",
        "",
        "# the daemon and local apps: loopback only",
        f"listener {settings.port} 127.0.0.1",
        *auth,
    ]
    if settings.ws_port is not None:
        lines += [
            "",
            "# the browser UI; an interface name binds websockets (an address is ignored)",
            f"listener {settings.ws_port} {settings.ws_bind}",
            "protocol websockets",
            *auth,
        ]
    return "\n".join(lines) + "\n"
