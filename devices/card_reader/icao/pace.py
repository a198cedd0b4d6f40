"""PACE with the generic mapping over elliptic curves (ICAO 9303-11 sections 4.4, 9.2, 9.5).

EF.CardAccess lists the chip's PACE protocols (:func:`parse_card_access`); this
module runs ``id-PACE-ECDH-GM-AES-CBC-CMAC-128/192/256`` and
``id-PACE-ECDH-GM-3DES-CBC-CBC`` on the standardized NIST and brainpool curves
(3DES: K_pi and the session keys from the 3DES KDF, the nonce decrypted with
3DES-CBC, tokens by the ISO/IEC 9797-1 retail MAC, secure messaging with 3DES).
Both ends are here: :class:`PaceTerminal` is what the driver runs,
:class:`PaceChip` what the project's virtual card runs.  The
password is the CAN (reference 2) or the MRZ information (reference 1).

The exchange, after ``MSE:Set AT``: the chip sends ``z = E(K_pi, s)``; both
sides exchange mapping keys and compute ``G' = s·G + H`` with ``H`` their
shared point; they exchange ephemeral keys on ``G'`` and derive KS_enc and
KS_mac from the shared x coordinate; each sends the other a token, the CMAC of
the other's ephemeral public key.  A wrong password is caught by the chip at
the last step (its token check fails).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from asn1crypto import core

from devices.card_reader.identity import BacKey, PaceKey
from devices.errors import ProtocolError

from . import aes, cipher, dh, ec, keys, tlv
from .apdu import SHORT_MAX_LE, CommandApdu
from .bac import SessionKeys
from .sm import SecureChannel

#: id-PACE (BSI TR-03110 / ICAO 9303-11 9.2.1) and its ECDH generic mapping with AES.
ID_PACE = "0.4.0.127.0.7.2.2.4"
#: The arcs under id-PACE: key agreement and mapping, then cipher (BSI TR-03110-3 A.1.1.1).
_PACE_MAPPINGS = {"1": "DH-GM", "2": "ECDH-GM", "3": "DH-IM", "4": "ECDH-IM", "6": "ECDH-CAM"}
_PACE_CIPHERS = {
    "1": "3DES-CBC-CBC",
    "2": "AES-CBC-CMAC-128",
    "3": "AES-CBC-CMAC-192",
    "4": "AES-CBC-CMAC-256",
}
#: The ECDH generic mapping protocols this module runs: AES key length, 0 for two-key 3DES.
PACE_ECDH_GM: dict[str, int] = {
    f"{ID_PACE}.2.1": 0,  # id-PACE-ECDH-GM-3DES-CBC-CBC
    f"{ID_PACE}.2.2": 16,  # id-PACE-ECDH-GM-AES-CBC-CMAC-128
    f"{ID_PACE}.2.3": 24,  # id-PACE-ECDH-GM-AES-CBC-CMAC-192
    f"{ID_PACE}.2.4": 32,  # id-PACE-ECDH-GM-AES-CBC-CMAC-256
}
#: The ECDH chip authentication mapping (PACE-CAM, 9303-11 4.4.3.5): AES key length.
PACE_ECDH_CAM: dict[str, int] = {
    f"{ID_PACE}.6.2": 16,  # id-PACE-ECDH-CAM-AES-CBC-CMAC-128
    f"{ID_PACE}.6.3": 24,
    f"{ID_PACE}.6.4": 32,
}
#: The DH generic mapping (groups 0-2, RFC 5114): key length, 0 for 3DES.
PACE_DH_GM: dict[str, int] = {
    f"{ID_PACE}.1.1": 0,  # id-PACE-DH-GM-3DES-CBC-CBC
    f"{ID_PACE}.1.2": 16,  # id-PACE-DH-GM-AES-CBC-CMAC-128
    f"{ID_PACE}.1.3": 24,
    f"{ID_PACE}.1.4": 32,
}
#: The ECDH integrated mapping (9303-11 4.4.3.3.2): AES-128 only, as its worked example.
PACE_ECDH_IM: dict[str, int] = {f"{ID_PACE}.4.2": 16}  # id-PACE-ECDH-IM-AES-CBC-CMAC-128
#: A PACE group: an elliptic curve, or a finite field DH group (same methods).
Group = ec.Domain | dh.DhDomain
#: PACEDomainParameterInfo protocols: key agreement and mapping without the cipher arc.
_PACE_DOMAIN_INFOS = frozenset({f"{ID_PACE}.2", f"{ID_PACE}.4", f"{ID_PACE}.6"})
#: Password references of MSE:Set AT (9303-11 table 11).
PASSWORD_MRZ = 1
PASSWORD_CAN = 2
#: Key derivation counter of the PACE password key K_pi.
KDF_PI = 3
KDF_ENC = 1
KDF_MAC = 2

INS_MSE = 0x22
INS_GENERAL_AUTHENTICATE = 0x86
_CLA_CHAINING = 0x10
_MSE_SET_AT_PACE = (0xC1, 0xA4)
_TAG_DYNAMIC_AUTH = 0x7C
_TAG_PUBLIC_KEY = 0x7F49
_TAG_OID = 0x06
_TAG_EC_POINT = 0x86
_TAG_DH_VALUE = 0x84
_TAG_SEQUENCE = 0x30
_TAG_SET = 0x31
_TAG_INTEGER = 0x02
#: MSE:Set AT data objects: protocol OID, password reference, domain parameter ID.
DO_PROTOCOL, DO_PASSWORD, DO_PARAMETER_ID = 0x80, 0x83, 0x84
#: General authenticate data objects, terminal -> chip and chip -> terminal, step by step.
GA_NONCE, GA_MAP_TERMINAL, GA_MAP_CHIP = 0x80, 0x81, 0x82
GA_EPHEMERAL_TERMINAL, GA_EPHEMERAL_CHIP = 0x83, 0x84
GA_TOKEN_TERMINAL, GA_TOKEN_CHIP = 0x85, 0x86
#: PACE-CAM: the encrypted chip authentication data in the chip's last answer.
GA_CAM_DATA = 0x8A


def _oid_text(encoded: bytes) -> str:
    return str(core.ObjectIdentifier.load(tlv.encode(_TAG_OID, encoded)).dotted)


def oid_bytes(dotted: str) -> bytes:
    """The content octets of an OBJECT IDENTIFIER (without tag and length)."""
    return bytes(core.ObjectIdentifier(dotted).contents)


@dataclass(frozen=True, slots=True)
class PaceInfo:
    """One ``PACEInfo`` of EF.CardAccess.

    Attributes:
        protocol: the protocol OID, dotted.
        version: 2 for current chips.
        parameter_id: the standardized domain parameter ID, or a proprietary one
            (32-63) a ``PACEDomainParameterInfo`` defines (``None``: not given).
        explicit: the domain parameters a ``PACEDomainParameterInfo`` of
            EF.CardAccess gives explicitly for this protocol, if any.

    """

    protocol: str
    version: int
    parameter_id: int | None
    explicit: ec.Domain | None = None

    @property
    def supported(self) -> bool:
        """True for ECDH generic (AES, 3DES) or chip authentication mapping on a standard curve."""
        if self.dh:
            return self.parameter_id in dh.STANDARD_GROUPS
        known = any(self.protocol in table for table in (PACE_ECDH_GM, PACE_ECDH_IM, PACE_ECDH_CAM))
        return known and (self.explicit is not None or self.parameter_id in ec.STANDARD_DOMAINS)

    @property
    def dh(self) -> bool:
        """True for the Diffie-Hellman (finite field) generic mapping."""
        return self.protocol in PACE_DH_GM

    @property
    def integrated(self) -> bool:
        """True for the integrated mapping: ``G'`` from both nonces, no mapping key agreement."""
        return self.protocol in PACE_ECDH_IM

    @property
    def chip_authentication(self) -> bool:
        """True for PACE-CAM: the last step also proves the chip holds its static key."""
        return self.protocol in PACE_ECDH_CAM

    def describe(self) -> str:
        """The protocol's name (BSI TR-03110 part 3 OID tree) and its domain parameter ID.

        ``id-PACE-ECDH-IM-3DES-CBC-CBC (parameter 13)``; an OID outside the tree is given dotted.
        """
        tail = self.protocol.removeprefix(ID_PACE + ".").split(".")
        mapping = _PACE_MAPPINGS.get(tail[0]) if len(tail) == 2 else None  # noqa: PLR2004
        cipher = _PACE_CIPHERS.get(tail[1]) if mapping is not None else None
        name = f"id-PACE-{mapping}-{cipher}" if cipher is not None else self.protocol
        return f"{name} (parameter {self.parameter_id})"

    @property
    def key_bytes(self) -> int:
        """AES key length of the protocol, bytes (0: two-key 3DES)."""
        for table in (PACE_ECDH_GM, PACE_ECDH_IM, PACE_DH_GM):
            if self.protocol in table:
                return table[self.protocol]
        return PACE_ECDH_CAM[self.protocol]

    @property
    def domain(self) -> Group:
        """The group: the explicit curve EF.CardAccess gives, else :attr:`parameter_id`'s.

        Raises:
            ProtocolError: neither explicit nor a standardized curve or DH group.

        """
        if self.explicit is not None:
            return self.explicit
        table: Mapping[int, Group] = dh.STANDARD_GROUPS if self.dh else ec.STANDARD_DOMAINS
        domain = table.get(self.parameter_id) if self.parameter_id is not None else None
        if domain is None:
            raise ProtocolError(f"PACE: domain parameters {self.parameter_id} are not supported")
        return domain

    def encode(self) -> bytes:
        """DER ``PACEInfo`` (what the chip's EF.CardAccess holds)."""
        body = tlv.encode(_TAG_OID, oid_bytes(self.protocol))
        body += tlv.encode(_TAG_INTEGER, bytes([self.version]))
        if self.parameter_id is not None:
            body += tlv.encode(_TAG_INTEGER, bytes([self.parameter_id]))
        return tlv.encode(_TAG_SEQUENCE, body)


