"""VietQR payloads against the NAPAS specification's examples and other implementations.

Every vector comes from ``tests/data/vietqr/vectors.json``, whose entries name their
source (repository, path, commit; see SOURCES.md there): the NAPAS VietQR format
v1.0 §6.1 worked examples, subiz/vietqr (Go), xuannghia/vietnam-qr-pay (TypeScript,
including bank apps' codes) and binhnguyenduc/vietqr-ts (TypeScript).
"""

from __future__ import annotations

import binascii
import json
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from daemon.payments.vietqr import (
    Service,
    Transfer,
    VietQRError,
    build,
    crc16_ccitt_false,
    parse,
    qr_rows,
    tlv,
)

VECTORS = json.loads(
    (Path(__file__).parent.parent / "data" / "vietqr" / "vectors.json").read_text(encoding="utf-8")
)


def transfer(fields: dict[str, Any]) -> Transfer:
    """A Transfer from a vector's field map."""
    return Transfer(
        bin=fields["bin"],
        account=fields["account"],
        service=Service(fields["service"]),
        amount=fields.get("amount"),
        bill_number=fields.get("billNumber"),
        purpose=fields.get("purpose"),
        dynamic=fields["dynamic"],
    )


def test_crc_check_value() -> None:
    """CRC-16/CCITT-FALSE's catalogue check value (reveng.sourceforge.io: check=0x29b1)."""
    assert crc16_ccitt_false(b"123456789") == 0x29B1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_crc_agrees_with_the_standard_library(data: bytes) -> None:
    """binascii.crc_hqx is CRC-CCITT (0x1021, not reflected); from 0xFFFF it is CCITT-FALSE."""
    assert crc16_ccitt_false(data) == binascii.crc_hqx(data, 0xFFFF)


@pytest.mark.parametrize("vector", VECTORS["build"], ids=lambda v: v["payload"][-4:])
def test_builds_published_payloads(vector: dict[str, Any]) -> None:
    assert build(transfer(vector["transfer"])) == vector["payload"], vector["source"]


@pytest.mark.parametrize(
    "vector", VECTORS["build"] + VECTORS["parse"], ids=lambda v: v["payload"][-4:]
)
def test_parses_published_payloads(vector: dict[str, Any]) -> None:
    assert parse(vector["payload"]) == transfer(vector["transfer"]), vector["source"]


@pytest.mark.parametrize("vector", VECTORS["reject"], ids=lambda v: v["payload"][-4:])
def test_refuses_published_bad_payloads(vector: dict[str, Any]) -> None:
    with pytest.raises(VietQRError, match=vector["error"]):
        parse(vector["payload"])


KIOSK = Transfer(bin="970415", account="113366668888", amount=25_000, bill_number="VQ7K2M9XQ4")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bin": "97041"}, "acquirer BIN must be 6 digits"),
        ({"bin": "97041A"}, "acquirer BIN must be 6 digits"),
        ({"account": "1" * 20}, "account number must be 1 to 19 characters, got 20"),
        ({"account": ""}, "account number must be 1 to 19"),
        ({"account": "0011-2233"}, "account number may hold letters and digits only"),
        ({"service": Service.CARD, "account": "9704A"}, "card number may hold digits only"),
        ({"amount": 0}, "amount must be a positive whole number of VND"),
        ({"amount": -5000}, "amount must be a positive whole number of VND"),
        ({"amount": 25_000.5}, "amount must be a positive whole number of VND"),
        ({"amount": True}, "amount must be a positive whole number of VND"),
        ({"amount": 10**13}, "at most 13 digits"),
        ({"amount": None}, "a dynamic VietQR needs an amount"),
        ({"bill_number": "X" * 26}, "bill number must be 1 to 25 characters, got 26"),
        ({"purpose": "Lệ phí hộ tịch"}, "purpose may hold printable ASCII only .* 'ệ'"),
        ({"purpose": "fee\nline"}, "purpose may hold printable ASCII only"),
        ({"bill_number": ""}, "bill number must be 1 to 25"),
    ],
)
def test_refuses_invalid_input(change: dict[str, Any], message: str) -> None:
    fields = {
        "bin": KIOSK.bin,
        "account": KIOSK.account,
        "service": KIOSK.service,
        "amount": KIOSK.amount,
        "bill_number": KIOSK.bill_number,
        "purpose": KIOSK.purpose,
    } | change
    with pytest.raises(VietQRError, match=message):
        build(Transfer(**fields))


