"""Reading an eMRTD chip: SELECT, BAC, secure messaging, files, passive authentication.

The protocol is written against a ``transmit`` coroutine (command APDU bytes in,
response APDU bytes out), so the PC/SC driver and the worked-example tests run
the same code.  Access is BAC only; PACE (the ``can`` key) is not implemented.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from cryptography import x509

from devices.card_reader.identity import BacKey, IdentityResult
from devices.errors import AccessDenied, ProtocolError

from . import bac, lds, pa, tlv
from .apdu import CommandApdu, ResponseApdu
from .sm import SecureChannel

#: One APDU exchange: command bytes in, response bytes (data + SW) out.
Transmit = Callable[[bytes], Awaitable[bytes]]
#: Progress callback: ``(file name, bytes read, file size)``.
Progress = Callable[[str, int, int], None]

EMRTD_AID = bytes.fromhex("A0000002471001")
#: Largest READ BINARY that fits a short response under 3DES secure messaging.
SHORT_READ_MAX = 0xDF
#: READ BINARY offsets are 15 bits with INS B0.
_MAX_OFFSET = 0x7FFF
_HEADER_READ = 4
_INS_SELECT, _INS_GET_CHALLENGE, _INS_EXTERNAL_AUTH, _INS_READ_BINARY = 0xA4, 0x84, 0x82, 0xB0
_SW_FILE_NOT_FOUND = 0x6A82
#: Answers to EXTERNAL AUTHENTICATE meaning "wrong key": authentication failed,
#: security status not satisfied, wrong data, conditions of use not satisfied.
_SW_ACCESS_DENIED = frozenset({0x6300, 0x6982, 0x6A80, 0x6985})

#: Data groups read when EF.COM lists them (the portrait and MRZ are mandatory).
READ_GROUPS: Mapping[int, tuple[str, int]] = {
    1: ("DG1", lds.Ef.DG1),
    2: ("DG2", lds.Ef.DG2),
    13: ("DG13", lds.Ef.DG13),
    14: ("DG14", lds.Ef.DG14),
    15: ("DG15", lds.Ef.DG15),
}


@dataclass(frozen=True, slots=True)
class Nonces:
    """The terminal's BAC randomness: RND.IFD (8 bytes) and K.IFD (16 bytes)."""

    rnd_ifd: bytes
    k_ifd: bytes

    @classmethod
    def fresh(cls) -> Nonces:
        """New random nonces from the OS."""
        return cls(os.urandom(bac.NONCE_BYTES), os.urandom(bac.KEY_BYTES))


