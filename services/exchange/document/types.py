"""Document types, copy forms, circulation marks and urgency levels (Decree 30/2020).

The 29 types of Decree 30 (Appendix III) and công văn are recognised by name or abbreviation, and
so are the normative and Party documents that travel between agencies (Nghị định, Thông tư, Kết
luận …); any other type name up to 100 characters is accepted as given (packets from the national
hub carry types this table does not know). Copies (sao y, trích sao, sao lục) are a flag on a
document of some type, never a type; "Lưu hành nội bộ" and "Xem xong trả lại" are circulation
marks, not secrecy levels.
"""

from __future__ import annotations

from shared.text import fold

# abbreviation → name; công văn and thư công have no abbreviation.
DOCUMENT_TYPES: dict[str, str] = {
    "NQ": "Nghị quyết",
    "QĐ": "Quyết định",
    "CT": "Chỉ thị",
    "QC": "Quy chế",
    "QyĐ": "Quy định",
    "TC": "Thông cáo",
    "TB": "Thông báo",
    "HD": "Hướng dẫn",
    "CTr": "Chương trình",
    "KH": "Kế hoạch",
    "PA": "Phương án",
    "ĐA": "Đề án",
    "DA": "Dự án",
    "BC": "Báo cáo",
    "BB": "Biên bản",
    "TTr": "Tờ trình",
    "HĐ": "Hợp đồng",
    "CĐ": "Công điện",
    "BGN": "Bản ghi nhớ",
    "BTT": "Bản thỏa thuận",
    "GUQ": "Giấy ủy quyền",
    "GM": "Giấy mời",
    "GGT": "Giấy giới thiệu",
    "GNP": "Giấy nghỉ phép",
    "PG": "Phiếu gửi",
    "PC": "Phiếu chuyển",
    "PB": "Phiếu báo",
}
# normative and Party documents seen between agencies (their notations use these abbreviations)
OTHER_TYPES: dict[str, str] = {
    "NĐ": "Nghị định",
    "TT": "Thông tư",
    "TTLT": "Thông tư liên tịch",
    "NQLT": "Nghị quyết liên tịch",
    "KL": "Kết luận",
}
WITHOUT_ABBREVIATION = ("Công văn", "Thư công", "Luật", "Bộ luật", "Pháp lệnh", "Lệnh")
COPY_FORMS: dict[str, str] = {"SY": "Sao y", "TrS": "Trích sao", "SL": "Sao lục"}
"""Copy forms (Decree 30): a flag on a copied document, stored by abbreviation."""
CIRCULATION_MARKS = ("Lưu hành nội bộ", "Xem xong trả lại")
"""Marks on how a document circulates (not secrecy levels: such documents are accepted)."""
URGENCY_LEVELS = {0: "Thường", 1: "Khẩn", 2: "Thượng khẩn", 3: "Hỏa tốc"}
"""Decree 30's urgency levels (edXML Priority); the older "Hỏa tốc hẹn giờ" (4) is read from
packets as Hỏa tốc, never offered for a new document."""
TIMED_EXPRESS = 4

_KNOWN = DOCUMENT_TYPES | OTHER_TYPES
_BY_FOLDED_NAME: dict[str, tuple[str | None, str]] = {fold(n): (a, n) for a, n in _KNOWN.items()}
_BY_FOLDED_NAME.update({fold(name): (None, name) for name in WITHOUT_ABBREVIATION})
_FOLDED_ABBREVIATIONS: dict[str, list[str]] = {}
for _abbr in _KNOWN:
    _FOLDED_ABBREVIATIONS.setdefault(fold(_abbr), []).append(_abbr)
# ĐA/DA and HĐ/HD fold alike: without diacritics only the unambiguous abbreviations are understood
_BY_ABBREVIATION: dict[str, tuple[str | None, str]] = {
    key: (abbrs[0], _KNOWN[abbrs[0]]) for key, abbrs in _FOLDED_ABBREVIATIONS.items() if len(abbrs) == 1
}
_AMBIGUOUS = {key for key, abbrs in _FOLDED_ABBREVIATIONS.items() if len(abbrs) > 1}
_COPY_FORMS: dict[str, str] = {fold(a): a for a in COPY_FORMS}
_COPY_FORMS.update({fold(name): a for a, name in COPY_FORMS.items()})
_COPY_FORMS.update({fold(f"Bản {name}"): a for a, name in COPY_FORMS.items()})
_CIRCULATION = {fold(mark): mark for mark in CIRCULATION_MARKS}


def known_document_type(value: str) -> tuple[str | None, str] | None:
    """Return (abbreviation, canonical name) of a recognised type given by name or abbreviation,
    with or without diacritics (None: not recognised)."""
    value = value.strip()
    if value in _KNOWN:
        return value, _KNOWN[value]
    key = fold(value)
    return _BY_FOLDED_NAME.get(key) or _BY_ABBREVIATION.get(key)


def document_type(value: str) -> tuple[str | None, str]:
    """Return (abbreviation, name) for a type: a recognised one canonically, any other name as
    given; raise ValueError for a copy form, an ambiguous abbreviation or a blank."""
    found = known_document_type(value)
    if found is not None:
        return found
    value = value.strip()
    key = fold(value)
    if key in _COPY_FORMS:
        raise ValueError(
            f"{value!r} is a copy form, not a type: give the copied document's type in type_name and "
            f"copy_form: {_COPY_FORMS[key]!r}"
        )
    if key in _AMBIGUOUS:
        raise ValueError(
            f"{value!r} is ambiguous without diacritics ({' or '.join(_FOLDED_ABBREVIATIONS[key])}): "
            "give the name or the abbreviation with its diacritics"
        )
    if not value:
        raise ValueError("must not be blank")
    return None, value


def strict_document_type(value: str) -> tuple[str | None, str]:
    """Return a recognised type (configuration names types it knows); raise ValueError otherwise."""
    found = known_document_type(value)
    if found is None:
        raise ValueError(
            "must be one of the Decree 30 types (by name or abbreviation, e.g. 'Kế hoạch' or 'KH'), 'Công văn', "
            "or a recognised normative type (e.g. 'Nghị định')"
        )
    return found


def copy_form(value: str) -> str:
    """Return a copy form's abbreviation (SY, TrS, SL) from its name or abbreviation; raise ValueError."""
    found = _COPY_FORMS.get(fold(value.strip()))
    if found is None:
        raise ValueError("must be a copy form: 'Sao y' (SY), 'Trích sao' (TrS) or 'Sao lục' (SL)")
    return found


def circulation_mark(value: str) -> str | None:
    """Return a recognised circulation mark in its canonical spelling (None: not one)."""
    return _CIRCULATION.get(fold(value.strip()))


def urgency_from_packet(priority: int) -> int:
    """Map an edXML Priority to a Decree 30 urgency: the older "hỏa tốc hẹn giờ" (4) is Hỏa tốc (3)."""
    return 3 if priority == TIMED_EXPRESS else priority
