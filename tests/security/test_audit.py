"""The audit trail (docs/security.md, "Audit trail"): every security-relevant action lands in the
registry's hash chain, written in the action's own transaction (an outbox row), queried by auditors
through the gateway, and `lienthong audit verify` names the first entry that was changed, deleted
or moved, or an anchor whose signature is bad."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update
from typer.testing import CliRunner

from services.cli import app as cli
from services.registry.consumers import audit_consumer
from services.registry.dependencies import RegistryRuntime, audit_service, client_service
from services.registry.models import AuditAnchor, AuditEntry, messaging
from shared.audit import AUDIT_EVENT, audit_payload
from shared.auth import generate_keypair
from shared.db import utcnow
from shared.messaging import Envelope, IdempotentBatchConsumer
from tests.conftest import TEMPLATES, running_system
from tests.helpers import Api, Client, advance, assert_problem, recall, send, wait_until

SUBJECT = "Kế hoạch mật: nội dung không được vào nhật ký"


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """One system on SQLite for the module; three failed token requests of a client id throttle it;
    the head is anchored by the tests (no timer)."""
    var = tmp_path_factory.mktemp("audit") / "var"
    overrides: dict[str, Any] = {"limits": {"auth_failures_per_client": 3}, "registry": {"audit_anchor_seconds": 0}}
    async with running_system(var, **overrides) as caller:
        yield caller


def registry(api: Api) -> RegistryRuntime:
    runtime = api.service_runtime("registry")
    assert isinstance(runtime, RegistryRuntime)
    return runtime


async def entries(api: Api, **params: Any) -> list[dict[str, Any]]:
    """Every entry matching the filters, newest first (all pages)."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await api.http.get("/v1/audit/entries", params=query, headers=await api.admin())
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def actions(api: Api, **params: Any) -> set[str]:
    return {e["action"] for e in await entries(api, **params)}


async def exchange(api: Api) -> tuple[Client, Client, dict[str, Any]]:
    """A sender and a recipient; a document sent, read, downloaded, reported arrived, recalled."""
    sender, recipient = await api.agency_client(), await api.agency_client()
    response = await send(api, sender, [recipient.agency_code], subject=SUBJECT)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    path = f"/v1/documents/{accepted['id']}"
    assert (await api.http.get(path, headers=recipient.auth)).status_code == 200
    attachment = accepted["attachments"][0]["id"]
    assert (await api.http.get(f"{path}/attachments/{attachment}", headers=recipient.auth)).status_code == 200
    [delivery] = accepted["deliveries"]
    await advance(api, recipient, delivery["id"], ["01"])
    assert (await recall(api, sender, accepted["id"], "Gửi nhầm")).status_code == 200
    return sender, recipient, accepted


DOCUMENT_ACTIONS = {
    "document.sent",
    "document.read",
    "document.downloaded",
    "delivery.status_reported",
    "document.recall_requested",
}


async def test_actions_land_in_the_chain_with_who_and_never_content(api: Api) -> None:
    sender, recipient, accepted = await exchange(api)
    document_id = accepted["id"]

    async def all_there() -> bool:
        return await actions(api, document=document_id) >= DOCUMENT_ACTIONS

    await wait_until(all_there, within=10, what="the document's audit entries")
    found = await entries(api, document=document_id)
    by_action = {e["action"]: e for e in found}
    sent = by_action["document.sent"]
    assert (sent["actor"], sent["agency_code"], sent["source"]) == (sender.client_id, sender.agency_code, "exchange")
    assert sent["details"] == {"kind": "new", "recipients": 1, "attachments": 1}
    assert by_action["document.read"]["actor"] == recipient.client_id
    assert by_action["document.downloaded"]["target"] == accepted["attachments"][0]["id"]
    assert by_action["delivery.status_reported"]["details"] == {
        "previous_status": "pending",
        "status": "01",
        "outcome": "applied",
    }
    assert by_action["document.recall_requested"]["details"] == {"recipients": [recipient.agency_code]}
    assert SUBJECT not in json.dumps(found, ensure_ascii=False)  # ids, codes, who, when: no content

    # the directory: the agencies and clients the test made, by the bootstrap admin
    created = await entries(api, action="client.created", actor="admin")
    assert {sender.client_id, recipient.client_id} <= {e["target"] for e in created}
    assert sender.agency_code in {e["target"] for e in await entries(api, action="agency.created")}
    group = f"audit-{uuid.uuid4().hex[:8]}"
    body = {"name": group, "title": "Nhóm", "members": [sender.agency_code]}
    assert (await api.http.post("/v1/groups", json=body, headers=await api.admin())).status_code == 201
    assert (await api.http.delete(f"/v1/groups/{group}", headers=await api.admin())).status_code == 204

    async def group_changes() -> bool:
        return [e["action"] for e in await entries(api, actor="admin") if e["target"] == group] == [
            "group.deleted",
            "group.created",
        ]

    await wait_until(group_changes, within=10, what="the group's audit entries")


