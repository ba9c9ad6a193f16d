"""Read edXML packets and status packets, safely.

The XML parser resolves no entity, loads no DTD and touches no network; a document with a DOCTYPE
is refused outright (no packet needs one; XXE and billion laughs live there), and so is one larger
than ``max_bytes`` or with more than ``MAX_MARKUP`` pieces of markup. Within those bounds libxml2's
own size limits are lifted (``huge_tree``): without it one text node, hence one base64 attachment,
could not pass 10 MB, and a packet of the exchange's own 50 MiB attachments could not be read.
Whatever is wrong raises :class:`PacketInvalidError` naming the element
(or :class:`PacketTooLargeError`), never anything else.

Elements are found by local name, so a packet is read whatever prefixes it uses and wherever its
writer put the namespace (the SDK samples leave ``AttachmentEncoded`` and ``Signature`` in the
default namespace; one SOAP status builder binds ``edXML:`` to the SOAP namespace).
"""

from __future__ import annotations

import binascii
import datetime as dt
import io
import re
import zipfile
import zlib
from collections.abc import Callable
from typing import TypeAlias, TypeVar

from lxml import etree

from services.exchange.edxml.codes import BussinessDocType, normalise_status_code, priority_from_text
from services.exchange.edxml.errors import PacketInvalidError, PacketTooLargeError
from services.exchange.edxml.packet import (
    Attachment,
    Bussiness,
    BussinessDocumentInfo,
    Code,
    DocumentType,
    MessageHeader,
    Organization,
    OtherInfo,
    Packet,
    PromulgationInfo,
    Receiver,
    Reference,
    ReplacementInfo,
    ResponseFor,
    SignaturePlacement,
    SignerInfo,
    StaffInfo,
    StatusPacket,
    TraceHeader,
    TraceHeaderList,
)

DEFAULT_MAX_PACKET_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024
MAX_MARKUP = 200_000  # "<" in a packet: a real one has hundreds, thousands with many recipients
PAGE_AMOUNT_MAX = 999
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_DATE_FORMATS = ("%Y/%m/%d", "%Y-%m-%d", "%d/%m/%Y")
_TIMESTAMP_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M:%S")
_ZIP_MAGIC = b"PK\x03\x04"
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)

T = TypeVar("T")
Element: TypeAlias = etree._Element


# --- the XML itself -------------------------------------------------------------------------------


def read_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_PACKET_BYTES) -> Element:
    """Parse ``data`` as XML with entities, DTDs and network off; refuse a DOCTYPE and ``max_bytes``+."""
    if len(data) > max_bytes:
        raise PacketTooLargeError(len(data), max_bytes)
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=True,  # bounded above: max_bytes, MAX_MARKUP, no DTD
        dtd_validation=False,
        remove_pis=True,
        collect_ids=False,
    )
    if (tags := data.count(b"<")) > MAX_MARKUP:  # millions of tiny elements: gigabytes of tree from megabytes
        raise PacketInvalidError(
            f"The packet has {tags} pieces of markup; at most {MAX_MARKUP} are read", reason="too_many_elements"
        )
    first_element = _FIRST_ELEMENT.search(data)
    if _DOCTYPE.search(data, 0, first_element.start() if first_element else len(data)):
        raise PacketInvalidError(
            "A packet may not carry a DOCTYPE (entities and DTDs are refused)", reason="doctype_forbidden"
        )
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        message = str(exc)
        reason = "element_too_large" if "Resource limit exceeded" in message else "not_well_formed"
        if "amplification" in message:  # a DOCTYPE the byte check could not see (UTF-16): libxml2 stopped it
            reason = "doctype_forbidden"
        raise PacketInvalidError(f"The packet is not well-formed XML: {message}", reason=reason) from exc
    except (ValueError, etree.LxmlError) as exc:  # an encoding declared but wrong, and the like
        raise PacketInvalidError(f"The packet cannot be read as XML: {exc}", reason="not_well_formed") from exc
    if root is None:
        raise PacketInvalidError("The packet is empty", reason="not_well_formed")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise PacketInvalidError(
            "A packet may not carry a DOCTYPE (entities and DTDs are refused)", reason="doctype_forbidden"
        )
    return root


