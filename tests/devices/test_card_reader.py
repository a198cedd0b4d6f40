"""cardReader: MRZ rules, access keys, and the behavioural simulator end to end."""

from __future__ import annotations

import asyncio
from datetime import date
from io import BytesIO
from pathlib import Path

import msgspec
import pytest
from PIL import Image

from devices.base import DeviceState, NoParams
from devices.card_reader.identity import (
    BacKey,
    PaceKey,
    check_digit,
    mrz_date_to_iso,
    mrz_document_number,
    mrz_name,
    parse_td1,
)
from devices.card_reader.protocol import (
    AccessKey,
    CardPresented,
    CardReaderDetail,
    ChipIoParams,
    Media,
    ReadIdentityParams,
    ReadProgress,
)
from devices.errors import (
    AccessDenied,
    CompletionCode,
    HardwareError,
    InvalidData,
    MediaError,
    Offline,
    ProtocolError,
    SequenceError,
    Unsupported,
    completion_code,
)
from devices.sim.card_reader.actions import PresentCardParams
from devices.sim.card_reader.behaviour import SimCardReader
from devices.sim.card_reader.specimen_cards import SPECIMEN_CARDS
from devices.sim.support.faults import FaultKind, FaultParams
from tests.support import RecordingHost, build, ctx, running

DEFAULT_KEY = AccessKey(
    document_number="079099000123",
    date_of_birth="1990-01-15",
    date_of_expiry="2030-01-15",
)
TODAY = date(2025, 6, 1)

# ICAO 9303 part 5 specimen TD1 (Anna Maria Eriksson, Utopia).
ICAO_TD1 = [
    "I<UTOD231458907<<<<<<<<<<<<<<<",
    "7408122F1204159UTO<<<<<<<<<<<6",
    "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
]


# --- MRZ rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "digit"),
    [
        ("L898902C<", "3"),  # ICAO 9303 part 4 specimen passport: document number
        ("690806", "1"),  # its date of birth
        ("940623", "6"),  # its date of expiry
        ("ZE184226B<<<<<", "1"),  # its personal number
        ("L898902C<369080619406236ZE184226B<<<<<1", "4"),  # its composite
        ("D23145890", "7"),  # TD1 specimen document number
        ("740812", "2"),
        ("120415", "9"),
        ("099000123", "2"),  # the default specimen card
    ],
)
def test_check_digit_icao_specimens(field, digit):
    assert check_digit(field) == digit


def test_check_digit_rejects_non_mrz_characters():
    with pytest.raises(ValueError, match="not MRZ characters"):
        check_digit("l898902c")


def test_parse_td1_icao_specimen():
    mrz = parse_td1(ICAO_TD1, TODAY)
    assert mrz.document_code == "I"
    assert mrz.issuing_state == "UTO"
    assert mrz.document_number == "D23145890"
    assert mrz.optional_data == ""
    assert mrz.date_of_birth == "1974-08-12"
    assert mrz.sex == "F"
    assert mrz.date_of_expiry == "2012-04-15"
    assert mrz.nationality == "UTO"
    assert (mrz.surname, mrz.given_names, mrz.name) == (
        "ERIKSSON",
        "ANNA MARIA",
        "ERIKSSON ANNA MARIA",
    )
    assert mrz.lines == ICAO_TD1


def test_parse_td1_rejects_a_wrong_check_digit():
    bad = [ICAO_TD1[0].replace("D231458907", "D231458908"), *ICAO_TD1[1:]]
    with pytest.raises(ProtocolError, match="document number check digit"):
        parse_td1(bad, TODAY)
    with pytest.raises(ProtocolError, match="composite"):
        parse_td1([ICAO_TD1[0], ICAO_TD1[1][:-1] + "5", ICAO_TD1[2]], TODAY)
    with pytest.raises(ProtocolError, match="three lines"):
        parse_td1(ICAO_TD1[:2], TODAY)


def test_parse_td1_long_document_number_continues_in_optional_data():
    # ICAO 9303-5: a 12-character number puts "<" at the check digit and its tail,
    # then the check digit, in the optional data.
    number = "D23145890123"
    line1 = f"I<UTO{number[:9]}<{number[9:]}{check_digit(number)}".ljust(30, "<")
    line2 = "7408122F1204159UTO<<<<<<<<<<<"
    line2 += check_digit(line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29])
    mrz = parse_td1([line1, line2, ICAO_TD1[2]], TODAY)
    assert mrz.document_number == number
    assert mrz.optional_data == ""


