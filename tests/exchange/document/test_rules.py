"""Rules applied to a submitted document: safe file names, attachment types read from the bytes,
confidentiality, Decree 30 metadata."""

from __future__ import annotations

import unicodedata
import zipfile
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.demo.pdf import make_pdf
from services.exchange.document.attachments import (
    DOC,
    DOCX,
    JPEG,
    ODT,
    P7S,
    PDF,
    PNG,
    PPTX,
    TIFF,
    XLS,
    XLSX,
    XML,
    ZIP,
    refine_zip,
    sanitize_file_name,
    sniff_head,
)
from services.exchange.document.schemas import DocumentSubmit
from services.exchange.document.service import check_confidentiality
from services.exchange.errors import AttachmentTypeNotAllowedError, DocumentClassifiedError, MetadataInvalidError

A, B = "000.00.01.H41", "000.00.02.H41"


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


# --- sanitize_file_name ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("van-ban.pdf", "van-ban.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("..\\..\\windows\\system32\\config", "config"),
        ("C:\\Users\\vanthu\\Tờ trình.pdf", "Tờ trình.pdf"),
        ("bao\x00cao\x1f.pdf", "bao_cao_.pdf"),
        ("a\r\nb.pdf", "a_b.pdf"),
        ('ke<hoach>:"2026"|?*.pdf', "ke_hoach_2026_.pdf"),
        ("  .hidden.pdf. ", "hidden.pdf"),
    ],
)
def test_file_name_keeps_a_safe_base_name(name: str, expected: str) -> None:
    assert sanitize_file_name(name, 0) == expected


@pytest.mark.parametrize("name", [None, "", "   ", "..", "../..", "dir/", " . "])
def test_empty_file_name_becomes_attachment_n(name: str | None) -> None:
    assert sanitize_file_name(name, 2) == "attachment-3"


def test_file_name_is_nfc() -> None:
    name = sanitize_file_name(nfd("Quyết định số 12.pdf"), 0)
    assert name == "Quyết định số 12.pdf"
    assert unicodedata.is_normalized("NFC", name)


def test_file_name_is_at_most_255_characters() -> None:
    assert len(sanitize_file_name("a" * 1000 + ".pdf", 0)) == 255


# --- attachment types: read from the bytes, checked against the allow list --------------------


@pytest.mark.parametrize(
    ("head", "name", "expected"),
    [
        (make_pdf(["Van ban"]), "anything.bin", PDF),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "scan.png", PNG),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "anh.jpg", JPEG),
        (b"II*\x00\x08\x00", "fax.tif", TIFF),
        (b"\xef\xbb\xbf  \r\n<?xml version='1.0'?><edXML/>", "goi-tin.xml", XML),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 8, "bang-tinh.XLS", XLS),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 8, "cong-van.doc", DOC),
        (b"\x30\x82\x05\x10", "van-ban.pdf.p7s", P7S),
        (b"PK\x03\x04", "ho-so.zip", ZIP),
    ],
)
def test_type_is_read_from_the_bytes(head: bytes, name: str, expected: str) -> None:
    assert sniff_head(head, name) == expected


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"ghi chu: hop luc 9h", "ghi-chu.txt"),
        (b"ghi chu: hop luc 9h", "ghi-chu.pdf"),  # the name does not make it a PDF
        (b"<html><script>alert(1)</script>", "trang.html"),
        (b"MZ\x90\x00", "setup.exe"),
        (b"\x30\x82\x05\x10", "khong-phai-chu-ky.bin"),  # DER only with a signature's extension
        (b"", "rong.pdf"),
    ],
)
def test_other_kinds_of_file_are_refused(head: bytes, name: str) -> None:
    with pytest.raises(AttachmentTypeNotAllowedError) as info:
        sniff_head(head, name)
    assert info.value.status == 415
    assert info.value.code == "attachment_type_not_allowed"
    assert info.value.extra["file_name"] == name
    assert PDF in info.value.extra["allowed"]


