"""Structured JSON logs carrying the request id, request metrics, the access log, and /health,
/ready, /metrics."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.runtime import AppRuntime, app_runtime, runtime_of

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
REQUEST_ID_HEADER = "X-Request-ID"
# a caller's own request id is kept when it is this plain (it goes into every log line and back
# in the answer); anything else is replaced by a new one
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,100}")


class RequestInfo:
    """What the access log says of a request besides what the server knows: who made it."""

    __slots__ = ("client_id",)

    def __init__(self) -> None:
        self.client_id: str | None = None


_request_info: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar("request_info", default=None)


def note_client(client_id: str) -> None:
    """Name the client of the request being served (its token's ``sub``) in the access log."""
    info = _request_info.get()
    if info is not None:
        info.client_id = client_id


def current_request_id() -> str | None:
    """Return the id of the request being served (None outside a request)."""
    return _request_id.get()


def set_request_id(value: str | None) -> contextvars.Token[str | None]:
    return _request_id.set(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extra fields."""

    _skip = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in self._skip and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class RequestIdFilter(logging.Filter):
    """Put the current request's id on every record (``-`` outside a request), for text logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True


def configure_logging(level: str = "INFO", json_logs: bool = True) -> None:
    """Send every log line to stderr, as JSON unless asked for plain text; both carry the request id."""
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s]: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "aiormq", "aio_pika", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Metrics:
    """Prometheus metrics of one service, in a registry of its own (several services share a process)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "lienthong_http_requests_total",
            "HTTP requests served",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lienthong_http_request_duration_seconds",
            "HTTP request duration",
            ["service", "method", "route"],
            registry=self.registry,
        )

        self.auth_throttled = Counter(
            "lienthong_auth_throttled_total",
            "Token requests refused with 429 after too many failed authentications",
            ["service", "key"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "lienthong_auth_failures_total", "Failed client authentications", ["service"], registry=self.registry
        )
        self.rate_limited = Counter(
            "lienthong_rate_limited_total",
            "Requests refused with 429 rate_limited, by route class",
            ["service", "route_class"],
            registry=self.registry,
        )
        self.circuit_state = Gauge(
            "lienthong_upstream_circuit_state",
            "The circuit of each service behind the gateway: 0 closed, 1 open, 2 half-open",
            ["service", "upstream"],
            registry=self.registry,
        )
        self.upstream_failures = Counter(
            "lienthong_upstream_failures_total",
            "Proxied calls that failed: the service unreachable, too slow, or breaking its answer off",
            ["service", "upstream", "reason"],
            registry=self.registry,
        )

        self.consumer_lag = Gauge(
            "lienthong_consumer_lag_messages",
            "Messages waiting in a consumer's or worker's queue (in-process bus: its work queues)",
            ["service", "queue"],
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "lienthong_dead_letters",
            "Messages in a queue's dead-letter queue (given up after every try)",
            ["service", "queue"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestContextMiddleware:
    """Give every request an id (taken from a plain ``X-Request-ID`` or new), echo it, time and
    count it; with ``access_log``, one structured line per request (logger ``lienthong.<service>.access``):
    method, path, status, duration, bytes answered, the client when known, the remote address."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.log = logging.getLogger(f"lienthong.{metrics.service}.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((value for name, value in scope.get("headers") or () if name == b"x-request-id"), b"")
        request_id = incoming.decode("ascii") if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = set_request_id(request_id)
        info = RequestInfo()
        info_token = _request_info.set(info)
        started = time.perf_counter()
        status = 500
        sent = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(self.metrics.service, method, path, str(status)).inc()
            self.metrics.latency.labels(self.metrics.service, method, path).observe(elapsed)
            level = logging.INFO if self.access_log else logging.DEBUG
            if self.log.isEnabledFor(level):
                client = scope.get("client")
                self.log.log(
                    level,
                    "%s %s %s",
                    method,
                    scope.get("path"),
                    status,
                    extra={
                        "method": method,
                        "path": scope.get("path"),
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "bytes": sent,
                        "client_id": info.client_id,
                        "remote": client[0] if client else None,
                        "request_id": request_id,
                    },
                )
            _request_info.reset(info_token)
            _request_id.reset(token)


ReadyCheck = Callable[[], Awaitable[dict[str, Any] | None]]
"""A readiness check: raises when its dependency is not usable, may return details to show."""

_ready_exclusions: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "ready_exclusions", default=frozenset()
)


