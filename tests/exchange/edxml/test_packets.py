"""The edXML library on its own (no database, no HTTP): the public sample packets parse, a packet
survives export → parse → export, signatures verify in both placements and a change is refused with
its reason, hostile or broken XML gets a clear error naming what is wrong."""

from __future__ import annotations

import base64
import datetime as dt
import io
import random
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from services.exchange.edxml import (
    EDXML_NS,
    Attachment,
    BussinessDocType,
    MessageHeader,
    Organization,
    Packet,
    PacketInvalidError,
    PacketSignatureInvalidError,
    PacketTooLargeError,
    StatusPacket,
    codes,
    document_id,
    parse_any,
    parse_packet,
    parse_status,
    read_signed_packet,
    sign_packet,
    split_document_id,
    verify_packet,
    write_packet,
    write_status,
)
from tests.exchange.edxml.shape import shape_errors
from tests.signature.pki import (
    Pki,
    build_pki,
    edxml_packet,
    sign_edxml_as_the_samples,
    sign_edxml_default_namespace,
)

SAMPLES = Path(__file__).parent / "samples"
SDK_SAMPLE = SAMPLES / "sdk_edoc_new_three_recipients.edxml"
DOCUMENT_SAMPLES = sorted(
    p.name for p in SAMPLES.glob("*.edxml") if "status" not in p.name and "malformed" not in p.name
)
STATUS_SAMPLES = sorted(p.name for p in SAMPLES.iterdir() if p.name.startswith("status_"))


@pytest.fixture(scope="module")
def pki() -> Pki:
    return build_pki()


def _local_names(element: etree._Element) -> list[str]:
    return [etree.QName(c).localname for c in element if isinstance(c.tag, str)]


def _without_signature(packet: Packet) -> Packet:
    packet.signature = None
    return packet


# --- samples and round trip -----------------------------------------------------------------------


@pytest.mark.parametrize("name", DOCUMENT_SAMPLES)
def test_a_sample_packet_survives_export_parse_export(name: str) -> None:
    packet = parse_packet((SAMPLES / name).read_bytes())
    exported = write_packet(packet)
    again = parse_packet(exported)
    assert again == _without_signature(packet)
    assert write_packet(again) == exported


def test_the_sdk_sample_reads_as_the_sdk_wrote_it() -> None:
    packet = parse_packet(SDK_SAMPLE.read_bytes())
    header = packet.message_header
    assert [t.organ_id for t in header.to] == ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"]
    assert header.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert header.promulgation_info and header.promulgation_info.promulgation_date == dt.date(2019, 4, 11)
    assert header.other_info and header.other_info.typer_notation == "TVC" and header.other_info.page_amount == 22
    assert header.to_places == ["Cac bo va co quan ngang bo", "Uy ban nhan dan cac tinh, TP"]
    assert packet.trace_header_list.trace_header[0].timestamp == dt.datetime(2019, 4, 11)
    assert packet.bussiness_doc_type is BussinessDocType.NEW
    assert packet.signature == "edXML"  # <Signature> with no namespace of its own
    # the SDK zips each file: the attachment is unzipped, and zipped again on the way out
    (attachment,) = packet.attachments
    assert attachment.content_id == "209" and attachment.zipped
    assert attachment.data.startswith(b'<?xml version="1.0"')
    out = etree.fromstring(write_packet(packet))
    encoded = out.find(f"{{{EDXML_NS}}}AttachmentEncoded/{{{EDXML_NS}}}Attachment/{{{EDXML_NS}}}ContentTransferEncoded")
    assert encoded is not None and encoded.text
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(encoded.text))) as archive:
        assert archive.read(archive.namelist()[0]) == attachment.data


