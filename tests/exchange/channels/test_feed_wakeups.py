"""The feed's wake-up off the broker: a long poll answers at the commit of an entry for its agency
(PostgreSQL: the feed_entry trigger's NOTIFY, whoever committed it; SQLite: the session's commit),
not at its recheck; the listening connection comes back after it is lost, and while it is away the
recheck still finds new entries. Which entries the dispatcher gets is decided when they are
written: all but those of pull agencies."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from services.exchange.dependencies import ExchangeRuntime
from services.exchange.feed import service as feed_service
from services.exchange.feed.repository import FeedRepository
from services.exchange.feed.service import DispatchRule
from services.exchange.feed.wakeup import FEED_CHANNEL, listen_parameters
from shared.clients import RegistryClient
from shared.clients.registry import DeliveryEndpoint
from shared.db import Database, utcnow
from tests.helpers import Api, Client, FakeDns, exchange_db, free_port, send_ok, wait_until

POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
NO_RECHECK = 30.0  # the recheck pushed past every wait of these tests: only a wake-up answers in time
WOKEN_WITHIN = 2.0  # a wake-up's budget, generous for a loaded machine (it takes milliseconds)


@pytest.fixture
def no_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_service, "RECHECK_SECONDS", NO_RECHECK)


def exchange(api: Api) -> ExchangeRuntime:
    runtime = api.service_runtime("exchange")
    assert isinstance(runtime, ExchangeRuntime)
    return runtime


async def long_poll(api: Api, reader: Client, wait: float = 20) -> asyncio.Task[httpx.Response]:
    """Start a long poll of the reader's feed; return once it waits (its first read found nothing)."""
    notifier = exchange(api).feed_notifier
    before = notifier.readers(reader.agency_code)
    task = asyncio.create_task(api.http.get("/v1/feed", params={"wait": wait}, headers=reader.auth))
    await wait_until(lambda: notifier.readers(reader.agency_code) > before, what="the long poll to register")
    await asyncio.sleep(0.3)  # its first read done: an entry committed now can only be seen by a wake-up
    assert not task.done()
    return task


async def answered_within(task: asyncio.Task[httpx.Response], since: float) -> tuple[list[dict[str, Any]], float]:
    response = await asyncio.wait_for(task, NO_RECHECK)
    elapsed = time.monotonic() - since
    assert response.status_code == 200, response.text
    return response.json()["entries"], elapsed


def entry_for(agency_code: str) -> dict[str, Any]:
    """A feed entry as another writer would add it (its data aside, which the feed does not read)."""
    return {
        "agency_code": agency_code,
        "type": "delivery.received",
        "document_id": uuid.uuid4(),
        "delivery_id": None,
        "data": {},
        "created_at": utcnow(),
    }


async def listening(api: Api) -> None:
    listener = exchange(api).feed_listener
    if listener is not None:  # PostgreSQL
        await listener.wait_listening(10)


async def woken_by_a_send(api: Api, sender: Any, recipient: Any) -> None:
    """A long poll of the recipient's feed answers the sender's document soon after its commit."""
    waiting = await long_poll(api, recipient)
    await send_ok(api, sender, [recipient])
    entries, elapsed = await answered_within(waiting, time.monotonic())
    assert [e["type"] for e in entries] == ["delivery.received"]
    assert elapsed < WOKEN_WITHIN, f"answered {elapsed:.2f} s after the commit"


async def test_a_long_poll_answers_at_the_commit_not_at_its_recheck(api: Api, no_recheck: None) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    await listening(api)
    await woken_by_a_send(api, sender, recipient)


@POSTGRES_ONLY
async def test_an_entry_committed_by_another_connection_wakes_the_long_poll(api: Api, no_recheck: None) -> None:
    """Another process's write, as far as this one can tell: another engine, none of its hooks."""
    recipient = await api.agency_client()
    await listening(api)
    waiting = await long_poll(api, recipient)
    other = Database(api.settings.database_url_for("exchange"), "exchange")
    try:
        async with other.session() as session:
            await FeedRepository(session).append([entry_for(recipient.agency_code)])
        entries, elapsed = await answered_within(waiting, time.monotonic())
    finally:
        await other.dispose()
    assert [e["seq"] for e in entries] == [1]
    assert elapsed < WOKEN_WITHIN, f"answered {elapsed:.2f} s after the commit"


@POSTGRES_ONLY
async def test_one_notification_per_transaction_and_agency_at_the_commit(api: Api) -> None:
    received: list[str] = []
    conn = await asyncpg.connect(**listen_parameters(exchange_db(api)))
    try:
        await conn.add_listener(FEED_CHANNEL, lambda _c, _pid, _channel, payload: received.append(payload))
        db = exchange_db(api)
        async with db.session() as session:
            await FeedRepository(session).append([entry_for("H01.1")] * 3 + [entry_for("H01.2")])
            await session.flush()
            await asyncio.sleep(0.2)
            assert received == []  # nothing before the commit
        async with db.session() as session:  # committed after: its notification comes after the first's
            await FeedRepository(session).append([entry_for("H01.3")])
        await wait_until(lambda: "H01.3" in received, what="the second transaction's notification")
    finally:
        await conn.close()
    assert sorted(received[:2]) == ["H01.1", "H01.2"] and received[2:] == ["H01.3"], received


