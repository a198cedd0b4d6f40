"""Chip Authentication with ECDH (ICAO 9303-11 section 6.2) and DG14, both ends.

DG14 holds the chip's static key agreement key (``ChipAuthenticationPublicKeyInfo``,
a SubjectPublicKeyInfo with named or explicit curve parameters) and the
protocol (``ChipAuthenticationInfo``).  The terminal sends an ephemeral key on
that curve; both sides derive new secure messaging keys from the shared x
coordinate and restart the SSC at zero.  The chip is authentic when secure
messaging works under the new keys: a clone holding DG14 (and a genuine SOD)
but not the private key computes other keys and fails the next MAC.

AES protocols run ``MSE:Set AT`` + ``GENERAL AUTHENTICATE``; 3DES runs
``MSE:Set KAT``.  The terminal's arithmetic is ``ecdsa``'s (explicit curve
parameters included); the virtual chip uses ``cryptography``'s ECDH.
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import core
from cryptography.hazmat.primitives.asymmetric import ec as crypto_ec

from devices.errors import ProtocolError

from . import aes, ec, keys, tlv
from .apdu import SHORT_MAX_LE, CommandApdu
from .bac import SessionKeys
from .cipher import KDF_ENC, KDF_MAC
from .cipher import derive_key as derive_tdes_key
from .lds import DG_TAGS
from .sm import SecureChannel

ID_PK_ECDH = "0.4.0.127.0.7.2.2.1.2"
ID_CA_ECDH = "0.4.0.127.0.7.2.2.3.2"
#: id-CA-ECDH-3DES-CBC-CBC: the protocol a DG14 without ChipAuthenticationInfo implies.
ID_CA_ECDH_3DES = f"{ID_CA_ECDH}.1"
#: ChipAuthenticationInfo protocols: key length, 0 for two-key 3DES.
CA_ECDH_KEY_BYTES: dict[str, int] = {
    ID_CA_ECDH_3DES: 0,
    f"{ID_CA_ECDH}.2": 16,  # id-CA-ECDH-AES-CBC-CMAC-128
    f"{ID_CA_ECDH}.3": 24,
    f"{ID_CA_ECDH}.4": 32,
}
#: ActiveAuthenticationInfo (9303-11 9.2.10): names the ECDSA hash of Active Authentication.
ID_AA = "2.23.136.1.1.5"
_TAG_OID, _TAG_INTEGER, _TAG_SEQUENCE, _TAG_SET = 0x06, 0x02, 0x30, 0x31
_TAG_DYNAMIC_AUTH = 0x7C
_DO_PROTOCOL, _DO_KEY_ID, _DO_EPHEMERAL, DO_KAT_KEY = 0x80, 0x84, 0x80, 0x91
INS_MSE, INS_GENERAL_AUTHENTICATE = 0x22, 0x86
MSE_SET_AT, MSE_SET_KAT = (0x41, 0xA4), (0x41, 0xA6)


def _oid_text(encoded: bytes) -> str:
    return str(core.ObjectIdentifier.load(tlv.encode(_TAG_OID, encoded)).dotted)


def _oid_bytes(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).contents)


def _integer(value: int) -> bytes:
    return tlv.encode(_TAG_INTEGER, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big"))


@dataclass(frozen=True, slots=True)
class CaInfo:
    """``ChipAuthenticationInfo``: the protocol OID, its version and the key it applies to."""

    protocol: str
    version: int
    key_id: int | None

    @property
    def key_bytes(self) -> int:
        """AES key length, bytes (0: 3DES)."""
        return CA_ECDH_KEY_BYTES[self.protocol]


@dataclass(frozen=True, slots=True)
class Dg14:
    """What DG14 says about Chip and Active Authentication.

    Attributes:
        keys: chip key agreement public keys (SubjectPublicKeyInfo DER) by key ID
            (``None`` when the chip has one key and gives no ID).
        infos: the Chip Authentication protocols offered (ECDH ones only).
        aa_signature: the Active Authentication signature algorithm OID, if given.

    """

    keys: dict[int | None, bytes]
    infos: list[CaInfo]
    aa_signature: str | None

    def choice(self) -> tuple[CaInfo, bytes] | None:
        """The first offered protocol this code runs, with its key; ``None``: none.

        A DG14 with a Chip Authentication key but no ``ChipAuthenticationInfo``
        implies ``id-CA-ECDH-3DES-CBC-CBC`` version 1 (ICAO 9303-11: the info
        may be left out by a chip that runs Chip Authentication with 3DES only).
        """
        if not self.infos and self.keys:
            key_id, only = next(iter(self.keys.items()))
            return CaInfo(ID_CA_ECDH_3DES, 1, key_id), only
        for info in self.infos:
            key = self.keys.get(info.key_id)
            if key is None and info.key_id is None and len(self.keys) == 1:
                key = next(iter(self.keys.values()))
            if key is not None:
                return info, key
        return None


def parse_dg14(data: bytes) -> Dg14:
    """Decode DG14 (SecurityInfos); other SecurityInfos (PACE, TA) are skipped.

    Raises:
        ProtocolError: not a DG14 or not a SET of SecurityInfo sequences.

    """
    outer = tlv.read_tlv(data)
    if outer.tag != DG_TAGS[14]:
        raise ProtocolError(f"DG14: unexpected outer tag {outer.tag:#x}")
    infos = tlv.read_tlv(outer.value)
    if infos.tag != _TAG_SET:
        raise ProtocolError("DG14: not a SET of SecurityInfos")
    keys: dict[int | None, bytes] = {}
    offered: list[CaInfo] = []
    aa_signature = None
    for item in infos.children():
        fields = item.children() if item.tag == _TAG_SEQUENCE else []
        if len(fields) < 2 or fields[0].tag != _TAG_OID:  # noqa: PLR2004
            continue
        protocol = _oid_text(fields[0].value)
        extra = fields[2] if len(fields) > 2 and fields[2].tag == _TAG_INTEGER else None  # noqa: PLR2004
        if protocol == ID_PK_ECDH and fields[1].tag == _TAG_SEQUENCE:
            key_id = int.from_bytes(extra.value, "big") if extra else None
            keys[key_id] = tlv.encode(fields[1].tag, fields[1].value)
        elif protocol in CA_ECDH_KEY_BYTES and fields[1].tag == _TAG_INTEGER:
            key_id = int.from_bytes(extra.value, "big") if extra else None
            offered.append(CaInfo(protocol, int.from_bytes(fields[1].value, "big"), key_id))
        elif protocol == ID_AA and len(fields) > 2 and fields[2].tag == _TAG_OID:  # noqa: PLR2004
            aa_signature = _oid_text(fields[2].value)
    return Dg14(keys, offered, aa_signature)


def build_dg14(public_key_der: bytes, protocol: str, aa_signature: str | None) -> bytes:
    """DG14 for one chip key (no key ID): its public key info, its protocol, the AA algorithm."""
    entries = [
        tlv.encode(_TAG_SEQUENCE, tlv.encode(_TAG_OID, _oid_bytes(ID_PK_ECDH)) + public_key_der),
        tlv.encode(_TAG_SEQUENCE, tlv.encode(_TAG_OID, _oid_bytes(protocol)) + _integer(1)),
    ]
    if aa_signature is not None:
        body = tlv.encode(_TAG_OID, _oid_bytes(ID_AA)) + _integer(1)
        entries.append(
            tlv.encode(_TAG_SEQUENCE, body + tlv.encode(_TAG_OID, _oid_bytes(aa_signature)))
        )
    return tlv.encode(DG_TAGS[14], tlv.encode(_TAG_SET, b"".join(entries)))


def channel(info: CaInfo, shared_x: bytes) -> SecureChannel:
    """The secure messaging session Chip Authentication establishes (SSC zero)."""
    if info.key_bytes == 0:
        keys = SessionKeys(
            derive_tdes_key(shared_x, KDF_ENC), derive_tdes_key(shared_x, KDF_MAC), 0
        )
        return SecureChannel(keys)
    return SecureChannel.for_aes(
        aes.derive_key(shared_x, KDF_ENC, info.key_bytes),
        aes.derive_key(shared_x, KDF_MAC, info.key_bytes),
    )


def commands(info: CaInfo, ephemeral_public: bytes) -> list[CommandApdu]:
    """The commands (to be sent under the current secure messaging) that run the protocol."""
    key_id = tlv.encode(_DO_KEY_ID, bytes([info.key_id])) if info.key_id is not None else b""
    if info.key_bytes == 0:
        return [
            CommandApdu(
                0x00, INS_MSE, *MSE_SET_KAT, tlv.encode(DO_KAT_KEY, ephemeral_public) + key_id
            )
        ]
    mse = CommandApdu(
        0x00, INS_MSE, *MSE_SET_AT, tlv.encode(_DO_PROTOCOL, _oid_bytes(info.protocol)) + key_id
    )
    template = tlv.encode(_TAG_DYNAMIC_AUTH, tlv.encode(_DO_EPHEMERAL, ephemeral_public))
    return [mse, CommandApdu(0x00, INS_GENERAL_AUTHENTICATE, 0, 0, template, le=SHORT_MAX_LE)]


class CaTerminal:
    """The terminal's side: an ephemeral key on the chip key's curve (run off the event loop)."""

    def __init__(
        self, info: CaInfo, chip_key_der: bytes, *, ephemeral_key: int | None = None
    ) -> None:
        """Load the chip's key (named or explicit curve, :mod:`.keys`); ``ephemeral_key`` for tests.

        Raises:
            keys.UnknownAlgorithm: not an EC key, or a curve not known by name.
            ProtocolError: a malformed key.

        """
        loaded = keys.load_public_key(chip_key_der)
        if not isinstance(loaded, keys.EcKey):
            raise keys.UnknownAlgorithm("DG14: Chip Authentication with a non-EC key")
        verifying = loaded.point
        self.info = info
        self.domain = ec.Domain(verifying.curve.name, verifying.curve)
        self._chip_point = verifying.pubkey.point
        self._key = ephemeral_key or self.domain.random_scalar()

    def public_key(self) -> bytes:
        """The ephemeral public key, uncompressed."""
        return self.domain.encode(self.domain.multiply(self.domain.generator, self._key))

    def session(self) -> SecureChannel:
        """The new secure messaging session."""
        shared = self.domain.multiply(self._chip_point, self._key)
        return channel(self.info, self.domain.x_bytes(shared))


def chip_session(
    private_key: crypto_ec.EllipticCurvePrivateKey, info: CaInfo, terminal_public: bytes
) -> SecureChannel:
    """The chip's side: ECDH with its static key and the terminal's ephemeral key.

    Raises:
        ValueError: the terminal's key is not a point of the chip key's curve.

    """
    peer = crypto_ec.EllipticCurvePublicKey.from_encoded_point(private_key.curve, terminal_public)
    return channel(info, private_key.exchange(crypto_ec.ECDH(), peer))
