"""The chip side of an eMRTD: the eMRTD application with BAC, secure messaging and files.

It answers like an ICAO 9303 chip: files are readable only after BAC; a wrong
key gets ``6300``; a broken MAC ends the secure messaging session (``6988``).
Faults (:class:`ChipFault`) make it answer garbage or fail like a dying chip.
"""

from __future__ import annotations

import os
from enum import Enum

from devices.card_reader.icao import bac
from devices.card_reader.icao.apdu import CommandApdu, ResponseApdu
from devices.card_reader.icao.reader import EMRTD_AID
from devices.card_reader.icao.sm import SecureChannel, SecureMessagingError
from devices.card_reader.identity import BacKey
from devices.errors import InvalidData

SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_AUTH_FAILED = 0x6300
SW_SECURITY_NOT_SATISFIED = 0x6982
SW_SM_OBJECTS_INCORRECT = 0x6988
SW_FILE_NOT_FOUND = 0x6A82
SW_WRONG_P1P2 = 0x6B00
SW_INS_NOT_SUPPORTED = 0x6D00
SW_NO_PRECISE_DIAGNOSIS = 0x6F00
_SFI_FLAG = 0x80
_SM_CLA = 0x0C


class ChipFault(Enum):
    """How the chip misbehaves: garbage once, or a dead chip answering 6F00."""

    GARBAGE = "garbage"
    DEAD = "dead"


class EmrtdChip:
    """One chip: its files by file identifier and the key its MRZ gives."""

    def __init__(self, files: dict[int, bytes], key: BacKey) -> None:
        self._files = files
        self._keys = bac.AccessKeys.from_mrz_information(key.mrz_information)
        self._k_ic = os.urandom(bac.KEY_BYTES)
        self.fault: ChipFault | None = None
        self.reset()

    def reset(self) -> None:
        """Power cycle: nothing selected, no session."""
        self._app = False
        self._rnd_ic: bytes | None = None
        self._channel: SecureChannel | None = None
        self._file: bytes | None = None

    def process(self, raw: bytes) -> bytes:
        """Answer one command APDU with a response APDU."""
        if self.fault is ChipFault.DEAD:
            return ResponseApdu(b"", SW_NO_PRECISE_DIAGNOSIS).encode()
        if self.fault is ChipFault.GARBAGE:
            self.fault = None
            return os.urandom(13) + SW_OK.to_bytes(2)
        try:
            command = CommandApdu.parse(raw)
        except InvalidData:
            return ResponseApdu(b"", SW_WRONG_LENGTH).encode()
        return self._answer(command).encode()

    def _answer(self, command: CommandApdu) -> ResponseApdu:
        if self._channel is None or command.cla & _SM_CLA != _SM_CLA:
            if self._channel is not None and not self._is_select_application(command):
                self.reset()  # a plain command ends the secure messaging session
                return ResponseApdu(b"", SW_SECURITY_NOT_SATISFIED)
            return self._dispatch(command)
        channel = self._channel
        try:
            plain = channel.unwrap(command)
        except SecureMessagingError:
            self.reset()
            return ResponseApdu(b"", SW_SM_OBJECTS_INCORRECT)
        return channel.wrap(self._dispatch(plain))

    @staticmethod
    def _is_select_application(command: CommandApdu) -> bool:
        return command.ins == 0xA4 and command.p1 == 0x04  # noqa: PLR2004

    def _dispatch(self, command: CommandApdu) -> ResponseApdu:
        match command.ins:
            case 0xA4:
                return self._select(command)
            case 0x84:
                return self._get_challenge(command)
            case 0x82:
                return self._external_authenticate(command)
            case 0xB0:
                return self._read_binary(command)
            case _:
                return ResponseApdu(b"", SW_INS_NOT_SUPPORTED)

    def _select(self, command: CommandApdu) -> ResponseApdu:
        if command.p1 == 0x04:  # noqa: PLR2004 - by AID
            self.reset()
            self._app = command.data == EMRTD_AID
            return ResponseApdu(b"", SW_OK if self._app else SW_FILE_NOT_FOUND)
        if not self._app:
            return ResponseApdu(b"", SW_FILE_NOT_FOUND)
        if self._channel is None:
            return ResponseApdu(b"", SW_SECURITY_NOT_SATISFIED)
        content = self._files.get(int.from_bytes(command.data, "big"))
        if content is None:
            return ResponseApdu(b"", SW_FILE_NOT_FOUND)
        self._file = content
        return ResponseApdu(b"", SW_OK)

    def _get_challenge(self, command: CommandApdu) -> ResponseApdu:
        if not self._app or command.le != bac.NONCE_BYTES:
            return ResponseApdu(b"", SW_WRONG_LENGTH)
        self._rnd_ic = os.urandom(bac.NONCE_BYTES)
        return ResponseApdu(self._rnd_ic, SW_OK)

    def _external_authenticate(self, command: CommandApdu) -> ResponseApdu:
        rnd_ic, self._rnd_ic = self._rnd_ic, None
        if rnd_ic is None:
            return ResponseApdu(b"", SW_SECURITY_NOT_SATISFIED)
        answered = bac.chip_answer(self._keys, rnd_ic, self._k_ic, command.data)
        if answered is None:
            return ResponseApdu(b"", SW_AUTH_FAILED)
        answer, session = answered
        self._channel = SecureChannel(session)
        return ResponseApdu(answer, SW_OK)

    def _read_binary(self, command: CommandApdu) -> ResponseApdu:
        if self._channel is None:
            return ResponseApdu(b"", SW_SECURITY_NOT_SATISFIED)
        if self._file is None or command.p1 & _SFI_FLAG:
            return ResponseApdu(b"", SW_FILE_NOT_FOUND)
        offset = (command.p1 << 8) | command.p2
        if offset > len(self._file):
            return ResponseApdu(b"", SW_WRONG_P1P2)
        return ResponseApdu(self._file[offset : offset + (command.le or 0)], SW_OK)