def _local(element: Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def path_of(element: Element) -> str:
    """The element's path from the root by local names, e.g. ``edXML/edXMLEnvelope/edXMLHeader``."""
    names = [_local(e) for e in (element, *element.iterancestors())]
    return "/".join(reversed(names))


def _children(element: Element, name: str) -> list[Element]:
    return [c for c in element if isinstance(c.tag, str) and _local(c) == name]


def _child(element: Element | None, name: str) -> Element | None:
    if element is None:
        return None
    for c in element:
        if isinstance(c.tag, str) and _local(c) == name:
            return c
    return None


def _require(element: Element, name: str) -> Element:
    found = _child(element, name)
    if found is None:
        raise PacketInvalidError(
            f"{path_of(element)} lacks {name}", reason="element_missing", element=f"{path_of(element)}/{name}"
        )
    return found


def _own_text(element: Element) -> str | None:
    text = element.text or ""
    for c in element:  # comments between pieces of text
        if not isinstance(c.tag, str):
            text += c.tail or ""
    text = text.strip()
    return text or None


def _text(element: Element | None, name: str) -> str | None:
    found = _child(element, name)
    return _own_text(found) if found is not None else None


def _typed(element: Element | None, name: str, convert: Callable[[str], T | None], what: str) -> T | None:
    found = _child(element, name)
    text = _own_text(found) if found is not None else None
    if found is None or text is None:
        return None
    value = convert(text)
    if value is None:
        raise PacketInvalidError(
            f"{path_of(found)} is not {what}: {text[:40]!r}", reason="element_invalid", element=path_of(found)
        )
    return value


def _parse_date(text: str) -> dt.date | None:
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _parse_timestamp(text: str) -> dt.datetime | None:
    for fmt in _TIMESTAMP_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    day = _parse_date(text)
    return dt.datetime.combine(day, dt.time()) if day else None


def _parse_int(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) <= 9 else None


def _parse_bool(text: str) -> bool | None:
    return {"true": True, "1": True, "false": False, "0": False}.get(text.lower())


def _date(element: Element | None, name: str) -> dt.date | None:
    return _typed(element, name, _parse_date, "a date (yyyy/MM/dd)")


def _timestamp(element: Element | None, name: str) -> dt.datetime | None:
    return _typed(element, name, _parse_timestamp, "a timestamp (yyyy/MM/dd HH:mm:ss)")


def _int(element: Element | None, name: str) -> int | None:
    return _typed(element, name, _parse_int, "a whole number")


def _bool(element: Element | None, name: str) -> bool | None:
    return _typed(element, name, _parse_bool, "true/false or 1/0")


# --- the parts ------------------------------------------------------------------------------------


def _organization(element: Element) -> Organization:
    organ_id = _text(element, "OrganId")
    if organ_id is None:
        raise PacketInvalidError(
            f"{path_of(element)} has no OrganId", reason="element_missing", element=f"{path_of(element)}/OrganId"
        )
    return Organization(
        organ_id=organ_id,
        organization_in_charge=_text(element, "OrganizationInCharge"),
        organ_name=_text(element, "OrganName"),
        organ_add=_text(element, "OrganAdd"),
        email=_text(element, "Email"),
        telephone=_text(element, "Telephone"),
        fax=_text(element, "Fax"),
        website=_text(element, "Website"),
    )


def _staff_info(element: Element | None) -> StaffInfo | None:
    if element is None:
        return None
    return StaffInfo(
        department=_text(element, "Department"),
        staff=_text(element, "Staff"),
        email=_text(element, "Email"),
        mobile=_text(element, "Mobile"),
    )


def _response_for(element: Element) -> ResponseFor:
    return ResponseFor(
        organ_id=_text(element, "OrganId"),
        code=_text(element, "Code"),
        promulgation_date=_date(element, "PromulgationDate"),
        document_id=_text(element, "DocumentId"),
    )


def _other_info(element: Element | None) -> OtherInfo | None:
    if element is None:
        return None
    page_amount = _int(element, "PageAmount")
    if page_amount is not None and page_amount > PAGE_AMOUNT_MAX:
        where = f"{path_of(element)}/PageAmount"
        raise PacketInvalidError(
            f"{where} is {page_amount}; at most {PAGE_AMOUNT_MAX}", reason="element_invalid", element=where
        )
    appendixes = _child(element, "Appendixes")
    return OtherInfo(
        priority=_typed(element, "Priority", priority_from_text, "an urgency (0–4)"),
        sphere_of_promulgation=_text(element, "SphereOfPromulgation"),
        typer_notation=_text(element, "TyperNotation"),
        promulgation_amount=_int(element, "PromulgationAmount"),
        page_amount=page_amount,
        direction=_bool(element, "Direction"),
        appendixes=[t for a in _children(appendixes, "Appendix") if (t := _own_text(a))]
        if appendixes is not None
        else [],
    )


def _message_header(header: Element) -> MessageHeader:
    message = _require(header, "MessageHeader")
    recipients = _children(message, "To")
    if not recipients:
        raise PacketInvalidError(
            "The packet names no recipient (To)", reason="element_missing", element=f"{path_of(message)}/To"
        )
    code = _child(message, "Code")
    promulgation = _child(message, "PromulgationInfo")
    document_type = _child(message, "DocumentType")
    signer = _child(message, "SignerInfo")
    places = _child(message, "ToPlaces")
    response_for = [_response_for(r) for r in _children(message, "ResponseFor")]
    return MessageHeader(
        from_=_organization(_require(message, "From")),
        to=[_organization(r) for r in recipients],
        document_id=_text(message, "DocumentId"),
        code=Code(code_number=_text(code, "CodeNumber"), code_notation=_text(code, "CodeNotation"))
        if code is not None
        else None,
        promulgation_info=PromulgationInfo(
            place=_text(promulgation, "Place"), promulgation_date=_date(promulgation, "PromulgationDate")
        )
        if promulgation is not None
        else None,
        document_type=DocumentType(
            type=_text(document_type, "Type"),
            type_detail=_text(document_type, "TypeDetail"),
            type_name=_text(document_type, "TypeName"),
        )
        if document_type is not None
        else None,
        subject=_text(message, "Subject"),
        content=_text(message, "Content"),
        signer_info=SignerInfo(
            competence=_text(signer, "Competence"),
            position=_text(signer, "Position"),
            full_name=_text(signer, "FullName"),
        )
        if signer is not None
        else None,
        due_date=_date(message, "DueDate"),
        other_info=_other_info(_child(message, "OtherInfo")),
        steering_type=_int(message, "SteeringType"),
        to_places=[t for p in _children(places, "Place") if (t := _own_text(p))] if places is not None else [],
        # an empty ResponseFor (all its children blank) is how some systems write "none"
        response_for=[r for r in response_for if any(vars(r).values())],
    )


def _bussiness(element: Element | None) -> Bussiness | None:
    if element is None:
        return None
    kind = _int(element, "BussinessDocType")
    if kind is not None and kind not in BussinessDocType._value2member_map_:
        where = f"{path_of(element)}/BussinessDocType"
        raise PacketInvalidError(
            f"{where} is {kind}; 0 new, 1 recall, 2 update, 3 replace", reason="element_invalid", element=where
        )
    info = _child(element, "BussinessDocumentInfo")
    receivers = _child(info, "ReceiverList")
    document_info = None
    if info is not None:
        receiver_list = []
        for r in _children(receivers, "Receiver") if receivers is not None else []:
            organ_id = _text(r, "OrganId")
            if organ_id is None:
                raise PacketInvalidError(
                    f"{path_of(r)} has no OrganId", reason="element_missing", element=f"{path_of(r)}/OrganId"
                )
            receiver_list.append(Receiver(organ_id=organ_id, receiver_type=_int(r, "ReceiverType")))
        document_info = BussinessDocumentInfo(
            document_info=_bool(info, "DocumentInfo"),
            document_receiver=_bool(info, "DocumentReceiver"),
            receiver_list=receiver_list,
        )
    replacements = []
    replacement_list = _child(element, "ReplacementInfoList")
    for item in _children(replacement_list, "ReplacementInfo") if replacement_list is not None else []:
        document_id = _text(item, "DocumentId")
        if document_id is None:
            raise PacketInvalidError(
                f"{path_of(item)} has no DocumentId", reason="element_missing", element=f"{path_of(item)}/DocumentId"
            )
        organs = _child(item, "OrganIdList")
        ids = [t for o in _children(organs, "OrganId") if (t := _own_text(o))] if organs is not None else []
        replacements.append(ReplacementInfo(document_id=document_id, organ_id_list=ids))
    return Bussiness(
        document_id=_text(element, "DocumentId"),
        bussiness_doc_type=BussinessDocType(kind or 0),
        bussiness_doc_reason=_text(element, "BussinessDocReason"),
        paper=_bool(element, "Paper"),
        staff_info=_staff_info(_child(element, "StaffInfo")),
        bussiness_document_info=document_info,
        replacement_info_list=replacements,
    )


def _trace_header_list(header: Element) -> TraceHeaderList:
    element = _child(header, "TraceHeaderList")
    if element is None:
        return TraceHeaderList()
    hops = []
    for hop in _children(element, "TraceHeader"):
        organ_id = _text(hop, "OrganId")
        if organ_id is None:
            raise PacketInvalidError(
                f"{path_of(hop)} has no OrganId", reason="element_missing", element=f"{path_of(hop)}/OrganId"
            )
        hops.append(TraceHeader(organ_id=organ_id, timestamp=_timestamp(hop, "Timestamp")))
    return TraceHeaderList(trace_header=hops, bussiness=_bussiness(_child(element, "Bussiness")))


def _content_id(text: str | None) -> str | None:
    """``cid:209``, ``<209>``, ``209`` → ``209``."""
    if not text:
        return None
    text = text.strip()
    if text[:4].lower() == "cid:":
        text = text[4:]
    return text.strip("<>").strip() or None


def _reference(element: Element) -> Reference:
    content_id = _content_id(_text(element, "ContentId")) or _content_id(element.get(XLINK_HREF))
    if content_id is None:
        raise PacketInvalidError(
            f"{path_of(element)} names no attachment (ContentId or xlink:href)",
            reason="element_missing",
            element=f"{path_of(element)}/ContentId",
        )
    return Reference(
        content_id=content_id,
        content_type=_text(element, "ContentType"),
        description=_text(element, "Description"),
        attachment_name=_text(element, "AttachmentName"),
    )


def _base64(text: str) -> bytes:
    """Strict base64, line breaks allowed (split only when there are some: 1 MB costs 0.4 ms)."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        return binascii.a2b_base64("".join(text.split()), strict_mode=True)


def _unzipped(data: bytes, name: str | None, where: str, limit: int) -> tuple[bytes, bool]:
    """The one file the SDK zipped, read at most ``limit`` bytes of; ``data`` itself if it is no such zip."""
    if not data.startswith(_ZIP_MAGIC) or (name or "").lower().endswith(".zip"):
        return data, False
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) != 1:
            return data, False  # a real archive sent as such
        with archive.open(members[0]) as stream:
            inner = stream.read(limit + 1)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        ValueError,
        NotImplementedError,
        RuntimeError,
        EOFError,
        OSError,
    ) as exc:
        raise PacketInvalidError(
            f"{where} is a zip that cannot be read: {exc}", reason="attachment_invalid", element=where
        ) from exc
    if len(inner) > limit:
        raise PacketInvalidError(f"{where} unzips past {limit} bytes", reason="attachment_invalid", element=where)
    return inner, True


def _attachments(root: Element, references: list[Reference], limit: int) -> list[Attachment]:
    by_id = {r.content_id: r for r in references}
    found: list[Attachment] = []
    encoded = _child(root, "AttachmentEncoded")
    for element in _children(encoded, "Attachment") if encoded is not None else []:
        where = path_of(element)
        content_id = _content_id(_text(element, "ContentId")) or _content_id(element.get(XLINK_HREF))
        if content_id is None:
            raise PacketInvalidError(
                f"{where} has no ContentId", reason="element_missing", element=f"{where}/ContentId"
            )
        body = _child(element, "ContentTransferEncoded")
        text = _own_text(body) if body is not None else None
        if body is None or text is None:
            raise PacketInvalidError(
                f"{where} has no content", reason="element_missing", element=f"{where}/ContentTransferEncoded"
            )
        try:
            data = _base64(text)
        except (binascii.Error, ValueError) as exc:
            raise PacketInvalidError(
                f"{path_of(body)} is not base64", reason="attachment_invalid", element=path_of(body)
            ) from exc
        reference = by_id.get(content_id)
        name = _text(element, "AttachmentName") or (reference.attachment_name if reference else None)
        data, zipped = _unzipped(data, name, path_of(body), limit)
        if len(data) > limit:
            raise PacketInvalidError(f"{where} is past {limit} bytes", reason="attachment_invalid", element=where)
        found.append(
            Attachment(
                content_id=content_id,
                attachment_name=name,
                description=_text(element, "Description") or (reference.description if reference else None),
                content_type=_text(element, "ContentType") or (reference.content_type if reference else None),
                data=data,
                zipped=zipped,
            )
        )
    present = {a.content_id for a in found}
    for reference in references:
        if reference.content_id not in present:
            raise PacketInvalidError(
                f"The manifest names attachment cid:{reference.content_id}, which the packet does not carry",
                reason="attachment_missing",
                element="edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference",
            )
    return found


def _signature_placement(header: Element) -> SignaturePlacement | None:
    for element in _children(header, "Signature"):
        if _child(element, "SignedInfo") is not None:
            return "ds" if etree.QName(element).namespace == DS_NS else "edXML"
    return None


# --- entry points ---------------------------------------------------------------------------------


def packet_from_xml(root: Element, *, max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES) -> Packet:
    """The :class:`Packet` of an already parsed (safely: :func:`read_xml`) document."""
    if _local(root) != "edXML":
        raise PacketInvalidError(
            f"The root element is {_local(root)}, not edXML", reason="not_a_packet", element=_local(root)
        )
    envelope = _require(root, "edXMLEnvelope")
    header = _require(envelope, "edXMLHeader")
    manifest = _child(_child(envelope, "edXMLBody"), "edXMLManifest")
    references = [_reference(r) for r in _children(manifest, "Reference")] if manifest is not None else []
    return Packet(
        message_header=_message_header(header),
        trace_header_list=_trace_header_list(header),
        references=references,
        attachments=_attachments(root, references, max_attachment_bytes),
        signature=_signature_placement(header),
    )


def parse_packet(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_PACKET_BYTES,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
) -> Packet:
    """Read a document packet (``edXML`` root) with its attachments decoded (and unzipped)."""
    return packet_from_xml(read_xml(data, max_bytes=max_bytes), max_attachment_bytes=max_attachment_bytes)


def _status_element(root: Element) -> tuple[Element, str]:
    name = _local(root)
    if name == "Status":
        return root, "edxml"
    if name == "Envelope":  # SOAP: Envelope/Header/Status
        status = _child(_child(root, "Header"), "Status")
        wrapper = "soap"
    elif name == "edXML":
        status = _child(_child(_child(root, "edXMLEnvelope"), "edXMLHeader"), "Status")
        wrapper = "edxml"
    else:
        raise PacketInvalidError(
            f"The root element is {name}: not a status packet", reason="not_a_packet", element=name
        )
    if status is None:
        where = "Envelope/Header/Status" if wrapper == "soap" else "edXML/edXMLEnvelope/edXMLHeader/Status"
        raise PacketInvalidError("The packet carries no Status", reason="element_missing", element=where)
    return status, wrapper


def status_from_xml(root: Element) -> StatusPacket:
    """The :class:`StatusPacket` of an already parsed document, in either wrapper."""
    status, wrapper = _status_element(root)
    code = _typed(status, "StatusCode", normalise_status_code, "a national status code")
    if code is None:
        raise PacketInvalidError(
            "The status packet has no StatusCode", reason="element_missing", element=f"{path_of(status)}/StatusCode"
        )
    return StatusPacket(
        response_for=_response_for(_require(status, "ResponseFor")),
        from_=_organization(_require(status, "From")),
        status_code=code,
        description=_text(status, "Description"),
        timestamp=_timestamp(status, "Timestamp"),
        staff_info=_staff_info(_child(status, "StaffInfo")),
        wrapper="soap" if wrapper == "soap" else "edxml",
    )


def parse_status(data: bytes, *, max_bytes: int = DEFAULT_MAX_PACKET_BYTES) -> StatusPacket:
    """Read a status packet, in an edXML envelope or a SOAP envelope (Header/Status)."""
    return status_from_xml(read_xml(data, max_bytes=max_bytes))


def parse_any(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_PACKET_BYTES,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
) -> Packet | StatusPacket:
    """Read whichever a hub hands over: a document packet or a status packet."""
    root = read_xml(data, max_bytes=max_bytes)
    if _local(root) == "edXML" and _child(_child(_child(root, "edXMLEnvelope"), "edXMLHeader"), "Status") is None:
        return packet_from_xml(root, max_attachment_bytes=max_attachment_bytes)
    return status_from_xml(root)
