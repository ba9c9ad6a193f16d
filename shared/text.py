"""Vietnamese text helpers: NFC normalisation and diacritic folding for search."""

from __future__ import annotations

import re
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


# C0 controls but tab, line feed and carriage return; DEL; C1 controls (ESC starts terminal escapes)
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# bidirectional embeddings, overrides and isolates: they reorder what a reader sees ("Trojan source")
BIDI_CONTROL = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
# terminal escape sequences: CSI (ESC [ … final), OSC (ESC ] … BEL or ESC \\), and two-byte ESC x
TERMINAL_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\^_]")


def storable(text: str) -> str:
    """Return ``text`` in NFC, stripped; raise ValueError for what a database must not store or a
    reader must not be shown: NUL characters and lone UTF-16 surrogates (JSON can carry both),
    other control characters (C0 but tab, line feed and carriage return; DEL; C1: terminal escapes
    start with one) and bidirectional overrides, embeddings and isolates (U+202A–U+202E,
    U+2066–U+2069). Text fields refuse them (422); they are never silently changed."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    if CONTROL.search(text):
        raise ValueError("must not contain control characters (tab and line breaks are allowed)")
    if BIDI_CONTROL.search(text):
        raise ValueError("must not contain Unicode bidirectional override, embedding or isolate characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode (no lone surrogates)") from exc
    return nfc(text).strip()