def build_card_access(infos: list[PaceInfo]) -> bytes:
    """EF.CardAccess: ``SecurityInfos``, a SET of the given PACEInfos."""
    return tlv.encode(_TAG_SET, b"".join(info.encode() for info in infos))


def parse_card_access(data: bytes) -> list[PaceInfo]:
    """The PACEInfos of EF.CardAccess (other SecurityInfos are skipped).

    A ``PACEDomainParameterInfo`` (``id-PACE-ECDH-GM/IM/CAM``, explicit EC
    domain parameters, an optional parameter ID) gives the curve of the
    PACEInfos naming its ID (or of all of them when it is the only one): the
    parameters are matched to the standardized curve they equal, or used as
    given (:func:`.keys.curve_from_parameters`).

    Raises:
        ProtocolError: not a SET of SecurityInfo sequences, or malformed domain parameters.

    """
    outer = tlv.read_tlv(data)
    if outer.tag != _TAG_SET:
        raise ProtocolError("EF.CardAccess: not a SET of SecurityInfos")
    infos = []
    explicit: dict[int | None, ec.Domain] = {}
    for item in outer.children():
        fields = item.children() if item.tag == _TAG_SEQUENCE else []
        if len(fields) < 2 or fields[0].tag != _TAG_OID:  # noqa: PLR2004
            continue
        protocol = _oid_text(fields[0].value)
        parameter = None
        if len(fields) > 2 and fields[2].tag == _TAG_INTEGER:  # noqa: PLR2004
            parameter = int.from_bytes(fields[2].value, "big")
        if protocol in _PACE_DOMAIN_INFOS and fields[1].tag == _TAG_SEQUENCE:
            explicit[parameter] = _explicit_domain(fields[1])
        elif protocol.startswith(ID_PACE + ".") and fields[1].tag == _TAG_INTEGER:
            infos.append(PaceInfo(protocol, int.from_bytes(fields[1].value, "big"), parameter))
    if not explicit:
        return infos
    only = next(iter(explicit.values())) if len(explicit) == 1 else None
    return [
        dataclasses.replace(i, explicit=explicit.get(i.parameter_id, only))
        if i.parameter_id not in ec.STANDARD_DOMAINS
        else i
        for i in infos
    ]


