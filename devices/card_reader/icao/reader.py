"""Reading an eMRTD chip: access control (PACE or BAC), secure messaging, files, verdicts.

The protocol is written against a ``transmit`` coroutine (command APDU bytes in,
response APDU bytes out), so the PC/SC driver and the worked-example tests run
the same code.  The chip's EF.CardAccess decides the access control: PACE
when it offers a protocol this code runs (the only way in with a CAN), BAC
otherwise.  Elliptic curve steps take milliseconds each, so they go through an
``offload`` coroutine (the driver runs them on its PC/SC worker thread).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Protocol, TypeVar

from devices.card_reader.identity import BacKey, IdentityResult, PaceKey, PassiveAuth, ReadIssue
from devices.errors import AccessDenied, ProtocolError, Unsupported

from . import aa, bac, ca, card_security, lds, pa, pace, tlv
from .apdu import SHORT_READ_MAX, CommandApdu, ResponseApdu
from .keys import UnknownAlgorithm
from .sm import SecureChannel

T = TypeVar("T")

#: One APDU exchange: command bytes in, response bytes (data + SW) out.
Transmit = Callable[[bytes], Awaitable[bytes]]
#: Progress callback: ``(file name, bytes read, file size)``.
Progress = Callable[[str, int, int], None]


class Offload(Protocol):
    """Runs a CPU-bound step (milliseconds of elliptic curve arithmetic) off the event loop."""

    def __call__(self, fn: Callable[[], T]) -> Awaitable[T]:
        """Return an awaitable of ``fn()``."""
        ...


async def run_inline(fn: Callable[[], T]) -> T:
    """An :class:`Offload` that runs the step in place (tests and the worked examples)."""
    return fn()


EMRTD_AID = bytes.fromhex("A0000002471001")
#: READ BINARY offsets are 15 bits with INS B0.
_MAX_OFFSET = 0x7FFF
_HEADER_READ = 4
_INS_SELECT, _INS_GET_CHALLENGE, _INS_EXTERNAL_AUTH, _INS_READ_BINARY = 0xA4, 0x84, 0x82, 0xB0
_SW_FILE_NOT_FOUND = 0x6A82
#: Answers to EXTERNAL AUTHENTICATE meaning "wrong key": authentication failed,
#: security status not satisfied, wrong data, conditions of use not satisfied.
_SW_ACCESS_DENIED = frozenset({0x6300, 0x6982, 0x6A80, 0x6985})
#: A plain command refused because it ended a secure messaging session.
_SW_SESSION_ENDED = frozenset({0x6982, 0x6987, 0x6988})
#: 63Cx: authentication failed, x tries left (PACE with a PIN-like password).
_SW1_WARNING_COUNTER = 0x63
#: MSE:Set AT refused because the chip has no such password (no CAN on this chip).
_SW_REFERENCE_NOT_FOUND = 0x6A88

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

    def __init__(
        self,
        transmit: Transmit,
        chunk_bytes: int = SHORT_READ_MAX,
        offload: Offload = run_inline,
        channel: SecureChannel | None = None,
    ) -> None:
        """Talk through ``transmit``; ``channel`` resumes a secure messaging session."""
        self._transmit = transmit
        self._chunk = chunk_bytes
        self._offload = offload
        self._channel = channel
        #: PACE-CAM's verdict on the chip (``None``: no PACE-CAM, or not judged).
        self.cam_authentic: bool | None = None
        #: Why PACE-CAM's verdict could not be reached, if it could not.
        self.cam_issue: ReadIssue | None = None
        self._cam: tuple[pace.PaceTerminal, pace.PaceInfo, bytes] | None = None

    async def _send(self, command: CommandApdu) -> ResponseApdu:
        if self._channel is None:
            return ResponseApdu.parse(await self._transmit(command.encode()))
        protected = self._channel.protect(command)
        answer = ResponseApdu.parse(await self._transmit(protected.encode()))
        return self._channel.unprotect(answer)

    async def select_application(self) -> None:
        """SELECT the eMRTD application by AID (under secure messaging after PACE).

        Raises:
            ProtocolError: the chip has no eMRTD application.

        """
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

    async def read_card_access(self) -> list[pace.PaceInfo]:
        """The PACEInfos of EF.CardAccess in the master file (read in plain; empty: no PACE).

        Raises:
            ProtocolError: the file is there but malformed or unreadable.

        """
        select = CommandApdu(0x00, _INS_SELECT, 0x02, 0x0C, lds.Ef.CARD_ACCESS.to_bytes(2))
        answer = await self._send(select)
        if answer.sw in _SW_SESSION_ENDED:
            # The chip was still in an earlier read's secure messaging session: this
            # plain command ended it without being run, so it is sent again (once).
            answer = await self._send(select)
        if not answer.ok:
            return []  # BAC-only chips answer 6A82, some older ones other errors
        content = await self._read_selected(lambda *_: None, "CardAccess")
        return pace.parse_card_access(content)

    async def pace(
        self,
        key: BacKey | PaceKey,
        infos: list[pace.PaceInfo],
        *,
        terminal: pace.PaceTerminal | None = None,
    ) -> None:
        """Run PACE (ECDH generic mapping, AES or 3DES) with the first protocol of ``infos`` we run.

        ``terminal`` fixes the terminal's keys (the worked example).  One
        attempt: a refused token is reported at once, never retried.

        Raises:
            AccessDenied: the chip refused the password (wrong CAN or MRZ data),
                or has no CAN.
            Unsupported: no offered protocol is one this code runs.
            ProtocolError: the chip answered outside the protocol.

        """
        info = pace.preferred(infos)
        if info is None:
            offer = ", ".join(i.describe() for i in infos)
            raise Unsupported(
                f"unsupported: the chip offers PACE only as {offer}; this reader runs "
                "id-PACE-ECDH-GM (3DES, AES), -CAM (AES) and -IM (AES-128) on standardized "
                "or explicit curves, and id-PACE-DH-GM on DH groups 0-2"
            )
        reference, password = pace.password(key)
        what = "the CAN" if reference == pace.PASSWORD_CAN else "the MRZ data"
        if terminal is None:
            terminal = pace.PaceTerminal(info, password)
        mse = pace.mse_set_at(info, reference, with_parameter_id=len(infos) > 1)
        answer = await self._send(mse)
        if answer.sw == _SW_REFERENCE_NOT_FOUND and reference == pace.PASSWORD_CAN:
            raise AccessDenied("access denied: this card does not support a CAN; use the MRZ data")
        if not answer.ok:
            raise ProtocolError(f"PACE: MSE:Set AT failed (SW {answer.sw:04X})")
        nonce = await self._authenticate(None, b"", pace.GA_NONCE)
        mapping = await self._offload(lambda: terminal.decrypt_nonce(nonce))
        chip_mapping = await self._authenticate(pace.GA_MAP_TERMINAL, mapping, pace.GA_MAP_CHIP)
        ephemeral = await self._offload(lambda: terminal.map_nonce(chip_mapping))
        chip_ephemeral = await self._authenticate(
            pace.GA_EPHEMERAL_TERMINAL, ephemeral, pace.GA_EPHEMERAL_CHIP
        )
        t_ifd = await self._offload(lambda: terminal.agree(chip_ephemeral))
        answer = await self._send(
            pace.general_authenticate(pace.GA_TOKEN_TERMINAL, t_ifd, last=True)
        )
        if answer.sw in _SW_ACCESS_DENIED or answer.sw >> 8 == _SW1_WARNING_COUNTER:
            raise AccessDenied(f"access denied: {what} does not match the card")
        if not answer.ok:
            raise ProtocolError(f"PACE: mutual authentication failed (SW {answer.sw:04X})")
        keys = terminal.check_chip_token(pace.dynamic_auth_object(answer.data, pace.GA_TOKEN_CHIP))
        self._channel = keys.channel()
        if info.chip_authentication:
            self._cam = (terminal, info, pace.dynamic_auth_object(answer.data, pace.GA_CAM_DATA))

    async def check_cam(self) -> None:
        """After PACE-CAM: read EF.CardSecurity and check the chip's static key (in the MF).

        Sets :attr:`cam_authentic` (true: the chip holds the key EF.CardSecurity
        publishes and the document signer signed that file) or :attr:`cam_issue`.

        Raises:
            ProtocolError: the chip broke the protocol while the file was read.

        """
        if self._cam is None:
            return
        terminal, info, encrypted = self._cam
        if not await self.select_file(card_security.FID):
            self.cam_issue = ReadIssue(
                subject="EF.CardSecurity",
                status="unreadable",
                reason="the chip has no EF.CardSecurity",
            )
            return
        content = await self._read_selected(lambda *_: None, "CardSecurity")

        def judge() -> tuple[bool | None, ReadIssue | None]:
            try:
                parsed = card_security.parse_card_security(content)
                point = card_security.cam_point(parsed, terminal.domain, info.parameter_id or 0)
                mapped = pace.verify_cam(terminal, encrypted, point)
            except ProtocolError as exc:
                return None, ReadIssue(
                    subject="EF.CardSecurity", status="unreadable", reason=str(exc)
                )
            signed = pa.signed_data_valid(parsed.signed_data)
            if signed.unknown is not None:
                return None, ReadIssue(
                    subject="EF.CardSecurity signature", status="unknown", reason=signed.unknown
                )
            return mapped and signed.valid, None

        self.cam_authentic, self.cam_issue = await self._offload(judge)

    async def _authenticate(self, tag: int | None, value: bytes, answer_tag: int) -> bytes:
        """One chained GENERAL AUTHENTICATE step; the value of the chip's ``answer_tag`` object.

        Raises:
            ProtocolError: the chip refused the step or its answer lacks the object.

        """
        answer = await self._send(pace.general_authenticate(tag, value, last=False))
        if not answer.ok:
            raise ProtocolError(f"PACE: GENERAL AUTHENTICATE failed (SW {answer.sw:04X})")
        return pace.dynamic_auth_object(answer.data, answer_tag)

    async def active_authentication(self, dg15: bytes, signature_algorithm: str | None) -> bool:
        """INTERNAL AUTHENTICATE with a fresh challenge; True when DG15's key signed it.

        Raises:
            ProtocolError: DG15 or the algorithm DG14 names is not understood.

        """
        key = await self._offload(lambda: aa.parse_dg15(dg15))
        nonce = aa.challenge()
        answer = await self._send(aa.command(nonce))
        if not answer.ok or not answer.data:
            return False
        signature = answer.data
        return await self._offload(lambda: aa.verify(key, nonce, signature, signature_algorithm))

    async def chip_authentication(self, dg14: ca.Dg14) -> bool | None:
        """Chip Authentication with DG14's key; ``None`` when DG14 offers no protocol we run.

        Secure messaging continues under the new keys: the chip is authentic
        when it answers a SELECT of EF.COM under them.  After a failure the
        session is over (the read has already been completed).

        Raises:
            ProtocolError: DG14's key is not understood.

        """
        chosen = dg14.choice()
        if chosen is None:
            return None
        info, key = chosen
        terminal = await self._offload(lambda: ca.CaTerminal(info, key))
        public = await self._offload(terminal.public_key)
        for command in ca.commands(info, public):
            if not (await self._send(command)).ok:
                return False
        self._channel = await self._offload(terminal.session)
        try:
            return await self.select_file(lds.Ef.COM)
        except ProtocolError:  # the chip's MAC is wrong, or it refused ours (6988)
            return False

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
        return await self._read_selected(progress, name)

    async def _read_selected(self, progress: Progress, name: str) -> bytes:
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


async def open_chip(session: ChipSession, key: BacKey | PaceKey) -> None:
    """Access control: PACE when EF.CardAccess offers a protocol we run, else BAC; then SELECT.

    Raises:
        AccessDenied: the chip refused the key, or a CAN was given to a chip without PACE.
        Unsupported: a CAN, and the chip offers PACE only in a form not implemented.
        ProtocolError: the chip broke the protocol.

    """
    infos = await session.read_card_access()
    if any(info.supported for info in infos) or (infos and isinstance(key, PaceKey)):
        await session.pace(key, infos)
        await session.check_cam()
        await session.select_application()
        return
    if isinstance(key, PaceKey):
        raise AccessDenied("access denied: this card does not support a CAN; use the MRZ data")
    await session.select_application()
    await session.basic_access_control(key)


async def read_identity(
    transmit: Transmit,
    key: BacKey | PaceKey,
    progress: Progress,
    *,
    today: date,
    cscas: Iterable[pa.Csca] | None,
    chunk_bytes: int = SHORT_READ_MAX,
    offload: Offload = run_inline,
) -> IdentityResult:
    """Open the chip (PACE or BAC) and read COM, SOD, DG1, DG2, DG13 (DG14, DG15 when listed).

    Every read data group is checked against EF.SOD; the result carries each
    passive authentication verdict, and the Active (DG15) and Chip (DG14)
    Authentication verdicts, run after the files.  Nothing is returned unless
    every file was read in full.  A read never fails on what it does not fully
    understand: an optional data group (DG13-15) that breaks its format is
    dropped, and an algorithm or layout not implemented leaves its verdict
    unjudged; each is listed in ``issues``, with every data group EF.SOD does
    not vouch for.

    Raises:
        AccessDenied: the chip refused the key.
        Unsupported: a CAN for a chip whose PACE variant is not implemented.
        ProtocolError: the chip or a file broke the protocol or format.
        MediaError, HardwareError, Offline: from ``transmit`` or ``offload``.

    """
    session = ChipSession(transmit, chunk_bytes, offload)
    await open_chip(session, key)
    issues: list[ReadIssue] = []
    com = await session.read_file(lds.Ef.COM, "COM", progress)
    sod = await session.read_file(lds.Ef.SOD, "SOD", progress)
    listed = _listed_groups(com, sod, issues)
    groups: dict[int, bytes] = {}
    for number, (name, fid) in READ_GROUPS.items():
        if number in listed or number in (1, 2):
            content = await session.read_file(fid, name, progress)
            if content is not None:
                groups[number] = content
    if 1 not in groups or 2 not in groups:  # noqa: PLR2004 - DG1 and DG2 are mandatory
        raise ProtocolError("the chip lacks DG1 or DG2")
    mrz = lds.parse_dg1(groups[1], today)
    face = lds.parse_dg2(groups[2])
    try:
        face = await offload(lambda: lds.display_jpeg(face))
    except ProtocolError as exc:
        issues.append(ReadIssue(subject="DG2", status="unknown", reason=str(exc)))
    dg13 = _optional(issues, "DG13", groups.get(13), lds.parse_dg13)
    dg14 = _optional(issues, "DG14", groups.get(14), ca.parse_dg14)
    if session.cam_issue is not None:
        issues.append(session.cam_issue)
    cam_done = session.cam_authentic is not None or session.cam_issue is not None
    active, chip = await _authenticate_chip(
        session, groups.get(15), None if cam_done else dg14, dg14, issues
    )
    if cam_done:
        chip = session.cam_authentic
    # Hundreds of CSCAs and curves cryptography lacks take tens of ms: off the event loop.
    passive = await offload(lambda: _passive_auth(sod, groups, cscas, issues))
    return IdentityResult(
        mrz=mrz,
        dg13=dg13,
        face=face,
        passive_auth=passive,
        chip_authentication=chip,
        active_authentication=active,
        issues=issues,
    )


def _listed_groups(com: bytes | None, sod: bytes | None, issues: list[ReadIssue]) -> list[int]:
    """The data groups to read: EF.COM's list, else EF.SOD's (an unreadable EF.COM is an issue)."""
    if com is None:
        issues.append(
            ReadIssue(subject="EF.COM", status="unreadable", reason="the chip has no EF.COM")
        )
    else:
        try:
            return lds.parse_com(com)
        except ProtocolError as exc:
            issues.append(ReadIssue(subject="EF.COM", status="unreadable", reason=str(exc)))
    try:
        return sorted(pa.parse_sod(sod).hashes) if sod is not None else []
    except ProtocolError:
        return []  # reported with passive authentication


def _passive_auth(
    sod: bytes | None,
    groups: Mapping[int, bytes],
    cscas: Iterable[pa.Csca] | None,
    issues: list[ReadIssue],
) -> PassiveAuth:
    """Passive authentication; without a readable EF.SOD every verdict is false (or null)."""
    reason = "the chip has no EF.SOD"
    if sod is not None:
        try:
            return pa.passive_auth(sod, groups, cscas, issues)
        except ProtocolError as exc:
            reason = str(exc)
    issues.append(ReadIssue(subject="EF.SOD", status="unreadable", reason=reason))
    issues.extend(
        ReadIssue(subject=f"DG{n}", status="unverified", reason="no readable EF.SOD vouches for it")
        for n in sorted(groups)
    )
    return PassiveAuth(
        hashes_valid=False, signature_valid=False, chain_valid=None if cscas is None else False
    )


async def _authenticate_chip(
    session: ChipSession,
    dg15: bytes | None,
    dg14: ca.Dg14 | None,
    aa_info: ca.Dg14 | None,
    issues: list[ReadIssue],
) -> tuple[bool | None, bool | None]:
    """Active, then Chip Authentication (``dg14`` None: not run): verdicts, unjudged as issues."""
    # Active Authentication first: Chip Authentication ends the session when it fails.
    active = None
    if dg15 is not None:
        algorithm = aa_info.aa_signature if aa_info else None
        try:
            active = await session.active_authentication(dg15, algorithm)
        except UnknownAlgorithm as exc:
            issues.append(
                ReadIssue(subject="Active Authentication", status="unknown", reason=str(exc))
            )
        except ProtocolError as exc:
            issues.append(ReadIssue(subject="DG15", status="unreadable", reason=str(exc)))
    chip = None
    if dg14 is not None:
        try:
            chip = await session.chip_authentication(dg14)
        except ProtocolError as exc:  # DG14's key not understood: nothing was sent
            issues.append(
                ReadIssue(subject="Chip Authentication", status="unknown", reason=str(exc))
            )
    return active, chip


def _optional(
    issues: list[ReadIssue], name: str, content: bytes | None, parse: Callable[[bytes], T]
) -> T | None:
    """Parse an optional data group; one that breaks its format is dropped with an issue."""
    if content is None:
        return None
    try:
        return parse(content)
    except ProtocolError as exc:
        issues.append(ReadIssue(subject=name, status="unreadable", reason=str(exc)))
        return None
