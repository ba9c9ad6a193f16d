"""JSON written on the hot paths: orjson, with the standard library's answer wherever orjson refuses.

``dumps`` gives the bytes of ``json.dumps(value, ensure_ascii=False, separators=(",", ":"),
default=default).encode()`` for every value of the types JSON has (a float may be written ``1e-7``
where the standard library writes ``1e-07``: the same number). ``datetime``, ``date``, ``time`` and
dataclasses go to ``default``, as with the standard library (orjson's own writing of a datetime
rounds an offset to the minute). What orjson refuses — an integer beyond 64 bits, a key that is not
a string, a string with a surrogate, a ``float`` subclass — is handed to the standard library, which
answers as it always did (its text, or its error). Three differences are kept, on values no caller
passes today: a ``UUID`` or an ``Enum`` is written (its ``str()``, its value) where the standard
library without a ``default`` refuses it, and a float NaN or infinity is written ``null`` where the
standard library writes ``NaN``, which is not JSON.

Reading stays the standard library's (``json.loads``): orjson reads an integer beyond 64 bits as a
float, and telling such a text apart costs more than orjson saves.

A bundle of five events is 105 µs with the standard library and 7 µs with orjson on the development
machine; JSON was 5.5 % of the exchange's CPU a document (docs/performance.md, "The fourteenth
session"). Not for a digest's input or anything stored and compared byte for byte later
(an idempotency fingerprint): those keep the standard library's exact text. JSON columns store its
text (``shared.db.column_json``, every engine's ``json_serializer``): their values are read back,
never their text compared.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

# dates and times through ``default`` (the standard library's way: json_default writes isoformat());
# dataclasses too (the standard library refuses them without a default that knows them)
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None, ensure_ascii: bool = False) -> bytes:
    """Compact UTF-8 JSON (see the module). ``ensure_ascii``: the standard library's fallback escapes
    what is not ASCII, as ``json.dumps(…, ensure_ascii=True)`` — orjson's own text stays UTF-8, the
    same values to a JSON reader; a string with surrogates, which UTF-8 cannot hold, then reaches the
    reader as its escapes (PostgreSQL reads a pair of them as its character), as it did before."""
    try:
        return orjson.dumps(value, default=default, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: what orjson refuses, the standard library decides
        return json.dumps(value, ensure_ascii=ensure_ascii, separators=(",", ":"), default=default).encode()
