"""How to reach a fleet broker: URL parsing, TLS with a pinned CA and a client certificate.

Shared by the daemon's uplink and the fleet tools (``kioskd fleet ...``).
:func:`tls_context` reads files: call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class TransportError(ValueError):
    """A fleet broker URL or TLS file is unusable; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A fleet broker: host, port and whether TLS is used."""

    host: str
    port: int
    tls: bool


def parse_url(url: str) -> Endpoint:
    """Parse ``mqtts://host[:port]`` (TLS, 8883) or ``mqtt://host[:port]`` (plain, 1883).

    Raises:
        TransportError: another scheme, no host, or a bad port.

    """
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise TransportError(f"not an mqtt:// or mqtts:// URL with a host: {url!r}")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise TransportError(f"bad port in {url!r}") from None
    return Endpoint(parts.hostname, port, parts.scheme == "mqtts")


def tls_context(ca_file: str | None, cert_file: str | None, key_file: str | None) -> ssl.SSLContext:
    """A client TLS context: trusts only ``ca_file`` and presents ``cert_file``/``key_file``.

    The broker's certificate must chain to the pinned CA (the system CAs when
    ``ca_file`` is None) and name the host.

    Raises:
        TransportError: a file is missing or unreadable, or the key does not match the certificate.

    """
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert_file is not None:
            context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise TransportError(f"TLS file not found: {exc.filename}") from None
    except (OSError, ssl.SSLError) as exc:
        raise TransportError(f"TLS files unusable ({ca_file}, {cert_file}): {exc}") from None
    return context


def certificate_not_after(cert_file: str) -> dt.datetime | None:
    """The expiry (UTC) of the first certificate in a PEM file, or None if it cannot be read."""
    # cryptography's x509 (~5 MiB) only for a board that has a client certificate.
    from cryptography import x509  # noqa: PLC0415

    try:
        data = Path(cert_file).read_bytes()
        return x509.load_pem_x509_certificate(data).not_valid_after_utc
    except (OSError, ValueError):
        return None


def read_password(password_file: str | None) -> str | None:
    """The first line of ``password_file`` (None without one).

    Raises:
        TransportError: the file cannot be read.

    """
    if password_file is None:
        return None
    try:
        text = Path(password_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise TransportError(f"cannot read password_file {password_file}: {exc.strerror}") from None
    return text.splitlines()[0] if text else ""