def test_the_sample_and_every_packet_written_here_have_the_samples_shape(pki: Pki) -> None:
    """edxml-shape.xsd: element names, order, required elements, date and number forms as the
    national SDK's packet has them. Ours (rewritten samples, a signed packet) keep them; a packet
    that breaks them is caught."""
    assert shape_errors(SDK_SAMPLE.read_bytes()) == []
    for path in sorted(SAMPLES.glob("*.edxml")):
        if "malformed" in path.name or "status" in path.name:
            continue
        assert shape_errors(write_packet(parse_packet(path.read_bytes()))) == [], path.name
    signed = sign_packet(
        write_packet(parse_packet(SDK_SAMPLE.read_bytes())), key=pki.seal.key, certificate=pki.seal.cert
    )
    assert shape_errors(signed) == []
    for broken in (
        _sdk_with(b"<edXML:PageAmount>22<", b"<edXML:PageAmount>1000<"),
        _sdk_with(b"<edXML:DueDate>2019/04/11<", b"<edXML:DueDate>11/04/2019<"),
        _sdk_with(b"<edXML:TypeName>", b"<edXML:TypeNam>").replace(b"</edXML:TypeName>", b"</edXML:TypeNam>", 1),
    ):
        assert shape_errors(broken)


def test_the_writer_keeps_the_sample_layout_order_and_spellings() -> None:
    sample = etree.fromstring(SDK_SAMPLE.read_bytes())
    written = etree.fromstring(write_packet(parse_packet(SDK_SAMPLE.read_bytes())))
    assert written.tag == f"{{{EDXML_NS}}}edXML" and written.prefix is None
    envelope = written[0]
    assert envelope.prefix == "edXML" and etree.QName(envelope).localname == "edXMLEnvelope"
    for path in ("edXMLEnvelope/edXMLHeader/MessageHeader", "edXMLEnvelope/edXMLHeader/MessageHeader/OtherInfo"):
        steps = "/".join(f"{{{EDXML_NS}}}{s}" for s in path.split("/"))
        assert _local_names(written.find(steps)) == _local_names(sample.find(steps)), path
    bussiness = (
        f"{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader/{{{EDXML_NS}}}TraceHeaderList/{{{EDXML_NS}}}Bussiness"
    )
    assert _local_names(written.find(bussiness)) == _local_names(sample.find(bussiness))
    attachment = f"{{{EDXML_NS}}}AttachmentEncoded/{{{EDXML_NS}}}Attachment"
    assert _local_names(written.find(attachment)) == _local_names(sample.find(attachment))
    text = write_packet(parse_packet(SDK_SAMPLE.read_bytes())).decode()
    assert text.startswith(
        '<?xml version="1.0" encoding="UTF-8"?>\n<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">'
    )
    assert "<edXML:TyperNotation>TVC</edXML:TyperNotation>" in text and "<edXML:Bussiness>" in text
    assert "<edXML:ContentId>cid:209</edXML:ContentId>" in text  # manifest and attachment linked by cid:


def test_older_and_other_builders_packets_are_read() -> None:
    """xlink:href links, the edXML prefix on the root, Priority 4 (hỏa tốc hẹn giờ), update and replace."""
    update = parse_packet((SAMPLES / "written_update_xlink_legacy_priority.edxml").read_bytes())
    assert update.bussiness_doc_type is BussinessDocType.UPDATE
    assert update.attachments[0].content_id == "bao-cao-quy-1"
    assert update.attachments[0].attachment_name == "bao-cao-quy-1.pdf"  # from the manifest
    assert update.attachments[0].data.startswith(b"%PDF") and not update.attachments[0].zipped
    other = update.message_header.other_info
    assert other is not None and other.priority == 4 and codes.urgency_of(other.priority) is codes.Urgency.HOA_TOC
    info = update.trace_header_list.bussiness and update.trace_header_list.bussiness.bussiness_document_info
    assert info and info.document_receiver is True and info.receiver_list[0].organ_id == "H10.01"
    replace = parse_packet((SAMPLES / "written_replace.edxml").read_bytes())
    assert replace.bussiness_doc_type is BussinessDocType.REPLACE
    bussiness = replace.trace_header_list.bussiness
    assert bussiness and bussiness.replacement_info_list[0].organ_id_list == ["000.00.00.G22"]
    assert codes.ACTION_OF[parse_any((SAMPLES / "written_recall.edxml").read_bytes()).bussiness_doc_type] == "recall"  # type: ignore[union-attr]


