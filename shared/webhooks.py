"""Webhooks without server-side request forgery: which URLs may be called, and how a call is made.

An agency registers the URL its documents are POSTed to; the services then call it from inside the
province's network. A URL is accepted only when its host resolves to public addresses, every one of
them (a name that answers one public and one private address is refused: DNS rebinding), unless a
deployment allows a network explicitly (``LIENTHONG_WEBHOOKS__ALLOWED_NETWORKS``). A call goes to
the address checked, never to a second lookup of the name: the URL's host is replaced by that
address, the ``Host`` header and the TLS server name keep the real name, so the certificate is
verified against it (and an https connection is closed after its call: a pool keyed by the address
would otherwise reuse it for another name at the same address). Redirects are never followed.

Each call is signed: ``X-LienThong-Signature: v1=<hex>``, the HMAC-SHA256 with the agency's secret
of ``<timestamp>.<body>``, where the timestamp (unix seconds) is ``X-LienThong-Timestamp``. The
receiver recomputes it (:func:`verify`) and refuses stale timestamps, so a captured call cannot be
replayed later.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

from shared.config import WebhookSection
from shared.errors import UnprocessableError

SIGNATURE_HEADER = "X-LienThong-Signature"
TIMESTAMP_HEADER = "X-LienThong-Timestamp"
DELIVERY_HEADER = "X-LienThong-Delivery"
EVENT_HEADER = "X-LienThong-Event"
SIGNATURE_VERSION = "v1"
MAX_RESPONSE_BYTES = 64 * 1024  # what is kept of a receiver's answer (its status is what matters)

ALLOW_HTTP_SETTING = "LIENTHONG_WEBHOOKS__ALLOW_HTTP"
ALLOWED_NETWORKS_SETTING = "LIENTHONG_WEBHOOKS__ALLOWED_NETWORKS"

IPAddress = IPv4Address | IPv6Address

_SHARED_ADDRESS_SPACE = IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64_WELL_KNOWN = IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
_NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")  # RFC 8215: local-use translation, never public
_BODY_FRAMING = ("content-encoding", "content-length", "transfer-encoding")  # of the bytes read, not kept
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


class WebhookUrlRefusedError(UnprocessableError):
    """A webhook URL that the deployment's policy does not let the services call."""

    code, title = "webhook_url_refused", "This webhook URL cannot be used"


@dataclass(frozen=True)
class ResolvedWebhook:
    """A webhook URL whose every address was checked, and the address the call goes to."""

    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress
    explicit_port: bool = False

    @property
    def host_header(self) -> str:
        """Return the ``Host`` header of the call: the URL's own host, with its port when given."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.explicit_port else host


def _refuse(detail: str, *, reason: str, setting: str | None = None) -> WebhookUrlRefusedError:
    """Build the refusal, naming the setting that would allow the URL (when one does)."""
    extra: dict[str, str] = {"reason": reason}
    if setting:
        extra["setting"] = setting
    return WebhookUrlRefusedError(detail, **extra)


def _embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """Return the IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), or None."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64_WELL_KNOWN:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _kind(ip: IPAddress) -> str | None:
    """Return why an address is not public ("loopback", "private" …), or None when it is."""
    if isinstance(ip, IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = _kind(embedded)
            return f"{inner} (as {ip})" if inner else None
        if ip in _NAT64_LOCAL:
            return "local-use NAT64"
        if ip.is_site_local:
            return "site-local"
    checks = [
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("shared address space (100.64.0.0/10)", isinstance(ip, IPv4Address) and ip in _SHARED_ADDRESS_SPACE),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("not globally routable", not ip.is_global),
    ]
    return next((name for name, hit in checks if hit), None)


def _in_allowed_networks(ip: IPAddress, policy: WebhookSection) -> bool:
    """Return whether a deployment allows this address explicitly."""
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, IPv6Address) and (embedded := _embedded_ipv4(ip)) is not None:
        candidates.append(embedded)
    return any(candidate in network for candidate in candidates for network in policy.allowed_networks)


def address_allowed(ip: IPAddress, policy: WebhookSection) -> bool:
    """Return whether a webhook may be called at this address (public, or in an allowed network)."""
    return _in_allowed_networks(ip, policy) or _kind(ip) is None


def _check_address(ip: IPAddress, policy: WebhookSection, *, host: str) -> None:
    """Refuse an address the policy does not allow, saying what it is and what would allow it."""
    if address_allowed(ip, policy):
        return
    named = "" if host == str(ip) else f" ({host} resolves to it)"
    raise _refuse(
        f"webhook_url points to {ip}{named}, a {_kind(ip)} address: the services do not call inside "
        f"their own network unless {ALLOWED_NETWORKS_SETTING} includes it",
        reason="address_not_allowed",
        setting=ALLOWED_NETWORKS_SETTING,
    )