def zip_file(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"}, DOCX),
        ({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<x/>"}, XLSX),
        ({"[Content_Types].xml": b"<Types/>", "ppt/presentation.xml": b"<p/>"}, PPTX),
        ({"mimetype": ODT.encode(), "content.xml": b"<o/>"}, ODT),
        ({"mimetype": b"application/x-unknown", "a.txt": b"x"}, ZIP),
        ({"ho-so/van-ban.pdf": b"%PDF-1.7"}, ZIP),
    ],
)
def test_zip_based_documents_are_told_apart(tmp_path: Path, entries: dict[str, bytes], expected: str) -> None:
    assert refine_zip(zip_file(tmp_path / "f.zip", entries)) == expected


def test_broken_zip_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 and then nothing a zip reader understands")
    with pytest.raises(AttachmentTypeNotAllowedError):
        refine_zip(broken)


# --- confidentiality -------------------------------------------------------------------------


@pytest.mark.parametrize("mark", ["Mật", "mật", "Tối mật", "TUYỆT MẬT", " Tuyet mat "])
def test_state_secrets_are_refused(mark: str) -> None:
    with pytest.raises(DocumentClassifiedError):
        check_confidentiality(mark)


@pytest.mark.parametrize("mark", [None, "", "Thường", "bình thường", "Không"])
def test_normal_documents_pass(mark: str | None) -> None:
    check_confidentiality(mark)


def test_unknown_confidentiality_is_invalid_metadata() -> None:
    with pytest.raises(MetadataInvalidError):
        check_confidentiality("Hạn chế")


# --- DocumentSubmit --------------------------------------------------------------------------


def submit(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code_number": "24",
        "code_notation": "KH-UBND",
        "type_name": "Kế hoạch",
        "subject": "Kế hoạch chuyển đổi số năm 2027",
        "promulgation_date": "2026-11-20",
        "signer": {"position": "Chủ tịch", "full_name": "Nguyễn Văn A"},
        "recipients": [B],
    }
    body.update(overrides)
    return body


def error_locs(body: dict[str, Any]) -> set[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as info:
        DocumentSubmit.model_validate(body)
    return {tuple(e["loc"]) for e in info.value.errors()}


def test_minimal_document_is_accepted_with_defaults() -> None:
    document = DocumentSubmit.model_validate(submit())
    assert document.urgency == 0
    assert document.steering_type == 0
    assert document.recipients == [B]
    assert document.signer.full_name == "Nguyễn Văn A"


@pytest.mark.parametrize(
    ("field", "limit"),
    [("code_number", 11), ("code_notation", 30), ("subject", 500), ("promulgation_place", 100), ("description", 500)],
)
def test_decree_30_lengths(field: str, limit: int) -> None:
    assert len(getattr(DocumentSubmit.model_validate(submit(**{field: "x" * limit})), field)) == limit
    assert error_locs(submit(**{field: "x" * (limit + 1)})) == {(field,)}


@pytest.mark.parametrize(("field", "limit"), [("full_name", 50), ("position", 100), ("competence", 100)])
def test_signer_lengths(field: str, limit: int) -> None:
    assert DocumentSubmit.model_validate(submit(signer={field: "x" * limit}))
    assert error_locs(submit(signer={field: "x" * (limit + 1)})) == {("signer", field)}


@pytest.mark.parametrize("field", ["code_number", "code_notation", "type_name", "subject"])
def test_blank_required_text_is_refused(field: str) -> None:
    assert error_locs(submit(**{field: "   "})) == {(field,)}


def test_text_is_stored_in_nfc() -> None:
    document = DocumentSubmit.model_validate(
        submit(subject=nfd("Về việc triển khai"), signer={"full_name": nfd("Lê Thị Hằng")})
    )
    assert document.subject == "Về việc triển khai"
    assert document.signer.full_name == "Lê Thị Hằng"


def test_signer_full_name_limit_counts_nfc_characters() -> None:
    name = "Nguyễn Thị Phương Thảo Trần Hoàng Bảo Ngọc Lê Ánh"  # 49 characters, 62 in NFD
    assert len(nfd(name)) > 50
    assert DocumentSubmit.model_validate(submit(signer={"full_name": nfd(name)})).signer.full_name == name


def test_subject_limit_counts_nfc_characters() -> None:
    subject = ("Kế hoạch triển khai thực hiện chuyển đổi số tỉnh Nghệ An " * 9)[:480]
    assert len(nfd(subject)) > 500
    assert DocumentSubmit.model_validate(submit(subject=nfd(subject))).subject == subject.strip()


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("Kế hoạch", "Kế hoạch"),
        ("KH", "Kế hoạch"),
        ("ke hoach", "Kế hoạch"),
        ("qd", "Quyết định"),
        ("Công văn", "Công văn"),
        ("NĐ", "Nghị định"),
        ("thong tu", "Thông tư"),
        ("Kết luận", "Kết luận"),
        ("Luật", "Luật"),
        ("Hướng dẫn liên ngành", "Hướng dẫn liên ngành"),  # any other name, as given
        ("x" * 100, "x" * 100),
    ],
)
def test_type_is_recognised_by_name_or_abbreviation_or_taken_as_given(given: str, canonical: str) -> None:
    assert DocumentSubmit.model_validate(submit(type_name=given)).type_name == canonical