# --- status packets --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STATUS_SAMPLES)
def test_status_packets_in_both_wrappers_parse_and_round_trip(name: str) -> None:
    status = parse_status((SAMPLES / name).read_bytes())
    assert status.response_for.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert status.from_.organ_id == "000.00.00.H41" and status.staff_info and status.staff_info.staff
    assert status.wrapper == ("soap" if "soap" in name else "edxml")
    assert isinstance(parse_any((SAMPLES / name).read_bytes()), StatusPacket)
    for wrapper in ("edxml", "soap"):
        status.wrapper = wrapper
        written = write_status(status)
        assert parse_status(written) == status
        root = etree.fromstring(written)
        assert etree.QName(root).localname == ("Envelope" if wrapper == "soap" else "edXML")
        assert written.count(b"<edXML:StatusCode>") == 1


# --- signatures ------------------------------------------------------------------------------------


def test_a_signed_packet_verifies_and_any_change_is_refused_with_the_reason(pki: Pki) -> None:
    unsigned = write_packet(parse_packet(SDK_SAMPLE.read_bytes()))
    for identity in (pki.seal, pki.tsa):  # EC P-256 and RSA
        signed = sign_packet(unsigned, key=identity.key, certificate=identity.cert, chain=[pki.intermediate.cert])
        packet, check = read_signed_packet(signed)
        assert check.placement == "ds" and check.certificate == identity.cert
        assert check.chain == [pki.intermediate.cert] and "sha256" in check.algorithms
        header = etree.fromstring(signed).find(f"{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader")
        assert header is not None and etree.QName(header[-1]).localname == "Signature"  # at the end of the header
        assert _without_signature(packet) == parse_packet(unsigned)
    changed_subject = signed.replace("phần mềm quản lý".encode(), "phần mềm quản trị".encode(), 1)
    body = etree.fromstring(signed).find(f".//{{{EDXML_NS}}}ContentTransferEncoded")
    assert body is not None and body.text
    at = signed.index(body.text.encode()) + 40  # one base64 letter of the attachment changed
    changed_attachment = signed[:at] + (b"A" if signed[at : at + 1] != b"A" else b"B") + signed[at + 1 :]
    for tampered in (changed_subject, changed_attachment):
        with pytest.raises(PacketSignatureInvalidError) as refused:
            verify_packet(tampered)
        assert refused.value.reason == "digest_mismatch" and refused.value.status == 422
    value = etree.fromstring(signed).find(".//{http://www.w3.org/2000/09/xmldsig#}SignatureValue")
    assert value is not None and value.text
    forged = signed.replace(value.text.encode(), base64.b64encode(b"\x01" * 256))
    with pytest.raises(PacketSignatureInvalidError) as refused:
        verify_packet(forged)
    assert refused.value.reason == "signature_mismatch"
    with pytest.raises(PacketSignatureInvalidError) as refused:
        verify_packet(unsigned)
    assert refused.value.reason == "signature_missing"
    with pytest.raises(PacketSignatureInvalidError) as refused:  # the sample's certificate is cut short
        verify_packet(SDK_SAMPLE.read_bytes())
    assert refused.value.reason == "certificate_missing"


def test_a_signature_in_the_edxml_namespace_is_verified_as_found(pki: Pki) -> None:
    signed = sign_edxml_default_namespace(edxml_packet(), pki.seal)
    check = verify_packet(signed)
    assert check.placement == "edXML" and check.certificate == pki.seal.cert
    with pytest.raises(PacketSignatureInvalidError) as refused:
        verify_packet(signed.replace("chuyển đổi số".encode(), "chuyển đổi".encode()))
    assert refused.value.reason == "digest_mismatch"


def test_a_packet_signed_as_the_national_samples_verifies(pki: Pki) -> None:
    unsigned = write_packet(parse_packet(SDK_SAMPLE.read_bytes()))
    signed = sign_edxml_as_the_samples(unsigned, pki.tsa)  # the test PKI's RSA identity
    assert b"<Signature><SignedInfo>" in signed.replace(b"\n", b"").replace(b" ", b"")
    packet, check = read_signed_packet(signed)
    assert check.placement == "edXML" and packet.signature == "edXML"
    assert check.algorithms == ["rsa-sha1", "sha1"] and "SHA-1" in check.notes[0]
    with pytest.raises(PacketSignatureInvalidError) as refused:
        verify_packet(signed.replace(b"000.00.00.H14", b"000.00.00.H15"))
    assert refused.value.reason == "digest_mismatch"


