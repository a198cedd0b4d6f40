"""The chip side of an eMRTD: EF.CardAccess, PACE, BAC, secure messaging and the files.

It answers like an ICAO 9303 chip: EF.CardAccess (in the master file) is
readable by anyone; the application's files only after PACE (with the CAN or
the MRZ data, when the chip has EF.CardAccess) or BAC; a wrong key gets
``6300``; a broken MAC ends the secure messaging session (``6988``).  With
:class:`ChipKeys` it runs Chip Authentication (re-keying secure messaging
after its answer) and Active Authentication (INTERNAL AUTHENTICATE).  Faults
(:class:`ChipFault`) make it answer garbage or fail like a dying chip.
"""

from __future__ import annotations

import os
from enum import Enum

from devices.card_reader.icao import aa, aes, bac, ca, pace, tlv
from devices.card_reader.icao.apdu import CommandApdu, ResponseApdu
from devices.card_reader.icao.lds import Ef
from devices.card_reader.icao.reader import EMRTD_AID
from devices.card_reader.icao.sm import SecureChannel, SecureMessagingError
from devices.card_reader.identity import BacKey, PaceKey
from devices.errors import InvalidData, ProtocolError
from devices.sim.card_reader.vcard.files import ChipKeys

SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_AUTH_FAILED = 0x6300
SW_SECURITY_NOT_SATISFIED = 0x6982
SW_CONDITIONS_NOT_SATISFIED = 0x6985
SW_SM_OBJECTS_INCORRECT = 0x6988
SW_WRONG_DATA = 0x6A80
SW_FILE_NOT_FOUND = 0x6A82
SW_REFERENCE_NOT_FOUND = 0x6A88
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
    """One chip: its files by file identifier, the key its MRZ gives, its CAN and private keys.

    With an EF.CardAccess among ``files`` the chip runs PACE with the first
    protocol listed there (the CAN needs ``can``); BAC works either way.
    ``keys`` are the private keys it authenticates with (a clone's differ from
    the public keys its DG14 and DG15 hold).
    """

    def __init__(
        self,
        files: dict[int, bytes],
        key: BacKey,
        can: str | None = None,
        keys: ChipKeys | None = None,
    ) -> None:
        self._files = files
        self._chip_keys = keys
        self._mrz = key
        self._can = can
        self._keys = bac.AccessKeys.from_mrz_information(key.mrz_information)
        self._k_ic = os.urandom(bac.KEY_BYTES)
        card_access = files.get(Ef.CARD_ACCESS)
        self._pace_infos = pace.parse_card_access(card_access) if card_access else []
        self.fault: ChipFault | None = None
        self.reset()

    def reset(self) -> None:
        """Power cycle: nothing selected, no session."""
        self._app = False
        self._rnd_ic: bytes | None = None
        self._pace: pace.PaceChip | None = None
        self._ca: ca.CaInfo | None = None
        self._channel: SecureChannel | None = None
        self._rekey: SecureChannel | None = None
        self._file: bytes | None = None
        self._file_public = False

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
            if self._is_select_application(command):
                self.reset()  # a plain SELECT of the application starts over
            elif self._channel is not None:
                self.reset()  # a plain command ends the secure messaging session
                return ResponseApdu(b"", SW_SECURITY_NOT_SATISFIED)
            return self._dispatch(command)
        channel = self._channel
        try:
            plain = channel.unwrap(command)
        except SecureMessagingError:
            self.reset()
            return ResponseApdu(b"", SW_SM_OBJECTS_INCORRECT)
        response = channel.wrap(self._dispatch(plain))
        if self._rekey is not None:
            # Chip Authentication answers under the old keys, then switches.
            self._channel, self._rekey = self._rekey, None
        return response

    @staticmethod
    def _is_select_application(command: CommandApdu) -> bool:
        return command.ins == 0xA4 and command.p1 == 0x04  # noqa: PLR2004

    def _dispatch(self, command: CommandApdu) -> ResponseApdu:
        handlers = {
            0xA4: self._select,
            0x84: self._get_challenge,
            0x82: self._external_authenticate,
            0xB0: self._read_binary,
            pace.INS_MSE: self._mse,
            pace.INS_GENERAL_AUTHENTICATE: self._general_authenticate,
            aa.INS_INTERNAL_AUTHENTICATE: self._internal_authenticate,
        }
        handler = handlers.get(command.ins)
        return handler(command) if handler else ResponseApdu(b"", SW_INS_NOT_SUPPORTED)

    def _select(self, command: CommandApdu) -> ResponseApdu:
        if command.p1 == 0x04:  # noqa: PLR2004 - by AID
            self._app = command.data == EMRTD_AID
            self._file = None
            return ResponseApdu(b"", SW_OK if self._app else SW_FILE_NOT_FOUND)
        fid = int.from_bytes(command.data, "big")
        if not self._app:
            # The master file holds EF.CardAccess, readable without access control.
            content = self._files.get(fid) if fid == Ef.CARD_ACCESS else None
            if content is None:
                return ResponseApdu(b"", SW_FILE_NOT_FOUND)
            self._file, self._file_public = content, True
            return ResponseApdu(b"", SW_OK)
        if self._channel is None:
            return ResponseApdu(b"", SW_SECURITY_NOT_SATISFIED)
        content = self._files.get(fid) if fid != Ef.CARD_ACCESS else None
        if content is None:
            return ResponseApdu(b"", SW_FILE_NOT_FOUND)
        self._file, self._file_public = content, False
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

    def _mse(self, command: CommandApdu) -> ResponseApdu:
        """MSE: Set AT for PACE (plain) or Chip Authentication, Set KAT (3DES CA)."""
        try:
            objects = {item.tag: item.value for item in tlv.iter_tlv(command.data)}
        except tlv.TlvError:
            return ResponseApdu(b"", SW_WRONG_DATA)
        p1p2 = (command.p1, command.p2)
        if p1p2 == (0xC1, 0xA4) and self._channel is None:
            return self._mse_pace(objects)
        if p1p2 in (ca.MSE_SET_AT, ca.MSE_SET_KAT) and self._channel is not None:
            return self._mse_chip_authentication(p1p2, objects)
        return ResponseApdu(b"", SW_CONDITIONS_NOT_SATISFIED)

    def _chip_authentication_info(self) -> ca.CaInfo | None:
        dg14 = self._files.get(Ef.DG14)
        chosen = ca.parse_dg14(dg14).choice() if dg14 and self._chip_keys else None
        return chosen[0] if chosen else None

    def _mse_chip_authentication(
        self, p1p2: tuple[int, int], objects: dict[int, bytes]
    ) -> ResponseApdu:
        info = self._chip_authentication_info()
        keys = self._chip_keys
        if info is None or keys is None:
            return ResponseApdu(b"", SW_REFERENCE_NOT_FOUND)
        if p1p2 == ca.MSE_SET_AT:
            self._ca = info
            return ResponseApdu(b"", SW_OK)
        try:  # Set KAT carries the terminal's key itself (3DES)
            self._rekey = ca.chip_session(keys.ca, info, objects.get(ca.DO_KAT_KEY, b""))
        except ValueError:
            return ResponseApdu(b"", SW_WRONG_DATA)
        return ResponseApdu(b"", SW_OK)

    def _internal_authenticate(self, command: CommandApdu) -> ResponseApdu:
        keys = self._chip_keys
        if self._channel is None:
            return ResponseApdu(b"", SW_SECURITY_NOT_SATISFIED)
        if keys is None or Ef.DG15 not in self._files:
            return ResponseApdu(b"", SW_INS_NOT_SUPPORTED)
        if len(command.data) != aa.CHALLENGE_BYTES:
            return ResponseApdu(b"", SW_WRONG_LENGTH)
        return ResponseApdu(aa.sign(keys.aa, command.data, keys.aa_signature), SW_OK)

    def _mse_pace(self, objects: dict[int, bytes]) -> ResponseApdu:
        """MSE:Set AT for PACE: the protocol (one EF.CardAccess offers) and the password."""
        protocol = objects.get(pace.DO_PROTOCOL, b"")
        info = next((i for i in self._pace_infos if pace.oid_bytes(i.protocol) == protocol), None)
        reference = objects.get(pace.DO_PASSWORD, b"")
        if info is None or not info.supported:
            return ResponseApdu(b"", SW_WRONG_DATA)
        if reference == bytes([pace.PASSWORD_CAN]) and self._can is not None:
            secret = pace.password(PaceKey(self._can))[1]
        elif reference == bytes([pace.PASSWORD_MRZ]):
            secret = pace.password(self._mrz)[1]
        else:
            return ResponseApdu(b"", SW_REFERENCE_NOT_FOUND)
        self._pace = pace.PaceChip(info, secret, nonce=os.urandom(aes.BLOCK))
        return ResponseApdu(b"", SW_OK)

    def _general_authenticate(self, command: CommandApdu) -> ResponseApdu:
        """The four PACE steps (told apart by the data object sent), or Chip Authentication."""
        if self._ca is not None and self._chip_keys is not None:
            return self._chip_authenticate(self._ca, self._chip_keys, command)
        run = self._pace
        if run is None:
            return ResponseApdu(b"", SW_CONDITIONS_NOT_SATISFIED)
        try:
            template = tlv.read_tlv(command.data)
            step = tlv.read_tlv(template.value) if template.value else None
            answer = self._pace_step(run, step)
        except ProtocolError:
            self._pace = None
            return ResponseApdu(b"", SW_WRONG_DATA)
        if answer is None:
            self._pace = None  # a wrong password: the run is over, no retry counter for a CAN
            return ResponseApdu(b"", SW_AUTH_FAILED)
        return ResponseApdu(tlv.encode(0x7C, answer), SW_OK)

    def _chip_authenticate(
        self, info: ca.CaInfo, keys: ChipKeys, command: CommandApdu
    ) -> ResponseApdu:
        self._ca = None
        try:
            template = tlv.read_tlv(command.data)
            ephemeral = tlv.find(template.value, 0x80)
            if ephemeral is None:
                return ResponseApdu(b"", SW_WRONG_DATA)
            self._rekey = ca.chip_session(keys.ca, info, ephemeral.value)
        except (ProtocolError, ValueError):
            return ResponseApdu(b"", SW_WRONG_DATA)
        return ResponseApdu(tlv.encode(0x7C, b""), SW_OK)

    def _pace_step(self, run: pace.PaceChip, step: tlv.Tlv | None) -> bytes | None:
        if step is None:
            return tlv.encode(pace.GA_NONCE, run.encrypted_nonce())
        match step.tag:
            case pace.GA_MAP_TERMINAL:
                return tlv.encode(pace.GA_MAP_CHIP, run.map_nonce(step.value))
            case pace.GA_EPHEMERAL_TERMINAL:
                return tlv.encode(pace.GA_EPHEMERAL_CHIP, run.agree(step.value))
            case pace.GA_TOKEN_TERMINAL:
                chip_token = run.answer_token(step.value)
                if chip_token is None or run.keys is None:
                    return None
                # The answer goes out in plain; secure messaging starts with the next command.
                self._pace = None
                self._channel = run.keys.channel()
                return tlv.encode(pace.GA_TOKEN_CHIP, chip_token)
            case _:
                raise ProtocolError("PACE: unexpected data object")

    def _read_binary(self, command: CommandApdu) -> ResponseApdu:
        if self._channel is None and not self._file_public:
            return ResponseApdu(b"", SW_SECURITY_NOT_SATISFIED)
        if self._file is None or command.p1 & _SFI_FLAG:
            return ResponseApdu(b"", SW_FILE_NOT_FOUND)
        offset = (command.p1 << 8) | command.p2
        if offset > len(self._file):
            return ResponseApdu(b"", SW_WRONG_P1P2)
        return ResponseApdu(self._file[offset : offset + (command.le or 0)], SW_OK)
