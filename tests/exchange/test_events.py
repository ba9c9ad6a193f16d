"""The events the exchange writes to its outbox, and the event schemas and error codes docs/exchange.md
prints."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from pathlib import Path

from sqlalchemy import select

from services.exchange import errors as exchange_errors
from services.exchange.events import EVENTS
from services.exchange.models import FeedEntry, messaging
from shared.audit import AUDIT_EVENT
from shared.db import utcnow
from shared.errors import LienThongError
from tests.helpers import (
    Api,
    delivery_for,
    exchange_db,
    recall,
    report,
    send_ok,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "exchange.md"


# --- events --------------------------------------------------------------------------------------


async def test_send_recall_and_agreement_write_their_events_to_the_outbox(api: Api) -> None:
    sender, a, b = await api.agency_client(), await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [a, b], subject="Báo cáo tháng", due_date="2026-12-31")
    document_id = accepted["id"]
    a_delivery, b_delivery = delivery_for(accepted, a), delivery_for(accepted, b)
    assert (await recall(api, sender, document_id, "Nhầm số liệu")).status_code == 200
    assert (await report(api, a, a_delivery, "15", note="Đồng ý")).status_code == 200

    outbox = messaging.outbox
    async with exchange_db(api).session() as session:
        rows = (await session.execute(select(outbox).order_by(outbox.c.created_at, outbox.c.id))).mappings().all()
    mine = [
        (r["routing_key"], r["payload"])
        for r in rows
        if r["payload"].get("document_id") == document_id and r["routing_key"] != AUDIT_EVENT  # tests/security
    ]
    all_events = [(key, EVENTS[key].model_validate(data)) for key, data in mine]  # every payload matches its schema
    # every agency here pulls: its entries (two deliveries, two recalls, the sender's status) are in
    # its feed only and record no feed.entry_added.v1 for the dispatcher (a push agency's do:
    # tests/exchange/channels/test_push.py)
    assert [key for key, _ in all_events if key == "feed.entry_added.v1"] == []
    async with exchange_db(api).reading() as session:
        entries = (
            await session.execute(
                select(FeedEntry.type, FeedEntry.agency_code)
                .where(FeedEntry.document_id == uuid.UUID(document_id))
                .order_by(FeedEntry.id)
            )
        ).all()
    assert sorted(entries) == sorted(
        [
            ("delivery.received", a.agency_code),
            ("delivery.received", b.agency_code),
            ("delivery.recall_requested", a.agency_code),
            ("delivery.recall_requested", b.agency_code),
            ("delivery.status_changed", sender.agency_code),
        ]
    )
    events = [(key, event) for key, event in all_events if key != "feed.entry_added.v1"]
    assert [key for key, _ in events] == [
        "document.submitted.v1",
        "delivery.status_changed.v1",
        "delivery.status_changed.v1",
        "document.recall_requested.v1",
        "delivery.status_changed.v1",
        "document.recalled.v1",
    ]
    submitted = events[0][1].model_dump(mode="json")
    assert submitted["kind"] == "new" and submitted["original_document_id"] is None
    assert submitted["sender_code"] == sender.agency_code
    assert (submitted["subject"], submitted["type_name"], submitted["due_date"]) == (
        "Báo cáo tháng",
        "Kế hoạch",
        "2026-12-31",
    )
    assert sorted((d["id"], d["recipient_code"]) for d in submitted["deliveries"]) == sorted(
        (d["id"], d["recipient_code"]) for d in accepted["deliveries"]
    )
    assert [a_["sha256"] for a_ in submitted["attachments"]] == [a_["sha256"] for a_ in accepted["attachments"]]

    changes = [e.model_dump(mode="json") for key, e in events if key == "delivery.status_changed.v1"]
    thirteen = sorted((c for c in changes if c["status"] == "13"), key=lambda c: c["delivery_id"])
    assert [c["delivery_id"] for c in thirteen] == sorted([a_delivery, b_delivery])
    for change in thirteen:
        assert (change["previous_status"], change["actor_code"], change["note"]) == (
            "pending",
            sender.agency_code,
            "Nhầm số liệu",
        )
    [fifteen] = [c for c in changes if c["status"] == "15"]
    assert (fifteen["delivery_id"], fifteen["recipient_code"], fifteen["actor_code"]) == (
        a_delivery,
        a.agency_code,
        a.agency_code,
    )
    assert (fifteen["previous_status"], fifteen["sender_code"], fifteen["note"]) == ("13", sender.agency_code, "Đồng ý")

    requested = events[3][1].model_dump(mode="json")
    assert (requested["sender_code"], requested["reason"]) == (sender.agency_code, "Nhầm số liệu")
    assert sorted(requested["delivery_ids"]) == sorted([a_delivery, b_delivery])
    recalled = events[5][1].model_dump(mode="json")
    assert (recalled["delivery_id"], recalled["recipient_code"], recalled["sender_code"]) == (
        a_delivery,
        a.agency_code,
        sender.agency_code,
    )
    assert dt.datetime.fromisoformat(recalled["recalled_at"]) <= utcnow()


def test_exchange_event_schemas_in_the_docs_match_the_code():
    text = DOC.read_text(encoding="utf-8")
    block = text.split("```json\n")[-1].split("```")[0]
    documented = json.loads(block)
    assert documented == {name: model.model_json_schema() for name, model in EVENTS.items()}, (
        "regenerate the block with: .venv/bin/python -m services.exchange.events"
    )


def test_exchange_error_codes_in_the_docs_match_the_code():
    """docs/exchange.md lists exactly the codes of services/exchange/errors.py as the exchange's own."""
    documented_part = DOC.read_text(encoding="utf-8").split("The exchange's own")[1].split("From the shared tree")[0]
    documented = set(re.findall(r"`([a-z_]+)`", documented_part))
    defined = {
        error.code
        for error in vars(exchange_errors).values()
        if isinstance(error, type)
        and issubclass(error, LienThongError)
        and error.__module__ == exchange_errors.__name__
    }
    assert documented == defined, "update the errors paragraph of docs/exchange.md"