# --- hostile and broken input ----------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE edXML [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><edXMLEnvelope>&secret;</edXMLEnvelope></edXML>"""
LAUGHS = (
    b'<?xml version="1.0"?>\n<!-- a comment first --><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]><edXML>&lol9;</edXML>"
)


def _refused(data: bytes, **limits: int) -> PacketInvalidError:
    with pytest.raises(PacketInvalidError) as refused:
        parse_packet(data, **limits)
    assert 400 <= refused.value.status < 500
    problem = refused.value.to_problem()
    assert problem["code"] == "packet_invalid" and problem["reason"] == refused.value.reason
    return refused.value


def _sdk_with(old: bytes, new: bytes) -> bytes:
    data = SDK_SAMPLE.read_bytes()
    assert old in data
    return data.replace(old, new, 1)


def test_hostile_xml_is_refused_before_anything_is_expanded() -> None:
    assert _refused(XXE).reason == "doctype_forbidden"
    assert _refused(LAUGHS).reason == "doctype_forbidden"
    utf16_laughs = LAUGHS.replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>')
    assert _refused(utf16_laughs.decode().encode("utf-16")).reason == "doctype_forbidden"
    with pytest.raises(PacketTooLargeError) as too_large:
        parse_packet(SDK_SAMPLE.read_bytes(), max_bytes=10_000)
    assert too_large.value.status == 413 and too_large.value.code == "packet_too_large"
    assert _refused(b"<edXML>" + b"<a/>" * 300_000 + b"</edXML>").reason == "too_many_elements"
    malformed = _refused((SAMPLES / "sdk_edoc_malformed.edxml").read_bytes())
    assert malformed.reason == "not_well_formed" and "MessageHeader" in malformed.detail
    assert _refused(b"").reason == "not_well_formed"
    assert _refused(b"<html><body/></html>").reason == "not_a_packet"