def ready_exclusions() -> frozenset[str]:
    """Return the checks the current ``/ready`` request excludes (a gateway passes them on)."""
    return _ready_exclusions.get()


@dataclass(frozen=True)
class Operations:
    """What an app's /health, /ready and /metrics answer from (its runtime's ``operations``)."""

    service: str
    checks: Callable[[], dict[str, ReadyCheck]]
    metrics: Metrics
    refresh: Callable[[], Awaitable[None]] | None = None


def _operations(request: Request) -> Operations:
    operations = runtime_of(request, AppRuntime).operations
    if operations is None:
        raise RuntimeError(f"{request.app.title} has no Operations: install them with install_operations()")
    return operations


# one router for every app: its routes, and the work FastAPI does on them, are built once per process
# (each app's own service, checks and metrics are on its runtime), not again for each app a test starts
_OPERATIONS_ROUTER = APIRouter(tags=["operations"])


@_OPERATIONS_ROUTER.get("/health", summary="Liveness")
async def health(request: Request) -> dict[str, str]:
    """Answer 200 while the process is alive."""
    return {"status": "ok", "service": _operations(request).service}


@_OPERATIONS_ROUTER.get("/ready", summary="Readiness", responses={503: {"description": "A dependency is not usable"}})
async def ready(request: Request, exclude: Annotated[list[str] | None, Query()] = None) -> JSONResponse:
    """Answer 200 when every check passes (database, broker, outbox lag, upstream services), 503
    with the failing ones and why otherwise. ``?exclude=broker&exclude=outbox`` leaves checks out,
    as Kubernetes' own ``/readyz`` does: a replica whose outbox holds events during a broker
    outage can still take requests."""
    operations = _operations(request)
    excluded = frozenset(exclude or ())
    token = _ready_exclusions.set(excluded)
    results: dict[str, str] = {}
    details: dict[str, Any] = {}
    ok = True
    try:
        for name, check in operations.checks().items():
            if name in excluded:
                continue
            try:
                detail = await check()
                results[name] = "ok"
            except Exception as exc:
                ok = False
                results[name] = f"error: {exc}"[:300]
                detail = getattr(exc, "details", None)
            if detail:
                details[name] = detail
    finally:
        _ready_exclusions.reset(token)
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "service": operations.service, "checks": results}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=200 if ok else 503)


@_OPERATIONS_ROUTER.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics_endpoint(request: Request) -> Response:
    """Expose the service's metrics in the Prometheus text format."""
    operations = _operations(request)
    if operations.refresh is not None:
        try:
            await operations.refresh()
        except Exception:  # the scrape still shows the process and request metrics
            logging.getLogger("lienthong.observability").warning("refreshing %s metrics failed", operations.service)
    return Response(operations.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def install_operations(
    app: FastAPI,
    service: str,
    checks: Callable[[], dict[str, ReadyCheck]],
    metrics: Metrics,
    *,
    refresh: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Give ``app`` (its runtime attached) /health (process alive), /ready (dependencies usable) and
    /metrics (Prometheus), answered with these checks and metrics."""
    app_runtime(app, AppRuntime).operations = Operations(service, checks, metrics, refresh)
    app.include_router(_OPERATIONS_ROUTER)


def app_metrics(app: FastAPI) -> Metrics | None:
    """The metrics an app was instrumented with."""
    return app_runtime(app, AppRuntime).request_metrics


def instrument(app: FastAPI, metrics: Metrics, *, access_log: bool = False) -> None:
    """Add the request-context middleware to an app (``access_log``: a line per request at INFO,
    otherwise at DEBUG). The metrics are kept on the app's runtime, not in a map keyed by the app:
    an app's metrics reach back to the app (a service's collectors hold its runtime, whose in-process
    transports hold the apps), and a map's strong value would keep every app ever built alive."""
    app_runtime(app, AppRuntime).request_metrics = metrics
    app.add_middleware(RequestContextMiddleware, metrics=metrics, access_log=access_log)
