"""A service behind the gateway that is down or slow: 503 problem+json with Retry-After within the
route class's timeout, never a hang; after repeated failures its circuit opens (503 circuit_open at
once), half-opens after the cool-down to let one probe through, and closes when the probe succeeds.

Over the network (the production topology's path: aiohttp to real uvicorn servers on this machine,
one of them on a port nobody listens on) and in-process (the embedded mode's path)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.app import create_app
from gateway.circuit import CLOSED, HALF_OPEN, OPEN, Circuit
from gateway.errors import CircuitOpenError
from gateway.inprocess import InProcessResponse, upstream_scope
from gateway.proxy import DROPPED_ANSWER_HEADERS
from shared.errors import DependencyUnavailableError, install_error_handlers
from tests.conftest import free_port, make_settings
from tests.helpers import assert_problem, serving

TIMEOUT = 0.3  # the read class's timeout in these tests
COOLDOWN = 0.4


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_circuit_opens_after_failures_in_a_row_and_one_probe_closes_it() -> None:
    clock = Clock()
    changes: list[str] = []
    circuit = Circuit("registry", failures=3, cooldown=10, clock=clock, on_change=lambda _, s: changes.append(s))
    for _ in range(2):
        circuit.call().failed()
    with circuit.call() as call:
        call.succeeded()  # a success in between: the count starts again
    for _ in range(3):
        circuit.call().failed()
    assert circuit.status == OPEN
    with pytest.raises(CircuitOpenError) as refused:
        circuit.call()
    assert refused.value.retry_after == 10 and refused.value.status == 503
    clock.now += 9.5
    with pytest.raises(CircuitOpenError) as refused:
        circuit.call()
    assert refused.value.retry_after == 1  # what is left of the cool-down, rounded up

    clock.now += 0.5
    probe = circuit.call()
    assert circuit.status == HALF_OPEN and probe.probe
    with pytest.raises(CircuitOpenError):
        circuit.call()  # one probe at a time
    probe.failed()
    assert circuit.status == OPEN  # the probe failed: another cool-down
    with pytest.raises(CircuitOpenError):
        circuit.call()
    clock.now += 10
    with circuit.call():
        pass  # a probe that never said how it went (its caller left) lets the next one probe
    probe = circuit.call()
    probe.succeeded()
    assert circuit.status == CLOSED and circuit.call().probe is False
    assert changes == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


class Slow:
    """The exchange, slow on request: ``/v1/documents/sleep/<seconds>`` answers after that long."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith("/v1/documents/sleep/"):
            await asyncio.sleep(float(path.rsplit("/", 1)[1]))
        body = b'{"ok": true}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