def test_field_over_99_bytes_refused() -> None:
    assert tlv("62", "x" * 99).startswith("6299")
    with pytest.raises(VietQRError, match="field 62 is 100 bytes, longer than 99"):
        tlv("62", "x" * 100)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("", "does not end with the CRC field"),
        ("000201010212", "does not end with the CRC field"),
        ("0002010102125303704540510000" + "5802VN6304", "does not end with the CRC field"),
    ],
)
def test_refuses_truncated_payloads(payload: str, message: str) -> None:
    with pytest.raises(VietQRError, match=message):
        parse(payload)


def _with_crc(body: str) -> str:
    body += "6304"
    return f"{body}{crc16_ccitt_false(body.encode()):04X}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # A well-formed EMVCo code that is not VietQR (VNPay's GUID in ID 26, no ID 38).
        ("00020101021126280010A000000775011001087990425204597753037045802VN", "no NAPAS"),
        (build(KIOSK)[:-8].replace("5303704", "5303840"), r"currency \(53\) is not 704"),
        (build(KIOSK)[:-8].replace("540525000", "540525.00"), r"amount \(54\) is not whole VND"),
        (build(KIOSK)[:-8].replace("QRIBFTTA", "QRPUSHXX"), "unknown service code"),
        (build(KIOSK)[:-8] + "5802VN", "field 58 appears twice"),
        (build(KIOSK)[:-8].replace("0006970415", "000697041X"), r"acquirer BIN \(38/01/00\)"),
    ],
)
def test_refuses_what_is_not_a_vnd_vietqr(body: str, message: str) -> None:
    with pytest.raises(VietQRError, match=message):
        parse(_with_crc(body))


def test_qr_image_decodes_back_with_zxing() -> None:
    """The module rows a UI draws decode (zxing-cpp) to the payload, which parses back."""
    payload = build(KIOSK)
    rows = qr_rows(payload)
    assert len(rows) == len(rows[0]) >= 21  # QR version 1 is 21 modules
    scale, quiet = 6, 4
    side = (len(rows) + 2 * quiet) * scale
    image = Image.new("L", (side, side), 255)
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if dark == "1":
                left, top = (x + quiet) * scale, (y + quiet) * scale
                image.paste(0, (left, top, left + scale, top + scale))
    codes = zxingcpp.read_barcodes(image)
    assert [c.text for c in codes] == [payload]
    assert codes[0].format == zxingcpp.BarcodeFormat.QRCode
    assert parse(codes[0].text) == KIOSK


_ans = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=25
)


@settings(max_examples=300, deadline=None)
@given(
    bin_=st.from_regex(r"[0-9]{6}", fullmatch=True),
    account=st.from_regex(r"[0-9A-Za-z]{1,19}", fullmatch=True),
    amount=st.integers(1, 10**13 - 1),
    bill_number=st.none() | _ans,
    purpose=st.none() | _ans,
)
def test_every_valid_transfer_round_trips(
    bin_: str, account: str, amount: int, bill_number: str | None, purpose: str | None
) -> None:
    sent = Transfer(bin_, account, Service.ACCOUNT, amount, bill_number, purpose)
    payload = build(sent)
    assert parse(payload) == sent
    assert parse(payload[:-4] + payload[-4:].lower()) == sent


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.builds(
            lambda head, cut, tail: head[:cut] + tail,
            st.sampled_from([v["payload"] for v in VECTORS["build"] + VECTORS["parse"]]),
            st.integers(0, 160),
            st.text(max_size=20),
        ),
    )
)
def test_any_text_parses_or_is_refused_with_a_vietqr_error(text: str) -> None:
    try:
        read = parse(text)
    except VietQRError:
        return
    assert isinstance(read, Transfer)
    assert read.bin.isdigit()


def test_a_payload_that_is_not_utf8_text_is_refused() -> None:
    with pytest.raises(VietQRError, match="payload is not UTF-8 text"):
        parse("\udcff" + build(KIOSK))


@pytest.mark.parametrize("lengths", ["62220818", "62260818"])
def test_a_length_counted_in_characters_is_refused(lengths: str) -> None:
    """ "Thanh toán hóa đơn" is 18 characters and 22 bytes: a length of 18 cuts "đ" in two."""
    plain = build(Transfer(bin="970415", account="113366668888", amount=25_000))
    with pytest.raises(VietQRError, match="malformed field header"):
        parse(_with_crc(plain[:-8] + lengths + "Thanh toán hóa đơn"))


def test_utf8_text_with_byte_lengths_is_read() -> None:
    """Other implementations put UTF-8 in ID 62 with lengths in bytes; the parser reads it."""
    plain = build(Transfer(bin="970415", account="113366668888", amount=25_000))
    read = parse(_with_crc(plain[:-8] + "62260822Thanh toán hóa đơn"))
    assert read.purpose == "Thanh toán hóa đơn"
