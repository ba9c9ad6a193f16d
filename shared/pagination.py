"""One cursor encoding for every list of the API: keyset pagination.

A cursor is the sort key of the last item of a page, as URL-safe base64 of a small JSON array.
Clients treat it as opaque and pass ``next_cursor`` back as ``cursor``. Values keep their type
through the trip: strings, integers, UUIDs, dates and timestamps.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from typing import Any

from shared.errors import BadRequestError

CursorValue = str | int | uuid.UUID | dt.date | dt.datetime


class CursorInvalidError(BadRequestError):
    """A cursor that no list of this API made (answered 400 ``bad_request``, as every list always has)."""


def _tag(value: CursorValue) -> list[Any]:
    if isinstance(value, uuid.UUID):
        return ["u", value.hex]
    if isinstance(value, dt.datetime):
        return ["t", value.isoformat()]
    if isinstance(value, dt.date):
        return ["d", value.isoformat()]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"a cursor cannot hold {type(value).__name__}")
    return ["s" if isinstance(value, str) else "i", value]


def _untag(item: Any) -> CursorValue:
    kind, raw = item
    if kind == "u":
        return uuid.UUID(hex=raw)
    if kind == "t":
        return dt.datetime.fromisoformat(raw)
    if kind == "d":
        return dt.date.fromisoformat(raw)
    if kind == "s" and isinstance(raw, str):
        return raw
    if kind == "i" and isinstance(raw, int) and not isinstance(raw, bool) and -(2**63) <= raw < 2**63:
        return raw  # a database integer: larger ones were never a sort key (and would fail the query)
    raise ValueError(f"unknown cursor item {item!r}")


def encode_cursor(*values: CursorValue) -> str:
    """Return the cursor that resumes a list after the item whose sort key is ``values``."""
    raw = json.dumps([_tag(v) for v in values], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> tuple[CursorValue, ...]:
    """Return the sort key a cursor holds; 400 ``bad_request`` for anything else."""
    try:
        if len(cursor) > 1000:
            raise ValueError("too long")
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        items = json.loads(raw)
        if not isinstance(items, list) or len(items) != arity:
            raise ValueError("wrong shape")
        return tuple(_untag(item) for item in items)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError) as exc:
        raise CursorInvalidError("The cursor is not valid; use next_cursor from a previous page") from exc
