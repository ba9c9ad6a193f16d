"""What the gateway owns while it runs: the token issuer and verifier, a pooled client per service
(and the proxy's aiohttp pool to each service reached over plain HTTP), the registry client and the
credential guard, the broker it hears revocations on."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request

from gateway.guard import CredentialGuard
from gateway.upstream import NetworkUpstream
from shared.auth import Scope, TokenIssuer
from shared.auth import load_issuer as load_signing_key
from shared.clients import CREDENTIAL_EVENTS, RegistryClient
from shared.config import SERVICE_NAMES
from shared.http import service_client
from shared.messaging import Broker, create_broker
from shared.runtime import AppRuntime, runtime_of
from shared.service import load_verifier

if TYPE_CHECKING:
    from services.settings import Settings


def load_issuer(settings: Settings) -> TokenIssuer:
    """Load the JWT signing key; fails start-up with a clear message when it is missing."""
    return load_signing_key(
        settings.private_key_file, settings.auth.issuer, settings.auth.audience, settings.gateway.token_ttl_seconds
    )


class GatewayRuntime(AppRuntime):
    """Everything the running gateway owns; built by ``create_app``, started by its lifespan."""

    def __init__(
        self,
        settings: Settings,
        *,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
        broker: Broker | None = None,
    ) -> None:
        super().__init__("gateway")
        self.settings = settings
        self.transports = transports if transports is not None else {}
        self.broker: Broker | None = broker
        self._shared_broker = broker is not None
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.upstreams: dict[str, NetworkUpstream] = {}  # the proxy's fast path (see gateway.upstream)
        self._issuer: TokenIssuer | None = None
        self._guard: CredentialGuard | None = None
        self._stack: AsyncExitStack | None = None
        self.merged_openapi: dict[str, Any] | None = None
        self.embedded: dict[str, FastAPI] = {}  # the service apps mounted in-process (embedded mode)

    @property
    def issuer(self) -> TokenIssuer:
        if self._issuer is None:
            raise RuntimeError("the gateway is not started")
        return self._issuer

    @property
    def guard(self) -> CredentialGuard:
        if self._guard is None:
            raise RuntimeError("the gateway is not started")
        return self._guard

    def internal_authorization(self) -> str:
        """An ``Authorization`` header for the gateway's own calls to the services."""
        return f"Bearer {self.issuer.issue('gateway', None, [Scope.INTERNAL])}"

    def registry(self) -> RegistryClient:
        """The registry client, acting as the gateway itself."""
        return RegistryClient(self.clients["registry"], self.internal_authorization)

    async def start(self) -> None:
        """Load the keys, open the clients and the broker; close what was opened if a step fails."""
        settings = self.settings
        async with AsyncExitStack() as stack:
            self._issuer = load_issuer(settings)
            self.verifier = load_verifier(settings, remote=False)  # the gateway's JWKS is its own files
            for name in SERVICE_NAMES:
                self.clients[name] = client = service_client(
                    f"http://{name}" if name in self.transports else settings.section(name).url,
                    settings.http,
                    transport=self.transports.get(name),
                    timeout=settings.gateway.service_timeout_seconds,
                )
                stack.push_async_callback(client.aclose)
                url = settings.section(name).url
                if name not in self.transports and url.startswith("http://"):
                    self.upstreams[name] = upstream = NetworkUpstream(
                        url,
                        max_connections=settings.http.max_connections,
                        connect_timeout=settings.http.connect_timeout_seconds,
                        timeout=settings.gateway.service_timeout_seconds,
                        keepalive=settings.gateway.upstream_keepalive_seconds,
                    )
                    stack.push_async_callback(upstream.close)
            stack.callback(self.clients.clear)
            stack.callback(self.upstreams.clear)
            self._guard = CredentialGuard(self.verifier, self.registry(), settings.gateway.credential_cache_seconds)
            if self.broker is None:
                broker = create_broker(settings.broker_url, settings.broker_prefix)
                stack.push_async_callback(broker.close)
                await broker.start()
                self.broker = broker
            await self.broker.subscribe_broadcast(CREDENTIAL_EVENTS, self._guard.on_event)
            self._stack = stack.pop_all()

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        if not self._shared_broker:
            self.broker = None

    async def ping_broker(self) -> None:
        if self.broker is None:
            raise RuntimeError("the gateway is not started")
        await self.broker.ping()


async def gateway_runtime(request: Request) -> GatewayRuntime:
    """The runtime of the gateway serving the request."""
    return runtime_of(request, GatewayRuntime)


GatewayDep = Annotated[GatewayRuntime, Depends(gateway_runtime)]
