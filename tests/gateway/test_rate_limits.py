"""Rate limits at the gateway: a token bucket per client (the token's ``sub``, else the source
address) and route class; 429 rate_limited problem+json with Retry-After, and the RateLimit-*
headers on every answer of a limited route. One embedded system for the module, with small limits;
each test has clients (or a source address) of its own."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from gateway.config import RateBucket, RateLimitSection
from gateway.limits import RateLimiter, route_class
from gateway.runtime import GatewayRuntime
from shared.runtime import app_runtime
from tests.conftest import running_system
from tests.helpers import Api, assert_problem

READ = {"per_second": 0.5, "burst": 3}  # a 4th read at once is refused; one more every 2 s
TOKEN: dict[str, int | float] = {"per_second": 0.2, "burst": 12}
SEARCH_TIMEOUT = 0.5


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    var = tmp_path_factory.mktemp("rate-limits") / "var"
    gateway = {"rate_limits": {"read": READ, "token": TOKEN}, "timeouts": {"search": SEARCH_TIMEOUT}}
    async with running_system(var, gateway=gateway) as caller:
        yield caller


def _from(api: Api, address: str) -> httpx.AsyncClient:
    """A caller of the same system from another source address."""
    transport = httpx.ASGITransport(app=api.app, client=(address, 40000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_route_classes() -> None:
    cases = {
        ("POST", "/v1/auth/token"): "token",
        ("POST", "/v1/documents"): "send",
        ("GET", "/v1/documents"): "read",
        ("GET", "/v1/documents/1/attachments/2"): "read",
        ("POST", "/v1/documents/1/recall"): "write",
        ("POST", "/v1/deliveries/1/status"): "write",
        ("POST", "/v1/signatures/verify"): "write",
        ("GET", "/v1/archive/search"): "search",
        ("GET", "/v1/users"): "admin",
        ("PATCH", "/v1/users/van.thu"): "admin",
        ("GET", "/v1/feed"): "read",
        ("POST", "/v1/agencies/lookup"): "read",
        ("POST", "/v1/agencies/resolve"): "read",
        ("GET", "/v1/agencies/000.00.00.H41"): "read",
        ("POST", "/v1/agencies"): "admin",
        ("POST", "/v1/agencies/import"): "admin",
        ("PUT", "/v1/groups/g"): "admin",
        ("GET", "/v1/agencies/000.00.00.H41/clients"): "admin",
        ("POST", "/v1/clients/c/rotate"): "admin",
        ("GET", "/v1/transfers/failed"): "admin",
        ("POST", "/v1/signatures/trust-store/certificates"): "admin",
    }
    assert {key: route_class(*key) for key in cases} == cases


def test_the_bucket_allows_a_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter({"read": RateBucket(per_second=2, burst=3)}, clock=clock)
    decisions = [limiter.take("read", "client:a") for _ in range(4)]
    assert [d.allowed for d in decisions if d] == [True, True, True, False]
    assert [d.remaining for d in decisions if d] == [2, 1, 0, 0]
    refused = decisions[3]
    assert refused is not None and refused.limit == 3 and refused.retry_after == 1 and refused.reset == 2
    assert limiter.take("read", "client:b").allowed  # type: ignore[union-attr]  # per client
    assert limiter.take("send", "client:a") is None  # a class without a bucket is not limited
    clock.now += 0.5  # one request's worth
    assert limiter.take("read", "client:a").allowed  # type: ignore[union-attr]
    assert not limiter.take("read", "client:a").allowed  # type: ignore[union-attr]
    clock.now += 60
    assert limiter.take("read", "client:a").remaining == 2  # type: ignore[union-attr]  # full again, no more


def test_idle_full_buckets_are_forgotten_first() -> None:
    clock = Clock()
    limiter = RateLimiter({"read": RateBucket(per_second=1, burst=2)}, max_keys=100, clock=clock)
    for n in range(99):
        limiter.take("read", f"idle:{n}")
    clock.now += 10  # all of them full again
    limiter.take("read", "busy")
    limiter.take("read", "another")  # the 101st key: the idle ones go
    assert len(limiter) == 2


def test_the_defaults_let_the_send_benchmark_through() -> None:
    """``bench send``: about 200 documents/s from one client, 16 to 64 in flight at once, and a read
    of the feed and the document for each; never refused by the defaults."""
    clock = Clock()
    limiter = RateLimiter.from_settings(RateLimitSection())
    limiter.clock = clock
    for n in range(4000):  # 20 s at 200/s, the first 64 at once
        clock.now = 1000.0 + max(0, n - 64) / 200
        assert limiter.take("send", "client:sender").allowed  # type: ignore[union-attr]
        assert limiter.take("read", "client:recipient").allowed  # type: ignore[union-attr]
    assert RateLimiter.from_settings(RateLimitSection(enabled=False)).take("send", "x") is None


async def test_a_client_past_its_read_limit_gets_429_with_retry_after_and_the_limit_headers(api: Api) -> None:
    client, other = await api.agency_client(), await api.agency_client()
    for remaining in (2, 1, 0):
        response = await api.http.get("/v1/inbox", headers=client.auth)
        assert response.status_code == 200, response.text
        assert response.headers["ratelimit-limit"] == "3"
        assert response.headers["ratelimit-remaining"] == str(remaining)
        assert 0 < int(response.headers["ratelimit-reset"]) <= 6
    refused = await api.http.get("/v1/inbox", headers=client.auth)
    body = assert_problem(refused, 429, "rate_limited")
    assert body["route_class"] == "read"
    assert refused.headers["retry-after"] == "2"  # one request at 0.5 per second
    assert refused.headers["ratelimit-remaining"] == "0" and refused.headers["ratelimit-limit"] == "3"
    # another client, and another route class of the same client, have buckets of their own
    assert (await api.http.get("/v1/inbox", headers=other.auth)).status_code == 200
    write = await api.http.post(
        "/v1/deliveries/00000000-0000-0000-0000-000000000000/status", json={"status": "received"}, headers=client.auth
    )
    assert write.status_code != 429 and write.headers["ratelimit-limit"] == "500"
    metrics = (await api.http.get("/metrics")).text
    assert 'lienthong_rate_limited_total{route_class="read",service="gateway"}' in metrics


async def test_requests_without_a_valid_token_are_counted_per_source_address(api: Api) -> None:
    async with _from(api, "198.51.100.7") as http:
        assert_problem(await http.get("/v1/inbox"), 401, "unauthorized")
        assert_problem(
            await http.get("/v1/inbox", headers={"Authorization": "Bearer not-a-token"}), 401, "unauthorized"
        )
        assert (await http.get("/v1/inbox")).headers["ratelimit-remaining"] == "0"
        refused = await http.get("/v1/inbox", headers={"Authorization": "Bearer still-not-a-token"})
        assert_problem(refused, 429, "rate_limited")
    async with _from(api, "198.51.100.8") as http:  # another address is not affected
        assert_problem(await http.get("/v1/inbox"), 401, "unauthorized")


async def test_the_token_endpoint_is_limited_per_source_address(api: Api) -> None:
    async with _from(api, "203.0.113.9") as http:
        for n in range(int(TOKEN["burst"])):
            data = {"grant_type": "client_credentials", "client_id": f"nobody-{n}", "client_secret": "wrong"}
            response = await http.post("/v1/auth/token", data=data)
            assert response.status_code == 401, response.text
            assert response.headers["ratelimit-remaining"] == str(TOKEN["burst"] - 1 - n)
        refused = await http.post("/v1/auth/token", data=data)
        assert_problem(refused, 429, "rate_limited")
        assert refused.headers["retry-after"] == "5" and refused.headers["ratelimit-limit"] == str(TOKEN["burst"])


async def test_operations_and_the_docs_are_not_limited(api: Api) -> None:
    async with _from(api, "192.0.2.44") as http:
        for path in ("/health", "/openapi.json", "/docs"):
            response = await http.get(path)
            assert response.status_code == 200 and "ratelimit-limit" not in response.headers, path


async def test_the_access_log_names_the_client_and_the_request(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    client = await api.agency_client()
    with caplog.at_level(logging.INFO, logger="lienthong.gateway.access"):
        response = await api.http.get("/v1/feed", headers={**client.auth, "X-Request-ID": "access-log-1"})
    assert response.status_code == 200
    (line,) = [r for r in caplog.records if r.name == "lienthong.gateway.access" and r.path == "/v1/feed"]  # type: ignore[attr-defined]
    assert line.method == "GET" and line.status == 200 and line.client_id == client.client_id  # type: ignore[attr-defined]
    assert line.request_id == "access-log-1" and line.remote == "127.0.0.1"  # type: ignore[attr-defined]
    assert line.bytes == len(response.content) and line.duration_ms >= 0  # type: ignore[attr-defined]


async def _slow_service(scope: Scope, receive: Receive, send: Send) -> None:
    """An in-process service that takes its time: ``?sleep=<seconds>``."""
    while (await receive()).get("more_body"):
        pass
    await asyncio.sleep(float(scope["query_string"].decode().partition("=")[2] or 0))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_embedded_mode_gives_an_in_process_service_the_route_class_timeout(api: Api) -> None:
    assert api.app is not None
    runtime = app_runtime(api.app, GatewayRuntime)
    real = runtime.embedded["archive"]
    runtime.embedded["archive"] = _slow_service  # type: ignore[assignment]
    try:
        started = time.monotonic()
        response = await api.http.get("/v1/archive/search", params={"sleep": 5})
        assert_problem(response, 503, "dependency_unavailable")
        assert response.headers["retry-after"] == "5"
        assert time.monotonic() - started < SEARCH_TIMEOUT + 1.5
        assert (await api.http.get("/v1/archive/search", params={"sleep": 0})).text == "ok"
    finally:
        runtime.embedded["archive"] = real


def test_a_class_set_in_part_keeps_the_rest_of_its_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.settings import Settings

    monkeypatch.setenv("LIENTHONG_GATEWAY__RATE_LIMITS__SEND__PER_SECOND", "5")
    monkeypatch.setenv("LIENTHONG_GATEWAY__TIMEOUTS__READ", "7")
    gateway = Settings().gateway
    assert (gateway.rate_limits.send.per_second, gateway.rate_limits.send.burst) == (5, 600)
    assert gateway.rate_limits.read.burst == 1000
    assert gateway.timeouts.read == 7 and gateway.timeouts.send == 90
