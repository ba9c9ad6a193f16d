"""What an attachment really is: its type read from its bytes (never from the sender's label),
checked against the allow list, and a file name safe to store and show."""

from __future__ import annotations

import re
from pathlib import Path

from services.exchange.errors import AttachmentArchiveUnsafeError, AttachmentTypeNotAllowedError
from shared.safezip import ArchiveLimits, BadArchiveError, UnsafeArchiveError, open_archive, read_entry
from shared.text import BIDI_CONTROL, TERMINAL_ESCAPE, nfc

PDF = "application/pdf"
ZIP = "application/zip"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODP = "application/vnd.oasis.opendocument.presentation"
DOC = "application/msword"
XLS = "application/vnd.ms-excel"
PNG, JPEG, TIFF = "image/png", "image/jpeg", "image/tiff"
XML = "application/xml"
P7S = "application/pkcs7-signature"

ALLOWED = (PDF, DOCX, XLSX, PPTX, ODT, ODS, ODP, DOC, XLS, PNG, JPEG, TIFF, ZIP, XML, P7S)
ALLOWED_DESCRIPTION = "PDF, DOCX, XLSX, PPTX, ODT, ODS, ODP, DOC, XLS, PNG, JPEG, TIFF, ZIP, XML (edXML), P7S"

_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f/\\:*?"<>|]+')
# besides the bidi controls of shared.text: the left-to-right and right-to-left marks, the Arabic letter mark
_INVISIBLE = re.compile(r"[\u200e\u200f\u061c]")


def sanitize_file_name(name: str | None, position: int) -> str:
    """Keep the base name, in NFC, without path separators or control characters: terminal escape
    sequences and Unicode bidirectional controls (``hoa-don-\u202egpj.exe`` shows as
    ``hoa-don-exe.jpg``) are removed, other control characters become ``_``."""
    base = nfc((name or "").replace("\\", "/").rsplit("/", 1)[-1])
    base = TERMINAL_ESCAPE.sub("", base)
    base = _INVISIBLE.sub("", BIDI_CONTROL.sub("", base))
    base = _UNSAFE.sub("_", base).strip(" .")
    return base[:255] or f"attachment-{position + 1}"


def sniff_head(head: bytes, file_name: str) -> str:
    """Classify a file by its first bytes; raise AttachmentTypeNotAllowedError for anything else.

    ZIP-based formats are told apart later by :func:`refine_zip` (the head does not show them)."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return ZIP
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    if stripped.startswith(b"<?xml"):
        return XML
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):  # OLE2: legacy Word / Excel
        return XLS if file_name.lower().endswith(".xls") else DOC
    if head[:1] == b"\x30" and file_name.lower().endswith((".p7s", ".p7m", ".sig")):  # DER SEQUENCE
        return P7S
    raise AttachmentTypeNotAllowedError(
        f"{file_name!r} is not an accepted kind of file (read from its content); accepted: {ALLOWED_DESCRIPTION}",
        allowed=list(ALLOWED),
        file_name=file_name,
    )


def refine_zip(path: Path, limits: ArchiveLimits | None = None, file_name: str = "") -> str:
    """Tell OOXML and ODF documents from plain ZIP archives by their entries.

    The archive is opened with bounded decompression (shared/safezip.py): an archive past the
    limits (entries, inflated size, ratio) is refused, and of ``mimetype`` at most 100 bytes are
    ever inflated, whatever it declares."""
    try:
        with open_archive(path, limits or ArchiveLimits()) as archive:
            names = archive.namelist()
            if "mimetype" in names:
                declared = read_entry(archive, "mimetype", 100, truncate=True).decode("ascii", "replace").strip()
                if declared in (ODT, ODS, ODP):
                    return declared
            prefixes = {name.split("/", 1)[0] for name in names}
            if "[Content_Types].xml" in names:
                if "word" in prefixes:
                    return DOCX
                if "xl" in prefixes:
                    return XLSX
                if "ppt" in prefixes:
                    return PPTX
    except UnsafeArchiveError as exc:
        raise AttachmentArchiveUnsafeError(
            f"{file_name or 'The archive'} is refused: {exc}", file_name=file_name
        ) from exc
    except BadArchiveError as exc:
        raise AttachmentTypeNotAllowedError("The file starts like a ZIP archive but is not a valid one") from exc
    return ZIP
