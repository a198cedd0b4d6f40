"""Secure messaging with 3DES (ICAO 9303-11 section 9.8), both ends of the channel.

Every protected command and response increments the send sequence counter
(SSC) first, then MACs ``SSC || ...`` with the retail MAC.  The terminal calls
:meth:`SecureChannel.protect` and :meth:`SecureChannel.unprotect`; the virtual
card calls :meth:`SecureChannel.unwrap` and :meth:`SecureChannel.wrap`.
"""

from __future__ import annotations

import hmac

from devices.errors import ProtocolError

from . import tlv
from .apdu import EXTENDED_MAX_LE, SHORT_MAX_DATA, SHORT_MAX_LE, CommandApdu, ResponseApdu
from .bac import SessionKeys
from .cipher import pad, retail_mac, tdes_decrypt, tdes_encrypt, unpad

_SM_CLA = 0x0C
_DO_ENCRYPTED = 0x87
_DO_LE = 0x97
_DO_STATUS = 0x99
_DO_MAC = 0x8E
_PADDING_INDICATOR = b"\x01"
_SSC_BYTES = 8
_SSC_MOD = 1 << (8 * _SSC_BYTES)
_MAC_BYTES = 8
_SW_OK = 0x9000
#: Warnings (62xx, 63xx) still carry a protected answer.
_WARNING_SW1 = frozenset({0x62, 0x63})


class SecureMessagingError(ProtocolError):
    """A protected message failed its MAC or is malformed: the session is over."""


def _le_bytes(le: int) -> bytes:
    if le <= SHORT_MAX_LE:
        return bytes([le % SHORT_MAX_LE])
    return (le % EXTENDED_MAX_LE).to_bytes(2, "big")


class SecureChannel:
    """One secure messaging session (3DES keys and SSC from BAC)."""

    def __init__(self, keys: SessionKeys) -> None:
        self._enc = keys.ks_enc
        self._mac = keys.ks_mac
        self._ssc = keys.ssc

    @property
    def ssc(self) -> int:
        """The send sequence counter's current value."""
        return self._ssc

    def _next_ssc(self) -> bytes:
        self._ssc = (self._ssc + 1) % _SSC_MOD
        return self._ssc.to_bytes(_SSC_BYTES, "big")

    def _encrypted_do(self, data: bytes) -> bytes:
        return tlv.encode(_DO_ENCRYPTED, _PADDING_INDICATOR + tdes_encrypt(self._enc, pad(data)))

    # --- terminal side ---------------------------------------------------------------

    def protect(self, command: CommandApdu) -> CommandApdu:
        """Return the protected form of ``command`` (masked CLA, DO87, DO97, DO8E)."""
        header = bytes([command.cla | _SM_CLA]) + command.header[1:]
        body = b""
        if command.data:
            body += self._encrypted_do(command.data)
        if command.le is not None:
            body += tlv.encode(_DO_LE, _le_bytes(command.le))
        mac = retail_mac(self._mac, self._next_ssc() + pad(header) + body)
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
        expected = retail_mac(self._mac, ssc + covered)
        if not hmac.compare_digest(expected, mac.value):
            raise SecureMessagingError("secure messaging: the answer's MAC is wrong")
        status = objects.get(_DO_STATUS)
        sw = int.from_bytes(status.value, "big") if status is not None else response.sw
        encrypted = objects.get(_DO_ENCRYPTED)
        data = self._decrypt(encrypted.value) if encrypted is not None else b""
        return ResponseApdu(data, sw)

    def _decrypt(self, value: bytes) -> bytes:
        if value[:1] != _PADDING_INDICATOR or (len(value) - 1) % _MAC_BYTES:
            raise SecureMessagingError("secure messaging: malformed encrypted data object")
        return unpad(tdes_decrypt(self._enc, value[1:]))

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
        expected = retail_mac(self._mac, ssc + pad(protected.header) + covered)
        if not hmac.compare_digest(expected, mac.value):
            raise SecureMessagingError("secure messaging: the command's MAC is wrong")
        encrypted = objects.get(_DO_ENCRYPTED)
        data = self._decrypt(encrypted.value) if encrypted is not None else b""
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
        body = self._encrypted_do(response.data) if response.data else b""
        body += tlv.encode(_DO_STATUS, response.sw.to_bytes(2, "big"))
        body += tlv.encode(_DO_MAC, retail_mac(self._mac, self._next_ssc() + body))
        return ResponseApdu(body, response.sw)
