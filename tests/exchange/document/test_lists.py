"""The inbox and the sent and received lists: filters and cursor pagination."""

from __future__ import annotations

from typing import Any

from tests.helpers import (
    Api,
    Client,
    advance,
    assert_problem,
    delivery_for,
    get_json,
    inbox,
    inbox_ids,
    received_ids,
    report,
    send_ok,
    sent_ids,
    sent_items,
)

# --- inbox -----------------------------------------------------------------------------------


async def test_inbox_filters_by_status_and_pages_newest_first(api: Api) -> None:
    sender, recipient, other = await api.agency_client(), await api.agency_client(), await api.agency_client()
    ids = [(await send_ok(api, sender, [recipient], subject=f"Văn bản {n}"))["id"] for n in range(3)]
    await send_ok(api, sender, [other])
    first_delivery = (await inbox(api, recipient))["items"][-1]
    assert first_delivery["document_id"] == ids[0]
    assert (await report(api, recipient, first_delivery["delivery_id"], "01")).status_code == 200

    page1 = await inbox(api, recipient, limit=2)
    assert [i["document_id"] for i in page1["items"]] == [ids[2], ids[1]]
    assert page1["next_cursor"]
    page2 = await inbox(api, recipient, limit=2, cursor=page1["next_cursor"])
    assert [i["document_id"] for i in page2["items"]] == [ids[0]]
    assert page2["next_cursor"] is None

    pending = await inbox(api, recipient, status="pending")
    assert [i["document_id"] for i in pending["items"]] == [ids[2], ids[1]]
    arrived = await inbox(api, recipient, status="01")
    assert [(i["document_id"], i["status"]) for i in arrived["items"]] == [(ids[0], "01")]
    assert (await inbox(api, recipient, status="06"))["items"] == []

    pending_page = await inbox(api, recipient, status="pending", limit=1)
    assert [i["document_id"] for i in pending_page["items"]] == [ids[2]]
    rest = await inbox(api, recipient, status="pending", limit=1, cursor=pending_page["next_cursor"])
    assert [i["document_id"] for i in rest["items"]] == [ids[1]]
    assert rest["next_cursor"] is None


async def test_bad_inbox_parameters_are_refused(api: Api) -> None:
    recipient = await api.agency_client()
    for params, status, code in [
        ({"status": "99"}, 422, "validation_failed"),
        ({"status": "arrived"}, 422, "validation_failed"),
        ({"limit": 0}, 422, "validation_failed"),
        ({"limit": 501}, 422, "validation_failed"),
        ({"cursor": "zzz"}, 400, "bad_request"),
        ({"cursor": "not a cursor!"}, 400, "bad_request"),
    ]:
        response = await api.http.get("/v1/inbox", params=params, headers=recipient.auth)
        assert_problem(response, status, code)


# --- lists and filters ---------------------------------------------------------------------------