async def test_tokens_issued_refused_and_throttled_are_recorded(api: Api) -> None:
    client = await api.agency_client()
    assert (await api.token(client.client_id, "wrong secret")).status_code == 401
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    codes = [(await api.token(ghost, "guess")).status_code for _ in range(6)]
    assert codes == [401, 401, 401, 429, 429, 429]

    async def recorded() -> bool:
        refused = [e["target"] for e in await entries(api, action="token.refused")]
        throttled = [e["target"] for e in await entries(api, action="token.throttled")]
        return client.client_id in refused and refused.count(ghost) == 3 and ghost in throttled

    await wait_until(recorded, within=10, what="the token entries")
    issued = [e for e in await entries(api, action="token.issued", actor=client.client_id)]
    assert issued and issued[0]["agency_code"] == client.agency_code
    refused = [e for e in await entries(api, action="token.refused") if e["target"] == ghost]
    assert len(refused) == 3 and all(e["outcome"] == "refused" and e["actor"] is None for e in refused)
    assert refused[0]["details"] == {"reason": "invalid_client"}
    throttled = [e for e in await entries(api, action="token.throttled") if e["target"] == ghost]
    # three refused requests answered 429: one entry per client id and window, not one per request
    assert len(throttled) == 1
    assert (throttled[0]["source"], throttled[0]["outcome"], throttled[0]["details"]["by"]) == (
        "gateway",
        "throttled",
        "client",
    )


async def test_the_auditor_api_filters_and_pages(api: Api) -> None:
    sender, recipient, accepted = await exchange(api)

    async def settled() -> bool:
        return await actions(api, document=accepted["id"]) >= DOCUMENT_ACTIONS

    await wait_until(settled, within=10, what="the document's entries")
    everything = await entries(api, document=accepted["id"])
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs, reverse=True)  # newest first
    paged = await entries(api, document=accepted["id"], limit=2)  # three pages, nothing twice or lost
    assert [e["seq"] for e in paged] == seqs
    assert await actions(api, actor=recipient.client_id, document=accepted["id"]) == {
        "document.read",
        "document.downloaded",
        "delivery.status_reported",
    }
    assert await actions(api, agency=sender.agency_code, action="document.sent") == {"document.sent"}
    sent = (await entries(api, document=accepted["id"], action="document.sent"))[0]
    at = sent["occurred_at"]
    assert sent["seq"] in {e["seq"] for e in await entries(api, document=accepted["id"], since=at)}
    assert sent["seq"] not in {e["seq"] for e in await entries(api, document=accepted["id"], until=at)}

    head = await api.http.get("/v1/audit/head", headers=await api.admin())
    assert head.status_code == 200 and head.json()["seq"] >= max(seqs)
    # an agency system is no auditor; bad filters are 4xx problems
    assert_problem(await api.http.get("/v1/audit/entries", headers=sender.auth), 403, "forbidden")
    naive = await api.http.get("/v1/audit/entries", params={"since": "2026-01-01T00:00:00"}, headers=await api.admin())
    assert_problem(naive, 422, "validation_failed")
    bad = await api.http.get("/v1/audit/entries", params={"cursor": "not-a-cursor"}, headers=await api.admin())
    assert_problem(bad, 400, "bad_request")
    paths = (await api.http.get("/openapi.json")).json()["paths"]
    assert {"/v1/audit/entries", "/v1/audit/head"} <= set(paths)


