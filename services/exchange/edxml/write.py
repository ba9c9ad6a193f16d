"""Write edXML packets and status packets as the national samples write them.

The layout is the official SDK sample's (``edoc_new.edxml``): the root ``<edXML>`` in the default
namespace ``http://www.mic.gov.vn/TBT/QCVN_102_2016``, ``edXML:edXMLEnvelope`` declaring the
``edXML`` prefix for the header and body, ``AttachmentEncoded/Attachment`` after the envelope in the
default namespace with ``edXML:ContentTransferEncoded`` (base64), linked to the manifest by
``cid:`` ContentId. Element order and spellings are the sample's (``Bussiness``, ``TyperNotation``).
Optional elements the model leaves empty are left out. The packet is written unsigned:
:func:`services.exchange.edxml.signing.sign_packet` adds the signature at the end of edXMLHeader.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import zipfile
from typing import TypeAlias

from lxml import etree

from services.exchange.edxml.packet import (
    VIETNAM_TIME,
    Attachment,
    Bussiness,
    MessageHeader,
    Organization,
    OtherInfo,
    Packet,
    ResponseFor,
    StaffInfo,
    StatusPacket,
    TraceHeaderList,
)

EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
DATE_FORMAT = "%Y/%m/%d"
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # a fixed time: the same file zips to the same bytes

Element: TypeAlias = etree._Element


def _el(parent: Element, name: str, text: str | None = None) -> Element:
    element = etree.SubElement(parent, f"{{{EDXML_NS}}}{name}")
    if text is not None:
        element.text = text
    return element


def _leaf(parent: Element, name: str, value: object) -> None:
    """Write ``<name>value</name>`` unless the value is absent."""
    if value is None:
        return
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dt.datetime):  # an aware time is written as Vietnam's clock shows it
        local = value.astimezone(VIETNAM_TIME) if value.tzinfo is not None else value
        text = local.strftime(TIMESTAMP_FORMAT)
    elif isinstance(value, dt.date):
        text = value.strftime(DATE_FORMAT)
    else:
        text = str(value)
    _el(parent, name, text)


def _flag(parent: Element, name: str, value: bool | None) -> None:
    """Paper, DocumentInfo, DocumentReceiver are written 0/1."""
    if value is not None:
        _el(parent, name, "1" if value else "0")


def _organization(parent: Element, name: str, organ: Organization) -> None:
    element = _el(parent, name)
    _leaf(element, "OrganId", organ.organ_id)
    _leaf(element, "OrganizationInCharge", organ.organization_in_charge)
    _leaf(element, "OrganName", organ.organ_name)
    _leaf(element, "OrganAdd", organ.organ_add)
    _leaf(element, "Email", organ.email)
    _leaf(element, "Telephone", organ.telephone)
    _leaf(element, "Fax", organ.fax)
    _leaf(element, "Website", organ.website)


def _response_for(parent: Element, response: ResponseFor) -> None:
    element = _el(parent, "ResponseFor")
    _leaf(element, "OrganId", response.organ_id)
    _leaf(element, "Code", response.code)
    _leaf(element, "PromulgationDate", response.promulgation_date)
    _leaf(element, "DocumentId", response.document_id)


def _staff_info(parent: Element, staff: StaffInfo | None) -> None:
    if staff is None:
        return
    element = _el(parent, "StaffInfo")
    _leaf(element, "Department", staff.department)
    _leaf(element, "Staff", staff.staff)
    _leaf(element, "Email", staff.email)
    _leaf(element, "Mobile", staff.mobile)


def _other_info(parent: Element, info: OtherInfo | None) -> None:
    if info is None:
        return
    element = _el(parent, "OtherInfo")
    _leaf(element, "Priority", info.priority)
    _leaf(element, "SphereOfPromulgation", info.sphere_of_promulgation)
    _leaf(element, "TyperNotation", info.typer_notation)
    _leaf(element, "PromulgationAmount", info.promulgation_amount)
    _leaf(element, "PageAmount", info.page_amount)
    _leaf(element, "Direction", info.direction)
    if info.appendixes:
        appendixes = _el(element, "Appendixes")
        for appendix in info.appendixes:
            _leaf(appendixes, "Appendix", appendix)


def _message_header(parent: Element, header: MessageHeader) -> None:
    element = _el(parent, "MessageHeader")
    _organization(element, "From", header.from_)
    for recipient in header.to:
        _organization(element, "To", recipient)
    _leaf(element, "DocumentId", header.document_id)
    if header.code is not None:
        code = _el(element, "Code")
        _leaf(code, "CodeNumber", header.code.code_number)
        _leaf(code, "CodeNotation", header.code.code_notation)
    if header.promulgation_info is not None:
        info = _el(element, "PromulgationInfo")
        _leaf(info, "Place", header.promulgation_info.place)
        _leaf(info, "PromulgationDate", header.promulgation_info.promulgation_date)
    if header.document_type is not None:
        kind = _el(element, "DocumentType")
        _leaf(kind, "Type", header.document_type.type)
        _leaf(kind, "TypeDetail", header.document_type.type_detail)
        _leaf(kind, "TypeName", header.document_type.type_name)
    _leaf(element, "Subject", header.subject)
    _leaf(element, "Content", header.content)
    if header.signer_info is not None:
        signer = _el(element, "SignerInfo")
        _leaf(signer, "Competence", header.signer_info.competence)
        _leaf(signer, "Position", header.signer_info.position)
        _leaf(signer, "FullName", header.signer_info.full_name)
    _leaf(element, "DueDate", header.due_date)
    _other_info(element, header.other_info)
    _leaf(element, "SteeringType", header.steering_type)
    if header.to_places:
        places = _el(element, "ToPlaces")
        for place in header.to_places:
            _leaf(places, "Place", place)
    for response in header.response_for:
        _response_for(element, response)


def _bussiness(parent: Element, bussiness: Bussiness | None) -> None:
    if bussiness is None:
        return
    element = _el(parent, "Bussiness")
    _leaf(element, "DocumentId", bussiness.document_id)
    _leaf(element, "BussinessDocType", int(bussiness.bussiness_doc_type))
    _leaf(element, "BussinessDocReason", bussiness.bussiness_doc_reason)
    _flag(element, "Paper", bussiness.paper)
    _staff_info(element, bussiness.staff_info)
    info = bussiness.bussiness_document_info
    if info is not None:
        info_element = _el(element, "BussinessDocumentInfo")
        _flag(info_element, "DocumentInfo", info.document_info)
        _flag(info_element, "DocumentReceiver", info.document_receiver)
        if info.receiver_list:
            receivers = _el(info_element, "ReceiverList")
            for receiver in info.receiver_list:
                item = _el(receivers, "Receiver")
                _leaf(item, "ReceiverType", receiver.receiver_type)
                _leaf(item, "OrganId", receiver.organ_id)
    if bussiness.replacement_info_list:
        replacements = _el(element, "ReplacementInfoList")
        for replacement in bussiness.replacement_info_list:
            item = _el(replacements, "ReplacementInfo")
            _leaf(item, "DocumentId", replacement.document_id)
            organs = _el(item, "OrganIdList")
            for organ_id in replacement.organ_id_list:
                _leaf(organs, "OrganId", organ_id)


def _trace_header_list(parent: Element, trace: TraceHeaderList) -> None:
    if not trace.trace_header and trace.bussiness is None:
        return
    element = _el(parent, "TraceHeaderList")
    _bussiness(element, trace.bussiness)  # first, as the national SDK writes it (DOMAIN.md lists it after)
    for hop in trace.trace_header:
        item = _el(element, "TraceHeader")
        _leaf(item, "OrganId", hop.organ_id)
        _leaf(item, "Timestamp", hop.timestamp)


def _zipped(attachment: Attachment) -> bytes:
    """The file zipped alone, as the SDK sends it (a fixed time stamp: same file, same bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(attachment.attachment_name or attachment.content_id, date_time=_ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, attachment.data)
    return out.getvalue()


def packet_tree(packet: Packet) -> Element:
    """The packet as an lxml tree (unsigned)."""
    root = etree.Element(f"{{{EDXML_NS}}}edXML", nsmap={None: EDXML_NS})
    envelope = etree.SubElement(root, f"{{{EDXML_NS}}}edXMLEnvelope", nsmap={"edXML": EDXML_NS})
    header = _el(envelope, "edXMLHeader")
    _message_header(header, packet.message_header)
    _trace_header_list(header, packet.trace_header_list)
    manifest = _el(_el(envelope, "edXMLBody"), "edXMLManifest")
    manifest.set("version", "1.0")
    references = {r.content_id: r for r in packet.references}
    for attachment in packet.attachments:
        reference = references.get(attachment.content_id)
        item = _el(manifest, "Reference")
        _leaf(item, "ContentId", f"cid:{attachment.content_id}")
        _leaf(item, "ContentType", reference.content_type if reference else attachment.content_type)
        _leaf(item, "Description", reference.description if reference else attachment.description)
        _leaf(item, "AttachmentName", reference.attachment_name if reference else attachment.attachment_name)
    if packet.attachments:
        encoded = _el(root, "AttachmentEncoded")
        for attachment in packet.attachments:
            item = _el(encoded, "Attachment")
            _leaf(item, "ContentId", f"cid:{attachment.content_id}")
            _leaf(item, "AttachmentName", attachment.attachment_name)
            _leaf(item, "Description", attachment.description)
            _leaf(item, "ContentType", attachment.content_type)
            data = _zipped(attachment) if attachment.zipped else attachment.data
            body = etree.SubElement(item, f"{{{EDXML_NS}}}ContentTransferEncoded", nsmap={"edXML": EDXML_NS})
            body.text = base64.b64encode(data).decode("ascii")
    return root


def write_packet(packet: Packet) -> bytes:
    """The packet as UTF-8 XML bytes, unsigned, indented as the samples are."""
    return to_bytes(packet_tree(packet))


def to_bytes(root: Element, *, pretty: bool = True) -> bytes:
    """A tree as the samples' bytes: the declaration in double quotes, UTF-8."""
    body: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=False, pretty_print=pretty)
    return XML_DECLARATION + body


