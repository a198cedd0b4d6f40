"""Printer class, slip rendering and the behavioural printer simulator."""

from __future__ import annotations

import asyncio
import contextlib
import io
import string
import unicodedata
from importlib import resources
from pathlib import Path

import msgspec
import pytest
import zxingcpp
from PIL import Image, ImageFont, ImageOps

from devices.base import DeviceState, NoParams, NoResult, OpenClosed
from devices.errors import (
    CompletionCode,
    HardwareError,
    InvalidData,
    MediaError,
    Offline,
    Unsupported,
    completion_code,
)
from devices.printer import slip
from devices.printer.protocol import (
    PaperLevel,
    PaperStatus,
    PaperThreshold,
    Printer,
    PrinterDetail,
    PrintRawParams,
    PrintResult,
    PrintSlipParams,
    RawResult,
)
from devices.printer.template_files import template_names
from devices.sim.printer.actions import CoverParams, PaperParams
from devices.sim.printer.behaviour import SimPrinter, SimPrinterSettings, SlipOutput
from devices.sim.support.faults import FaultKind, FaultParams
from devices.supervisor import supervise
from tests.support import RecordingHost, build, ctx, running

DOSSIER = "000.00.12.H29-250314-0001"

APPOINTMENT = {
    "office": "Ủy ban nhân dân Phường Bến Nghé, Quận 1",
    "procedure": "Cấp đổi căn cước công dân",
    "dossierCode": DOSSIER,
    "citizenName": "Nguyễn Văn Thử",
    "submittedAt": "2025-03-14T09:15",
    "appointmentDate": "2025-03-21",
    "counter": "Quầy số 3",
    "qr": DOSSIER,
}

VIETNAMESE = [
    "Nguyễn Văn Thử",
    "Phường Bến Nghé, Quận 1",
    "Ủy ban nhân dân",
    "Cấp đổi căn cước công dân",
    "PHIẾU HẸN TRẢ KẾT QUẢ",
    "Vui lòng mang theo phiếu hẹn khi đến nhận kết quả",
    "Đăng ký hộ tịch, khai sinh, kết hôn; Ỷ Ợ Ỹ ỹ Ỵ ỵ Ữ ữ Ặ ặ Ẵ ẵ ₫",
    # Every Vietnamese letter, both cases.
    "aàảãáạăằẳẵắặâầẩẫấậbcdđeèẻẽéẹêềểễếệghiìỉĩíịklmnoòỏõóọôồổỗốộơờởỡớợpqrstuùủũúụưừửữứựvxyỳỷỹýỵ",
    "AÀẢÃÁẠĂẰẲẴẮẶÂẦẨẪẤẬBCDĐEÈẺẼÉẸÊỀỂỄẾỆGHIÌỈĨÍỊKLMNOÒỎÕÓỌÔỒỔỖỐỘƠỜỞỠỚỢPQRSTUÙỦŨÚỤƯỪỬỮỨỰVXYỲỶỸÝỴ",
]


def decode_qr(image: Image.Image) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(image.convert("L"))]


def printer(tmp_path: Path, host: RecordingHost, **settings: object) -> SimPrinter:
    settings.setdefault("print_ms", 0)
    device = build("printer", "sim", tmp_path, host, **settings)
    assert isinstance(device, SimPrinter)
    return device


def slip_params(copies: int = 1, **fields: str | int) -> PrintSlipParams:
    return PrintSlipParams(template="appointment", fields={**APPOINTMENT, **fields}, copies=copies)


def detail(device: Printer) -> PrinterDetail:
    assert isinstance(device.detail, PrinterDetail)
    return device.detail


def slips(host: RecordingHost) -> list[SlipOutput]:
    assert {what for _, what, _ in host.outputs} <= {"slip"}
    return [data for _, _, data in host.outputs if isinstance(data, SlipOutput)]


def thresholds(host: RecordingHost) -> list[PaperLevel]:
    return [data.level for _, name, data in host.events if isinstance(data, PaperThreshold)]


# ---------------------------------------------------------------- templates and rendering