async def audit_rows(api: Api, target: str, action: str) -> list[dict[str, Any]]:
    """The registry's outbox rows of audit events about ``target``."""
    outbox = messaging.outbox
    async with registry(api).db.session() as session:
        rows = (await session.execute(select(outbox).where(outbox.c.routing_key == AUDIT_EVENT))).mappings().all()
    return [dict(r) for r in rows if r["payload"]["target"] == target and r["payload"]["action"] == action]


async def test_an_entry_is_written_in_the_actions_transaction(api: Api) -> None:
    client = await api.agency_client()
    runtime = registry(api)

    class Crash(Exception):
        pass

    with pytest.raises(Crash):  # the service dies before the commit: no revocation, no entry
        async with runtime.db.session() as session:
            await client_service(session, "tester").revoke(client.client_id)
            raise Crash
    assert await audit_rows(api, client.client_id, "client.revoked") == []
    status = await api.http.get(f"/v1/clients/{client.client_id}", headers=await api.admin())
    assert status.json()["revoked_at"] is None

    async with runtime.db.session() as session:  # committed: its entry was committed with it
        await client_service(session, "tester").revoke(client.client_id)
    [row] = await audit_rows(api, client.client_id, "client.revoked")
    assert row["payload"]["actor"] == "tester"

    async def appended() -> bool:
        async with runtime.db.session() as session:
            query = select(AuditEntry.message_id).where(AuditEntry.message_id == str(row["id"]))
            return (await session.execute(query)).scalar_one_or_none() is not None

    await wait_until(appended, within=10, what="the entry in the chain")
    # a refused request changes nothing and records nothing but what it is
    missing = await api.http.post("/v1/agencies/000.00.00.H99/clients", json={"name": "x"}, headers=await api.admin())
    assert missing.status_code == 404
    assert not [e for e in await entries(api, action="client.created") if e["agency_code"] == "000.00.00.H99"]


async def cli_run(api: Api, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run `lienthong …` on the module's system (in a thread: the CLI runs its own loop)."""
    variables = {"LIENTHONG_VAR_DIR": str(api.settings.var_dir), "LIENTHONG_LOG_JSON": "false", **(env or {})}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=variables)


async def verify(api: Api, *extra: str, env: dict[str, str] | None = None) -> Any:
    return await cli_run(api, "audit", "verify", *extra, env=env)


async def test_verify_names_the_first_changed_deleted_or_moved_entry(api: Api) -> None:
    await exchange(api)  # a few entries at least
    runtime = registry(api)
    await wait_until(lambda: head_at_least(api, 8), within=10, what="eight entries")
    signed = await cli_run(api, "audit", "anchor")  # what the registry's timer does, now
    assert signed.exit_code == 0 and "signed entry" in signed.output, signed.output
    async with runtime.db.session() as session:
        anchor = (await audit_service(session, runtime).head()).last_anchor
    assert anchor is not None and anchor.seq >= 8

    intact = await verify(api)
    assert intact.exit_code == 0, intact.output
    assert "audit chain intact" in intact.output and f"signed up to entry {anchor.seq}" in intact.output

    async def broken(expected: str) -> None:
        result = await verify(api)
        assert result.exit_code == 1, result.output
        assert expected in " ".join(result.output.split()), result.output

    async def execute(*statements: Any) -> None:
        async with runtime.db.session() as session:
            for statement in statements:
                await session.execute(statement)

    # tampered content
    original = await entry(api, 3)
    await execute(update(AuditEntry).where(AuditEntry.seq == 3).values(outcome="refused"))
    await broken("BROKEN at entry 3: entry 3 was changed")
    await execute(update(AuditEntry).where(AuditEntry.seq == 3).values(outcome=original["outcome"]))

    # a deleted row
    row = await entry(api, 5)
    await execute(delete(AuditEntry).where(AuditEntry.seq == 5))
    await broken("BROKEN at entry 5: entry 5 is missing")
    await execute(insert(AuditEntry).values(**row))

    # two rows swapped
    swap = [
        update(AuditEntry).where(AuditEntry.seq == 6).values(seq=-6),
        update(AuditEntry).where(AuditEntry.seq == 7).values(seq=6),
        update(AuditEntry).where(AuditEntry.seq == -6).values(seq=7),
    ]
    await execute(*swap)
    await broken("BROKEN at entry 6: entry 6 does not follow entry 5")
    await execute(*swap)  # swapped back

    # an anchor whose signature is not the key's (another anchor's)
    other = "A" * 86 + "=="
    async with runtime.db.session() as session:
        signature = (
            await session.execute(select(AuditAnchor.signature).where(AuditAnchor.seq == anchor.seq))
        ).scalar_one()
    await execute(update(AuditAnchor).where(AuditAnchor.seq == anchor.seq).values(signature=other))
    await broken(f"BROKEN at entry {anchor.seq}: anchor of entry {anchor.seq} has a bad signature")
    await execute(update(AuditAnchor).where(AuditAnchor.seq == anchor.seq).values(signature=signature))

    # after a key rotation the configured public key is another one: the anchor's key is untrusted
    # until its public key is given (anchors name the key by its fingerprint)
    _, rotated = generate_keypair(Path(api.settings.var_dir) / "rotated")
    old = api.settings.public_key_file
    untrusted = await verify(api, env={"LIENTHONG_AUTH__PUBLIC_KEY_FILE": str(rotated)})
    assert untrusted.exit_code == 1 and "signed by a key that is not trusted" in " ".join(untrusted.output.split())
    trusted = await verify(api, "--key", str(old), env={"LIENTHONG_AUTH__PUBLIC_KEY_FILE": str(rotated)})
    assert trusted.exit_code == 0, trusted.output