def test_default_card_mrz_is_the_contract():
    lines = SPECIMEN_CARDS["default"].mrz_lines()
    # Line 1 ends with the 12-digit ID number and its own check digit, as on issued cards.
    assert lines == [
        "IDVNM0990001232079099000123<<2",
        "9001158M3001156VNM<<<<<<<<<<<0",
        "NGUYEN<<VAN<THU<<<<<<<<<<<<<<<",
    ]
    mrz = parse_td1(lines, TODAY)
    assert mrz.document_number == "099000123"
    assert mrz.optional_data == "079099000123"


@pytest.mark.parametrize("name", sorted(SPECIMEN_CARDS))
def test_every_specimen_card_round_trips(name):
    card = SPECIMEN_CARDS[name]
    mrz = parse_td1(card.mrz_lines(), TODAY)
    assert mrz.document_number == card.id_number[-9:]
    assert mrz.optional_data == card.id_number
    assert mrz.date_of_birth == card.date_of_birth
    assert mrz.date_of_expiry == card.date_of_expiry
    assert mrz.sex == card.sex
    assert mrz.name == mrz_name(card.full_name).replace("<", " ")


def test_mrz_name_drops_vietnamese_diacritics():
    assert mrz_name("Nguyễn Văn Thử") == "NGUYEN<VAN<THU"
    assert mrz_name("Phạm Minh Đức") == "PHAM<MINH<DUC"
    assert mrz_name("Trần Thị Bích Ngọc") == "TRAN<THI<BICH<NGOC"


def test_mrz_dates_century_and_partial_dates():
    assert mrz_date_to_iso("900115", birth=True, today=TODAY) == "1990-01-15"
    assert mrz_date_to_iso("200115", birth=True, today=TODAY) == "2020-01-15"
    assert mrz_date_to_iso("300115", birth=True, today=TODAY) == "1930-01-15"  # not in the future
    assert mrz_date_to_iso("300115", birth=False, today=TODAY) == "2030-01-15"
    assert mrz_date_to_iso("9001<<", birth=True, today=TODAY) == "1990-01"
    assert mrz_date_to_iso("90<<<<", birth=True, today=TODAY) == "1990"
    with pytest.raises(ValueError):
        mrz_date_to_iso("901315", birth=True, today=TODAY)


# --- access keys --------------------------------------------------------------------------


def test_twelve_digit_id_number_becomes_the_nine_digit_document_number():
    assert mrz_document_number("079099000123") == "099000123"
    assert mrz_document_number(" 0790 9900 0123 ") == "099000123"
    assert mrz_document_number("099000123") == "099000123"
    assert mrz_document_number("c1234567") == "C1234567"
    for bad in ("", "07909900012", "0790990001234", "09900012-3"):
        with pytest.raises(InvalidData):
            mrz_document_number(bad)


def test_bac_key_from_the_id_number_matches_the_card():
    key = DEFAULT_KEY.resolve()
    assert key == BacKey(
        document_number="099000123", date_of_birth="900115", date_of_expiry="300115"
    )
    # The MRZ information is line-1 and line-2 fields with their check digits.
    assert key.mrz_information == "099000123290011583001156"
    assert key == SPECIMEN_CARDS["default"].bac_key()
    short = AccessKey(
        document_number="AB12", date_of_birth="1990-01-15", date_of_expiry="2030-01-15"
    )
    assert short.resolve().mrz_information.startswith("AB12<<<<<" + check_digit("AB12<<<<<"))


def test_pace_key_and_malformed_keys():
    assert AccessKey(can="123456").resolve() == PaceKey("123456")
    cases = {
        "either": AccessKey(can="123456", document_number="079099000123"),
        "needs": AccessKey(document_number="079099000123", date_of_birth="1990-01-15"),
        "6-digit": AccessKey(can="12345"),
        "dateOfBirth must be an ISO date": AccessKey(
            document_number="079099000123",
            date_of_birth="15/01/1990",
            date_of_expiry="2030-01-15",
        ),
        "dateOfExpiry is not a calendar date": AccessKey(
            document_number="079099000123",
            date_of_birth="1990-01-15",
            date_of_expiry="2030-02-30",
        ),
    }
    for message, key in cases.items():
        with pytest.raises(InvalidData, match=message):
            key.resolve()