@POSTGRES_ONLY
async def test_the_listening_connection_comes_back_after_it_is_terminated(api: Api, no_recheck: None) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    listener = exchange(api).feed_listener
    assert listener is not None
    await listener.wait_listening(10)
    first_pid, connections = listener.server_pid, listener.connections
    admin = await asyncpg.connect(**listen_parameters(exchange_db(api)))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first_pid)
    finally:
        await admin.close()
    await wait_until(lambda: listener.connections > connections and listener.listening, what="the reconnection")
    assert listener.server_pid not in (None, first_pid)
    await woken_by_a_send(api, sender, recipient)


@POSTGRES_ONLY
async def test_while_nobody_listens_a_long_poll_finds_entries_at_its_recheck(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_service, "RECHECK_SECONDS", 0.3)
    sender, recipient = await api.agency_client(), await api.agency_client()
    listener = exchange(api).feed_listener
    assert listener is not None
    await listener.stop()  # PostgreSQL unreachable for the listener, as far as the readers can tell
    assert not listener.listening
    waiting = await long_poll(api, recipient)
    await send_ok(api, sender, [recipient])
    entries, elapsed = await answered_within(waiting, time.monotonic())
    assert [e["type"] for e in entries] == ["delivery.received"]
    assert elapsed < 0.3 + WOKEN_WITHIN


async def test_the_dispatcher_gets_every_entry_but_those_of_agencies_that_pull(api: Api, dns: FakeDns) -> None:
    """The rule the feed service applies when it writes entries (tests/exchange/channels/test_push.py:
    what a send records)."""
    runtime = exchange(api)
    pulling, pushing = await api.agency_client(), await api.agency_client()
    response = await api.http.put(
        f"/v1/agencies/{pushing.agency_code}/endpoint",
        json={"mode": "push", "webhook_url": "https://qlvb.example.gov.vn/hook"},
        headers=await api.admin(),
    )
    assert response.status_code == 200, response.text
    registry = RegistryClient(runtime.client("registry"), runtime.internal_authorization)  # no cache
    rule = DispatchRule(registry.delivery_endpoint)
    assert not await rule.needs_dispatch(pulling.agency_code)
    assert await rule.needs_dispatch(pushing.agency_code)
    assert await rule.needs_dispatch("H99.99.99")  # unknown to the registry: the dispatcher decides
    codes = {pulling.agency_code, pushing.agency_code, "H99.99.99"}
    assert await rule.dispatched(codes) == {pushing.agency_code, "H99.99.99"}
    assert await rule.dispatched({pulling.agency_code}) == set()
    # the registry unreachable: the dispatcher decides
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{free_port()}", timeout=2) as nowhere:
        away = DispatchRule(RegistryClient(nowhere, runtime.internal_authorization).delivery_endpoint)
        assert await away.needs_dispatch(pulling.agency_code)


async def test_a_registry_that_answers_slowly_never_holds_the_entries_transaction_past_the_budget() -> None:
    """The transaction adding entries may hold a delivery's row: endpoints the registry is slow to
    give get the event (the dispatcher decides) once ``BUDGET_SECONDS`` pass, not after its timeout."""
    hanging: list[asyncio.StreamWriter] = []

    async def never_answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hanging.append(writer)  # reads nothing, answers nothing

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as slow:
            rule = DispatchRule(RegistryClient(slow, lambda: "").delivery_endpoint)
            codes = {f"000.00.{n:02d}.H10" for n in range(20)}
            started = time.monotonic()
            assert await rule.dispatched(codes) == codes
            assert await rule.dispatched({"000.00.99.H10"}) == {"000.00.99.H10"}
            assert time.monotonic() - started < 2 * DispatchRule.BUDGET_SECONDS + 1.0
    finally:
        for writer in hanging:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_broadcast_to_agencies_not_cached_does_not_wait_and_warms_the_cache() -> None:
    """More agencies than LOOKUPS whose endpoints the cache lacks (a broadcast after a directory
    change emptied it): their entries get the event at once, the dispatcher deciding, and the
    endpoints are looked up after, so the next broadcast knows who pulls."""
    cache: dict[str, DeliveryEndpoint] = {}
    asked: list[str] = []

    async def slow_endpoint(code: str) -> DeliveryEndpoint | None:
        asked.append(code)
        await asyncio.sleep(0.05)  # 100 agencies, 8 at a time: 0.6 s, past the budget
        endpoint = DeliveryEndpoint(agency_code=code, mode="pull" if code.endswith("0.H10") else "push")
        cache[code] = endpoint
        return endpoint

    rule = DispatchRule(slow_endpoint, cache.get)
    codes = {f"000.00.{n:02d}.H10" for n in range(100)}
    assert await rule.dispatched(codes) == codes  # nothing known: every entry to the dispatcher
    assert cache == {}  # answered without waiting for a single look-up
    await rule.settled()
    assert sorted(asked) == sorted(codes)  # each looked up once, in the background
    pushing = {code for code in codes if not code.endswith("0.H10")}
    assert await rule.dispatched(codes) == pushing  # known now: the pull agencies' entries stay off the bus
    assert len(asked) == 100  # nothing asked again
    # a few agencies not cached are still asked within the budget, as a send to one agency is
    assert await rule.dispatched({"000.00.10.H10", "000.00.99.H11"}) == {"000.00.99.H11"}
    assert "000.00.99.H11" in asked