def _ip_literal(host: str) -> IPAddress | None:
    """Return the address a host names literally (also the legacy IPv4 forms ``127.1``, ``0x7f.1``,
    ``2130706433`` that resolvers accept), or None for a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0] if ":" in host else host)
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if labels and _NUMERIC_LABEL.match(labels[-1]):  # a name never ends in a number (WHATWG URL)
        try:
            return IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            raise _refuse(f"webhook_url host {host!r} is not a valid address", reason="host_invalid") from None
    return None


def check_url_form(url: str, policy: WebhookSection) -> SplitResult:
    """Refuse a URL by its form alone (scheme, credentials, host, a literal address); no DNS."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _refuse("webhook_url must be an https:// URL", reason="scheme_not_allowed")
    if scheme == "http" and not policy.allow_http:
        raise _refuse(
            f"webhook_url must use https; http:// is accepted only where {ALLOW_HTTP_SETTING}=true (development)",
            reason="http_not_allowed",
            setting=ALLOW_HTTP_SETTING,
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise _refuse(
            "webhook_url must not carry a user name or password: calls are authenticated by the signing secret",
            reason="credentials_in_url",
        )
    host = parts.hostname
    if not host:
        raise _refuse("webhook_url has no host", reason="host_missing")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in 0…65535
    except ValueError:
        raise _refuse("webhook_url has an invalid port", reason="port_invalid") from None
    literal = _ip_literal(host)
    if literal is not None:
        _check_address(literal, policy, host=host)
    return parts


async def _lookup(host: str, port: int, within: float) -> list[IPAddress]:
    """Return every address a name resolves to (the event loop's resolver, bounded in time)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), within)
    except (OSError, TimeoutError, UnicodeError) as exc:
        why = str(exc) or type(exc).__name__
        raise _refuse(f"webhook_url: cannot resolve host {host} ({why})", reason="host_unresolved") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise _refuse(f"webhook_url: cannot resolve host {host} (no address)", reason="host_unresolved")
    return addresses


async def resolve_webhook(url: str, policy: WebhookSection) -> ResolvedWebhook:
    """Check a URL's form, resolve its host and refuse it unless every address is allowed."""
    parts = check_url_form(url, policy)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    literal = _ip_literal(host)
    addresses = [literal] if literal is not None else await _lookup(host, port, policy.timeout_seconds)
    for ip in addresses:  # every answer: one private address among public ones is enough to refuse
        _check_address(ip, policy, host=host)
    return ResolvedWebhook(
        url=url.strip(),
        scheme=parts.scheme.lower(),
        host=host,
        port=port,
        ip=addresses[0],
        explicit_port=parts.port is not None,
    )


def _pinned_url(target: ResolvedWebhook) -> str:
    """Return the URL with its host replaced by the address that was checked."""
    parts = urlsplit(target.url)
    address = f"[{target.ip}]" if isinstance(target.ip, IPv6Address) else str(target.ip)
    return urlunsplit((target.scheme, f"{address}:{target.port}", parts.path or "/", parts.query, ""))


async def post_webhook(
    client: httpx.AsyncClient,
    target: ResolvedWebhook,
    body: bytes,
    headers: dict[str, str],
    timeout: float,  # noqa: ASYNC109 - bounds the connect, the send and the answer together
) -> httpx.Response:
    """POST to the checked address (never a new lookup, never a redirect), within ``timeout`` in all."""
    https = target.scheme == "https"
    request = client.build_request(
        "POST",
        _pinned_url(target),
        content=body,
        # a pooled connection is keyed by the address, not the TLS name: closing it after each
        # https call keeps a connection verified for one name from carrying another name's call
        headers={**headers, "Host": target.host_header, **({"Connection": "close"} if https else {})},
        timeout=httpx.Timeout(timeout),
        extensions={"sni_hostname": target.host} if https else None,
    )
    try:
        async with asyncio.timeout(timeout):
            response = await client.send(request, follow_redirects=False, stream=True)
            try:
                kept = bytearray()
                async for chunk in response.aiter_bytes():
                    kept += chunk[: MAX_RESPONSE_BYTES - len(kept)]
                    if len(kept) >= MAX_RESPONSE_BYTES:
                        break
            finally:
                await response.aclose()
    except TimeoutError:
        raise httpx.TimeoutException(f"the webhook call took longer than {timeout:g} s", request=request) from None
    kept_headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _BODY_FRAMING]
    return httpx.Response(response.status_code, headers=kept_headers, content=bytes(kept), request=request)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of ``<timestamp>.<body>`` with the agency's secret."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_seconds: float = 300,
    now: float | None = None,
) -> bool:
    """Return whether a signature (``v1=<hex>`` or the bare hex) is right and its timestamp recent."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance_seconds:
        return False
    given = signature.removeprefix(f"{SIGNATURE_VERSION}=")
    return hmac.compare_digest(given.encode(), sign(secret, timestamp, body).encode())


def signed_headers(
    secret: str, body: bytes, *, delivery_id: str, event_type: str, now: float | None = None
) -> dict[str, str]:
    """Return the headers of a webhook call: its signature, timestamp, delivery id and event type."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: f"{SIGNATURE_VERSION}={sign(secret, timestamp, body)}",
        TIMESTAMP_HEADER: timestamp,
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: event_type,
    }
