"""Secure messaging with 3DES or AES (ICAO 9303-11 section 9.8), both ends of the channel.

Every protected command and response increments the send sequence counter
(SSC) first, then MACs ``SSC || ...``: 3DES (after BAC) with the retail MAC and
an 8-byte SSC, AES (after PACE or Chip Authentication) with AES-CMAC cut to 8
bytes, a 16-byte SSC starting at zero, and ``E(KS_enc, SSC)`` as the IV of
each encrypted data object (section 9.8.6.3).  The terminal calls
:meth:`SecureChannel.protect` and :meth:`SecureChannel.unprotect`; the virtual
card calls :meth:`SecureChannel.unwrap` and :meth:`SecureChannel.wrap`.
"""

from __future__ import annotations

import hmac
from typing import Protocol

from devices.errors import ProtocolError

from . import aes, tlv
from .apdu import EXTENDED_MAX_LE, SHORT_MAX_DATA, SHORT_MAX_LE, CommandApdu, ResponseApdu
from .bac import SessionKeys
from .cipher import BLOCK as TDES_BLOCK
from .cipher import pad, retail_mac, tdes_decrypt, tdes_encrypt, unpad

_SM_CLA = 0x0C
_DO_ENCRYPTED = 0x87
_DO_LE = 0x97
_DO_STATUS = 0x99
_DO_MAC = 0x8E
_PADDING_INDICATOR = b"\x01"
_SW_OK = 0x9000
#: Warnings (62xx, 63xx) still carry a protected answer.
_WARNING_SW1 = frozenset({0x62, 0x63})


class SecureMessagingError(ProtocolError):
    """A protected message failed its MAC or is malformed: the session is over."""


def _le_bytes(le: int) -> bytes:
    if le <= SHORT_MAX_LE:
        return bytes([le % SHORT_MAX_LE])
    return (le % EXTENDED_MAX_LE).to_bytes(2, "big")


class _Cipher(Protocol):
    """What a secure messaging algorithm provides: block size, SSC size, cipher and MAC."""

    block: int

    def encrypt(self, ssc: bytes, data: bytes) -> bytes: ...
    def decrypt(self, ssc: bytes, data: bytes) -> bytes: ...
    def mac(self, data: bytes) -> bytes: ...


class _Tdes:
    """3DES-CBC with a zero IV and the retail MAC (which pads by itself)."""

    block = TDES_BLOCK

    def __init__(self, ks_enc: bytes, ks_mac: bytes) -> None:
        self._enc, self._mac = ks_enc, ks_mac

    def encrypt(self, _ssc: bytes, data: bytes) -> bytes:
        return tdes_encrypt(self._enc, data)

    def decrypt(self, _ssc: bytes, data: bytes) -> bytes:
        return tdes_decrypt(self._enc, data)

    def mac(self, data: bytes) -> bytes:
        return retail_mac(self._mac, data)


class _Aes:
    """AES-CBC with the IV ``E(KS_enc, SSC)``, and AES-CMAC over the padded input, 8 bytes."""

    block = aes.BLOCK

    def __init__(self, ks_enc: bytes, ks_mac: bytes) -> None:
        self._enc, self._mac = ks_enc, ks_mac

    def encrypt(self, ssc: bytes, data: bytes) -> bytes:
        return aes.cbc_encrypt(self._enc, data, aes.encrypt_block(self._enc, ssc))

    def decrypt(self, ssc: bytes, data: bytes) -> bytes:
        return aes.cbc_decrypt(self._enc, data, aes.encrypt_block(self._enc, ssc))

    def mac(self, data: bytes) -> bytes:
        return aes.cmac8(self._mac, pad(data, aes.BLOCK))