def test_access_key_decodes_from_camel_case_wire_keys():
    params = msgspec.convert(
        {
            "accessKey": {
                "documentNumber": "079099000123",
                "dateOfBirth": "1990-01-15",
                "dateOfExpiry": "2030-01-15",
            }
        },
        ReadIdentityParams,
    )
    assert params.access_key == DEFAULT_KEY


# --- the simulator ----------------------------------------------------------------------


def reader(tmp_path: Path, host: RecordingHost, **settings) -> SimCardReader:
    settings.setdefault("read_ms", 40)
    device = build("cardReader", "sim", tmp_path, host, **settings)
    assert isinstance(device, SimCardReader)
    return device


async def present(device: SimCardReader, card: str = "default") -> None:
    await device.sim_present_card(PresentCardParams(card=card))


def media(device: SimCardReader) -> Media:
    detail = device.detail
    assert isinstance(detail, CardReaderDetail)
    return detail.media


async def test_read_default_identity_with_the_id_number(tmp_path):
    host = RecordingHost()
    device = reader(tmp_path, host)
    async with running(device, host):
        await present(device)
        assert media(device) is Media.PRESENT
        sink: list = []
        result = await device.execute(
            "readIdentity", ReadIdentityParams(access_key=DEFAULT_KEY), ctx(sink=sink)
        )

    mrz = result.mrz
    assert (mrz.document_code, mrz.issuing_state, mrz.nationality) == ("ID", "VNM", "VNM")
    assert mrz.document_number == "099000123"
    assert mrz.optional_data == "079099000123"
    assert (mrz.date_of_birth, mrz.date_of_expiry, mrz.sex) == ("1990-01-15", "2030-01-15", "M")
    assert (mrz.surname, mrz.given_names) == ("NGUYEN", "VAN THU")
    assert result.dg13 is not None
    assert result.dg13.full_name == "Nguyễn Văn Thử"
    assert result.dg13.id_number == "079099000123"
    assert (result.dg13.date_of_birth, result.dg13.date_of_expiry) == ("1990-01-15", "2030-01-15")
    assert (result.dg13.sex, result.dg13.nationality) == ("Nam", "Việt Nam")
    assert result.face.mime == "image/jpeg"
    with Image.open(BytesIO(result.face.data)) as face:
        assert face.format == "JPEG"
        assert face.size == (180, 240)
    assert (result.passive_auth.hashes_valid, result.passive_auth.signature_valid) == (True, True)
    assert result.passive_auth.chain_valid is None

    # readProgress: every file in order, sizes increasing to the file's total.
    assert all(name == "readProgress" for name, _ in sink)
    progress = [data for _, data in sink]
    assert all(isinstance(p, ReadProgress) for p in progress)
    files = list(dict.fromkeys(p.file for p in progress))
    assert files == ["COM", "SOD", "DG1", "DG2", "DG13"]
    for file in files:
        steps = [p for p in progress if p.file == file]
        assert [p.bytes for p in steps] == sorted(p.bytes for p in steps)
        assert steps[-1].bytes == steps[-1].total
    dg2_total = next(p.total for p in progress if p.file == "DG2")
    assert dg2_total > len(result.face.data)

    # Broadcasts and state carry no card contents.
    assert [name for _, name, _ in host.events] == ["cardPresented"]
    assert msgspec.structs.asdict(host.events[0][2]) == {}
    public = msgspec.json.encode(
        [(n, d) for _, n, d in host.events] + [d for _, _, d in host.states]
    )
    for secret in (b"099000123", b"NGUYEN", "Nguyễn".encode(), b"1990"):
        assert secret not in public


async def test_wait_for_card_completes_when_a_card_is_presented(tmp_path):
    host = RecordingHost()
    device = reader(tmp_path, host)
    async with running(device, host):
        waiting = asyncio.create_task(device.execute("waitForCard", NoParams(), ctx()))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await present(device)
        result = await asyncio.wait_for(waiting, 1)
        assert result.atr == SPECIMEN_CARDS["default"].atr
        # With the card already there it completes at once.
        again = await asyncio.wait_for(device.execute("waitForCard", NoParams(), ctx()), 0.1)
        assert again.atr == result.atr
    assert isinstance(host.events[0][2], CardPresented)


