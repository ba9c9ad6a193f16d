"""QCVN 102:2016 edXML packets: read, write, sign and verify them (no database, no HTTP).

    parse_packet / parse_status / parse_any   bytes → Packet / StatusPacket, safely
    write_packet / write_status               Packet / StatusPacket → bytes, as the national samples
    sign_packet / verify_packet               enveloped XML-DSig at the end of edXMLHeader
    codes                                     BussinessDocType, urgency and status mapping tables

Errors: PacketInvalidError (422 packet_invalid, with ``reason`` and ``element``),
PacketTooLargeError (413 packet_too_large), PacketSignatureInvalidError (422
packet_signature_invalid, with ``reason``). See docs/interop.md.
"""

from services.exchange.edxml import codes
from services.exchange.edxml.codes import BussinessDocType
from services.exchange.edxml.errors import PacketInvalidError, PacketSignatureInvalidError, PacketTooLargeError
from services.exchange.edxml.packet import (
    STAFF_INFO_LIMITS,
    VIETNAM_TIME,
    Attachment,
    Bussiness,
    BussinessDocumentInfo,
    Code,
    DocumentIdParts,
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
    SignerInfo,
    StaffInfo,
    StatusPacket,
    TraceHeader,
    TraceHeaderList,
    document_id,
    split_document_id,
    zoned,
)
from services.exchange.edxml.parse import (
    DEFAULT_MAX_ATTACHMENT_BYTES,
    DEFAULT_MAX_PACKET_BYTES,
    parse_any,
    parse_packet,
    parse_status,
)
from services.exchange.edxml.signing import SignatureCheck, read_signed_packet, sign_packet, verify_packet
from services.exchange.edxml.write import EDXML_NS, write_packet, write_status

__all__ = [
    "DEFAULT_MAX_ATTACHMENT_BYTES",
    "DEFAULT_MAX_PACKET_BYTES",
    "EDXML_NS",
    "STAFF_INFO_LIMITS",
    "VIETNAM_TIME",
    "Attachment",
    "Bussiness",
    "BussinessDocType",
    "BussinessDocumentInfo",
    "Code",
    "DocumentIdParts",
    "DocumentType",
    "MessageHeader",
    "Organization",
    "OtherInfo",
    "Packet",
    "PacketInvalidError",
    "PacketSignatureInvalidError",
    "PacketTooLargeError",
    "PromulgationInfo",
    "Receiver",
    "Reference",
    "ReplacementInfo",
    "ResponseFor",
    "SignatureCheck",
    "SignerInfo",
    "StaffInfo",
    "StatusPacket",
    "TraceHeader",
    "TraceHeaderList",
    "codes",
    "document_id",
    "parse_any",
    "parse_packet",
    "parse_status",
    "read_signed_packet",
    "sign_packet",
    "split_document_id",
    "verify_packet",
    "write_packet",
    "write_status",
    "zoned",
]
