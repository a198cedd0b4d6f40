"""``kioskd provision master-list``: install an ICAO CSCA master list for the card reader.

The operator gets the Vietnamese and foreign CSCAs as a master list (a CMS-signed
bundle published by the ICAO PKD and by states, ICAO 9303-12).  The list is
installed only when it is trusted: its signature verifies and its signer was
issued by a CSCA the operator trusts, the publishing state's CSCA, given with
``--trust`` (obtained out of band: BSI publishes Germany's, the Netherlands
theirs) or already in the CSCA folder; a ``--trust`` certificate is installed
with the list.  The card reader reads the folder at start (``csca_dir``).
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from devices.card_reader.icao import masterlist
from devices.card_reader.icao.pa import as_asn1
from devices.card_reader.pcsc import load_cscas
from devices.errors import HardwareError, ProtocolError

from .files import atomic_write

_MODE = 0o644


class MasterListRefused(Exception):
    """The list is malformed or not trusted; the message says which and why."""


def under_root(root: Path, path: Path) -> Path:
    """``path`` (absolute on the board) inside ``root`` (an image or ``/``)."""
    return root / path.relative_to(path.anchor)


def install(
    source: Path, csca_dir: Path, root: Path = Path("/"), trust: Path | None = None
) -> tuple[Path, int]:
    """Verify ``source`` and copy it into ``csca_dir`` under ``root`` (with ``trust``).

    ``trust`` is the publishing state's CSCA certificate (PEM or DER).

    Returns:
        ``(installed file, number of CSCAs it lists)``.

    Raises:
        MasterListRefused: unreadable, malformed or untrusted (nothing is written).
        OSError: the folder cannot be written.

    """
    folder = under_root(root, csca_dir)
    try:
        data = source.read_bytes()
        existing = load_cscas(folder) if folder.is_dir() else []
        anchor = _certificate(trust.read_bytes()) if trust is not None else None
    except (OSError, HardwareError, ValueError) as exc:
        raise MasterListRefused(str(exc)) from None
    if anchor is not None:
        existing.append(anchor)
    trusted = [as_asn1(c) for c in existing]
    try:
        listed = masterlist.parse_master_list(data, trusted)
    except ProtocolError as exc:
        raise MasterListRefused(f"{source}: {exc}") from None
    if not listed.trusted:
        raise MasterListRefused(f"{source}: master list not trusted: {listed.reason}")
    if anchor is not None and trust is not None:
        der = anchor.public_bytes(serialization.Encoding.DER)
        atomic_write(folder / f"{trust.stem}.der", der, _MODE, None, None)
    target = folder / f"{source.stem}.ml"
    atomic_write(target, data, _MODE, None, None)
    return target, len(listed.cscas)


def _certificate(data: bytes) -> x509.Certificate:
    """A certificate file's certificate, PEM or DER (ValueError otherwise)."""
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)