async def test_wrong_access_key_is_denied(tmp_path):
    host = RecordingHost()
    device = reader(tmp_path, host)
    wrong = AccessKey(
        document_number="079099000123", date_of_birth="1990-01-16", date_of_expiry="2030-01-15"
    )
    async with running(device, host):
        await present(device)
        with pytest.raises(AccessDenied) as info:
            await device.execute("readIdentity", ReadIdentityParams(access_key=wrong), ctx())
        assert str(info.value) == "access denied: the MRZ data does not match the card"
        assert completion_code(info.value) is CompletionCode.USER_ERROR
        # The card is still there and the right key works.
        result = await device.execute(
            "readIdentity", ReadIdentityParams(access_key=DEFAULT_KEY), ctx()
        )
        assert result.mrz.document_number == "099000123"


async def test_pace_with_the_card_access_number(tmp_path):
    host = RecordingHost()
    device = reader(tmp_path, host)
    async with running(device, host):
        await present(device, "female")
        result = await device.execute(
            "readIdentity", ReadIdentityParams(access_key=AccessKey(can="654321")), ctx()
        )
        assert result.mrz.sex == "F"
        assert result.dg13 is not None
        assert result.dg13.full_name == "Trần Thị Bích Ngọc"
        assert result.dg13.spouse_name == "Đỗ Minh Quân"
        with pytest.raises(AccessDenied, match="CAN does not match"):
            await device.execute(
                "readIdentity", ReadIdentityParams(access_key=AccessKey(can="123456")), ctx()
            )


async def test_card_without_dg13_or_pace(tmp_path):
    host = RecordingHost()
    device = reader(tmp_path, host)
    card = SPECIMEN_CARDS["noDg13"]
    async with running(device, host):
        await present(device, "noDg13")
        with pytest.raises(AccessDenied, match="does not support a CAN"):
            await device.execute(
                "readIdentity", ReadIdentityParams(access_key=AccessKey(can="123456")), ctx()
            )
        key = AccessKey(
            document_number=card.id_number,
            date_of_birth=card.date_of_birth,
            date_of_expiry=card.date_of_expiry,
        )
        sink: list = []
        result = await device.execute(
            "readIdentity", ReadIdentityParams(access_key=key), ctx(sink=sink)
        )
    assert result.dg13 is None
    assert result.mrz.name == "PHAM MINH DUC"
    assert "DG13" not in {data.file for _, data in sink}


async def test_expired_card_is_still_read(tmp_path):
    # Judging expiry is the UI's business; the reader reports what the chip holds.
    host = RecordingHost()
    device = reader(tmp_path, host)
    card = SPECIMEN_CARDS["expired"]
    async with running(device, host):
        await present(device, "expired")
        key = AccessKey(
            document_number=card.id_number,
            date_of_birth=card.date_of_birth,
            date_of_expiry=card.date_of_expiry,
        )
        result = await device.execute("readIdentity", ReadIdentityParams(access_key=key), ctx())
    assert result.mrz.date_of_expiry == "2020-03-03"


async def test_card_removed_mid_read_fails_without_identity(tmp_path):
    host = RecordingHost()
    device = reader(tmp_path, host, read_ms=400)
    async with running(device, host):
        await present(device)
        sink: list = []
        reading_sod = asyncio.Event()
        context = ctx(sink=sink)

        def emit(name, data):
            sink.append((name, data))
            if data.file == "SOD":
                reading_sod.set()

        context.emit = emit
        read = asyncio.create_task(
            device.execute("readIdentity", ReadIdentityParams(access_key=DEFAULT_KEY), context),
        )
        await asyncio.wait_for(reading_sod.wait(), 2)
        await device.sim_remove_card(NoParams())
        with pytest.raises(MediaError, match="card removed during the read") as info:
            await read
        assert completion_code(info.value) is CompletionCode.USER_ERROR
        assert "DG13" not in {data.file for _, data in sink}
        assert media(device) is Media.ABSENT
        assert host.event_names() == ["cardPresented", "cardRemoved"]
        # Swapping cards mid-read is a removal too.
        await present(device)
        read = asyncio.create_task(
            device.execute("readIdentity", ReadIdentityParams(access_key=DEFAULT_KEY), ctx())
        )
        await asyncio.sleep(0.1)
        await device.sim_remove_card(NoParams())
        await present(device, "female")
        with pytest.raises(MediaError):
            await read