def test_shipped_templates_load_and_declare_their_fields() -> None:
    assert template_names() == ["appointment", "receipt"]
    appointment = slip.load_template("appointment")
    assert appointment.required_fields() == {
        "office",
        "procedure",
        "dossierCode",
        "citizenName",
        "submittedAt",
        "appointmentDate",
        "qr",
    }
    assert appointment.all_fields() - appointment.required_fields() == {"counter"}
    receipt = slip.load_template("receipt")
    assert receipt.required_fields() == {
        "office",
        "dossierCode",
        "amountPaid",
        "paidAt",
        "transactionId",
    }


@pytest.mark.parametrize("width", [384, 576])
def test_slip_renders_at_both_widths_with_a_readable_qr(width: int) -> None:
    image = slip.render_slip("appointment", APPOINTMENT, width)
    assert image.mode == "1"
    assert image.width == width
    assert 500 < image.height < 1500
    histogram = image.histogram()
    black, white = histogram[0], histogram[255]
    assert black > 0.03 * (black + white)  # text and QR are there, not a blank strip
    assert decode_qr(image) == [DOSSIER]
    png = slip.encode_png(image)
    assert png.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(png)).size == image.size


def test_a_long_lookup_url_still_gives_a_readable_qr_on_58mm_paper() -> None:
    url = f"https://dichvucong.hochiminhcity.gov.vn/tra-cuu-ho-so?ma={DOSSIER}&lang=vi"
    image = slip.render_slip("appointment", {**APPOINTMENT, "qr": url}, 384)
    assert decode_qr(image) == [url]


@pytest.mark.parametrize("font_name", ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"])
def test_every_vietnamese_character_has_a_glyph(font_name: str) -> None:
    font = ImageFont.truetype(str(slip.FONT_DIR / font_name), 24)
    notdef = bytes(font.getmask("\U0010fffd"))  # a private-use code point: .notdef box
    for text in VIETNAMESE:
        for char in set(text) - {" ", ",", ";"}:
            mask = font.getmask(char)
            assert mask.getbbox() is not None, f"{char!r} renders nothing"
            assert bytes(mask) != notdef, f"{char!r} renders as .notdef in {font_name}"


@pytest.mark.parametrize("template", template_names())
def test_every_character_of_the_shipped_templates_has_a_glyph(template: str) -> None:
    text = (
        resources.files("devices.printer")
        .joinpath("templates", f"{template}.toml")
        .read_text(encoding="utf-8")
    )
    sample = text + "".join(str(v) for v in APPOINTMENT.values())
    for font_name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"):
        font = ImageFont.truetype(str(slip.FONT_DIR / font_name), 24)
        notdef = bytes(font.getmask("\U0010fffd"))
        for char in set(sample) - set(string.whitespace):
            assert bytes(font.getmask(char)) != notdef, f"{char!r} is missing from {font_name}"


def test_vietnamese_text_keeps_its_diacritics_on_the_slip() -> None:
    # Stacked marks (Ế, Ủ) reach above the font ascent; a clipped line loses them.
    # Rendering the same text NFD-decomposed must give the same pixels (NFC normalisation).
    name = "ỦY ẾỄ Thử"
    nfd_name = unicodedata.normalize("NFD", name)
    assert nfd_name != name
    nfc = slip.render_slip("appointment", {**APPOINTMENT, "citizenName": name}, 576)
    nfd = slip.render_slip("appointment", {**APPOINTMENT, "citizenName": nfd_name}, 576)
    assert nfc.tobytes() == nfd.tobytes()
    # A line is tall enough for stacked marks above the ascent: nothing is clipped.
    font = slip._font(slip._BOLD, 34)
    strip = slip._text_strip("KẾT QUẢ ỬỴ", font, slip._STYLES[576], "left")
    inked = ImageOps.invert(strip.convert("L")).getbbox()
    glyphs = font.getmask("KẾT QUẢ ỬỴ", mode="1").getbbox()
    assert inked is not None
    assert inked[1] > 0
    assert inked[3] < strip.height
    assert inked[3] - inked[1] == glyphs[3] - glyphs[1]


def test_optional_counter_row_is_left_out_when_missing() -> None:
    fields = {k: v for k, v in APPOINTMENT.items() if k != "counter"}
    without = slip.render_slip("appointment", fields, 576)
    with_counter = slip.render_slip("appointment", APPOINTMENT, 576)
    assert without.height < with_counter.height
    assert decode_qr(without) == [DOSSIER]


@pytest.mark.parametrize("missing", ["citizenName", "qr", "appointmentDate"])
def test_missing_required_field_is_invalid_data_naming_it(missing: str) -> None:
    fields = {k: v for k, v in APPOINTMENT.items() if k != missing}
    with pytest.raises(InvalidData, match=missing):
        slip.render_slip("appointment", fields, 576)
    with pytest.raises(InvalidData, match=missing):  # blank counts as missing
        slip.render_slip("appointment", {**fields, missing: "  "}, 576)


@pytest.mark.parametrize(
    "name", ["nonexistent", "../appointment", "Appointment", "", "appointment.toml"]
)
def test_unknown_template_is_invalid_data(name: str) -> None:
    with pytest.raises(InvalidData, match="unknown slip template"):
        slip.render_slip(name, APPOINTMENT, 576)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("appointmentDate", "21/03/2025"),
        ("appointmentDate", "2025-02-30"),
        ("submittedAt", "yesterday"),
    ],
)
def test_malformed_date_is_invalid_data(field: str, value: str) -> None:
    with pytest.raises(InvalidData, match=field):
        slip.render_slip("appointment", {**APPOINTMENT, field: value}, 576)


