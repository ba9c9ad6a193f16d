"""Webhooks (shared/webhooks.py): which URLs may be called (no SSRF: loopback, private, link-local,
metadata and the IPv6 spellings of them refused, unless a network is allowed), DNS answers checked
one by one, the call pinned to the checked address with the real Host and TLS name, the signature."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.config import WebhookSection
from shared.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookUrlRefusedError,
    address_allowed,
    check_url_form,
    post_webhook,
    resolve_webhook,
    sign,
    signed_headers,
    verify,
)
from tests.helpers import PUBLIC_TEST_ADDRESS, FakeDns

PRODUCTION = WebhookSection()


def policy_of(networks: list[str], *, allow_http: bool = False) -> WebhookSection:
    """A policy allowing these networks, as LIENTHONG_WEBHOOKS__ALLOWED_NETWORKS would."""
    return WebhookSection.model_validate({"allow_http": allow_http, "allowed_networks": networks})


LOCAL = policy_of(["127.0.0.0/8", "::1/128"], allow_http=True)


# --- the form of a URL (no DNS) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://qlvb.example.gov.vn/hook", "scheme_not_allowed"),
        ("javascript:alert(1)", "scheme_not_allowed"),
        ("http://qlvb.example.gov.vn/hook", "http_not_allowed"),
        ("https://user:pass@qlvb.example.gov.vn/hook", "credentials_in_url"),
        ("https://user@qlvb.example.gov.vn/hook", "credentials_in_url"),
        ("https:///hook", "host_missing"),
        ("https://qlvb.example.gov.vn:99999/hook", "port_invalid"),
        ("https://127.0.0.1/hook", "address_not_allowed"),
        ("https://127.0.0.1:8443/hook", "address_not_allowed"),
        ("https://127.1/hook", "address_not_allowed"),  # legacy IPv4 spellings resolvers accept
        ("https://2130706433/hook", "address_not_allowed"),
        ("https://0x7f.1/hook", "address_not_allowed"),
        ("https://0.0.0.0/hook", "address_not_allowed"),
        ("https://10.1.2.3/hook", "address_not_allowed"),
        ("https://172.16.0.1/hook", "address_not_allowed"),
        ("https://192.168.1.1/hook", "address_not_allowed"),
        ("https://169.254.169.254/latest/meta-data/", "address_not_allowed"),  # the cloud metadata service
        ("https://100.64.0.1/hook", "address_not_allowed"),
        ("https://224.0.0.1/hook", "address_not_allowed"),
        ("https://255.255.255.255/hook", "address_not_allowed"),
        ("https://[::1]/hook", "address_not_allowed"),
        ("https://[::]/hook", "address_not_allowed"),
        ("https://[::ffff:127.0.0.1]/hook", "address_not_allowed"),
        ("https://[::ffff:7f00:1]/hook", "address_not_allowed"),
        ("https://[::ffff:169.254.169.254]/hook", "address_not_allowed"),
        ("https://[64:ff9b::a00:1]/hook", "address_not_allowed"),  # NAT64 of 10.0.0.1
        ("https://[64:ff9b:1::1]/hook", "address_not_allowed"),
        ("https://[2002:7f00:1::1]/hook", "address_not_allowed"),  # 6to4 of 127.0.0.1
        ("https://[fe80::1]/hook", "address_not_allowed"),
        ("https://[fe80::1%25eth0]/hook", "address_not_allowed"),
        ("https://[fc00::1]/hook", "address_not_allowed"),
        ("https://[fec0::1]/hook", "address_not_allowed"),
        ("https://[ff02::1]/hook", "address_not_allowed"),
        ("https://1.2.3.999/hook", "host_invalid"),
    ],
)
def test_urls_refused_by_their_form(url: str, reason: str) -> None:
    with pytest.raises(WebhookUrlRefusedError) as info:
        check_url_form(url, PRODUCTION)
    assert info.value.code == "webhook_url_refused"
    assert info.value.status == 422
    assert info.value.extra["reason"] == reason, info.value.detail


def test_a_refusal_says_why_and_which_setting_allows_it() -> None:
    with pytest.raises(WebhookUrlRefusedError) as http:
        check_url_form("http://qlvb.example.gov.vn/hook", PRODUCTION)
    assert "LIENTHONG_WEBHOOKS__ALLOW_HTTP" in http.value.detail
    assert http.value.extra["setting"] == "LIENTHONG_WEBHOOKS__ALLOW_HTTP"
    with pytest.raises(WebhookUrlRefusedError) as metadata:
        check_url_form("https://169.254.169.254/", PRODUCTION)
    assert "link-local" in metadata.value.detail
    assert "LIENTHONG_WEBHOOKS__ALLOWED_NETWORKS" in metadata.value.detail
    with pytest.raises(WebhookUrlRefusedError) as mapped:
        check_url_form("https://[::ffff:127.0.0.1]/", PRODUCTION)
    assert "loopback" in mapped.value.detail


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/hook",
        "https://8.8.8.8:8443/lienthong?agency=H41",
        "https://[2606:4700::1111]/hook",
        "https://[::ffff:8.8.8.8]/hook",
        "https://qlvb.example.gov.vn/hook",  # a name: its addresses are checked when it is resolved
        "HTTPS://QLVB.Example.gov.vn/hook",
    ],
)
def test_https_public_urls_pass_the_form_check(url: str) -> None:
    parts = check_url_form(url, PRODUCTION)
    assert parts.scheme.lower() == "https"


def test_http_passes_only_where_allowed() -> None:
    assert check_url_form("http://qlvb.example.gov.vn/hook", WebhookSection(allow_http=True)).scheme == "http"


# --- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "::ffff:10.0.0.1", "fe80::1"],
)
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address), PRODUCTION)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address), PRODUCTION)


def test_an_allowed_network_lets_its_addresses_in_and_no_others() -> None:
    policy = policy_of(["10.20.0.0/16", "fd00:1::/32"])
    assert address_allowed(ipaddress.ip_address("10.20.3.4"), policy)
    assert address_allowed(ipaddress.ip_address("::ffff:10.20.3.4"), policy)
    assert address_allowed(ipaddress.ip_address("fd00:1::5"), policy)
    assert not address_allowed(ipaddress.ip_address("10.21.0.1"), policy)
    assert not address_allowed(ipaddress.ip_address("127.0.0.1"), policy)
    assert check_url_form("https://10.20.3.4/hook", policy).hostname == "10.20.3.4"
    with pytest.raises(WebhookUrlRefusedError):
        check_url_form("https://10.21.0.1/hook", policy)


# --- resolution ----------------------------------------------------------------------------------


async def test_a_name_is_resolved_and_its_address_kept(dns: FakeDns) -> None:
    target = await resolve_webhook("https://qlvb.example.gov.vn/lienthong?x=1", PRODUCTION)
    assert (target.host, target.port, str(target.ip)) == ("qlvb.example.gov.vn", 443, PUBLIC_TEST_ADDRESS)
    assert target.host_header == "qlvb.example.gov.vn"
    assert dns.asked == ["qlvb.example.gov.vn"]
    explicit = await resolve_webhook("https://qlvb.example.gov.vn:8443/x", PRODUCTION)
    assert (explicit.port, explicit.host_header) == (8443, "qlvb.example.gov.vn:8443")


@pytest.mark.parametrize(
    "answer",
    [["127.0.0.1"], ["10.0.0.7"], ["169.254.169.254"], ["::1"], [PUBLIC_TEST_ADDRESS, "10.0.0.7"], ["fe80::1"]],
)
async def test_a_name_with_any_non_public_address_is_refused(dns: FakeDns, answer: list[str]) -> None:
    dns.answers["rebind.example.gov.vn"] = answer
    with pytest.raises(WebhookUrlRefusedError) as info:
        await resolve_webhook("https://rebind.example.gov.vn/hook", PRODUCTION)
    assert info.value.extra["reason"] == "address_not_allowed"
    assert "rebind.example.gov.vn resolves to it" in info.value.detail


async def test_localhost_is_refused_in_production_and_allowed_by_the_local_networks() -> None:
    with pytest.raises(WebhookUrlRefusedError):
        await resolve_webhook("https://localhost/hook", PRODUCTION)
    target = await resolve_webhook("http://localhost:8080/hook", LOCAL)
    assert target.ip.is_loopback and target.host_header == "localhost:8080"


async def test_a_name_that_does_not_resolve_is_refused(dns: FakeDns) -> None:
    dns.answers["gone.example.gov.vn"] = []
    with pytest.raises(WebhookUrlRefusedError) as info:
        await resolve_webhook("https://gone.example.gov.vn/hook", PRODUCTION)
    assert info.value.extra["reason"] == "host_unresolved"
    assert "cannot resolve host gone.example.gov.vn" in info.value.detail


# --- signatures ----------------------------------------------------------------------------------

SECRET = "s" * 40


def test_a_signature_verifies_and_a_tampered_body_does_not() -> None:
    body = b'{"document_id":"d1"}'
    headers = signed_headers(SECRET, body, delivery_id="del-1", event_type="document.delivered.v1", now=1_800_000_000)
    assert headers[TIMESTAMP_HEADER] == "1800000000"
    assert headers[DELIVERY_HEADER] == "del-1" and headers[EVENT_HEADER] == "document.delivered.v1"
    signature = headers[SIGNATURE_HEADER]
    assert signature == "v1=" + sign(SECRET, "1800000000", body)
    assert verify(SECRET, "1800000000", body, signature, now=1_800_000_010)
    assert verify(SECRET, "1800000000", body, signature.removeprefix("v1="), now=1_800_000_010)
    assert not verify(SECRET, "1800000000", body + b" ", signature, now=1_800_000_010)
    assert not verify(SECRET, "1800000001", body, signature, now=1_800_000_010)  # the timestamp is signed too
    assert not verify("t" * 40, "1800000000", body, signature, now=1_800_000_010)
    assert not verify(SECRET, "not-a-number", body, signature, now=1_800_000_010)


def test_a_stale_or_future_timestamp_is_refused() -> None:
    body = b"{}"
    signature = sign(SECRET, "1800000000", body)
    assert verify(SECRET, "1800000000", body, signature, now=1_800_000_300)
    assert not verify(SECRET, "1800000000", body, signature, now=1_800_000_301)
    assert not verify(SECRET, "1800000000", body, signature, now=1_799_999_000)
    assert verify(SECRET, "1800000000", body, signature, now=1_800_000_900, tolerance_seconds=1000)


# --- the call ------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that records what it gets."""

    port: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append({"path": scope["path"], "query": scope["query_string"], "headers": headers, "body": body})
        if scope["path"] == "/redirect":
            status, extra = 302, [(b"location", b"http://127.0.0.1:1/elsewhere")]
        elif scope["path"] == "/slow":
            await asyncio.sleep(1)
            status, extra = 200, []
        else:
            status, extra = 200, []
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain"), *extra]}
        )
        await send({"type": "http.response.body", "body": b"ok"})


