"""Search through the gateway on a small Vietnamese corpus sent through the exchange: words with
and without diacritics, phrases, prefixes, numbers/notations, filters, facets, highlights, pages,
who may read what, and hostile queries. One system for the module (SQLite, embedded)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from services.demo.pdf import make_pdf
from tests.archive.corpus import docx, scanned_pdf
from tests.conftest import running_system
from tests.helpers import (
    Api,
    Client,
    assert_problem,
    delivery_for,
    get_json,
    random_code,
    recall,
    report,
    wait_until,
)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass
class Corpus:
    api: Api
    sender: Client  # a department
    child: Client  # an agency below it
    first: Client  # recipients
    second: Client
    outsider: Client
    ids: dict[str, str]


async def search(api: Api, client: Client, q: str = "", **params: Any) -> dict[str, Any]:
    response = await api.http.get("/v1/archive/search", params={"q": q, **params}, headers=client.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def found(api: Api, client: Client, q: str = "", **params: Any) -> set[str]:
    return {hit["document_id"] for hit in (await search(api, client, q, **params))["items"]}


async def sent(
    api: Api, sender: Client, recipients: list[Client], files: list[tuple[str, bytes, str]], **meta: Any
) -> str:
    response = await api.send(sender, [r.agency_code for r in recipients], files=files, **meta)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
async def corpus(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Corpus]:
    var = tmp_path_factory.mktemp("archive-search") / "var"
    async with running_system(var, archive={"index_commit_seconds": 0.1, "extract_text": True}) as api:
        parent = await api.create_agency(random_code())
        sender = await api.agency_client(parent["code"])
        child = await api.agency_client((await api.create_agency(random_code(), parent_code=parent["code"]))["code"])
        first, second, outsider = [await api.agency_client() for _ in range(3)]
        ids = {
            "plan": await sent(
                api,
                sender,
                [first],
                [("ke-hoach.docx", docx(["Thị xã Đồng Xoài tổ chức hội nghị", "về chuyển đổi số"]), DOCX)],
                code_number="24",
                code_notation="KH-UBND",
                subject="Kế hoạch triển khai văn bản điện tử năm 2026",
                promulgation_date="2026-03-10",
            ),
            "notice": await sent(
                api,
                sender,
                [first, second],
                [("thong-bao.pdf", make_pdf(["Hop giao ban quy IV tai Binh Phuoc"]), "application/pdf")],
                code_number="7",
                code_notation="TB-UBND",
                type_name="Thông báo",
                subject="Thông báo lịch họp giao ban",
                promulgation_date="2025-06-01",
                urgency=2,
            ),
            "report": await sent(
                api,
                child,
                [second],
                [("bao-cao.pdf", make_pdf(["Bao cao kinh te huyen Loc Ninh"]), "application/pdf")],
                code_number="15",
                code_notation="BC-UBND",
                type_name="Báo cáo",
                subject="Báo cáo tình hình kinh tế xã hội",
                promulgation_date="2026-01-05",
            ),
            "other": await sent(
                api,
                outsider,
                [second],
                [("cv.pdf", make_pdf(["Cong van gui Phu Rieng"]), "application/pdf")],
                code_number="99",
                code_notation="UBND-VP",
                type_name="Công văn",
                subject="Công văn về việc văn bản điện tử",
                promulgation_date="2026-02-02",
            ),
        }

        owners = {"plan": sender, "notice": sender, "report": child, "other": outsider}

        async def indexed() -> bool:  # every record's text extracted and in the index (a word only its file has)
            for name, owner in owners.items():
                record = await api.http.get(f"/v1/archive/records/{ids[name]}", headers=owner.auth)
                if record.status_code != 200 or record.json()["text_status"] != "done":
                    return False
            # a record re-indexed while a test pages through the hits would move among the ties
            return (
                await found(api, second, "binh phuoc kinh te cong van") == set()
                and await found(api, second, "binh phuoc") == {ids["notice"]}
                and await found(api, second, "loc ninh") == {ids["report"]}
                and await found(api, second, "phu rieng") == {ids["other"]}
                and await found(api, sender, "dong xoai") == {ids["plan"]}
            )

        await wait_until(indexed, within=20, what="the corpus indexed")
        yield Corpus(api, sender, child, first, second, outsider, ids)


async def test_words_match_with_or_without_diacritics(corpus: Corpus) -> None:
    api, ids = corpus.api, corpus.ids
    assert await found(api, corpus.sender, "van ban dien tu") == {ids["plan"]}
    assert await found(api, corpus.sender, "văn bản điện tử") == {ids["plan"]}
    assert await found(api, corpus.sender, "VĂN BẢN Điện Tử") == {ids["plan"]}
    assert await found(api, corpus.outsider, "van ban dien tu") == {ids["other"]}
    assert await found(api, corpus.sender, "dong xoai") == {ids["plan"]}  # the DOCX's text
    assert await found(api, corpus.sender, "Đồng Xoài") == {ids["plan"]}
    assert await found(api, corpus.second, "binh phuoc") == {ids["notice"]}  # the PDF's text layer


async def test_phrases_prefixes_and_exclusions(corpus: Corpus) -> None:
    api, ids, reader = corpus.api, corpus.ids, corpus.second
    assert await found(api, reader, '"van ban dien tu"') == {ids["other"]}
    assert await found(api, reader, '"dien tu van ban"') == set()
    assert await found(api, reader, "giao*") == {ids["notice"]}
    assert await found(api, reader, "kinh*") == {ids["report"]}
    assert await found(api, reader, "dien tu -cong") == set()
    assert await found(api, corpus.sender, "dien tu -hoi") == set()
    assert await found(api, corpus.sender, 'dien tu -"hoi nghi"') == set()


async def test_numbers_and_notations_as_typed(corpus: Corpus) -> None:
    api, ids = corpus.api, corpus.ids
    for typed in ("24/KH-UBND", "24/kh-ubnd", "KH-UBND"):
        assert await found(api, corpus.sender, typed) == {ids["plan"]}, typed
    assert await found(api, corpus.second, "7/TB-UBND") == {ids["notice"]}
    assert await found(api, corpus.second, "24/KH-UBND") == set()  # not its document


async def test_filters_narrow_the_matches(corpus: Corpus) -> None:
    api, ids, reader = corpus.api, corpus.ids, corpus.second
    everything = {ids["notice"], ids["report"], ids["other"]}
    assert await found(api, reader) == everything
    assert await found(api, reader, type="thong bao") == {ids["notice"]}
    assert await found(api, reader, type="Báo cáo") == {ids["report"]}
    assert await found(api, reader, date_from="2026-01-01") == {ids["report"], ids["other"]}
    assert await found(api, reader, date_from="2026-01-01", date_to="2026-01-31") == {ids["report"]}
    assert await found(api, reader, urgency=2) == {ids["notice"]}
    assert await found(api, reader, issuer=corpus.sender.agency_code) == {ids["notice"]}
    assert await found(api, reader, issuer=corpus.sender.agency_code, subtree="true") == {ids["notice"], ids["report"]}
    assert await found(api, reader, recipient=corpus.second.agency_code) == everything
    assert await found(api, corpus.sender, recipient=corpus.first.agency_code) == {ids["plan"], ids["notice"]}
    assert await found(api, reader, status="pending") == everything
    assert await found(api, reader, signature="none") == everything
    assert await found(api, reader, source="digitised") == set()


async def test_facets_highlights_and_pages(corpus: Corpus) -> None:
    api, reader = corpus.api, corpus.second
    page = await search(api, reader, facets="true")
    facets = page["facets"]
    assert {f["value"]: f["count"] for f in facets["type"]} == {"Thông báo": 1, "Báo cáo": 1, "Công văn": 1}
    assert {f["value"]: f["count"] for f in facets["year"]} == {"2026": 2, "2025": 1}
    assert sum(f["count"] for f in facets["issuer"]) == 3

    [hit] = (await search(api, reader, "van ban dien tu"))["items"]
    marked = [hit["subject"][s:e] for s, e in hit["subject_highlights"]]
    assert marked == ["văn", "văn", "bản", "điện", "tử"]  # Công văn về việc văn bản điện tử
    [hit] = (await search(api, corpus.sender, "dong xoai"))["items"]
    assert [hit["snippet"][s:e] for s, e in hit["snippet_highlights"]] == ["Đồng", "Xoài"]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = await search(api, reader, **params)
        assert page["total"] == 3
        seen += [h["document_id"] for h in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted({corpus.ids["notice"], corpus.ids["report"], corpus.ids["other"]})


async def test_an_agency_never_sees_another_agencys_documents(corpus: Corpus) -> None:
    api, ids = corpus.api, corpus.ids
    assert await found(api, corpus.first) == {ids["plan"], ids["notice"]}
    assert await found(api, corpus.outsider) == {ids["other"]}
    assert await found(api, corpus.child) == {ids["report"]}
    assert await found(api, corpus.outsider, "ke hoach", facets="true") == set()
    page = await search(api, corpus.outsider, "", facets="true")
    assert {f["value"] for f in page["facets"]["type"]} == {"Công văn"}  # counts never leak either
    response = await api.http.get(f"/v1/archive/records/{ids['plan']}", headers=corpus.outsider.auth)
    assert_problem(response, 404, "archive_record_not_found")


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"q": "x" * 600}, 400, "archive_query_invalid"),
        ({"q": "x" * 3000}, 422, "validation_failed"),
        ({"q": " ".join(f"w{i}" for i in range(40))}, 400, "archive_query_invalid"),
        ({"cursor": "not-a-cursor"}, 400, "bad_request"),
        ({"date_from": "2026-02-01", "date_to": "2026-01-01"}, 400, "archive_filter_invalid"),
        ({"status": "99"}, 422, "validation_failed"),
        ({"issuer": "000.00.00.Z99", "subtree": "true"}, 400, "archive_filter_invalid"),
        ({"q": "a\x00b"}, 400, "archive_query_invalid"),
    ],
)
async def test_hostile_queries_get_4xx(corpus: Corpus, params: dict[str, str], status: int, code: str) -> None:
    response = await corpus.api.http.get("/v1/archive/search", params=params, headers=corpus.sender.auth)
    assert_problem(response, status, code)


@pytest.mark.parametrize("q", ['"unbalanced', "((( AND OR :", "title:[* TO *]", "*", "-", '""', "\\", "a* b* c*"])
async def test_query_syntax_tantivy_would_refuse_is_just_words(corpus: Corpus, q: str) -> None:
    response = await corpus.api.http.get("/v1/archive/search", params={"q": q}, headers=corpus.sender.auth)
    assert response.status_code == 200, response.text


async def test_a_recipient_loses_a_recalled_document(corpus: Corpus) -> None:
    api, ids = corpus.api, corpus.ids
    withdrawn = await sent(
        api,
        corpus.sender,
        [corpus.first, corpus.second],
        [("qd.pdf", make_pdf(["Quyet dinh"]), "application/pdf")],
        code_number="31",
        code_notation="QĐ-UBND",
        type_name="Quyết định",
        subject="Quyết định thu hồi thử nghiệm",
    )
    await wait_until(lambda: _has(api, corpus.first, withdrawn), within=10, what="the decision indexed")
    document = (await api.http.get(f"/v1/documents/{withdrawn}", headers=corpus.sender.auth)).json()
    assert (
        await recall(api, corpus.sender, withdrawn, "Sai sót", recipients=[corpus.first.agency_code])
    ).status_code == 200
    for status in ("15",):
        answer = await report(api, corpus.first, delivery_for(document, corpus.first), status)
        assert answer.status_code == 200, answer.text

    async def gone() -> bool:
        return not await _has(api, corpus.first, withdrawn)

    await wait_until(gone, within=10, what="the recalled copy gone from the recipient's results")
    assert await _has(api, corpus.second, withdrawn)
    assert await _has(api, corpus.sender, withdrawn)
    response = await api.http.get(f"/v1/archive/records/{withdrawn}", headers=corpus.first.auth)
    assert_problem(response, 404, "archive_record_not_found")
    assert ids  # the corpus is unchanged for the other tests: the decision has a subject of its own


async def _has(api: Api, client: Client, document_id: str) -> bool:
    return document_id in await found(api, client, "thu hoi thu nghiem")


def digitised(**overrides: Any) -> dict[str, str]:
    metadata = {
        "code_number": "112",
        "code_notation": "QĐ-UBND",
        "type_name": "Quyết định",
        "subject": "Quyết định (bản giấy số hoá)",
        "promulgation_date": "2001-05-20",
        "issuer_code": "000.00.00.H41",
        "retention_years": 10,
    }
    metadata.update(overrides)
    return {"metadata": json.dumps(metadata, ensure_ascii=False)}


async def test_a_scan_without_text_layer_is_ocrd_in_vietnamese_and_searchable(corpus: Corpus) -> None:
    api, owner = corpus.api, corpus.child
    scan = scanned_pdf(["Quyết định phê duyệt đề án", "Ủy ban nhân dân tỉnh Bình Phước"])
    files = {"file": ("scan.pdf", scan, "application/pdf")}
    response = await api.http.post("/v1/archive/records", data=digitised(), files=files, headers=owner.auth)
    assert response.status_code == 201, response.text
    record = response.json()
    assert (record["source"], record["code"], record["retention_years"]) == ("digitised", "112/QĐ-UBND", 10)
    again = await api.http.post("/v1/archive/records", data=digitised(), files=files, headers=owner.auth)
    assert (again.status_code, again.json()["document_id"]) == (200, record["document_id"])  # idempotent

    async def recognised() -> bool:
        return record["document_id"] in await found(api, owner, "phe duyet de an", source="digitised")

    await wait_until(recognised, within=15, what="the scan OCR'd and indexed")
    assert record["document_id"] in await found(api, owner, "Ủy ban nhân dân tỉnh Bình Phước")
    assert await found(api, corpus.outsider, "phe duyet de an") == set()

    ended = await get_json(api, owner, "/v1/archive/retention", as_of="2011-05-20")
    assert [(i["document_id"], i["ends_on"]) for i in ended["items"]] == [(record["document_id"], "2011-05-20")]
    assert (await get_json(api, owner, "/v1/archive/retention", as_of="2011-05-19"))["items"] == []
    assert (await get_json(api, corpus.outsider, "/v1/archive/retention", as_of="2030-01-01"))["items"] == []


@pytest.mark.parametrize(
    ("data", "file", "status", "code"),
    [
        (digitised(), ("x.pdf", b"MZ\x90\x00 an executable", "application/pdf"), 415, "archive_file_invalid"),
        ({"metadata": "{not json"}, ("x.pdf", b"%PDF-1.4", "application/pdf"), 422, "archive_metadata_invalid"),
        (digitised(retention_years=0), ("x.pdf", b"%PDF-1.4", "application/pdf"), 422, "archive_metadata_invalid"),
        (digitised(subject=" "), ("x.pdf", b"%PDF-1.4", "application/pdf"), 422, "archive_metadata_invalid"),
    ],
)
async def test_malformed_scans_and_metadata_get_4xx(
    corpus: Corpus, data: dict[str, str], file: tuple[str, bytes, str], status: int, code: str
) -> None:
    response = await corpus.api.http.post(
        "/v1/archive/records", data=data, files={"file": file}, headers=corpus.child.auth
    )
    assert_problem(response, status, code)


@pytest.mark.parametrize(
    "scan",
    [b"%PDF-1.7\n garbage without objects", b"\x89PNG\r\n\x1a\n not an image", b"\xff\xd8\xff\xe0 truncated"],
)
async def test_a_scan_that_cannot_be_read_is_refused_and_nothing_kept(corpus: Corpus, scan: bytes) -> None:
    api, owner = corpus.api, corpus.child
    files = {"file": ("broken", scan, "application/octet-stream")}
    response = await api.http.post(
        "/v1/archive/records", data=digitised(code_number="113"), files=files, headers=owner.auth
    )
    assert_problem(response, 422, "archive_file_unreadable")
    assert await found(api, owner, "113/QĐ-UBND", source="digitised") == set()