class ChipSession:
    """One conversation with the chip's eMRTD application."""

    def __init__(self, transmit: Transmit, chunk_bytes: int = SHORT_READ_MAX) -> None:
        self._transmit = transmit
        self._chunk = chunk_bytes
        self._channel: SecureChannel | None = None

    async def _send(self, command: CommandApdu) -> ResponseApdu:
        if self._channel is None:
            return ResponseApdu.parse(await self._transmit(command.encode()))
        protected = self._channel.protect(command)
        answer = ResponseApdu.parse(await self._transmit(protected.encode()))
        return self._channel.unprotect(answer)

    async def select_application(self) -> None:
        """SELECT the eMRTD application by AID (plain).

        Raises:
            ProtocolError: the chip has no eMRTD application.

        """
        self._channel = None
        answer = await self._send(CommandApdu(0x00, _INS_SELECT, 0x04, 0x0C, EMRTD_AID))
        if not answer.ok:
            raise ProtocolError(f"the chip has no eMRTD application (SW {answer.sw:04X})")

    async def basic_access_control(self, key: BacKey, nonces: Nonces | None = None) -> None:
        """Run BAC with ``key`` and switch to secure messaging.

        Raises:
            AccessDenied: the chip refused the key (wrong MRZ data): no retry here.
            ProtocolError: the chip answered outside the protocol.

        """
        nonces = nonces or Nonces.fresh()
        keys = bac.AccessKeys.from_mrz_information(key.mrz_information)
        challenge = await self._send(
            CommandApdu(0x00, _INS_GET_CHALLENGE, 0, 0, le=bac.NONCE_BYTES)
        )
        if not challenge.ok or len(challenge.data) != bac.NONCE_BYTES:
            raise ProtocolError(f"GET CHALLENGE failed (SW {challenge.sw:04X})")
        rnd_ic = challenge.data
        cryptogram = bac.terminal_cryptogram(keys, rnd_ic, nonces.rnd_ifd, nonces.k_ifd)
        answer = await self._send(
            CommandApdu(0x00, _INS_EXTERNAL_AUTH, 0, 0, cryptogram, le=bac.AUTH_DATA_BYTES)
        )
        if answer.sw in _SW_ACCESS_DENIED:
            raise AccessDenied("access denied: the MRZ data does not match the card")
        if not answer.ok:
            raise ProtocolError(f"EXTERNAL AUTHENTICATE failed (SW {answer.sw:04X})")
        session = bac.terminal_session(keys, rnd_ic, nonces.rnd_ifd, nonces.k_ifd, answer.data)
        self._channel = SecureChannel(session)

    async def select_file(self, fid: int) -> bool:
        """SELECT an elementary file of the application; False when it does not exist.

        Raises:
            ProtocolError: any other failure.

        """
        answer = await self._send(CommandApdu(0x00, _INS_SELECT, 0x02, 0x0C, fid.to_bytes(2)))
        if answer.sw == _SW_FILE_NOT_FOUND:
            return False
        if not answer.ok:
            raise ProtocolError(f"SELECT of file {fid:04X} failed (SW {answer.sw:04X})")
        return True

    async def read_binary(self, offset: int, length: int) -> bytes:
        """READ BINARY ``length`` bytes at ``offset`` of the selected file.

        Raises:
            ProtocolError: the chip refused or answered short of a whole header.

        """
        if offset > _MAX_OFFSET:
            raise ProtocolError("file over 32 KiB: READ BINARY with odd INS is not supported")
        answer = await self._send(
            CommandApdu(0x00, _INS_READ_BINARY, offset >> 8, offset & 0xFF, le=length)
        )
        if not answer.ok or not answer.data:
            raise ProtocolError(f"READ BINARY failed (SW {answer.sw:04X})")
        return answer.data

    async def read_file(self, fid: int, name: str, progress: Progress) -> bytes | None:
        """Read a whole TLV file (``None`` when the chip does not have it), reporting progress.

        Raises:
            ProtocolError: the file is malformed or a read fails.

        """
        if not await self.select_file(fid):
            return None
        data = bytearray(await self.read_binary(0, _HEADER_READ))
        _tag, length, value_offset = tlv.read_header(bytes(data) + bytes(_HEADER_READ))
        total = value_offset + length
        del data[total:]
        progress(name, len(data), total)
        while len(data) < total:
            want = min(self._chunk, total - len(data))
            data += await self.read_binary(len(data), want)
            progress(name, min(len(data), total), total)
        return bytes(data[:total])


async def read_identity(
    transmit: Transmit,
    key: BacKey,
    progress: Progress,
    *,
    today: date,
    cscas: Iterable[x509.Certificate] | None,
    chunk_bytes: int = SHORT_READ_MAX,
    nonces: Nonces | None = None,
) -> IdentityResult:
    """Open the chip with BAC and read COM, SOD, DG1, DG2, DG13 (DG14, DG15 when listed).

    Every read data group is checked against EF.SOD; the result carries each
    passive authentication verdict.  Nothing is returned unless every file was
    read in full.

    Raises:
        AccessDenied: the chip refused the key.
        ProtocolError: the chip or a file broke the protocol or format.
        MediaError, HardwareError, Offline: from ``transmit``.

    """
    session = ChipSession(transmit, chunk_bytes)
    await session.select_application()
    await session.basic_access_control(key, nonces)
    com = await session.read_file(lds.Ef.COM, "COM", progress)
    if com is None:
        raise ProtocolError("the chip has no EF.COM")
    listed = lds.parse_com(com)
    sod = await session.read_file(lds.Ef.SOD, "SOD", progress)
    if sod is None:
        raise ProtocolError("the chip has no EF.SOD")
    groups: dict[int, bytes] = {}
    for number, (name, fid) in READ_GROUPS.items():
        if number in listed or number in (1, 2):
            content = await session.read_file(fid, name, progress)
            if content is not None:
                groups[number] = content
    if 1 not in groups or 2 not in groups:  # noqa: PLR2004 - DG1 and DG2 are mandatory
        raise ProtocolError("the chip lacks DG1 or DG2")
    return IdentityResult(
        mrz=lds.parse_dg1(groups[1], today),
        dg13=lds.parse_dg13(groups[13]) if 13 in groups else None,  # noqa: PLR2004
        face=lds.parse_dg2(groups[2]),
        passive_auth=pa.passive_auth(sod, groups, cscas),
    )