async def network(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    """The gateway over the network: the exchange slow on request, the registry's port closed
    (its number given, for a test to start a registry there), GETs given ``TIMEOUT``."""
    registry_port = free_port()
    async with serving(Slow()) as exchange:
        settings = make_settings(
            tmp_path_factory.mktemp("circuit") / "var",
            exchange={"url": exchange},
            registry={"url": f"http://127.0.0.1:{registry_port}"},
            signature={"url": f"http://127.0.0.1:{free_port()}"},
            gateway={
                "timeouts": {"read": TIMEOUT},
                "circuit_failures": 3,
                "circuit_cooldown_seconds": COOLDOWN,
            },
        )
        async with (
            serving(create_app(settings), lifespan="on") as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            yield http, registry_port


async def test_a_service_that_is_down_is_a_503_at_once_then_its_circuit_opens_and_closes_again(
    network: tuple[httpx.AsyncClient, int],
) -> None:
    http, registry_port = network
    for _ in range(3):
        started = time.monotonic()
        response = await http.get("/v1/agencies")
        body = assert_problem(response, 503, "dependency_unavailable")
        assert "registry" in body["detail"] and response.headers["retry-after"] == "5"
        assert time.monotonic() - started < 2
    refused = await http.get("/v1/agencies")  # the circuit is open: not even tried
    body = assert_problem(refused, 503, "circuit_open")
    assert body["service"] == "registry" and refused.headers["retry-after"] == "1"
    # the other services are not affected
    assert (await http.get("/v1/documents/sleep/0")).status_code == 200
    metrics = (await http.get("/metrics")).text
    assert 'lienthong_upstream_circuit_state{service="gateway",upstream="registry"} 1.0' in metrics
    assert 'lienthong_upstream_failures_total{reason="unreachable",service="gateway",upstream="registry"} 3.0' in (
        metrics
    )

    # the registry comes back; after the cool-down the first request probes it and closes the circuit
    async with serving(Slow(), port=registry_port):
        await asyncio.sleep(COOLDOWN)
        assert (await http.get("/v1/agencies")).status_code == 200
        assert (await http.get("/v1/agencies")).status_code == 200
        metrics = (await http.get("/metrics")).text
        assert 'lienthong_upstream_circuit_state{service="gateway",upstream="registry"} 0.0' in metrics


async def test_a_slow_service_is_a_503_within_the_timeout_and_half_open_lets_one_probe_through(
    network: tuple[httpx.AsyncClient, int],
) -> None:
    http, _ = network
    for _ in range(3):
        started = time.monotonic()
        response = await http.get("/v1/documents/sleep/1")
        body = assert_problem(response, 503, "dependency_unavailable")
        assert "did not answer in time" in body["detail"] and response.headers["retry-after"] == "5"
        assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 1.5  # the timeout, not the service's 1 s
    assert_problem(await http.get("/v1/documents/sleep/0"), 503, "circuit_open")
    await asyncio.sleep(COOLDOWN)
    # half-open: the first request is the probe (slow but in time); others meanwhile are refused
    probe = asyncio.create_task(http.get(f"/v1/documents/sleep/{TIMEOUT / 2}"))
    await asyncio.sleep(TIMEOUT / 8)
    assert_problem(await http.get("/v1/documents/sleep/0"), 503, "circuit_open")
    assert (await probe).status_code == 200
    assert (await http.get("/v1/documents/sleep/0")).status_code == 200  # closed again


async def _slow_service(scope: Scope, receive: Receive, send: Send) -> None:
    """An in-process service that reads the body, then takes its time: ``?sleep=<seconds>``."""
    while (await receive()).get("more_body"):
        pass
    seconds = float(scope["query_string"].decode().partition("=")[2] or 0)
    await asyncio.sleep(seconds)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_the_in_process_path_answers_503_within_the_timeout_not_counting_the_callers_upload() -> None:
    circuit = Circuit("exchange", failures=2, cooldown=30)
    app = FastAPI()
    install_error_handlers(app)

    @app.api_route("/v1/{path:path}", methods=["GET", "POST"])
    async def forward(path: str, request: Request) -> Response:
        timed_out = DependencyUnavailableError("The exchange service did not answer in time", retry_after=5)
        scope = upstream_scope(request, "exchange", [])
        return InProcessResponse(
            _slow_service, scope, DROPPED_ANSWER_HEADERS, timeout=TIMEOUT, call=circuit.call(), timed_out=timed_out
        )

    async def slow_upload() -> AsyncIterator[bytes]:
        for _ in range(3):
            await asyncio.sleep(TIMEOUT)  # the caller takes 3 × the timeout to upload
            yield b"x" * 1000

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
        started = time.monotonic()
        response = await http.get("/v1/documents", params={"sleep": 5})
        assert_problem(response, 503, "dependency_unavailable")
        assert response.headers["retry-after"] == "5"
        assert time.monotonic() - started < TIMEOUT + 1.5
        assert circuit.failures == 1
        response = await http.post("/v1/documents", params={"sleep": 0}, content=slow_upload())
        assert response.status_code == 200 and response.text == "ok"  # the slow caller is not the service's fault
        assert circuit.failures == 0 and circuit.status == CLOSED
