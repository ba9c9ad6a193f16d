"""Vietnamese text helpers: NFC normalisation and diacritic folding for search."""

from __future__ import annotations

import unicodedata

_SPECIAL = str.maketrans({"đ": "d", "Đ": "D"})


def nfc(text: str) -> str:
    """Return ``text`` in Unicode NFC (how Vietnamese text is stored)."""
    return unicodedata.normalize("NFC", text)


class _FoldTable(dict[int, str]):
    """Each character's folding, computed on first sight and kept: ``str.translate`` then folds a
    text at C speed (the archive folds every document it indexes)."""

    def __missing__(self, code: int) -> str:
        char = chr(code).translate(_SPECIAL)
        base = unicodedata.normalize("NFD", char)[0]
        folded = base.lower() if len(base.lower()) == 1 else char
        self[code] = folded
        return folded


_FOLD = _FoldTable()


def fold(text: str) -> str:
    """Fold Vietnamese to lowercase ASCII letters: "Sở Tài chính Đắk Lắk" → "so tai chinh dak lak".

    Each NFC character maps to exactly one character, so offsets in folded text match the original.
    """
    return nfc(text).translate(_FOLD)


def storable(text: str) -> str:
    """Return ``text`` in NFC, stripped; raise ValueError for what a database must not store: NUL
    characters and lone UTF-16 surrogates (JSON can carry both)."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode (no lone surrogates)") from exc
    return nfc(text).strip()