class SecureChannel:
    """One secure messaging session: 3DES keys and SSC from BAC, or AES keys (:meth:`for_aes`)."""

    def __init__(self, keys: SessionKeys) -> None:
        """A 3DES session with the keys and SSC BAC established."""
        self._cipher: _Cipher = _Tdes(keys.ks_enc, keys.ks_mac)
        self._ssc = keys.ssc

    @classmethod
    def for_aes(cls, ks_enc: bytes, ks_mac: bytes, ssc: int = 0) -> SecureChannel:
        """An AES session (after PACE or Chip Authentication): SSC zero, 16 bytes.

        ``ssc`` resumes a session mid-way (replaying a recorded session).
        """
        channel = cls(SessionKeys(b"", b"", ssc))
        channel._cipher = _Aes(ks_enc, ks_mac)
        return channel

    @property
    def ssc(self) -> int:
        """The send sequence counter's current value."""
        return self._ssc

    def _next_ssc(self) -> bytes:
        # The SSC is one cipher block wide: 8 bytes for 3DES, 16 for AES.
        width = self._cipher.block
        self._ssc = (self._ssc + 1) % (1 << (8 * width))
        return self._ssc.to_bytes(width, "big")

    def _encrypted_do(self, ssc: bytes, data: bytes) -> bytes:
        encrypted = self._cipher.encrypt(ssc, pad(data, self._cipher.block))
        return tlv.encode(_DO_ENCRYPTED, _PADDING_INDICATOR + encrypted)

    # --- terminal side ---------------------------------------------------------------

    def protect(self, command: CommandApdu) -> CommandApdu:
        """Return the protected form of ``command`` (masked CLA, DO87, DO97, DO8E)."""
        header = bytes([command.cla | _SM_CLA]) + command.header[1:]
        ssc = self._next_ssc()
        body = b""
        if command.data:
            body += self._encrypted_do(ssc, command.data)
        if command.le is not None:
            body += tlv.encode(_DO_LE, _le_bytes(command.le))
        mac = self._cipher.mac(ssc + pad(header, self._cipher.block) + body)
        body += tlv.encode(_DO_MAC, mac)
        extended = len(body) > SHORT_MAX_DATA or (command.le or 0) > SHORT_MAX_LE
        return CommandApdu(
            header[0],
            command.ins,
            command.p1,
            command.p2,
            body,
            EXTENDED_MAX_LE if extended else SHORT_MAX_LE,
        )

    def unprotect(self, response: ResponseApdu) -> ResponseApdu:
        """Check and decrypt a protected response.

        A response without data is the chip answering an error in plain (it
        then ends the session); it is returned as is, except ``9000``, which must
        be protected.

        Raises:
            SecureMessagingError: the MAC is wrong, missing or the objects malformed.

        """
        ssc = self._next_ssc()
        if not response.data:
            if response.sw == _SW_OK or response.sw >> 8 in _WARNING_SW1:
                raise SecureMessagingError("secure messaging: a success answer without its MAC")
            return response
        objects = self._objects(response.data)
        mac = objects.get(_DO_MAC)
        if mac is None:
            raise SecureMessagingError("secure messaging: the answer has no MAC")
        covered = response.data[: response.data.rindex(tlv.encode(_DO_MAC, mac.value))]
        expected = self._cipher.mac(ssc + covered)
        if not hmac.compare_digest(expected, mac.value):
            raise SecureMessagingError("secure messaging: the answer's MAC is wrong")
        status = objects.get(_DO_STATUS)
        sw = int.from_bytes(status.value, "big") if status is not None else response.sw
        encrypted = objects.get(_DO_ENCRYPTED)
        data = self._decrypt(ssc, encrypted.value) if encrypted is not None else b""
        return ResponseApdu(data, sw)

    def _decrypt(self, ssc: bytes, value: bytes) -> bytes:
        if value[:1] != _PADDING_INDICATOR or (len(value) - 1) % self._cipher.block:
            raise SecureMessagingError("secure messaging: malformed encrypted data object")
        return unpad(self._cipher.decrypt(ssc, value[1:]))

    @staticmethod
    def _objects(data: bytes) -> dict[int, tlv.Tlv]:
        try:
            return {item.tag: item for item in tlv.iter_tlv(data)}
        except tlv.TlvError:
            raise SecureMessagingError("secure messaging: malformed data objects") from None

    # --- chip side ---------------------------------------------------------------------

    def unwrap(self, protected: CommandApdu) -> CommandApdu:
        """Check and decrypt a protected command (the card's side).

        Raises:
            SecureMessagingError: not protected, the MAC is wrong or the objects malformed.

        """
        ssc = self._next_ssc()
        if protected.cla & _SM_CLA != _SM_CLA:
            raise SecureMessagingError("secure messaging: the command is not protected")
        objects = self._objects(protected.data)
        mac = objects.get(_DO_MAC)
        if mac is None:
            raise SecureMessagingError("secure messaging: the command has no MAC")
        covered = protected.data[: protected.data.rindex(tlv.encode(_DO_MAC, mac.value))]
        expected = self._cipher.mac(ssc + pad(protected.header, self._cipher.block) + covered)
        if not hmac.compare_digest(expected, mac.value):
            raise SecureMessagingError("secure messaging: the command's MAC is wrong")
        encrypted = objects.get(_DO_ENCRYPTED)
        data = self._decrypt(ssc, encrypted.value) if encrypted is not None else b""
        le_do = objects.get(_DO_LE)
        le = None
        if le_do is not None:
            width = SHORT_MAX_LE if len(le_do.value) == 1 else EXTENDED_MAX_LE
            le = int.from_bytes(le_do.value, "big") or width
        return CommandApdu(
            protected.cla & ~_SM_CLA, protected.ins, protected.p1, protected.p2, data, le
        )

    def wrap(self, response: ResponseApdu) -> ResponseApdu:
        """Protect a response (the card's side): DO87 with the data, DO99, DO8E."""
        ssc = self._next_ssc()
        body = self._encrypted_do(ssc, response.data) if response.data else b""
        body += tlv.encode(_DO_STATUS, response.sw.to_bytes(2, "big"))
        body += tlv.encode(_DO_MAC, self._cipher.mac(ssc + body))
        return ResponseApdu(body, response.sw)
