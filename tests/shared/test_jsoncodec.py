"""shared.jsoncodec: orjson's speed, the standard library's bytes, and its answer wherever orjson
refuses."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import math
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared import jsoncodec
from shared.bulk import json_default
from shared.messaging.envelope import Envelope, bundle_json, envelopes_from_json


def _standard(value: Any, default: Any = None) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default).encode()


VALUES: list[Any] = [
    {"subject": "Kế hoạch triển khai chuyển đổi số", "urgency": 0, "due": None, "ok": True, "x": [1, 2.5, -3]},
    ['\u2028 \x00 \x1f " \\ / \t\n', "😀", ""],
    {"big": 2**63 - 1, "small": -(2**63), "float": 0.1 + 0.2, "huge": 1e300, "e": 1e16},
    {"nested": [[[{"a": {"b": []}}]]], "empty": {}},
]

DEFAULTED: list[Any] = [
    dt.datetime(2026, 11, 30, 14, 0, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 30, 14, 0, 0, 123, tzinfo=dt.timezone(dt.timedelta(hours=7))),
    dt.datetime(2026, 11, 30, 14, 0, 0, 123456),
    dt.date(2026, 1, 2),
    dt.time(1, 2, 3, 4),
    uuid.UUID("01a22cea-deb7-7078-8c11-0a1ca322183e"),
    decimal.Decimal("1.10"),
    dt.timedelta(seconds=3.5),
    dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(seconds=3601))),  # an offset with seconds
    dt.datetime(1900, 1, 1, 12, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")),  # local mean time: +07:06:40
    dt.time(1, 2, 3, tzinfo=dt.UTC),
]


@pytest.mark.parametrize("value", [*VALUES, DEFAULTED])
def test_dumps_gives_the_standard_librarys_bytes(value: Any) -> None:
    assert jsoncodec.dumps(value, default=json_default) == _standard(value, json_default)


@pytest.mark.parametrize(
    "value",
    [{"id": 2**64}, {1: "a", None: "b"}, [-(2**70)]],
    ids=["int beyond 64 bits", "keys that are not strings", "a negative int beyond 64 bits"],
)
def test_what_orjson_refuses_the_standard_library_writes(value: Any) -> None:
    assert jsoncodec.dumps(value) == _standard(value)


def test_a_lone_surrogate_is_refused_as_before() -> None:
    with pytest.raises(UnicodeEncodeError):
        _standard(["\ud800 alone"])
    with pytest.raises(UnicodeEncodeError):
        jsoncodec.dumps(["\ud800 alone"])


class _Raising(dt.tzinfo):
    def utcoffset(self, _when: dt.datetime | None) -> dt.timedelta:
        raise RuntimeError("no offset")


@dataclass
class _Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [dt.datetime(2026, 1, 1), dt.date(2026, 1, 1), dt.time(1, 2), _Point(1)],
    ids=["datetime", "date", "time", "dataclass"],
)
def test_without_a_default_dates_and_dataclasses_are_refused_as_before(value: Any) -> None:
    with pytest.raises(TypeError, match="is not JSON serializable"):
        _standard([value])
    with pytest.raises(TypeError, match="is not JSON serializable"):
        jsoncodec.dumps([value])


def test_a_tzinfo_that_fails_fails_as_with_the_standard_library() -> None:
    when = dt.datetime(2026, 1, 1, tzinfo=_Raising())
    with pytest.raises(RuntimeError, match="no offset"):
        _standard([when], json_default)
    with pytest.raises(RuntimeError, match="no offset"):
        jsoncodec.dumps([when], default=json_default)


def test_the_differences_the_module_names() -> None:
    class Kind(enum.Enum):
        NEW = "new"

    ident = uuid.UUID("01a22cea-deb7-7078-8c11-0a1ca322183e")
    assert jsoncodec.dumps([ident, Kind.NEW]) == b'["01a22cea-deb7-7078-8c11-0a1ca322183e","new"]'
    with pytest.raises(TypeError):
        _standard([ident])
    assert jsoncodec.dumps([math.nan, math.inf]) == b"[null,null]"
    assert _standard([math.nan, math.inf]) == b"[NaN,Infinity]"


def test_ascii_escapes_only_in_the_fallback() -> None:
    assert jsoncodec.dumps(["Kế"], ensure_ascii=True) == '["Kế"]'.encode()  # orjson's UTF-8
    pair = "\ud83d\ude00"  # a surrogate pair as two code points: UTF-8 cannot hold it
    assert jsoncodec.dumps([pair], ensure_ascii=True) == json.dumps([pair]).encode()  # its escapes, as before


def test_what_neither_writes_is_the_standard_librarys_error() -> None:
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        jsoncodec.dumps({"x": {1, 2}})
    with pytest.raises(TypeError, match="not a value a column takes"):
        jsoncodec.dumps({"x": object()}, default=json_default)


def test_a_bundle_reads_back_as_its_envelopes() -> None:
    envelopes = [
        Envelope(
            id=str(uuid.uuid4()),
            type="document.submitted.v1",
            source="exchange",
            occurred_at=dt.datetime(2026, 11, 30, 7, 0, 0, 1, tzinfo=dt.UTC),
            data={"subject": "Công văn về việc", "n": n, "deliveries": [{"id": str(uuid.uuid4())}]},
            request_id=None if n else "req-1",
        )
        for n in range(3)
    ]
    raw = bundle_json(envelopes)
    assert raw == _standard([e.to_dict() for e in envelopes])
    assert envelopes_from_json(raw) == envelopes
    assert Envelope.from_json(envelopes[0].to_json()) == envelopes[0]
