"""Security headers on every answer of the gateway (successes, its own errors, an unexpected one),
HSTS only over TLS, a docs page whose strict policy still lets it load what it needs, and a request
id on every answer. The gateway alone: no service answers (their ports are closed)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from gateway.app import create_app
from gateway.config import GatewaySection
from gateway.headers import EdgeMiddleware
from gateway.limits import GatewayLimits
from tests.conftest import free_port, make_settings
from tests.helpers import assert_problem

API_CSP = "default-src 'none'; frame-ancestors 'none'"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    services = {name: {"url": f"http://127.0.0.1:{free_port()}"} for name in ("registry", "exchange")}
    settings = make_settings(
        tmp_path_factory.mktemp("headers") / "var",
        gateway={"rate_limits": {"token": {"per_second": 0.01, "burst": 1}}, "circuit_failures": 100},
        **services,
    )
    app = create_app(settings)

    @app.get("/boom", include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError("a bug the handlers did not foresee")

    async with app.router.lifespan_context(app):
        yield app


def _client(app: FastAPI, base_url: str = "http://gateway", address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 123))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


def assert_secured(response: httpx.Response, csp: str | None = API_CSP) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    if csp is not None:
        assert headers["content-security-policy"] == csp
    assert len(headers.get_list("x-request-id")) == 1 and headers["x-request-id"]
    assert "strict-transport-security" not in headers  # plain HTTP


async def test_every_answer_carries_the_security_headers(gateway: FastAPI) -> None:
    async with _client(gateway) as http:
        assert_secured(await http.get("/health"))
        assert_secured(await http.get("/metrics"))
        missing = await http.get("/v1/nowhere")
        assert_problem(missing, 404, "route_not_found")
        assert_secured(missing)
        down = await http.get("/v1/documents")  # the exchange's port is closed
        assert_problem(down, 503, "dependency_unavailable")
        assert down.headers["retry-after"] == "5"
        assert_secured(down)
        assert down.headers["ratelimit-limit"]  # a limited route: the limit headers on its errors too
        too_large = await http.post("/v1/agencies", content=b"{}", headers={"Content-Length": str(2**31)})
        assert_problem(too_large, 413, "request_too_large")
        assert_secured(too_large)
        form = {"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"}
        first = await http.post("/v1/auth/token", data=form)  # the registry is down: 503
        assert first.status_code == 503 and first.headers["ratelimit-remaining"] == "0"
        assert_secured(first)
        limited = await http.post("/v1/auth/token", data=form)
        assert_problem(limited, 429, "rate_limited")
        assert limited.headers["retry-after"] == "100" and limited.headers["ratelimit-limit"] == "1"
        assert_secured(limited)
        unexpected = await http.get("/boom")
        assert_problem(unexpected, 500, "internal")
        assert_secured(unexpected)


async def test_hsts_only_over_tls(gateway: FastAPI) -> None:
    async with _client(gateway, "https://gateway") as http:
        response = await http.get("/health")
        assert response.headers["strict-transport-security"] == "max-age=31536000"
    async with _client(gateway) as http:  # a forwarded proto is not believed unless configured
        response = await http.get("/health", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in response.headers


async def test_a_trusted_forwarded_proto_counts_as_tls() -> None:
    async def ok(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    settings = GatewaySection(forwarded_proto_trusted=True, hsts_seconds=600)
    app = EdgeMiddleware(ok, settings=settings, limits=GatewayLimits(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
        behind_tls = await http.get("/health", headers={"X-Forwarded-Proto": "https"})
        assert behind_tls.headers["strict-transport-security"] == "max-age=600"
        assert "strict-transport-security" not in (await http.get("/health")).headers


async def test_the_docs_page_gets_a_strict_policy_that_lets_it_work(gateway: FastAPI) -> None:
    async with _client(gateway) as http:
        page = await http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert_secured(page, csp=None)
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["default-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in directives["script-src"]
    # the page's one inline script runs by its hash, exactly
    inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in directives["script-src"]
    # every script, stylesheet and image it loads is allowed, and it may fetch the OpenAPI document
    for src in re.findall(r'<script src="([^"]+)"', page.text):
        assert _origin(src) in directives["script-src"], src
    for href in re.findall(
        r'<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"|<link[^>]*href="([^"]+)"[^>]*rel="stylesheet"', page.text
    ):
        url = href[0] or href[1]
        assert _origin(url) in directives["style-src"], url
    for icon in re.findall(r'<link rel="shortcut icon" href="([^"]+)"', page.text):
        assert _origin(icon) in directives["img-src"], icon
    assert "data:" in directives["img-src"] and directives["connect-src"] == ["'self'"]
    assert "/openapi.json" in page.text


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


async def test_a_plain_request_id_is_kept_and_any_other_replaced(gateway: FastAPI) -> None:
    async with _client(gateway) as http:
        kept = await http.get("/health", headers={"X-Request-ID": "agency-42:abc.DEF-1"})
        assert kept.headers["x-request-id"] == "agency-42:abc.DEF-1"
        replaced = await http.get("/health", headers={"X-Request-ID": 'x" onload="alert(1) ' * 3})
        assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
        fresh = await http.get("/health")
        assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])


async def test_a_get_with_a_body_and_an_oversized_token_form_are_refused_before_reading(gateway: FastAPI) -> None:
    """The body limits of two more route classes (shared/limits.py): none on a GET, 16 KiB for
    the token endpoint's form."""
    async with _client(gateway) as http:
        with_body = await http.request("GET", "/v1/inbox", content=b"{}")
        assert_problem(with_body, 413, "request_too_large")
        assert with_body.json()["max_bytes"] == 0
        assert_secured(with_body)
    async with _client(gateway, address="192.0.2.77") as http:  # a token bucket of its own
        form = {"grant_type": "client_credentials", "client_id": "x", "client_secret": "y" * 20_000}
        assert_problem(await http.post("/v1/auth/token", data=form), 413, "request_too_large")
