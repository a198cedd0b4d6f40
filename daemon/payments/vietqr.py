"""NAPAS VietQR payloads: build a dynamic transfer request, read any VietQR back.

A VietQR code is an EMVCo merchant-presented QR payload (EMV QRCPS-MPM 1.1) with
NAPAS's account template in ID 38 (NAPAS "QR Format T&C" v1.0 and IBFT v1.5.2):

====  ==========================================  =========================
 ID    field                                        value
====  ==========================================  =========================
 00    payload format indicator                     ``01``
 01    point of initiation                          ``11`` static, ``12`` dynamic
 38    merchant account information (NAPAS)         00 GUID ``A000000727``;
                                                    01 beneficiary: 00 acquirer
                                                    BIN, 01 account or card number;
                                                    02 service code
 53    transaction currency (ISO 4217)              ``704`` (VND)
 54    transaction amount                           whole VND, digits
 58    country code                                 ``VN``
 62    additional data                              01 bill number, 08 purpose
 63    CRC-16/CCITT-FALSE over everything before    4 upper-case hex digits
       it, ``6304`` included
====  ==========================================  =========================

Every field is ID (2 digits), length (2 digits, at most 99) and value.  What
this module builds is printable ASCII only (the EMVCo "ans" set): Vietnamese
banks' apps show, and their statements keep, no diacritics in a transfer's
purpose, so a caller transliterates before, knowingly.  The parser reads the
bytes other implementations produce (some put UTF-8 in ID 62; lengths are then
byte counts) and checks the CRC.  docs/payments.md has the sources.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from enum import StrEnum

NAPAS_GUID = "A000000727"
CURRENCY_VND = "704"
COUNTRY_VN = "VN"
#: Longest value of one field (the length is two decimal digits).
MAX_FIELD = 99
#: Longest account or card number in ID 38/01/01.
MAX_ACCOUNT = 19
#: Longest bill number or purpose in ID 62 (EMVCo additional data subfields).
MAX_ADDITIONAL = 25
#: Longest amount in ID 54, in characters.
MAX_AMOUNT_DIGITS = 13

_BIN = re.compile(r"[0-9]{6}")
_ACCOUNT = re.compile(r"[0-9A-Za-z]+")
_CARD = re.compile(r"[0-9]+")
_ANS = re.compile(r"[\x20-\x7e]*")


class VietQRError(ValueError):
    """Input that makes no valid VietQR payload, or a payload that is not one."""


class Service(StrEnum):
    """NAPAS service codes (ID 38/02): transfer to an account or to a card."""

    ACCOUNT = "QRIBFTTA"
    CARD = "QRIBFTTC"


@dataclass(frozen=True, slots=True)
class Transfer:
    """What a VietQR payload asks for.

    ``amount`` is whole VND (None: the payer types it, a static code);
    ``bill_number`` and ``purpose`` are ID 62's subfields 01 and 08.
    """

    bin: str
    account: str
    service: Service = Service.ACCOUNT
    amount: int | None = None
    bill_number: str | None = None
    purpose: str | None = None
    dynamic: bool = True


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, initial 0xFFFF, not reflected, no final xor."""
    return binascii.crc_hqx(data, 0xFFFF)


def tlv(field_id: str, value: str) -> str:
    """One field: ID, two-digit length, value.

    Raises:
        VietQRError: a value over 99 bytes, or a malformed ID.

    """
    if not re.fullmatch(r"[0-9]{2}", field_id):
        raise VietQRError(f"field ID must be two digits, got {field_id!r}")
    size = len(value.encode())
    if size > MAX_FIELD:
        raise VietQRError(f"field {field_id} is {size} bytes, longer than {MAX_FIELD}")
    return f"{field_id}{size:02d}{value}"


