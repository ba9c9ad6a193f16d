"""JSON written on the hot paths: orjson, with the standard library's answer wherever orjson refuses.

``dumps`` gives the bytes of ``json.dumps(value, ensure_ascii=False, separators=(",", ":"),
default=default).encode()``: the same for every value of the types JSON has (a float may be written
``1e-7`` where the standard library writes ``1e-07``: the same number), and for ``datetime``,
``date``, ``time`` and ``UUID``, which orjson writes as their ``isoformat()`` and ``str()``. What
orjson refuses — an integer beyond 64 bits, a key that is not a string, a string with a lone
surrogate — is handed to the standard library, which answers as it always did (its text, or its
error).

Reading stays the standard library's (``json.loads``): orjson reads an integer beyond 64 bits as a
float, and telling such a text apart costs more than orjson saves.

A bundle of five events is 105 µs with the standard library and 7 µs with orjson on the development
machine; JSON was 5.5 % of the exchange's CPU a document (docs/performance.md, "The fourteenth
session"). Not for a digest's input or anything stored and compared byte for byte later
(an idempotency fingerprint): those keep the standard library's exact text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact UTF-8 JSON (see the module)."""
    try:
        return orjson.dumps(value, default=default)
    except TypeError:  # orjson.JSONEncodeError: what orjson refuses, the standard library decides
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default).encode()