def _explicit_domain(algorithm: tlv.Tlv) -> ec.Domain:
    """The curve of a ``PACEDomainParameterInfo``'s ``AlgorithmIdentifier`` (ECParameters)."""
    parts = algorithm.children()
    if len(parts) != 2:  # noqa: PLR2004 - algorithm OID and its parameters
        raise ProtocolError("EF.CardAccess: domain parameters without ECParameters")
    curve = keys.curve_from_parameters(tlv.encode(parts[1].tag, parts[1].value))
    return ec.Domain(curve.name, curve)


def preferred(infos: list[PaceInfo]) -> PaceInfo | None:
    """The protocol to run; ``None`` when none is supported.

    PACE-CAM when offered (it authenticates the chip too), else the first supported one.
    """
    supported = [i for i in infos if i.supported]
    return next(
        (i for i in supported if i.chip_authentication), supported[0] if supported else None
    )


def password(key: BacKey | PaceKey) -> tuple[int, bytes]:
    """The password reference and encoding: the CAN's digits, or SHA-1 of the MRZ information."""
    if isinstance(key, PaceKey):
        return PASSWORD_CAN, key.can.encode("ascii")
    return PASSWORD_MRZ, hashlib.sha1(key.mrz_information.encode("ascii")).digest()  # noqa: S324