@pytest.mark.parametrize("type_name", ["Sao y", "Bản trích sao", "SL", "hd", "x" * 101, "  "])
def test_copy_forms_ambiguous_abbreviations_and_overlong_types_are_refused(type_name: str) -> None:
    assert error_locs(submit(type_name=type_name)) == {("type_name",)}


def test_a_copy_is_a_flag_and_a_circulation_mark_is_not_a_secret() -> None:
    copy = DocumentSubmit.model_validate(submit(type_name="Quyết định", copy_form="sao y"))
    assert (copy.type_name, copy.copy_form) == ("Quyết định", "SY")
    assert DocumentSubmit.model_validate(submit(copy_form="Trích sao")).copy_form == "TrS"
    assert error_locs(submit(copy_form="photo")) == {("copy_form",)}
    moved = DocumentSubmit.model_validate(submit(confidentiality="lưu hành nội bộ"))
    assert (moved.confidentiality, moved.circulation) == (None, "Lưu hành nội bộ")
    assert DocumentSubmit.model_validate(submit(circulation="xem xong tra lai")).circulation == "Xem xong trả lại"


def test_due_date_cannot_precede_promulgation() -> None:
    assert DocumentSubmit.model_validate(submit(due_date="2026-11-20")).due_date is not None
    with pytest.raises(ValidationError, match="due_date"):
        DocumentSubmit.model_validate(submit(due_date="2026-11-19"))


@pytest.mark.parametrize("urgency", [0, 1, 2, 3])
def test_urgency_in_range_is_accepted(urgency: int) -> None:
    assert DocumentSubmit.model_validate(submit(urgency=urgency)).urgency == urgency


@pytest.mark.parametrize("urgency", [-1, 4, 5, "urgent"])  # 4, hỏa tốc hẹn giờ: only read from old packets
def test_urgency_out_of_range_is_refused(urgency: object) -> None:
    assert error_locs(submit(urgency=urgency)) == {("urgency",)}


def test_recipients_are_normalised_and_deduplicated_in_order() -> None:
    document = DocumentSubmit.model_validate(submit(recipients=[B, " 000.00.01.h41 ", A, B.lower()]))
    assert document.recipients == [B, A]


@pytest.mark.parametrize(
    "code",
    [
        "000.00.01",
        "00.00.01.H41",
        "000.00.01.H4",
        "000-00-01-H41",
        "000.00.01.141",
        "",
        "H4",
        "H41.1234",
        "H41." + "1." * 16 + "1",
    ],
)
def test_recipients_must_be_national_codes(code: str) -> None:
    assert error_locs(submit(recipients=[B, code])) == {("recipients", 1)}


@pytest.mark.parametrize("code", ["H41", "h52.101.114", "G22.1.22.333", "H41" + ".123" * 8])
def test_recipients_may_be_decision_20_codes(code: str) -> None:
    assert DocumentSubmit.model_validate(submit(recipients=[B, code])).recipients == [B, code.upper()]


def test_a_document_is_addressed_to_someone() -> None:
    with pytest.raises(ValidationError, match="address the document"):
        DocumentSubmit.model_validate(submit(recipients=[]))
    body = submit()
    del body["recipients"]
    with pytest.raises(ValidationError, match="address the document"):
        DocumentSubmit.model_validate(body)
    assert DocumentSubmit.model_validate(submit(recipients=[], groups=["so-nganh"])).groups == ["so-nganh"]


def test_sender_is_never_a_field() -> None:
    assert error_locs(submit(sender_code=A)) == {("sender_code",)}


def test_missing_required_fields_are_named() -> None:
    assert error_locs({"recipients": [B]}) == {
        ("code_number",),
        ("code_notation",),
        ("type_name",),
        ("subject",),
        ("promulgation_date",),
    }


def test_response_for_names_a_national_code() -> None:
    ok = DocumentSubmit.model_validate(submit(response_for={"organ_id": "000.00.01.h41", "code": "12/KH-UBND"}))
    [answered] = ok.response_for  # one object is a list of one
    assert answered.organ_id == A
    assert error_locs(submit(response_for={"organ_id": "UBND"})) == {("response_for", 0, "organ_id")}
    both = [{"organ_id": "H41.1.2"}, {"edxml_document_id": "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"}]
    assert [r.organ_id for r in DocumentSubmit.model_validate(submit(response_for=both)).response_for] == [
        "H41.1.2",
        None,
    ]
    assert error_locs(submit(response_for=[{"edxml_document_id": "x" * 101}])) == {
        ("response_for", 0, "edxml_document_id")
    }


def test_page_amount_is_at_most_999() -> None:
    assert DocumentSubmit.model_validate(submit(page_count=999)).page_count == 999
    assert error_locs(submit(page_count=1000)) == {("page_count",)}
