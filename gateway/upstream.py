"""The proxy's client to a service reached over the network: aiohttp's connection pool.

A profile of the gateway under the send benchmark found httpx's machinery (anyio cancel scopes and
task look-ups, h11's validation, URL and header models, one chunk at a time through each layer) at
about 2 ms of CPU per proxied 100 KB upload; aiohttp's client, its parser in C, costs a tenth of
that. httpx stays for what aiohttp cannot do the same way: the in-process services of the embedded
mode (ASGI transports), ``https://`` service URLs (httpx's certificate bundle), and a request with a
header value that is not UTF-8 (aiohttp writes header text as UTF-8; the gateway forwards the bytes
it received).

Timeouts are httpx's, as the gateway had them: connecting within the connect timeout, and the
service moving within the service timeout at every step — taking the next piece of the request
body, answering, sending the next piece of its answer. Waiting for the caller's own upload is not
the service's time and is not counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import aiohttp
from yarl import URL


class UpstreamTimeoutError(Exception):
    """The service did not move within the service timeout."""


class UpstreamError(Exception):
    """The service could not be reached, or broke the exchange off."""


class UpstreamURLError(UpstreamError):
    """The path cannot be sent as a URL."""


class _Deadline:
    """Cancel the proxying task when the service has not moved for ``seconds`` (armed only while
    the gateway waits on the service, not on its caller)."""

    __slots__ = ("_handle", "_loop", "_seconds", "_task", "expired", "finished")

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._seconds = seconds
        self._handle: asyncio.TimerHandle | None = None
        self.expired = False
        self.finished = False  # the answer's head arrived: the body writer no longer arms it

    def arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None if self.finished else self._loop.call_later(self._seconds, self._expire)

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def finish(self) -> None:
        self.finished = True
        self.disarm()

    def _expire(self) -> None:
        self._handle = None
        if not self.finished and self._task is not None:
            self.expired = True
            self._task.cancel()


async def _watched(body: AsyncIterable[bytes], deadline: _Deadline) -> AsyncIterator[bytes]:
    """The caller's upload, piece by piece: the deadline runs while the service takes a piece, not
    while the caller sends the next one."""
    pieces = aiter(body)
    while True:
        deadline.disarm()
        try:
            chunk = await anext(pieces)
        except StopAsyncIteration:
            break
        deadline.arm()
        yield chunk  # aiohttp asks for the next piece once the service has taken this one
    deadline.arm()  # the whole request is sent: now the service must answer


class NetworkUpstream:
    """A pooled aiohttp session to one service's ``http://`` URL."""

    def __init__(
        self, base_url: str, *, max_connections: int, connect_timeout: float, timeout: float, keepalive: float
    ) -> None:
        base = URL(base_url)
        if base.scheme != "http" or not base.raw_host:
            raise ValueError(f"not a plain http:// URL: {base_url}")
        self._host = base.raw_host
        self._port = base.port
        self._prefix = base.raw_path.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}  # per route class timeout, made once
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=keepalive),
            # the service's whole call is bounded by the deadline; aiohttp bounds the connect and
            # each read of the answer's body
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=timeout),
            cookie_jar=aiohttp.DummyCookieJar(),  # one caller's cookies are never another's
            auto_decompress=False,  # the answer is forwarded as the bytes the service sent
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            trust_env=False,
        )

    async def close(self) -> None:
        await self.session.close()

    def _client_timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        found = self._timeouts.get(seconds)
        if found is None:
            found = self._timeouts[seconds] = aiohttp.ClientTimeout(
                total=None, sock_connect=self.connect_timeout, sock_read=seconds
            )
        return found

    async def send(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterable[bytes] | None,
        *,
        seconds: float | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request (``target``: its path and query, percent-encoded) and return the answer once
        its head has arrived; its body is for the caller to read, then ``release``. ``seconds`` (the
        route class's) replaces the service timeout for this request."""
        path, _, query = target.partition("?")
        url = URL.build(
            scheme="http",
            host=self._host,
            port=self._port,
            path=self._prefix + path,
            query_string=query,
            encoded=True,
        )
        seconds = seconds or self.timeout
        deadline = _Deadline(seconds)
        deadline.arm()
        data = _watched(body, deadline) if body is not None and not isinstance(body, bytes) else body
        options: dict[str, Any] = {}
        if seconds != self.timeout:
            options["timeout"] = self._client_timeout(seconds)
        try:
            return await self.session.request(method, url, headers=headers, data=data, allow_redirects=False, **options)
        except asyncio.CancelledError:
            if not deadline.expired:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            raise UpstreamTimeoutError() from None
        except aiohttp.InvalidURL as exc:
            raise UpstreamURLError(str(exc)) from exc
        except TimeoutError as exc:  # connecting (or waiting for a pooled connection) took too long
            raise UpstreamTimeoutError() from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(str(exc) or type(exc).__name__) from exc
        finally:
            deadline.finish()


async def read_answer(response: aiohttp.ClientResponse) -> bytes:
    """Read an answer's whole body (as sent: not decompressed) and give the connection back."""
    try:
        return await response.read()
    except TimeoutError as exc:
        raise UpstreamTimeoutError() from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError(str(exc) or type(exc).__name__) from exc
    finally:
        response.release()


async def stream_answer(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """An answer's body as it arrives (as sent: not decompressed); the connection given back at the end."""
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    finally:
        response.release()
