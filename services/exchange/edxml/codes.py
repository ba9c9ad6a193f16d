"""The code tables of QCVN 102 packets and how they map onto the exchange's own words.

BussinessDocType (``TraceHeaderList/Bussiness/BussinessDocType``)

    | edXML | meaning                        | exchange action |
    |-------|--------------------------------|-----------------|
    | 0     | new document (văn bản mới)     | ``new``         |
    | 1     | recall (thu hồi)               | ``recall``      |
    | 2     | update (cập nhật)              | ``update``      |
    | 3     | replace (thay thế)             | ``replace``     |

Status codes (``Status/StatusCode``): the national codes are ours, with one exception. A recall,
update or replacement sent as a *document packet* (BussinessDocType 1, 2, 3) is answered by national
systems with 03 (agree) or 02 (refuse); the exchange records those answers as 15 / 16.

    | answering a packet of type | national code in | exchange code | exchange code out | national code out |
    |----------------------------|------------------|---------------|-------------------|-------------------|
    | 0 new                      | 01 … 06          | same          | 01 … 06           | same              |
    | 1 recall, 2 update, 3 repl.| 03 agree         | 15            | 15                | 03                |
    | 1 recall, 2 update, 3 repl.| 02 refuse        | 16            | 16                | 02                |
    | any                        | 13, 15, 16       | same          | 13, 15, 16        | same              |
    | any                        | 14 (one source)  | 15            | —                 | —                 |

Urgency (``OtherInfo/Priority``): 0 normal, 1 khẩn, 2 thượng khẩn, 3 hỏa tốc; 4 "hỏa tốc hẹn giờ"
comes from older packets (Circular 01/2011): it is read and mapped to hỏa tốc, never written for a
new document.
"""

from __future__ import annotations

import unicodedata
from enum import IntEnum, StrEnum


class BussinessDocType(IntEnum):
    """What a document packet asks: a new document, or a change to one sent before."""

    NEW = 0
    RECALL = 1
    UPDATE = 2
    REPLACE = 3


ACTION_OF: dict[BussinessDocType, str] = {
    BussinessDocType.NEW: "new",
    BussinessDocType.RECALL: "recall",
    BussinessDocType.UPDATE: "update",
    BussinessDocType.REPLACE: "replace",
}
DOC_TYPE_OF: dict[str, BussinessDocType] = {action: kind for kind, action in ACTION_OF.items()}


class Urgency(StrEnum):
    """Decree 30's three urgency levels, and none."""

    NORMAL = "normal"
    KHAN = "khan"
    THUONG_KHAN = "thuong_khan"
    HOA_TOC = "hoa_toc"


PRIORITY_OF: dict[Urgency, int] = {Urgency.NORMAL: 0, Urgency.KHAN: 1, Urgency.THUONG_KHAN: 2, Urgency.HOA_TOC: 3}
LEGACY_PRIORITY = 4  # hỏa tốc hẹn giờ: read, never written
_URGENCY_OF_PRIORITY = {**{p: u for u, p in PRIORITY_OF.items()}, LEGACY_PRIORITY: Urgency.HOA_TOC}
# Some builders write the name instead of the number: folded (no diacritics, lower case) → Priority
_PRIORITY_NAMES = {
    "thuong": 0,
    "binh thuong": 0,
    "khan": 1,
    "thuong khan": 2,
    "hoa toc": 3,
    "hoa toc hen gio": LEGACY_PRIORITY,
}


def fold(text: str) -> str:
    """Lower case without Vietnamese diacritics (đ → d, Icelandic ð too), spaces collapsed."""
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "d").replace("ð", "d").replace("Ð", "d"))
    bare = "".join(c for c in text if unicodedata.category(c) != "Mn")
    return " ".join(bare.lower().split())


def priority_from_text(text: str) -> int | None:
    """The Priority number of ``text`` (a number 0–4 or an urgency's name); None if neither."""
    text = text.strip()
    if text.isdigit():
        number = int(text)
        return number if number in _URGENCY_OF_PRIORITY else None
    return _PRIORITY_NAMES.get(fold(text))


def urgency_of(priority: int | None) -> Urgency:
    """The Decree 30 urgency of a packet's Priority (4, hỏa tốc hẹn giờ, is hỏa tốc)."""
    return _URGENCY_OF_PRIORITY.get(priority if priority is not None else 0, Urgency.NORMAL)


def priority_of(urgency: Urgency) -> int:
    """The Priority to write for an urgency (never 4)."""
    return PRIORITY_OF[urgency]


# --- statuses -------------------------------------------------------------------------------------

ARRIVED, REJECTED, ACCEPTED, ASSIGNED, PROCESSING, COMPLETED = "01", "02", "03", "04", "05", "06"
RECALL_REQUESTED, RECALL_AGREED, RECALL_REFUSED = "13", "15", "16"
STATUS_CODES: tuple[str, ...] = (ARRIVED, REJECTED, ACCEPTED, ASSIGNED, PROCESSING, COMPLETED)
STATUS_CODES += (RECALL_REQUESTED, RECALL_AGREED, RECALL_REFUSED)
LEGACY_RECALL_AGREED = "14"  # one source writes 14 for "agrees": read as 15, never written
_READABLE = (*STATUS_CODES, LEGACY_RECALL_AGREED)
_CHANGES = (BussinessDocType.RECALL, BussinessDocType.UPDATE, BussinessDocType.REPLACE)


def normalise_status_code(text: str) -> str | None:
    """``"3"`` → ``"03"``; None for a code that is not national."""
    text = text.strip()
    if not text.isdigit():
        return None
    code = f"{int(text):02d}"
    return code if code in _READABLE else None


def status_in(code: str, answering: BussinessDocType = BussinessDocType.NEW) -> str:
    """The exchange's status for a national status packet answering a packet of type ``answering``:
    03 / 02 answering a recall, update or replacement packet are 15 / 16."""
    if code == LEGACY_RECALL_AGREED:
        return RECALL_AGREED
    if answering in _CHANGES:
        return {ACCEPTED: RECALL_AGREED, REJECTED: RECALL_REFUSED}.get(code, code)
    return code


def status_out(code: str, answering: BussinessDocType = BussinessDocType.NEW) -> str:
    """The national status to send for the exchange's ``code`` answering a packet of type
    ``answering``: 15 / 16 answering a recall, update or replacement packet are 03 / 02."""
    if answering in _CHANGES:
        return {RECALL_AGREED: ACCEPTED, RECALL_REFUSED: REJECTED}.get(code, code)
    return code