def test_receipt_formats_money_and_rejects_non_numbers() -> None:
    fields: dict[str, str | int] = {
        "office": "UBND Phường Bến Nghé",
        "dossierCode": DOSSIER,
        "amountPaid": 1_250_000,
        "amountDue": "1250000",
        "paidAt": "2025-03-14T09:20:05",
        "transactionId": "tx-0042",
    }
    assert slip.render_slip("receipt", fields, 384).width == 384
    with pytest.raises(InvalidData, match="amountPaid"):
        slip.render_slip("receipt", {**fields, "amountPaid": "50.000đ"}, 384)
    assert slip._format_vnd("amountPaid", 1_250_000) == "1.250.000 đ"


def test_broken_template_text_is_rejected_when_loaded() -> None:
    bad = b'description = "x"\n[[blocks]]\nkind = "row"\nlabel = "A"\nvalue = "{name.attr}"\n'
    with pytest.raises(msgspec.ValidationError, match="not a plain field name"):
        msgspec.toml.decode(bad, type=slip.Template)
    with pytest.raises(msgspec.ValidationError):
        msgspec.toml.decode(b'description = "x"\n[[blocks]]\nkind = "banner"\n', type=slip.Template)
    # A broken template file is the deployment's fault, not the request's.
    assert completion_code(slip.TemplateError("x")) is CompletionCode.INTERNAL_ERROR


def test_unsupported_width_is_refused() -> None:
    with pytest.raises(ValueError, match="width"):
        slip.render_slip("appointment", APPOINTMENT, 500)


# ---------------------------------------------------------------- wire types


def test_params_decode_from_camel_case_wire_and_bound_copies() -> None:
    wire = {"requestId": "r1", "template": "appointment", "fields": APPOINTMENT, "copies": 2}
    params = msgspec.convert(wire, PrintSlipParams)
    assert params.copies == 2
    assert msgspec.convert({"template": "appointment", "fields": {}}, PrintSlipParams).copies == 1
    for copies in (0, 6):
        with pytest.raises(msgspec.ValidationError, match="copies"):
            msgspec.convert({**wire, "copies": copies}, PrintSlipParams)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"data": b""}, PrintRawParams)


def test_results_and_detail_encode_with_camel_case_keys() -> None:
    result = PrintResult(copies=1, width_dots=576, length_dots=900, template="appointment")
    assert msgspec.json.decode(msgspec.json.encode(result)) == {
        "copies": 1,
        "widthDots": 576,
        "lengthDots": 900,
        "template": "appointment",
    }
    assert msgspec.json.decode(msgspec.json.encode(PrinterDetail())) == {
        "paper": "full",
        "cover": "closed",
    }
    assert msgspec.json.decode(msgspec.json.encode(RawResult(bytes_sent=3))) == {"bytesSent": 3}
    out = SlipOutput(png=b"\x89PNG", width_dots=384, request_id="r1")
    assert set(msgspec.json.decode(msgspec.json.encode(out))) == {"png", "widthDots", "requestId"}


def test_command_table_matches_the_wire_contract() -> None:
    assert set(Printer.commands) == {"printSlip", "printRaw", "cut"}
    assert all(c.side_effect and not c.interruptible for c in Printer.commands.values())
    assert set(Printer.events) == {"paperThreshold"}
    assert set(SimPrinter.sim_actions) == {"fault", "paper", "cover"}