async def head_seq(api: Api) -> int:
    async with registry(api).db.session() as session:
        return (await audit_service(session, registry(api)).head()).seq


async def head_at_least(api: Api, seq: int) -> bool:
    return await head_seq(api) >= seq


async def entry(api: Api, seq: int) -> dict[str, Any]:
    async with registry(api).db.session() as session:
        row = (await session.execute(select(AuditEntry.__table__).where(AuditEntry.seq == seq))).mappings().one()
    return dict(row)


async def test_the_chain_holds_under_concurrent_appends_on_postgresql(tmp_path: Path) -> None:
    """On PostgreSQL several services' relays append at once: the head row lock keeps one chain."""
    async with TEMPLATES.pg_clone() as url, running_system(tmp_path / "var", url) as api:
        clients = await asyncio.gather(*(api.agency_client() for _ in range(4)))
        responses = await asyncio.gather(
            *(send(api, c, [clients[(i + 1) % 4].agency_code]) for i, c in enumerate(clients)),
            *(api.token(c.client_id, "wrong") for c in clients),
        )
        assert [r.status_code for r in responses] == [202] * 4 + [401] * 4
        await wait_until(lambda: head_at_least(api, 20), within=10, what="the entries")
        runtime = registry(api)
        async with runtime.db.session() as session:
            await audit_service(session, runtime).anchor()
        async with runtime.db.session() as session:
            report = await audit_service(session, runtime).verify(_trusted(api))
        assert report.ok, report.broken
        assert report.entries == report.head_seq >= 20 and report.anchors == 1


def _trusted(api: Api) -> dict[str, Any]:
    from shared.audit import load_public_keys

    return load_public_keys([api.settings.public_key_file])


async def test_a_redelivered_event_is_appended_once(api: Api) -> None:
    """The registry's consumer records each message id as processed with the entries it appends."""
    runtime = registry(api)
    consumer = audit_consumer(runtime)
    handler = IdempotentBatchConsumer(runtime.db, runtime.tables, f"registry.{consumer.name}", consumer.handler)
    target = f"redelivered-{uuid.uuid4().hex[:8]}"

    def event() -> Envelope:
        data = audit_payload("token.refused", actor=None, target=target, outcome="refused")
        return Envelope(id=str(uuid.uuid4()), type=AUDIT_EVENT, source="registry", occurred_at=utcnow(), data=data)

    first, second = event(), event()
    await handler.handle_batch([first, second, first])  # twice in one batch
    await handler.handle_batch([second])  # and again later
    await handler(first)  # and alone
    found = [e for e in await entries(api, action="token.refused") if e["target"] == target]
    assert sorted(e["message_id"] for e in found) == sorted([first.id, second.id])
    assert found[0]["seq"] == found[1]["seq"] + 1  # newest first, one after the other