def test_an_attachment_larger_than_libxml2_s_text_limit_is_read() -> None:
    """libxml2 refuses a text node over 10 MB unless its limits are lifted: a packet carrying one
    of the exchange's own attachments (up to 50 MiB) must still be read."""
    packet = parse_packet(SDK_SAMPLE.read_bytes())
    big = bytes(range(256)) * (11 * 1024 * 1024 // 256)  # 11 MiB: 14.7 MB of base64
    packet.attachments = [Attachment(content_id="big", attachment_name="scan.pdf", data=big)]
    again = parse_packet(write_packet(packet))
    assert [a.data == big for a in again.attachments] == [True]


def test_a_wrong_element_is_named_by_its_path() -> None:
    cases = [
        (b"<edXML:PageAmount>22<", b"<edXML:PageAmount>1000<", "element_invalid", "OtherInfo/PageAmount"),
        (
            b">2019/04/11</edXML:PromulgationDate>",
            b">2019/13/11</edXML:PromulgationDate>",
            "element_invalid",
            "PromulgationInfo/PromulgationDate",
        ),
        (b"<edXML:BussinessDocType>0<", b"<edXML:BussinessDocType>7<", "element_invalid", "Bussiness/BussinessDocType"),
        (b"<edXML:Priority>0<", b"<edXML:Priority>rat gap<", "element_invalid", "OtherInfo/Priority"),
        (b"UEsDBBQACAgIAGd5", b"UEsDBBQACAgIAGd5!!", "attachment_invalid", "Attachment/ContentTransferEncoded"),
        (b"<ContentId>cid:209</ContentId>", b"<ContentId>cid:210</ContentId>", "attachment_missing", "Reference"),
    ]
    for old, new, reason, where in cases:
        error = _refused(_sdk_with(old, new))
        assert error.reason == reason and error.element and error.element.endswith(where), (new, error.element)
    no_recipient = _refused(
        _sdk_with(b"<edXML:To>", b"<edXML:Too>")
        .replace(b"</edXML:To>", b"</edXML:Too>", 1)
        .replace(b"<edXML:To>", b"<edXML:Too>")
        .replace(b"</edXML:To>", b"</edXML:Too>")
    )
    assert no_recipient.reason == "element_missing" and no_recipient.element.endswith("MessageHeader/To")  # type: ignore[union-attr]


def test_a_zip_bomb_attachment_is_refused() -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("van-ban.pdf", b"\0" * 5_000_000)
    packet = Packet(
        message_header=MessageHeader(
            from_=Organization(organ_id="000.00.00.G22"), to=[Organization(organ_id="000.00.00.H41")]
        ),
        attachments=[Attachment(content_id="1", attachment_name="van-ban.pdf", data=bomb.getvalue())],
    )
    error = _refused(write_packet(packet), max_attachment_bytes=1_000_000)
    assert error.reason == "attachment_invalid" and "unzips past" in error.detail


# --- code tables -----------------------------------------------------------------------------------


def test_the_code_tables_map_both_ways() -> None:
    change_types = (BussinessDocType.RECALL, BussinessDocType.UPDATE, BussinessDocType.REPLACE)
    for kind in change_types:
        assert codes.status_in("03", kind) == "15" and codes.status_in("02", kind) == "16"
        assert codes.status_out("15", kind) == "03" and codes.status_out("16", kind) == "02"
    assert codes.status_in("03") == "03" and codes.status_out("15") == "15"
    assert codes.normalise_status_code("3") == "03" and codes.normalise_status_code("07") is None
    assert codes.status_in(codes.normalise_status_code("14") or "") == "15"  # one source's "agrees"
    assert {codes.DOC_TYPE_OF[a] for a in ("new", "recall", "update", "replace")} == set(BussinessDocType)
    assert codes.priority_from_text("Hỏa tốc hẹn giờ") == 4 and codes.priority_from_text("Thượng khẩn") == 2
    assert codes.urgency_of(4) is codes.Urgency.HOA_TOC


def test_a_document_id_is_made_and_split() -> None:
    made = document_id("000.00.00.G22", dt.date(2015, 9, 30), "7816", "VPCP-TTĐT")
    assert made == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert split_document_id(made) == ("000.00.00.G22", dt.date(2015, 9, 30), "7816", "VPCP-TTĐT")
    assert split_document_id("000.00.00.G22,2014/02/30,7806/VPCP-TTĐT") is None  # the SDK sample's
    assert split_document_id("9fbfbad2-f1f8-4256-a2eb-50fb1061cddb") is None


def test_an_aware_time_is_written_as_vietnam_s_clock_shows_it() -> None:
    status = parse_status((SAMPLES / "status_edxml_envelope.edxml").read_bytes())
    status.timestamp = dt.datetime(2026, 11, 29, 1, 30, tzinfo=dt.UTC)
    assert b"<edXML:Timestamp>2026/11/29 08:30:00</edXML:Timestamp>" in write_status(status)
    assert sorted(codes.priority_of(u) for u in codes.Urgency) == [0, 1, 2, 3]  # 4 is never written


def test_mangled_packets_get_a_clear_error_never_a_crash(pki: Pki) -> None:
    """Seeded random damage to the samples and to signed packets: only the library's own errors."""
    rng = random.Random(14)
    unsigned = write_packet(parse_packet(SDK_SAMPLE.read_bytes()))
    seeds = [p.read_bytes() for p in sorted(SAMPLES.iterdir()) if p.suffix != ".md"]
    seeds += [sign_packet(unsigned, key=pki.tsa.key, certificate=pki.tsa.cert, chain=[pki.intermediate.cert])]
    seeds += [sign_edxml_default_namespace(edxml_packet(), pki.seal)]
    inserts = [b"<", b"&", b"</edXML:To>", b"<!DOCTYPE a>", b"PK\x03\x04", b' URI="#x"', b"<edXML:Status>"]
    errors = (PacketInvalidError, PacketTooLargeError, PacketSignatureInvalidError)
    for _ in range(300):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data))
            if (kind := rng.random()) < 0.4:
                data[at] = rng.randrange(256)
            elif kind < 0.7:
                del data[at : at + rng.randint(1, 50)]
            else:
                data[at:at] = rng.choice(inserts)
        for read in (parse_any, verify_packet, read_signed_packet):
            try:
                read(bytes(data))
            except errors as error:
                assert 400 <= error.status < 500
