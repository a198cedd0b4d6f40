"""The board's fleet identity: an EC P-256 key and a CSR, or an imported certificate.

The key never leaves the board: the technician sends the CSR to the fleet's CA
and later imports the signed certificate (``--cert``).  A re-run keeps the
existing key, and the existing CSR while it still matches key and subject.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class PkiError(ValueError):
    """A key, certificate or CA file that cannot be used."""


def new_key() -> bytes:
    """A new EC P-256 private key, PKCS#8 PEM, unencrypted (the file is 0600)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(key_pem: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError("the fleet key must be an EC key")
    return key


def subject(board: str, tenant: str) -> x509.Name:
    """CN = board id, O = tenant: what the fleet broker maps to a client identity."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, board),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, tenant),
        ],
    )


def _public_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def csr(key_pem: bytes, board: str, tenant: str, existing: bytes | None = None) -> bytes:
    """A PEM CSR for the board; ``existing`` is returned unchanged if it still fits.

    Raises:
        PkiError: ``key_pem`` is not an EC private key.

    """
    key = _load_key(key_pem)
    name = subject(board, tenant)
    if existing is not None:
        try:
            old = x509.load_pem_x509_csr(existing)
        except ValueError:
            old = None
        if (
            old is not None
            and old.is_signature_valid
            and old.subject == name
            and _public_der(old.public_key()) == _public_der(key.public_key())  # type: ignore[arg-type]
        ):
            return existing
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(f"{board}.{tenant}.kiosk")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


def check_certificate(cert_pem: bytes, key_pem: bytes) -> x509.Certificate:
    """The imported certificate, checked to belong to the board's key.

    Raises:
        PkiError: not a PEM certificate, or issued for another key.

    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate: {exc}") from None
    cert_key = cert.public_key()
    if not isinstance(cert_key, ec.EllipticCurvePublicKey) or _public_der(cert_key) != _public_der(
        _load_key(key_pem).public_key()
    ):
        raise PkiError("the certificate was not issued for this board's key")
    return cert


def check_ca(ca_pem: bytes) -> list[x509.Certificate]:
    """The fleet CA bundle, parsed.

    Raises:
        PkiError: no PEM certificate in it.

    """
    try:
        certs = x509.load_pem_x509_certificates(ca_pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM CA bundle: {exc}") from None
    return certs
