"""The document types of Decree 30/2020 (Appendix III) with their abbreviations, plus công văn."""

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
    "SY": "Bản sao y",
    "TrS": "Bản trích sao",
    "SL": "Bản sao lục",
}
WITHOUT_ABBREVIATION = ("Công văn", "Thư công")

_BY_FOLDED_NAME: dict[str, tuple[str | None, str]] = {fold(n): (a, n) for a, n in DOCUMENT_TYPES.items()}
_BY_FOLDED_NAME.update({fold(name): (None, name) for name in WITHOUT_ABBREVIATION})
_BY_FOLDED_NAME[fold("Sao y")] = ("SY", DOCUMENT_TYPES["SY"])
_BY_FOLDED_NAME[fold("Trích sao")] = ("TrS", DOCUMENT_TYPES["TrS"])
_BY_FOLDED_NAME[fold("Sao lục")] = ("SL", DOCUMENT_TYPES["SL"])
_FOLDED_ABBREVIATIONS: dict[str, list[str]] = {}
for _abbr in DOCUMENT_TYPES:
    _FOLDED_ABBREVIATIONS.setdefault(fold(_abbr), []).append(_abbr)
# ĐA/DA and HĐ/HD fold alike: without diacritics only the unambiguous abbreviations are understood
_BY_ABBREVIATION: dict[str, tuple[str | None, str]] = {
    key: (abbrs[0], DOCUMENT_TYPES[abbrs[0]]) for key, abbrs in _FOLDED_ABBREVIATIONS.items() if len(abbrs) == 1
}


def document_type(value: str) -> tuple[str | None, str]:
    """Return (abbreviation, canonical name) for a type given by name or abbreviation, with or
    without diacritics; raise ValueError for anything else."""
    value = value.strip()
    if value in DOCUMENT_TYPES:
        return value, DOCUMENT_TYPES[value]
    key = fold(value)
    found = _BY_FOLDED_NAME.get(key) or _BY_ABBREVIATION.get(key)
    if found is None:
        raise ValueError(
            "must be one of the Decree 30 types (by name or abbreviation, e.g. 'Kế hoạch' or 'KH') or 'Công văn'"
        )
    return found