def password_key(encoded_password: bytes, key_bytes: int) -> bytes:
    """K_pi, the key that encrypts the chip's nonce (``key_bytes`` 0: 3DES)."""
    if key_bytes == 0:
        return cipher.derive_key(encoded_password, KDF_PI)
    return aes.derive_key(encoded_password, KDF_PI, key_bytes)


def _nonce_cipher(
    key_bytes: int,
) -> tuple[int, Callable[[bytes, bytes], bytes], Callable[[bytes, bytes], bytes]]:
    """Block size, encryption and decryption (CBC, zero IV) of the protocol's nonce."""
    if key_bytes == 0:
        return cipher.BLOCK, cipher.tdes_encrypt, cipher.tdes_decrypt
    return aes.BLOCK, aes.cbc_encrypt, aes.cbc_decrypt


def mapped_generator(domain: Group, nonce: bytes, shared: ec.Point) -> ec.Point:
    """Generic mapping: ``G' = s·G + H``.

    Raises:
        ProtocolError: the mapping degenerates (a hostile peer).

    """
    scalar = int.from_bytes(nonce, "big")
    return domain.add(domain.multiply(domain.generator, scalar), shared)


#: The pseudo-random function's constants for 128-bit blocks (9303-11 4.4.3.3.2).
_IM_C0 = bytes.fromhex("a668892a7c41e3ca739f40b057d85904")
_IM_C1 = bytes.fromhex("a4e136ac725f738b01c1f60217c188ad")
_IM_EXTRA_BITS = 64


