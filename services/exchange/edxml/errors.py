"""The errors of the edXML library, rendered as problem+json by the service's one handler.

    PacketInvalidError           422 packet_invalid            (``reason`` and ``element`` say what and where)
    PacketTooLargeError          413 packet_too_large
    PacketSignatureInvalidError  422 packet_signature_invalid  (``reason`` says why)

``reason`` is a stable machine word (``not_well_formed``, ``doctype_forbidden``, ``element_missing``,
``element_invalid``, ``attachment_invalid``, ``attachment_missing``, ``not_a_packet`` …; for a
signature ``signature_missing``, ``digest_mismatch``, ``signature_mismatch``, ``certificate_missing``,
``signature_unreadable``); ``element`` is the path of the element at fault, e.g.
``edXML/edXMLEnvelope/edXMLHeader/MessageHeader/OtherInfo/PageAmount``.
"""

from __future__ import annotations

from shared.errors import PayloadTooLargeError, UnprocessableError


class PacketInvalidError(UnprocessableError):
    """The packet cannot be read: malformed, hostile (DOCTYPE, entities) or an element is wrong."""

    code, title = "packet_invalid", "The edXML packet is not valid"

    def __init__(self, detail: str, *, reason: str, element: str | None = None) -> None:
        super().__init__(detail, reason=reason, element=element)
        self.reason = reason
        self.element = element


class PacketTooLargeError(PayloadTooLargeError):
    """The packet is larger than the limit it was read with."""

    code, title = "packet_too_large", "The edXML packet is larger than accepted"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"The packet has {size} bytes; at most {limit} are accepted", size=size, limit=limit)
        self.reason = "too_large"


class PacketSignatureInvalidError(UnprocessableError):
    """The packet's XML-DSig is missing, unreadable, or does not match the packet (it was changed)."""

    code, title = "packet_signature_invalid", "The edXML packet's signature is not valid"

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail, reason=reason)
        self.reason = reason