def test_settings_are_validated() -> None:
    with pytest.raises(msgspec.ValidationError, match="low_after"):
        msgspec.convert({"paper_slips": 3, "low_after": 3}, SimPrinterSettings)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"width_dots": 500}, SimPrinterSettings)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"paper_size": 3}, SimPrinterSettings)


# ---------------------------------------------------------------- the simulator


async def test_print_slip_publishes_each_copy_as_png(tmp_path: Path) -> None:
    host = RecordingHost()
    device = printer(tmp_path, host, width_dots=384)
    async with running(device, host):
        result = await device.execute("printSlip", slip_params(copies=2), ctx("job-1"))
        assert result.copies == 2
        assert result.width_dots == 384
        assert result.template == "appointment"
        outputs = slips(host)
        assert len(outputs) == 2
        for out in outputs:
            assert out.request_id == "job-1"
            assert out.width_dots == 384
            image = Image.open(io.BytesIO(out.png))
            assert image.size == (384, result.length_dots)
            assert decode_qr(image) == [DOSSIER]
        assert device.state is DeviceState.ONLINE
        assert thresholds(host) == []
        assert device.capabilities()["templates"] == ["appointment", "receipt"]


async def test_invalid_request_feeds_no_paper(tmp_path: Path) -> None:
    host = RecordingHost()
    device = printer(tmp_path, host, paper_slips=1)
    async with running(device, host):
        bad = PrintSlipParams(template="appointment", fields={"office": "x"})
        with pytest.raises(InvalidData, match="citizenName"):
            await device.execute("printSlip", bad, ctx())
        assert slips(host) == []
        assert device.paper is PaperLevel.FULL


async def test_paper_runs_low_then_out_after_n_slips(tmp_path: Path) -> None:
    host = RecordingHost()
    device = printer(tmp_path, host, paper_slips=3, low_after=2)
    async with running(device, host):
        await device.execute("printSlip", slip_params(), ctx("a"))
        assert thresholds(host) == []
        await device.execute("printSlip", slip_params(), ctx("b"))
        assert thresholds(host) == [PaperLevel.LOW]
        assert detail(device).paper is PaperStatus.LOW
        assert device.state is DeviceState.ONLINE  # low paper still prints
        await device.execute("printSlip", slip_params(), ctx("c"))
        assert thresholds(host) == [PaperLevel.LOW, PaperLevel.OUT]
        assert device.state is DeviceState.USER_ERROR
        assert detail(device).paper is PaperStatus.OUT

        with pytest.raises(MediaError, match="out of paper") as raised:
            await device.execute("printSlip", slip_params(), ctx("d"))
        assert completion_code(raised.value) is CompletionCode.USER_ERROR
        assert [out.request_id for out in slips(host)] == ["a", "b", "c"]

        await device.sim_paper(PaperParams(level=PaperLevel.FULL))
        assert device.state is DeviceState.ONLINE
        assert thresholds(host)[-1] is PaperLevel.FULL
        await device.execute("printSlip", slip_params(), ctx("e"))
        assert len(slips(host)) == 4


async def test_paper_out_mid_job_fails_the_job(tmp_path: Path) -> None:
    host = RecordingHost()
    device = printer(tmp_path, host, paper_slips=2)
    async with running(device, host):
        with pytest.raises(MediaError, match="paper ran out mid-job: 2 of 3 copies printed"):
            await device.execute("printSlip", slip_params(copies=3), ctx("job"))
        assert len(slips(host)) == 2
        assert device.state is DeviceState.USER_ERROR
        assert detail(device).paper is PaperStatus.OUT


async def test_cover_open_is_a_user_error(tmp_path: Path) -> None:
    host = RecordingHost()
    device = printer(tmp_path, host)
    async with running(device, host):
        await device.sim_cover(CoverParams(open=True))
        assert device.state is DeviceState.USER_ERROR
        assert detail(device).cover is OpenClosed.OPEN
        with pytest.raises(MediaError, match="cover is open"):
            await device.execute("printSlip", slip_params(), ctx())
        with pytest.raises(MediaError, match="cover is open"):
            await device.execute("cut", NoParams(), ctx())
        assert slips(host) == []
        await device.sim_cover(CoverParams(open=False))
        assert device.state is DeviceState.ONLINE
        await device.execute("printSlip", slip_params(), ctx())
        assert len(slips(host)) == 1