def _pseudo_random(s: bytes, t: bytes, prime_bits: int) -> int:
    """R(s, t) of the integrated mapping with AES-128 (9303-11 4.4.3.3.2), as an integer."""
    blocks = -(-(prime_bits + _IM_EXTRA_BITS) // (8 * len(s)))
    key = aes.cbc_encrypt(t, s)
    out = b""
    for _ in range(blocks):
        key, out = aes.cbc_encrypt(key, _IM_C0), out + aes.cbc_encrypt(key, _IM_C1)
    return int.from_bytes(out, "big")


def _encode_point(domain: ec.Domain, t: int) -> ec.Point:
    """The point encoding f_G(t) for affine coordinates (9303-11 appendix B.2)."""
    field = domain.curve.curve
    p, a, b = field.p(), field.a(), field.b()
    alpha = -(t * t) % p
    alpha_sum = (alpha + alpha * alpha) % p
    x2 = -b * (1 + alpha_sum) * pow(a * alpha_sum, p - 2, p) % p
    x3 = alpha * x2 % p
    h2 = (pow(x2, 3, p) + a * x2 + b) % p
    u = pow(t, 3, p) * h2 % p
    big_a = pow(h2, (p - 1 - (p + 1) * pow(4, -1, p)) % p, p)
    if big_a * big_a * h2 % p == 1:
        x, y = x2, big_a * h2 % p
    else:
        x, y = x3, big_a * u % p
    point = domain.decode(domain.encode_coordinates(x, y))
    cofactor = int(field.cofactor())
    return point if cofactor == 1 else domain.multiply(point, cofactor)


def integrated_generator(domain: Group, s: bytes, t: bytes) -> ec.Point:
    """Integrated mapping: ``G' = f_G(R_p(s, t))`` from the chip's and the terminal's nonces.

    Raises:
        ProtocolError: ``domain`` is not an elliptic curve.

    """
    if not isinstance(domain, ec.Domain):
        raise ProtocolError("PACE: the integrated mapping is implemented for curves only")
    prime = domain.curve.curve.p()
    return _encode_point(domain, _pseudo_random(s, t, prime.bit_length()) % prime)


def token(info: PaceInfo, ks_mac: bytes, public_key: bytes) -> bytes:
    """Authentication token over ``7F49 { 06 protocol OID, 86 public key }``, 8 bytes.

    AES-CMAC cut to 8 bytes, or the retail MAC (padding method 2) for 3DES.
    """
    if info.dh:  # an unsigned integer, without leading zeros
        value = public_key.lstrip(b"\x00") or b"\x00"
        body = tlv.encode(_TAG_OID, oid_bytes(info.protocol)) + tlv.encode(_TAG_DH_VALUE, value)
    else:
        body = tlv.encode(_TAG_OID, oid_bytes(info.protocol))
        body += tlv.encode(_TAG_EC_POINT, public_key)
    data = tlv.encode(_TAG_PUBLIC_KEY, body)
    if info.key_bytes == 0:
        return cipher.retail_mac(ks_mac, data)
    return aes.cmac8(ks_mac, data)


@dataclass(frozen=True, slots=True)
class PaceKeys:
    """Secure messaging keys established by PACE (the SSC starts at zero).

    Attributes:
        ks_enc: the encryption key.
        ks_mac: the MAC key.
        key_bytes: AES key length, 0 for two-key 3DES.

    """

    ks_enc: bytes
    ks_mac: bytes
    key_bytes: int

    def channel(self) -> SecureChannel:
        """The secure messaging session these keys open (3DES or AES, SSC zero)."""
        if self.key_bytes == 0:
            return SecureChannel(SessionKeys(self.ks_enc, self.ks_mac, 0))
        return SecureChannel.for_aes(self.ks_enc, self.ks_mac)


def session_keys(shared_x: bytes, key_bytes: int) -> PaceKeys:
    """KS_enc and KS_mac from the shared secret's x coordinate (``key_bytes`` 0: 3DES)."""
    if key_bytes == 0:
        return PaceKeys(
            cipher.derive_key(shared_x, KDF_ENC), cipher.derive_key(shared_x, KDF_MAC), 0
        )
    return PaceKeys(
        aes.derive_key(shared_x, KDF_ENC, key_bytes),
        aes.derive_key(shared_x, KDF_MAC, key_bytes),
        key_bytes,
    )


# --- messages ---------------------------------------------------------------------------------


def mse_set_at(info: PaceInfo, reference: int, *, with_parameter_id: bool) -> CommandApdu:
    """``MSE:Set AT``: protocol, password (and domain parameters when several are offered)."""
    data = tlv.encode(DO_PROTOCOL, oid_bytes(info.protocol)) + tlv.encode(
        DO_PASSWORD, bytes([reference])
    )
    if with_parameter_id and info.parameter_id is not None:
        data += tlv.encode(DO_PARAMETER_ID, bytes([info.parameter_id]))
    return CommandApdu(0x00, INS_MSE, *_MSE_SET_AT_PACE, data)


def general_authenticate(tag: int | None, value: bytes, *, last: bool) -> CommandApdu:
    """GENERAL AUTHENTICATE carrying one data object (``tag`` None: empty ``7C 00``).

    Every step but the last is sent with command chaining (CLA ``10``).
    """
    inner = tlv.encode(tag, value) if tag is not None else b""
    return CommandApdu(
        0x00 if last else _CLA_CHAINING,
        INS_GENERAL_AUTHENTICATE,
        0,
        0,
        tlv.encode(_TAG_DYNAMIC_AUTH, inner),
        le=SHORT_MAX_LE,
    )


def dynamic_auth_object(data: bytes, tag: int) -> bytes:
    """The value of data object ``tag`` inside dynamic authentication data ``7C``.

    Raises:
        ProtocolError: no ``7C`` template or no such object.

    """
    try:
        outer = tlv.read_tlv(data)
        item = tlv.find(outer.value, tag) if outer.tag == _TAG_DYNAMIC_AUTH else None
    except tlv.TlvError:
        item = None
    if item is None:
        raise ProtocolError(f"PACE: the answer lacks data object {tag:02X}")
    return item.value


# --- the two ends -----------------------------------------------------------------------------


class PaceTerminal:
    """The terminal's side of one PACE run; each method is one step (run off the event loop)."""

    def __init__(
        self,
        info: PaceInfo,
        encoded_password: bytes,
        *,
        map_key: int | None = None,
        ephemeral_key: int | None = None,
        nonce_t: bytes | None = None,
    ) -> None:
        """Prepare a run; ``map_key``/``ephemeral_key``/``nonce_t`` fix the randomness (tests)."""
        self.info = info
        self.domain = info.domain
        self._k_pi = password_key(encoded_password, info.key_bytes)
        self._map_key = map_key or self.domain.random_scalar()
        self._ephemeral_key = ephemeral_key or self.domain.random_scalar()
        self._nonce_t = nonce_t or os.urandom(info.key_bytes or cipher.BLOCK)
        self._nonce = b""
        self._generator: ec.Point = None
        self._ephemeral_public = b""
        self._chip_ephemeral = b""
        self.chip_map_public: ec.Point = None
        self.keys: PaceKeys | None = None

    def decrypt_nonce(self, encrypted: bytes) -> bytes:
        """Step 1: decrypt the chip's nonce; return the terminal's mapping public key."""
        block, _, decrypt = _nonce_cipher(self.info.key_bytes)
        if not encrypted or len(encrypted) % block:
            raise ProtocolError("PACE: the encrypted nonce is not whole cipher blocks")
        self._nonce = decrypt(self._k_pi, encrypted)
        if self.info.integrated:  # the terminal's nonce t goes to the chip instead
            return self._nonce_t
        return self.domain.encode(self.domain.multiply(self.domain.generator, self._map_key))

    def map_nonce(self, chip_map_public: bytes) -> bytes:
        """Step 2: compute G' (the chip's mapping key, or both nonces); return the ephemeral key."""
        if self.info.integrated:
            self._generator = integrated_generator(self.domain, self._nonce, self._nonce_t)
        else:
            self.chip_map_public = self.domain.decode(chip_map_public)
            shared = self.domain.multiply(self.chip_map_public, self._map_key)
            self._generator = mapped_generator(self.domain, self._nonce, shared)
        public = self.domain.multiply(self._generator, self._ephemeral_key)
        self._ephemeral_public = self.domain.encode(public)
        return self._ephemeral_public

    def agree(self, chip_ephemeral_public: bytes) -> bytes:
        """Step 3: derive the session keys; return the terminal's token T_IFD.

        Raises:
            ProtocolError: the chip's key is ours echoed, or not on the curve.

        """
        if not self._ephemeral_public:
            raise ProtocolError("PACE: key agreement before the mapping")
        if hmac.compare_digest(chip_ephemeral_public, self._ephemeral_public):
            raise ProtocolError("PACE: the chip echoed the terminal's ephemeral key")
        point = self.domain.decode(chip_ephemeral_public)
        shared = self.domain.multiply(point, self._ephemeral_key)
        self.keys = session_keys(self.domain.x_bytes(shared), self.info.key_bytes)
        self._chip_ephemeral = chip_ephemeral_public
        return token(self.info, self.keys.ks_mac, chip_ephemeral_public)

    def check_chip_token(self, chip_token: bytes) -> PaceKeys:
        """Step 4: check T_IC; return the secure messaging keys.

        Raises:
            ProtocolError: T_IC is wrong (the chip accepted our token, so it is broken or hostile).

        """
        if self.keys is None:
            raise ProtocolError("PACE: token before key agreement")
        expected = token(self.info, self.keys.ks_mac, self._ephemeral_public)
        if not hmac.compare_digest(expected, chip_token):
            raise ProtocolError("PACE: the chip's authentication token is wrong")
        return self.keys


def chip_authentication_data(ks_enc: bytes, encrypted: bytes) -> int:
    """PACE-CAM: ``CA_IC`` from ``A_IC`` (AES-CBC with the IV ``E(KS_enc, FF..FF)``, padding 2).

    Raises:
        ProtocolError: not whole blocks, or bad padding.

    """
    if not encrypted or len(encrypted) % aes.BLOCK:
        raise ProtocolError("PACE-CAM: the chip authentication data is not whole AES blocks")
    iv = aes.encrypt_block(ks_enc, b"\xff" * aes.BLOCK)
    return int.from_bytes(cipher.unpad(aes.cbc_decrypt(ks_enc, encrypted, iv)), "big")


def verify_cam(terminal: PaceTerminal, encrypted: bytes, chip_public: ec.Point) -> bool:
    """PACE-CAM verification by the terminal: ``PK_Map,IC = CA_IC · PK_IC`` (9303-11 4.4.3.5.2).

    ``chip_public`` is the chip's static key from EF.CardSecurity.

    Raises:
        ProtocolError: before the session keys, or malformed data.

    """
    if terminal.keys is None or terminal.chip_map_public is None:
        raise ProtocolError("PACE-CAM: verification before the mapping and key agreement")
    ca_ic = chip_authentication_data(terminal.keys.ks_enc, encrypted)
    if not 0 < ca_ic < terminal.domain.order:
        return False
    return bool(chip_public * ca_ic == terminal.chip_map_public)


class PaceChip:
    """The chip's side of one PACE run (the virtual card's)."""

    def __init__(
        self,
        info: PaceInfo,
        encoded_password: bytes,
        *,
        nonce: bytes,
        map_key: int | None = None,
        ephemeral_key: int | None = None,
    ) -> None:
        """Start a run with the chip's nonce ``s``; fixed private keys for tests only."""
        self.info = info
        self.domain = info.domain
        self._nonce = nonce
        self._k_pi = password_key(encoded_password, info.key_bytes)
        self._map_key = map_key or self.domain.random_scalar()
        self._ephemeral_key = ephemeral_key or self.domain.random_scalar()
        self._generator: ec.Point = None
        self._ephemeral_public = b""
        self._terminal_ephemeral = b""
        self.keys: PaceKeys | None = None

    def encrypted_nonce(self) -> bytes:
        """Step 1: ``z = E(K_pi, s)``."""
        _, encrypt, _ = _nonce_cipher(self.info.key_bytes)
        return encrypt(self._k_pi, self._nonce)

    def map_nonce(self, terminal_map_public: bytes) -> bytes:
        """Step 2: compute G'; return the chip's mapping public key (integrated mapping: empty)."""
        if self.info.integrated:  # the terminal sent its nonce t
            self._generator = integrated_generator(self.domain, self._nonce, terminal_map_public)
            return b""
        shared = self.domain.multiply(self.domain.decode(terminal_map_public), self._map_key)
        self._generator = mapped_generator(self.domain, self._nonce, shared)
        return self.domain.encode(self.domain.multiply(self.domain.generator, self._map_key))

    def agree(self, terminal_ephemeral_public: bytes) -> bytes:
        """Step 3: derive the session keys; return the chip's ephemeral public key.

        Raises:
            ProtocolError: the terminal's key is not on the curve, or equals the chip's.

        """
        if self._generator is None:
            raise ProtocolError("PACE: key agreement before the mapping")
        self._ephemeral_public = self.domain.encode(
            self.domain.multiply(self._generator, self._ephemeral_key)
        )
        if hmac.compare_digest(terminal_ephemeral_public, self._ephemeral_public):
            raise ProtocolError("PACE: the terminal echoed the chip's ephemeral key")
        point = self.domain.decode(terminal_ephemeral_public)
        shared = self.domain.multiply(point, self._ephemeral_key)
        self.keys = session_keys(self.domain.x_bytes(shared), self.info.key_bytes)
        self._terminal_ephemeral = terminal_ephemeral_public
        return self._ephemeral_public

    def answer_token(self, terminal_token: bytes) -> bytes | None:
        """Step 4: check T_IFD; return T_IC, or ``None`` when the password was wrong."""
        if self.keys is None:
            return None
        expected = token(self.info, self.keys.ks_mac, self._ephemeral_public)
        if not hmac.compare_digest(expected, terminal_token):
            return None
        return token(self.info, self.keys.ks_mac, self._terminal_ephemeral)