async def test_read_without_a_card(tmp_path):
    host = RecordingHost()
    device = reader(tmp_path, host)
    async with running(device, host):
        with pytest.raises(MediaError, match="no card"):
            await device.execute("readIdentity", ReadIdentityParams(access_key=DEFAULT_KEY), ctx())
        with pytest.raises(InvalidData):
            await device.execute(
                "readIdentity", ReadIdentityParams(access_key=AccessKey(can="12")), ctx()
            )


async def test_sim_actions_refuse_what_a_person_cannot_do(tmp_path):
    host = RecordingHost()
    device = reader(tmp_path, host)
    async with running(device, host):
        with pytest.raises(InvalidData, match="known: default, female, expired, noDg13"):
            await present(device, "nobody")
        with pytest.raises(SequenceError):
            await device.sim_remove_card(NoParams())
        await present(device)
        with pytest.raises(SequenceError, match="already"):
            await present(device, "female")


async def test_chip_io_is_unsupported_unless_enabled(tmp_path):
    host = RecordingHost()
    device = reader(tmp_path, host)
    async with running(device, host):
        await present(device)
        with pytest.raises(Unsupported):
            await device.execute(
                "chipIO", ChipIoParams(apdu=bytes.fromhex("00a4040c07a0000002471001")), ctx()
            )
    assert device.capabilities() == {"chipIO": False}


async def test_chip_io_exchanges_apdus_when_enabled(tmp_path):
    host = RecordingHost()
    device = reader(tmp_path, host, chip_io=True)
    async with running(device, host):
        with pytest.raises(MediaError):
            await device.execute("chipIO", ChipIoParams(apdu=bytes.fromhex("0084000008")), ctx())
        await present(device)
        select = await device.execute(
            "chipIO", ChipIoParams(apdu=bytes.fromhex("00a4040c07a0000002471001")), ctx()
        )
        assert select.response == bytes.fromhex("9000")
        other = await device.execute(
            "chipIO", ChipIoParams(apdu=bytes.fromhex("00a4040c03a00000")), ctx()
        )
        assert other.response == bytes.fromhex("6a82")
        challenge = await device.execute(
            "chipIO", ChipIoParams(apdu=bytes.fromhex("0084000008")), ctx()
        )
        assert len(challenge.response) == 10
        assert challenge.response.endswith(b"\x90\x00")
        read = await device.execute("chipIO", ChipIoParams(apdu=bytes.fromhex("00b0000000")), ctx())
        assert read.response == bytes.fromhex("6982")  # needs secure messaging
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"apdu": b"\x00\xa4"}, ChipIoParams)


async def test_faults(tmp_path):
    host = RecordingHost()
    device = reader(tmp_path, host, read_ms=400)
    async with running(device, host):
        await device.sim_fault(FaultParams(kind=FaultKind.HARDWARE_ERROR))
        assert device.state is DeviceState.HARDWARE_ERROR
        with pytest.raises(HardwareError):
            await device.execute("waitForCard", NoParams(), ctx())
        with pytest.raises(HardwareError):
            await present(device)
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        assert device.state is DeviceState.ONLINE

        # A fault during a read ends it with that fault.
        await present(device)
        read = asyncio.create_task(
            device.execute("readIdentity", ReadIdentityParams(access_key=DEFAULT_KEY), ctx())
        )
        await asyncio.sleep(0.1)
        await device.sim_fault(FaultParams(kind=FaultKind.HARDWARE_ERROR))
        with pytest.raises(HardwareError):
            await read
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))

        # A disconnect ends a waiting waitForCard and takes the reader offline.
        await device.sim_remove_card(NoParams())
        waiting = asyncio.create_task(device.execute("waitForCard", NoParams(), ctx()))
        await asyncio.sleep(0.02)
        await device.sim_fault(FaultParams(kind=FaultKind.DISCONNECT))
        with pytest.raises(Offline):
            await asyncio.wait_for(waiting, 1)
        assert device.state is DeviceState.OFFLINE
        with pytest.raises(Offline):
            await present(device)
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        await host.wait_for(lambda: device.state is DeviceState.ONLINE)