def _text(name: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    if not value or len(value) > limit:
        raise VietQRError(f"{name} must be 1 to {limit} characters, got {len(value)}")
    if not _ANS.fullmatch(value):
        bad = next(c for c in value if not _ANS.fullmatch(c))
        raise VietQRError(
            f"{name} may hold printable ASCII only (no diacritics), found {bad!r} in {value!r}"
        )
    return value


def _check(transfer: Transfer) -> None:
    if not _BIN.fullmatch(transfer.bin):
        raise VietQRError(
            f"acquirer BIN must be 6 digits (the bank's NAPAS BIN), got {transfer.bin!r}"
        )
    number = transfer.account
    what = "card number" if transfer.service is Service.CARD else "account number"
    if not number or len(number) > MAX_ACCOUNT:
        raise VietQRError(f"{what} must be 1 to {MAX_ACCOUNT} characters, got {len(number)}")
    pattern = _CARD if transfer.service is Service.CARD else _ACCOUNT
    if not pattern.fullmatch(number):
        allowed = "digits" if transfer.service is Service.CARD else "letters and digits"
        raise VietQRError(f"{what} may hold {allowed} only, got {number!r}")
    amount = transfer.amount
    if amount is not None and (
        isinstance(amount, bool)
        or not isinstance(amount, int)
        or amount <= 0
        or len(str(amount)) > MAX_AMOUNT_DIGITS
    ):
        raise VietQRError(
            f"amount must be a positive whole number of VND of at most {MAX_AMOUNT_DIGITS} "
            f"digits, got {amount!r}"
        )
    if transfer.dynamic and amount is None:
        raise VietQRError("a dynamic VietQR needs an amount")
    _text("bill number", transfer.bill_number, MAX_ADDITIONAL)
    _text("purpose", transfer.purpose, MAX_ADDITIONAL)


def build(transfer: Transfer) -> str:
    """The payload of ``transfer``, CRC included.

    Raises:
        VietQRError: naming the field that is invalid (bad BIN, account too long,
            amount not a positive whole VND, text too long or outside printable ASCII).

    """
    _check(transfer)
    beneficiary = tlv("00", transfer.bin) + tlv("01", transfer.account)
    merchant = tlv("00", NAPAS_GUID) + tlv("01", beneficiary) + tlv("02", transfer.service)
    parts = [
        tlv("00", "01"),
        tlv("01", "12" if transfer.dynamic else "11"),
        tlv("38", merchant),
        tlv("53", CURRENCY_VND),
    ]
    if transfer.amount is not None:
        parts.append(tlv("54", str(transfer.amount)))
    parts.append(tlv("58", COUNTRY_VN))
    additional = ""
    if transfer.bill_number is not None:
        additional += tlv("01", transfer.bill_number)
    if transfer.purpose is not None:
        additional += tlv("08", transfer.purpose)
    if additional:
        parts.append(tlv("62", additional))
    body = "".join(parts) + "6304"
    return f"{body}{crc16_ccitt_false(body.encode()):04X}"


def fields(data: bytes) -> dict[str, bytes]:
    """The fields of a TLV sequence, by ID (values as bytes).

    Raises:
        VietQRError: a truncated field, a non-digit ID or length, or an ID twice.

    """
    out: dict[str, bytes] = {}
    at = 0
    while at < len(data):
        head = data[at : at + 4]
        if len(head) < 4 or not head.isdigit():  # noqa: PLR2004 (ID + length)
            raise VietQRError(f"malformed field header {head!r} at byte {at}")
        field_id, size = head[:2].decode(), int(head[2:])
        value = data[at + 4 : at + 4 + size]
        if len(value) != size:
            raise VietQRError(f"field {field_id} at byte {at} is cut short")
        if field_id in out:
            raise VietQRError(f"field {field_id} appears twice")
        out[field_id] = value
        at += 4 + size
    return out


def _required(found: dict[str, bytes], field_id: str, where: str) -> str:
    if field_id not in found:
        raise VietQRError(f"{where} has no field {field_id}")
    return found[field_id].decode()


def _verify_crc(data: bytes) -> None:
    """Raise VietQRError unless ``data`` ends with ``6304`` and its CRC (either case)."""
    if len(data) < 8 or data[-8:-4] != b"6304":  # noqa: PLR2004 ("6304" + 4 hex digits)
        raise VietQRError("payload does not end with the CRC field 6304XXXX")
    expected = f"{crc16_ccitt_false(data[:-4]):04X}"
    if data[-4:].decode(errors="replace").upper() != expected:
        raise VietQRError(f"CRC is {data[-4:].decode(errors='replace')}, computed {expected}")


def parse(payload: str) -> Transfer:
    """Read a VietQR payload (any implementation's) after checking its CRC.

    Raises:
        VietQRError: a wrong CRC, malformed fields, not NAPAS's template in ID 38,
            another currency or country, or an amount that is not whole VND.

    """
    try:
        data = payload.encode()
    except UnicodeEncodeError:
        raise VietQRError("payload is not UTF-8 text") from None
    _verify_crc(data)
    # Lengths count bytes: one counted in characters cuts a UTF-8 character in two, and
    # the continuation bytes left over fail as a malformed field header.
    return _transfer(fields(data))


def _transfer(top: dict[str, bytes]) -> Transfer:
    """The transfer the top-level fields of a CRC-checked payload describe."""
    if _required(top, "00", "payload") != "01":
        raise VietQRError("payload format indicator (00) is not 01")
    initiation = top.get("01", b"11").decode()
    if initiation not in {"11", "12"}:
        raise VietQRError(f"point of initiation (01) must be 11 or 12, got {initiation!r}")
    merchant = fields(top["38"]) if "38" in top else {}
    if merchant.get("00", b"").decode() != NAPAS_GUID:
        raise VietQRError(f"no NAPAS template (38 with GUID {NAPAS_GUID})")
    beneficiary = fields(_required(merchant, "01", "field 38").encode())
    service = _required(merchant, "02", "field 38")
    if service not in Service.__members__.values():
        raise VietQRError(f"unknown service code {service!r} in 38/02")
    if _required(top, "53", "payload") != CURRENCY_VND:
        raise VietQRError(f"currency (53) is not {CURRENCY_VND} (VND)")
    if _required(top, "58", "payload") != COUNTRY_VN:
        raise VietQRError(f"country (58) is not {COUNTRY_VN}")
    amount = None
    if "54" in top:
        text = top["54"].decode()
        if not text.isdigit():
            raise VietQRError(f"amount (54) is not whole VND: {text!r}")
        amount = int(text)
    acquirer = _required(beneficiary, "00", "field 38/01")
    if not _BIN.fullmatch(acquirer):
        raise VietQRError(f"acquirer BIN (38/01/00) is not 6 digits: {acquirer!r}")
    extra = fields(top["62"]) if "62" in top else {}
    return Transfer(
        bin=acquirer,
        account=_required(beneficiary, "01", "field 38/01"),
        service=Service(service),
        amount=amount,
        bill_number=extra["01"].decode() if "01" in extra else None,
        purpose=extra["08"].decode() if "08" in extra else None,
        dynamic=initiation == "12",
    )


def qr_rows(payload: str) -> list[str]:
    """The QR code of ``payload`` as rows of ``0``/``1`` (1: a dark module), no quiet zone.

    Error correction level M, as banks' apps print theirs; a UI draws one square per
    module and leaves four modules of white around the code.
    """
    # Loaded by the first vietqrPayload (qrcode imports Pillow: ~4 MiB a daemon that
    # never asks for a transfer does not carry).
    import qrcode  # noqa: PLC0415
    import qrcode.constants  # noqa: PLC0415

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    code.add_data(payload.encode())
    code.make(fit=True)
    return ["".join("1" if dark else "0" for dark in row) for row in code.get_matrix()]