async def test_jam_is_a_hardware_error_with_paper_jammed(tmp_path: Path) -> None:
    host = RecordingHost()
    device = printer(tmp_path, host, paper_slips=10, low_after=0)
    async with running(device, host):
        await device.sim_paper(PaperParams(level=PaperLevel.LOW))
        await device.sim_fault(FaultParams(kind=FaultKind.JAM))
        assert device.state is DeviceState.HARDWARE_ERROR
        assert detail(device).paper is PaperStatus.JAMMED
        with pytest.raises(HardwareError, match="jam"):
            await device.execute("printSlip", slip_params(), ctx())
        assert slips(host) == []
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        assert device.state is DeviceState.ONLINE
        assert detail(device).paper is PaperStatus.LOW  # the roll level is back
        assert thresholds(host) == [PaperLevel.LOW]  # a jam is not a paper level


async def test_hardware_fault_and_disconnect(tmp_path: Path) -> None:
    host = RecordingHost()
    device = printer(tmp_path, host)
    async with running(device, host):
        await device.sim_fault(FaultParams(kind=FaultKind.HARDWARE_ERROR))
        assert device.state is DeviceState.HARDWARE_ERROR
        assert detail(device).paper is PaperStatus.FULL
        with pytest.raises(HardwareError):
            await device.execute("printSlip", slip_params(), ctx())
        # A cover opened during the fault must not bring the printer back online.
        await device.sim_cover(CoverParams(open=True))
        await device.sim_cover(CoverParams(open=False))
        assert device.state is DeviceState.HARDWARE_ERROR
        await device.sim_fault(FaultParams(kind=FaultKind.DISCONNECT))
        await host.wait_for(lambda: device.state is DeviceState.OFFLINE)
        with pytest.raises(Offline):
            await device.execute("printSlip", slip_params(), ctx())
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        await host.wait_for(lambda: device.state is DeviceState.ONLINE)
        await device.execute("printSlip", slip_params(), ctx())
        assert len(slips(host)) == 1


async def test_print_raw_is_unsupported_unless_enabled(tmp_path: Path) -> None:
    host = RecordingHost()
    device = printer(tmp_path, host)
    async with running(device, host):
        with pytest.raises(Unsupported) as raised:
            await device.execute("printRaw", PrintRawParams(data=b"\x1b@hello\n"), ctx())
        assert completion_code(raised.value) is CompletionCode.UNSUPPORTED_COMMAND
        assert device.capabilities()["raw"] is False

    host = RecordingHost()
    device = printer(tmp_path, host, allow_raw=True)
    async with running(device, host):
        result = await device.execute("printRaw", PrintRawParams(data=b"\x1b@hello\n"), ctx())
        assert result == RawResult(bytes_sent=8)
        await device.sim_paper(PaperParams(level=PaperLevel.OUT))
        with pytest.raises(MediaError):
            await device.execute("printRaw", PrintRawParams(data=b"x"), ctx())


async def test_cut_returns_an_empty_result(tmp_path: Path) -> None:
    host = RecordingHost()
    device = printer(tmp_path, host)
    async with running(device, host):
        assert await device.execute("cut", NoParams(), ctx()) == NoResult()
        await device.sim_fault(FaultParams(kind=FaultKind.JAM))
        with pytest.raises(HardwareError):
            await device.execute("cut", NoParams(), ctx())


async def test_print_time_is_simulated(tmp_path: Path) -> None:
    host = RecordingHost()
    device = printer(tmp_path, host, print_ms=100)
    async with running(device, host):
        loop = asyncio.get_running_loop()
        started = loop.time()
        await device.execute("printSlip", slip_params(copies=2), ctx())
        assert loop.time() - started >= 0.2


async def test_paper_out_before_start_comes_up_as_user_error(tmp_path: Path) -> None:
    host = RecordingHost()
    device = printer(tmp_path, host)
    await device.sim_paper(PaperParams(level=PaperLevel.OUT))
    assert device.state is DeviceState.STARTING  # not connected yet: detail only
    assert detail(device).paper is PaperStatus.OUT
    task = asyncio.create_task(supervise(device))
    try:
        await host.wait_for(lambda: device.state is DeviceState.USER_ERROR)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await device.safe_state()  # works whatever the state