async def serve(
    receiver: Receiver, *, certfile: Path | None = None, keyfile: Path | None = None
) -> AsyncIterator[uvicorn.Server]:
    config = uvicorn.Config(
        receiver,
        host="127.0.0.1",
        port=0,
        log_config=None,
        lifespan="off",
        timeout_graceful_shutdown=0.5,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    receiver.port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    async for _server in serve(found):
        yield found


async def test_a_call_reaches_the_checked_address_with_the_real_host_and_a_valid_signature(
    dns: FakeDns, receiver: Receiver
) -> None:
    dns.answers["hooks.h41.example.gov.vn"] = ["127.0.0.1"]
    with pytest.raises(WebhookUrlRefusedError):  # production: a name inside the network is refused
        await resolve_webhook(f"https://hooks.h41.example.gov.vn:{receiver.port}/in", PRODUCTION)

    policy = policy_of(["127.0.0.0/8"], allow_http=True)
    target = await resolve_webhook(f"http://hooks.h41.example.gov.vn:{receiver.port}/in?agency=H41", policy)
    dns.answers["hooks.h41.example.gov.vn"] = ["10.9.9.9"]  # a second lookup would go elsewhere: none is made
    body = b'{"document_id":"d1"}'
    headers = signed_headers(SECRET, body, delivery_id="del-1", event_type="document.delivered.v1")
    async with httpx.AsyncClient() as client:
        response = await post_webhook(client, target, body, headers, timeout=5)
    assert response.status_code == 200 and response.text == "ok"
    [seen] = receiver.received
    assert seen["path"] == "/in" and seen["query"] == b"agency=H41"
    assert seen["headers"]["host"] == f"hooks.h41.example.gov.vn:{receiver.port}"
    assert seen["body"] == body
    got = seen["headers"]
    assert verify(SECRET, got["x-lienthong-timestamp"], seen["body"], got["x-lienthong-signature"])
    assert got["x-lienthong-delivery"] == "del-1" and got["x-lienthong-event"] == "document.delivered.v1"


async def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    target = await resolve_webhook(f"http://127.0.0.1:{receiver.port}/redirect", LOCAL)
    async with httpx.AsyncClient(follow_redirects=True) as client:
        response = await post_webhook(client, target, b"{}", {}, timeout=5)
    assert response.status_code == 302
    assert [r["path"] for r in receiver.received] == ["/redirect"]


async def test_a_call_is_bounded_by_its_timeout(receiver: Receiver) -> None:
    target = await resolve_webhook(f"http://127.0.0.1:{receiver.port}/slow", LOCAL)
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.TimeoutException):
            await post_webhook(client, target, b"{}", {}, timeout=0.3)


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (and its key), as files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


async def test_https_is_verified_against_the_real_name_while_connecting_to_the_address(
    dns: FakeDns, tmp_path: Path
) -> None:
    name = "hooks.h41.example.gov.vn"
    cert_file, key_file = _certificate(tmp_path, name)
    dns.answers[name] = ["127.0.0.1"]
    dns.answers["other.example.gov.vn"] = ["127.0.0.1"]
    policy = policy_of(["127.0.0.0/8"])
    trust = ssl.create_default_context(cafile=str(cert_file))
    found = Receiver()
    async for _server in serve(found, certfile=cert_file, keyfile=key_file):
        target = await resolve_webhook(f"https://{name}:{found.port}/in", policy)
        async with httpx.AsyncClient(verify=trust) as client:
            response = await post_webhook(client, target, b"{}", {}, timeout=5)
            assert response.status_code == 200
            assert found.received[0]["headers"]["host"] == f"{name}:{found.port}"
            wrong = await resolve_webhook(f"https://other.example.gov.vn:{found.port}/in", policy)
            with pytest.raises(httpx.ConnectError):  # the certificate is not other.example.gov.vn's
                await post_webhook(client, wrong, b"{}", {}, timeout=5)