async def test_sent_and_received_lists_filter(api: Api) -> None:
    sender, r1, r2 = await api.agency_client(), await api.agency_client(), await api.agency_client()
    d1 = await send_ok(api, sender, [r1], type_name="Kế hoạch", promulgation_date="2026-01-10", urgency=0)
    d2 = await send_ok(api, sender, [r1, r2], type_name="Quyết định", promulgation_date="2026-02-15", urgency=2)
    d3 = await send_ok(api, sender, [r2], type_name="Công văn", promulgation_date="2026-03-20", urgency=1)
    d4 = await send_ok(
        api,
        sender,
        [r1],
        type_name="KH",
        promulgation_date="2026-01-12",
        relation={"kind": "update", "document_id": d1["id"]},
    )
    d5 = await send_ok(api, sender, [r1], type_name="Báo cáo", promulgation_date="2026-04-01", urgency=0)
    await advance(api, r1, delivery_for(d2, r1), ["01"])
    i1, i2, i3, i4, i5 = (d["id"] for d in (d1, d2, d3, d4, d5))

    async def sent(**params: Any) -> list[str]:
        return await sent_ids(api, sender, **params)

    async def received(client: Client, **params: Any) -> list[str]:
        return await received_ids(api, client, **params)

    # newest first
    assert await sent() == [i5, i4, i3, i2, i1]
    assert await received(r1) == [i5, i4, i2, i1]
    assert await received(r2) == [i3, i2]
    assert await inbox_ids(api, r1) == [i5, i4, i2, i1]

    # status: a document is listed when one of its deliveries is at that status
    assert await sent(status="01") == [i2]
    assert await sent(status="pending") == [i5, i4, i3, i2, i1]
    assert await sent(status="06") == []
    assert await received(r1, status="01") == [i2]
    assert await received(r1, status="pending") == [i5, i4, i1]
    assert await received(r2, status="pending") == [i3, i2]
    assert await inbox_ids(api, r1, status="01") == [i2]
    # type, by name or abbreviation
    for kh in ("KH", "Kế hoạch", "ke hoach"):
        assert await sent(type=kh) == [i4, i1]
        assert await received(r1, type=kh) == [i4, i1]
    assert await sent(type="QĐ") == [i2]
    assert await sent(type="Công văn") == [i3]
    assert await received(r1, type="Công văn") == []
    # promulgation dates, both ends included
    assert await sent(date_from="2026-02-15") == [i5, i3, i2]
    assert await sent(date_to="2026-01-12") == [i4, i1]
    assert await sent(date_from="2026-02-01", date_to="2026-03-31") == [i3, i2]
    assert await received(r1, date_from="2026-01-11", date_to="2026-02-15") == [i4, i2]
    # counterpart: a recipient of the sent documents, the sender of the received ones
    assert await sent(counterpart=r2.agency_code) == [i3, i2]
    assert await sent(counterpart=r2.agency_code.lower()) == [i3, i2]
    # status and counterpart hold for the same delivery: r2's copy of d2 is still pending
    assert await sent(counterpart=r2.agency_code, status="01") == []
    assert await sent(counterpart=r1.agency_code, status="01") == [i2]
    assert await received(r1, counterpart=sender.agency_code) == [i5, i4, i2, i1]
    assert await received(r1, counterpart=r2.agency_code) == []
    # urgency and kind
    assert await sent(urgency=2) == [i2]
    assert await sent(urgency=0) == [i5, i4, i1]
    assert await received(r2, urgency=1) == [i3]
    assert await sent(kind="update") == [i4]
    assert await sent(kind="new") == [i5, i3, i2, i1]
    assert await received(r1, kind="update") == [i4]
    assert await received(r2, kind="update") == []
    assert await sent(kind="replace") == []

    # sent items count their deliveries by status
    items = {i["document_id"]: i for i in await sent_items(api, sender)}
    assert (items[i2]["recipients"], items[i2]["by_status"]) == (2, {"01": 1, "pending": 1})
    assert (items[i1]["recipients"], items[i1]["by_status"]) == (1, {"pending": 1})
    assert items[i4]["original_document_id"] == i1

    # what cannot be a filter
    for params, status, code in [
        ({"type": "Sao y"}, 400, "bad_request"),  # a copy form, not a type
        ({"status": "13"}, 422, "validation_failed"),
        ({"urgency": 5}, 422, "validation_failed"),
        ({"kind": "other"}, 422, "validation_failed"),
        ({"box": "drafts"}, 422, "validation_failed"),
        ({"date_from": "20/11/2026"}, 422, "validation_failed"),
    ]:
        for box in ("sent", "received"):
            response = await api.http.get("/v1/documents", params={"box": box, **params}, headers=sender.auth)
            assert_problem(response, status, code)


async def test_cursor_pagination_over_five_documents(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    ids = [(await send_ok(api, sender, [recipient]))["id"] for _ in range(5)]

    for path, params, client in [
        ("/v1/documents", {"box": "sent"}, sender),
        ("/v1/documents", {"box": "received"}, recipient),
        ("/v1/inbox", {}, recipient),
    ]:
        seen: list[str] = []
        pages: list[int] = []
        cursor: str | None = None
        while True:
            query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = await get_json(api, client, path, **query)
            pages.append(len(page["items"]))
            seen.extend(i["document_id"] for i in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert len(pages) < 10, "the cursor does not advance"
        assert pages == [2, 2, 1], path
        assert seen == list(reversed(ids)), path  # all seen, once each, newest first
        assert len(set(seen)) == 5

    bad = await api.http.get("/v1/documents", params={"box": "sent", "cursor": "!!"}, headers=sender.auth)
    assert_problem(bad, 400, "bad_request")
    assert_problem(await api.http.get("/v1/inbox", params={"limit": 0}, headers=sender.auth), 422, "validation_failed")
