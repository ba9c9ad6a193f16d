"""The gateway's credential guard: a token stays cryptographically valid until it expires, but the
gateway refuses it within seconds once its client is revoked or its agency is no longer active.

The gateway caches the registry's answer (30 s at most); the registry's events empty that cache.
In one process (both databases) the in-process bus carries them; in the production topology they
travel over RabbitMQ to the gateway process's own exclusive queue.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from services.runtime import Topology
from services.settings import Settings
from tests.helpers import Api, assert_problem, poll, send, wait_until

WITHIN = 5.0  # seconds an event may take to reach the gateway


async def test_revoked_clients_live_token_is_refused_within_seconds(api: Api) -> None:
    client = await api.agency_client()
    sibling = await api.agency_client(client.agency_code)
    assert (await api.http.get("/v1/inbox", headers=client.auth)).status_code == 200  # cached as active
    assert (await api.http.get("/v1/agencies", headers=client.auth)).status_code == 200

    revoked = await api.http.post(f"/v1/clients/{client.client_id}/revoke", headers=await api.admin())
    assert revoked.status_code == 200, revoked.text
    response, elapsed = await refused_within(lambda: api.http.get("/v1/inbox", headers=client.auth))
    body = assert_problem(response, 401, "token_revoked")
    assert elapsed < WITHIN, elapsed
    assert "revoked" in body["detail"]
    assert response.headers["www-authenticate"] == "Bearer"

    # every proxied path refuses it, writes too: nothing is sent with a revoked client's token
    assert_problem(await api.http.get("/v1/agencies", headers=client.auth), 401, "token_revoked")
    other = await api.agency_client()
    sent = await send(api, client, [other.agency_code])
    assert_problem(sent, 401, "token_revoked")
    assert (await api.http.get("/v1/inbox", headers=other.auth)).json()["items"] == []

    # the agency's other client and the admin are not affected
    assert (await api.http.get("/v1/inbox", headers=sibling.auth)).status_code == 200
    assert (await api.http.get("/v1/agencies", headers=await api.admin())).status_code == 200


async def test_suspended_agencys_live_token_is_refused_then_accepted_again(api: Api) -> None:
    agency = await api.agency_client()
    bystander = await api.agency_client()
    assert (await api.http.get("/v1/inbox", headers=agency.auth)).status_code == 200  # cached as active

    await set_status(api, agency.agency_code, {"status": "suspended", "reason": "Kiểm tra an toàn thông tin"})
    response, elapsed = await refused_within(lambda: api.http.get("/v1/inbox", headers=agency.auth))
    body = assert_problem(response, 403, "agency_inactive")
    assert elapsed < WITHIN, elapsed
    assert body["agency_code"] == agency.agency_code
    assert body["agency_status"] == "suspended"
    sent = await send(api, agency, [bystander.agency_code])
    assert_problem(sent, 403, "agency_inactive")
    untouched = await api.http.get("/v1/inbox", headers=bystander.auth)
    assert untouched.status_code == 200 and untouched.json()["items"] == []

    await set_status(api, agency.agency_code, {"status": "active"})
    accepted = await poll(
        lambda: api.http.get("/v1/inbox", headers=agency.auth), lambda r: r.status_code == 200, WITHIN
    )
    assert accepted.status_code == 200, accepted.text
    sent = await send(api, agency, [bystander.agency_code])
    assert sent.status_code == 202, sent.text

    # retiring is refused the same way
    successor = await api.create_agency()
    await set_status(api, agency.agency_code, {"status": "retired", "successor_code": successor["code"]})
    response, elapsed = await refused_within(lambda: api.http.get("/v1/inbox", headers=agency.auth))
    body = assert_problem(response, 403, "agency_inactive")
    assert body["agency_status"] == "retired"
    assert elapsed < WITHIN, elapsed


async def test_rotation_does_not_refuse_live_tokens(api: Api) -> None:
    client = await api.agency_client()
    assert (await api.http.get("/v1/inbox", headers=client.auth)).status_code == 200
    rotated = await api.http.post(
        f"/v1/clients/{client.client_id}/rotate", json={"overlap_seconds": 0}, headers=await api.admin()
    )
    assert rotated.status_code == 200, rotated.text
    # the token was issued for the client, not for its old secret: it stays valid after the event
    await wait_until(lambda: registry_outbox_empty(api), WITHIN, "the rotation event to reach the gateway")
    assert (await api.http.get("/v1/inbox", headers=client.auth)).status_code == 200
    assert_problem(await api.token(client.client_id, client.client_secret), 401, "invalid_client")


@pytest.mark.topology
async def test_revocation_and_suspension_in_the_production_topology(
    production_topology: tuple[Topology, Settings],
) -> None:
    topology, settings = production_topology
    assert len({p.pid for p in topology.processes.values()}) == 5
    secret = settings.registry.admin_client_secret
    assert secret is not None
    async with httpx.AsyncClient(base_url=topology.url("gateway"), timeout=30) as http:
        api = Api(http, settings)
        revoked = await api.agency_client()
        suspended = await api.agency_client()
        for client in (revoked, suspended):
            assert (await http.get("/v1/inbox", headers=client.auth)).status_code == 200  # cached as active

        response = await http.post(f"/v1/clients/{revoked.client_id}/revoke", headers=await api.admin())
        assert response.status_code == 200, response.text
        response, elapsed = await refused_within(lambda: http.get("/v1/inbox", headers=revoked.auth))
        assert_problem(response, 401, "token_revoked")
        assert elapsed < WITHIN, elapsed

        await set_status(api, suspended.agency_code, {"status": "suspended", "reason": "Kiểm tra"})
        response, elapsed = await refused_within(lambda: http.get("/v1/inbox", headers=suspended.auth))
        body = assert_problem(response, 403, "agency_inactive")
        assert body["agency_code"] == suspended.agency_code
        assert elapsed < WITHIN, elapsed

        await set_status(api, suspended.agency_code, {"status": "active"})
        accepted = await poll(
            lambda: http.get("/v1/inbox", headers=suspended.auth), lambda r: r.status_code == 200, WITHIN
        )
        assert accepted.status_code == 200, accepted.text
        assert_problem(await http.get("/v1/inbox", headers=revoked.auth), 401, "token_revoked")


# --- helpers ---------------------------------------------------------------------------------


async def refused_within(call: Callable[[], Awaitable[httpx.Response]]) -> tuple[httpx.Response, float]:
    """Repeat a request that was accepted until it is refused (up to ``WITHIN`` s); return the
    refusal and the seconds it took."""
    started = time.monotonic()
    response = await poll(call, lambda r: r.status_code in (401, 403), WITHIN)
    return response, time.monotonic() - started


async def set_status(api: Api, code: str, body: dict[str, Any]) -> None:
    response = await api.http.post(f"/v1/agencies/{code}/status", json=body, headers=await api.admin())
    assert response.status_code == 200, response.text
    assert response.json()["status"] == body["status"]


async def registry_outbox_empty(api: Api) -> bool:
    """Whether the registry has published every event (in one process the in-process bus hands an
    event to the gateway before its outbox row is marked published)."""
    ready = await api.http.get("/services/registry/ready")
    return bool(ready.json()["details"]["outbox"]["pending"] == 0)