def _status(parent: Element, status: StatusPacket) -> None:
    element = _el(parent, "Status")
    _response_for(element, status.response_for)
    _organization(element, "From", status.from_)
    _leaf(element, "StatusCode", status.status_code)
    _leaf(element, "Description", status.description)
    _leaf(element, "Timestamp", status.timestamp)
    _staff_info(element, status.staff_info)


def write_status(status: StatusPacket) -> bytes:
    """A status packet in its ``wrapper``: ``edxml`` (edXML/edXMLEnvelope/edXMLHeader/Status) or
    ``soap`` (SOAP-ENV:Envelope/SOAP-ENV:Header/edXML:Status, an empty SOAP-ENV:Body)."""
    if status.wrapper == "soap":
        root = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"SOAP-ENV": SOAP_NS, "edXML": EDXML_NS})
        _status(etree.SubElement(root, f"{{{SOAP_NS}}}Header"), status)
        etree.SubElement(root, f"{{{SOAP_NS}}}Body")
    else:
        root = etree.Element(f"{{{EDXML_NS}}}edXML", nsmap={None: EDXML_NS})
        envelope = etree.SubElement(root, f"{{{EDXML_NS}}}edXMLEnvelope", nsmap={"edXML": EDXML_NS})
        _status(_el(envelope, "edXMLHeader"), status)
    return to_bytes(root)
