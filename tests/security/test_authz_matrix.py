"""The authorization matrix: every operation of the gateway's OpenAPI document × every role (and no
token) × the caller's own agency versus another's, each call answered with exactly the status the
rules table below says.

The callers are real registry clients with real tokens: one client of each role (shared/roles.py),
all issued for agency A; "own" targets belong to A (its code, its clients, a document it sent, a
delivery addressed to it), "foreign" ones to B and C (a document B sent to C). An operation the
document lists without a row here fails the test: a new route comes with its rule.

To add a route, add a row to ``RULES``: ``(METHOD, path): Rule(agency=…, registry_admin=…, …)``
(an ``int`` when own and foreign get the same answer, ``(own, foreign)`` otherwise; unnamed roles
get 403, no token 401), and, when the call needs a body or a fresh target, a builder in
``BUILDERS``. The audit trail's ``GET /v1/audit/entries`` reads as
``("GET", "/v1/audit/entries"): Rule(auditor=200)``.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.demo.pdf import make_pdf
from services.exchange import edxml
from shared.roles import Role
from tests.conftest import running_system
from tests.helpers import Api, Client, make_certificate, random_code, send, upload_certificate, wait_until

ANONYMOUS = "anonymous"
CALLERS = (ANONYMOUS, Role.AGENCY, Role.REGISTRY_ADMIN, Role.AUDITOR, Role.STATISTICS)
OWN, FOREIGN = "own", "foreign"
Outcome = int | tuple[int, int]


@dataclass(frozen=True)
class Rule:
    """The answer each caller gets: an int for own and foreign alike, or (own, foreign)."""

    agency: Outcome = 403
    registry_admin: Outcome = 403
    auditor: Outcome = 403
    statistics: Outcome = 403
    anonymous: Outcome = 401

    def expected(self, caller: str, target: str) -> int:
        outcome: Outcome = getattr(self, str(caller))
        if isinstance(outcome, tuple):
            return outcome[0] if target == OWN else outcome[1]
        return outcome


def readers(ok: int = 200) -> Rule:
    """Every role but the statistics reader (the directory, the signature check)."""
    return Rule(agency=ok, registry_admin=ok, auditor=ok)


PUBLIC = Rule(agency=200, registry_admin=200, auditor=200, statistics=200, anonymous=200)
OWN_OR_ADMIN = Rule(agency=(200, 403), registry_admin=200)  # an agency's own settings
STATISTICS = Rule(statistics=200, registry_admin=200)  # aggregates: the statistics reader, the IT office

RULES: dict[tuple[str, str], Rule] = {
    # the gateway
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/.well-known/jwks.json"): PUBLIC,
    # the registry: the audit trail
    ("GET", "/v1/audit/entries"): Rule(auditor=200),
    ("GET", "/v1/audit/head"): Rule(auditor=200),
    ("POST", "/v1/auth/token"): Rule(agency=200, registry_admin=200, auditor=200, statistics=200),  # own secret
    # the registry: the directory
    ("GET", "/v1/agency-levels"): readers(),
    ("POST", "/v1/agency-levels"): Rule(registry_admin=201),
    ("POST", "/v1/agencies"): Rule(registry_admin=201),
    ("GET", "/v1/agencies"): readers(),
    ("GET", "/v1/agencies/tree"): readers(),
    ("POST", "/v1/agencies/lookup"): readers(),
    ("POST", "/v1/agencies/resolve"): readers(),
    ("GET", "/v1/agencies/{code}"): readers(),
    ("PATCH", "/v1/agencies/{code}"): Rule(registry_admin=200),
    ("POST", "/v1/agencies/{code}/status"): Rule(registry_admin=200),
    ("GET", "/v1/agencies/{code}/history"): OWN_OR_ADMIN,
    ("POST", "/v1/agencies/import"): Rule(registry_admin=200),
    ("GET", "/v1/agencies/export"): Rule(registry_admin=200),
    ("GET", "/v1/groups"): readers(),
    ("POST", "/v1/groups"): Rule(registry_admin=201),
    ("GET", "/v1/groups/{name}"): readers(),
    ("PUT", "/v1/groups/{name}"): Rule(registry_admin=200),
    ("DELETE", "/v1/groups/{name}"): Rule(registry_admin=204),
    ("GET", "/v1/groups/{name}/members"): readers(),
    ("GET", "/v1/agencies/{code}/endpoint"): OWN_OR_ADMIN,
    ("PUT", "/v1/agencies/{code}/endpoint"): OWN_OR_ADMIN,
    ("POST", "/v1/agencies/{code}/certificates"): Rule(registry_admin=201),
    ("GET", "/v1/agencies/{code}/certificates"): readers(),
    ("DELETE", "/v1/agencies/{code}/certificates/{certificate_id}"): Rule(registry_admin=204),
    # the registry: API clients (another agency's are not there for an agency: 404)
    ("POST", "/v1/agencies/{code}/clients"): Rule(registry_admin=201),
    ("GET", "/v1/agencies/{code}/clients"): Rule(agency=(200, 404), registry_admin=200),
    ("GET", "/v1/clients/{client_id}"): Rule(agency=(200, 404), registry_admin=200),
    ("POST", "/v1/clients/{client_id}/rotate"): Rule(registry_admin=200),
    ("POST", "/v1/clients/{client_id}/revoke"): Rule(registry_admin=200),
    ("POST", "/v1/clients/{client_id}/certificates"): Rule(registry_admin=201),
    ("GET", "/v1/clients/{client_id}/certificates"): Rule(agency=(200, 404), registry_admin=200),
    ("DELETE", "/v1/clients/{client_id}/certificates/{thumbprint}"): Rule(registry_admin=204),
    # the web console's users: the registry admin's alone
    ("POST", "/v1/users"): Rule(registry_admin=201),
    ("GET", "/v1/users"): Rule(registry_admin=200),
    ("GET", "/v1/users/{username}"): Rule(registry_admin=200),
    ("PATCH", "/v1/users/{username}"): Rule(registry_admin=200),
    # the exchange: an agency acts only as itself; an auditor reads every document's metadata
    ("POST", "/v1/documents"): Rule(agency=202),
    ("GET", "/v1/documents"): Rule(agency=(200, 403), auditor=200),  # ?agency=<own or another>
    ("GET", "/v1/inbox"): Rule(agency=200),
    ("GET", "/v1/documents/{document_id}"): Rule(agency=(200, 404), auditor=200),
    ("POST", "/v1/documents/{document_id}/recall"): Rule(agency=(200, 404)),
    ("GET", "/v1/documents/{document_id}/attachments/{attachment_id}"): Rule(agency=(200, 404)),  # content
    ("GET", "/v1/documents/{document_id}/edxml"): Rule(agency=(200, 404)),  # the packet: content too
    ("POST", "/v1/deliveries/status-packets"): Rule(agency=(200, 404)),  # a status packet on its own delivery
    ("GET", "/v1/deliveries/{delivery_id}/status-packet"): Rule(agency=(200, 404)),
    ("POST", "/v1/deliveries/{delivery_id}/status"): Rule(agency=(200, 404)),
    ("GET", "/v1/feed"): Rule(agency=200),
    ("GET", "/v1/transfers/failed"): Rule(registry_admin=200),
    ("POST", "/v1/transfers/failed/{failure_id}/resend"): Rule(registry_admin=404),  # no such failure
    ("POST", "/v1/transfers/failed/resend"): Rule(registry_admin=202),
    ("POST", "/v1/documents/{document_id}/signature/check"): Rule(registry_admin=202),
    # the signature service (an unsigned file: 422 signature_not_found, past authorization)
    ("POST", "/v1/signatures/verify"): readers(422),
    ("GET", "/v1/signatures/trust-store"): Rule(registry_admin=200),
    ("POST", "/v1/signatures/trust-store/certificates"): Rule(registry_admin=201),
    ("GET", "/v1/signatures/trust-store/certificates"): Rule(registry_admin=200),
    ("DELETE", "/v1/signatures/trust-store/certificates/{certificate_id}"): Rule(registry_admin=204),
    ("POST", "/v1/signatures/trust-store/crls"): Rule(registry_admin=201),
    ("GET", "/v1/signatures/trust-store/crls"): Rule(registry_admin=200),
    ("DELETE", "/v1/signatures/trust-store/crls/{crl_id}"): Rule(registry_admin=204),
    ("GET", "/v1/signatures/trust-store/changes"): Rule(registry_admin=200),
    # the archive: records' metadata for an auditor; texts (search) for agencies only
    ("GET", "/v1/archive/records/{document_id}"): Rule(agency=(200, 404), auditor=200),
    ("POST", "/v1/archive/records"): Rule(agency=201),
    ("GET", "/v1/archive/retention"): Rule(agency=200, auditor=200),
    ("GET", "/v1/archive/search"): Rule(agency=200),
    # the statistics: aggregates, never documents, for the statistics reader and the province IT office
    ("GET", "/v1/statistics/summary"): STATISTICS,
    ("GET", "/v1/statistics/levels"): STATISTICS,
    ("GET", "/v1/statistics/months"): STATISTICS,
    ("GET", "/v1/statistics/agencies"): STATISTICS,
    ("GET", "/v1/statistics/{table}/export"): STATISTICS,
}


@dataclass
class World:
    """The system, agencies A (the callers'), B and C, the callers, and targets of each kind."""

    api: Api
    a: str
    b: str
    c: str
    agency_b: Client
    agency_c: Client
    callers: dict[str, Client | None]
    secrets: dict[str, tuple[str, str]]
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: dict[str, str] = field(default_factory=dict)
    clients: dict[str, str] = field(default_factory=dict)
    group: str = ""

    def code(self, target: str) -> str:
        return self.a if target == OWN else self.b

    async def admin(self) -> dict[str, str]:
        return await self.api.admin()


@dataclass
class Call:
    method: str
    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)


Builder = Callable[[World, str, str], Awaitable[Call]]
BUILDERS: dict[tuple[str, str], Builder] = {}


def builds(method: str, path: str) -> Callable[[Builder], Builder]:
    def register(builder: Builder) -> Builder:
        BUILDERS[(method, path)] = builder
        return builder

    return register


def fill(world: World, path: str, target: str) -> str:
    """The path with the target's parameters (own: agency A's, foreign: B's or C's)."""
    document = world.documents[target]
    values = {
        "code": world.code(target),
        "client_id": world.clients[target],
        "document_id": document["id"],
        "attachment_id": document["attachment_id"],
        "delivery_id": world.deliveries[target],
        "name": world.group,
        "failure_id": str(uuid.uuid4()),
    }
    return path.format(**values)


async def fresh_client(world: World, target: str) -> str:
    response = await world.api.http.post(
        f"/v1/agencies/{world.code(target)}/clients", json={"name": "throwaway"}, headers=await world.admin()
    )
    assert response.status_code == 201, response.text
    return str(response.json()["client_id"])


async def fresh_document(world: World, sender: Client, recipient: str) -> dict[str, Any]:
    response = await send(world.api, sender, [recipient])
    assert response.status_code == 202, response.text
    return dict(response.json())


def ca_certificate(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
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
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def crl_pem() -> str:
    cert, key = ca_certificate(f"CRL issuer {uuid.uuid4().hex[:8]}")
    now = dt.datetime.now(dt.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(cert.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.PEM).decode()


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@builds("POST", "/v1/auth/token")
async def _token(world: World, caller: str, target: str) -> Call:
    client_id, secret = world.secrets.get(caller, ("lt_nobody", "wrong secret"))
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    return Call("POST", "/v1/auth/token", {"data": form})


@builds("POST", "/v1/agency-levels")
async def _level(world: World, caller: str, target: str) -> Call:
    body = {"code": f"level_{uuid.uuid4().hex[:10]}", "name": "Cấp thử nghiệm", "rank": 500}
    return Call("POST", "/v1/agency-levels", {"json": body})


@builds("POST", "/v1/agencies")
async def _agency(world: World, caller: str, target: str) -> Call:
    return Call("POST", "/v1/agencies", {"json": {"code": random_code(), "name": "Sở mới", "level": "department"}})


@builds("POST", "/v1/agencies/lookup")
async def _lookup(world: World, caller: str, target: str) -> Call:
    return Call("POST", "/v1/agencies/lookup", {"json": {"codes": [world.a, world.b]}})


@builds("POST", "/v1/agencies/resolve")
async def _resolve(world: World, caller: str, target: str) -> Call:
    return Call("POST", "/v1/agencies/resolve", {"json": {"codes": [world.b]}})


@builds("PATCH", "/v1/agencies/{code}")
async def _patch(world: World, caller: str, target: str) -> Call:
    return Call("PATCH", f"/v1/agencies/{world.code(target)}", {"json": {"phone": "0238 3844 000"}})


@builds("POST", "/v1/agencies/{code}/status")
async def _status(world: World, caller: str, target: str) -> Call:
    return Call("POST", f"/v1/agencies/{world.code(target)}/status", {"json": {"status": "active"}})


@builds("POST", "/v1/agencies/import")
async def _import(world: World, caller: str, target: str) -> Call:
    rows = [{"code": random_code(), "name": "Sở nhập", "level": "department"}]
    return Call("POST", "/v1/agencies/import", {"params": {"format": "json"}, "content": json.dumps(rows)})


@builds("POST", "/v1/groups")
async def _group(world: World, caller: str, target: str) -> Call:
    body = {"name": f"g-{uuid.uuid4().hex[:10]}", "title": "Nhóm thử", "members": [world.b]}
    return Call("POST", "/v1/groups", {"json": body})


@builds("PUT", "/v1/groups/{name}")
async def _replace_group(world: World, caller: str, target: str) -> Call:
    return Call("PUT", f"/v1/groups/{world.group}", {"json": {"title": "Nhóm thử", "members": [world.b]}})


@builds("DELETE", "/v1/groups/{name}")
async def _delete_group(world: World, caller: str, target: str) -> Call:
    name = f"g-{uuid.uuid4().hex[:10]}"
    made = await world.api.http.post(
        "/v1/groups", json={"name": name, "title": "Xoá", "members": [world.b]}, headers=await world.admin()
    )
    assert made.status_code == 201, made.text
    return Call("DELETE", f"/v1/groups/{name}")


@builds("PUT", "/v1/agencies/{code}/endpoint")
async def _endpoint(world: World, caller: str, target: str) -> Call:
    return Call("PUT", f"/v1/agencies/{world.code(target)}/endpoint", {"json": {"mode": "pull"}})


@builds("POST", "/v1/agencies/{code}/certificates")
async def _certificate(world: World, caller: str, target: str) -> Call:
    cert, _ = make_certificate(f"Con dấu {uuid.uuid4().hex[:8]}")
    body = {"kind": "seal", "certificate": pem(cert)}
    return Call("POST", f"/v1/agencies/{world.code(target)}/certificates", {"json": body})


@builds("DELETE", "/v1/agencies/{code}/certificates/{certificate_id}")
async def _delete_certificate(world: World, caller: str, target: str) -> Call:
    code = world.code(target)
    cert, _ = make_certificate(f"Con dấu {uuid.uuid4().hex[:8]}")
    return Call("DELETE", f"/v1/agencies/{code}/certificates/{await upload_certificate(world.api, code, cert)}")


@builds("POST", "/v1/agencies/{code}/clients")
async def _client(world: World, caller: str, target: str) -> Call:
    return Call("POST", f"/v1/agencies/{world.code(target)}/clients", {"json": {"name": "hệ thống mới"}})


@builds("POST", "/v1/clients/{client_id}/rotate")
async def _rotate(world: World, caller: str, target: str) -> Call:
    client_id = await fresh_client(world, target)
    return Call("POST", f"/v1/clients/{client_id}/rotate", {"json": {"overlap_seconds": 0}})


@builds("POST", "/v1/clients/{client_id}/revoke")
async def _revoke(world: World, caller: str, target: str) -> Call:
    return Call("POST", f"/v1/clients/{await fresh_client(world, target)}/revoke")


async def client_certificate(world: World, client_id: str) -> str:
    """Register a new TLS client certificate for a client (as the admin); its thumbprint."""
    cert, _ = ca_certificate(f"He thong {uuid.uuid4().hex[:8]}")
    response = await world.api.http.post(
        f"/v1/clients/{client_id}/certificates", json={"certificate": pem(cert)}, headers=await world.admin()
    )
    assert response.status_code == 201, response.text
    return str(response.json()["thumbprint"])


@builds("POST", "/v1/clients/{client_id}/certificates")
async def _client_certificate(world: World, caller: str, target: str) -> Call:
    cert, _ = ca_certificate(f"He thong {uuid.uuid4().hex[:8]}")
    return Call("POST", f"/v1/clients/{world.clients[target]}/certificates", {"json": {"certificate": pem(cert)}})


@builds("DELETE", "/v1/clients/{client_id}/certificates/{thumbprint}")
async def _remove_client_certificate(world: World, caller: str, target: str) -> Call:
    client_id = world.clients[target]
    return Call("DELETE", f"/v1/clients/{client_id}/certificates/{await client_certificate(world, client_id)}")


@builds("POST", "/v1/documents")
async def _send(world: World, caller: str, target: str) -> Call:
    body = {
        "code_number": str(random.randint(1, 10**9)),
        "code_notation": "KH-UBND",
        "type_name": "Kế hoạch",
        "subject": "Kế hoạch thử phân quyền",
        "promulgation_place": "Nghệ An",
        "promulgation_date": "2026-11-20",
        "signer": {"position": "Chủ tịch", "full_name": "Nguyễn Văn A"},
        "urgency": 0,
        "recipients": [world.b],
    }
    files = [("files", ("van-ban.pdf", make_pdf(["Van ban"]), "application/pdf"))]
    return Call("POST", "/v1/documents", {"data": {"metadata": json.dumps(body, ensure_ascii=False)}, "files": files})


@builds("GET", "/v1/documents")
async def _list(world: World, caller: str, target: str) -> Call:
    return Call("GET", "/v1/documents", {"params": {"box": "sent", "agency": world.code(target)}})


@builds("GET", "/v1/statistics/{table}/export")
async def _export(world: World, caller: str, target: str) -> Call:
    return Call("GET", "/v1/statistics/levels/export", {"params": {"format": "xlsx"}})


@builds("POST", "/v1/documents/{document_id}/recall")
async def _recall(world: World, caller: str, target: str) -> Call:
    # a document of its own to recall each time: own, A sent it to B; foreign, B sent it to C
    sender, recipient = (world.callers[Role.AGENCY], world.b) if target == OWN else (world.agency_b, world.c)
    assert sender is not None
    document = await fresh_document(world, sender, recipient)
    return Call("POST", f"/v1/documents/{document['id']}/recall", {"json": {"reason": "Gửi nhầm"}})


@builds("POST", "/v1/deliveries/{delivery_id}/status")
async def _report(world: World, caller: str, target: str) -> Call:
    # a delivery of its own to report on each time: own, addressed to A; foreign, to C
    document = await fresh_document(world, world.agency_b, world.a if target == OWN else world.c)
    return Call("POST", f"/v1/deliveries/{document['deliveries'][0]['id']}/status", {"json": {"status": "01"}})


async def sent_document(world: World, recipient: str) -> dict[str, Any]:
    """A document B sends to ``recipient``, as B reads it (its edXML DocumentId, its deliveries)."""
    document = await fresh_document(world, world.agency_b, recipient)
    response = await world.api.http.get(f"/v1/documents/{document['id']}", headers=world.agency_b.auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


@builds("POST", "/v1/deliveries/status-packets")
async def _report_packet(world: World, caller: str, target: str) -> Call:
    # A reports 01 as a packet: own, on a document B sent A; foreign, on one B sent C
    document = await sent_document(world, world.a if target == OWN else world.c)
    packet = edxml.StatusPacket(
        response_for=edxml.ResponseFor(organ_id=world.b, document_id=document["edxml_document_id"]),
        from_=edxml.Organization(organ_id=world.a),
        status_code="01",
    )
    return Call("POST", "/v1/deliveries/status-packets", {"content": edxml.write_status(packet)})


@builds("GET", "/v1/deliveries/{delivery_id}/status-packet")
async def _status_packet(world: World, caller: str, target: str) -> Call:
    # a delivery whose recipient reported 01: own, B sent it to A; foreign, B sent it to C
    recipient = world.callers[Role.AGENCY] if target == OWN else world.agency_c
    assert recipient is not None
    document = await sent_document(world, recipient.agency_code)
    delivery_id = document["deliveries"][0]["id"]
    reported = await world.api.http.post(
        f"/v1/deliveries/{delivery_id}/status", json={"status": "01"}, headers=recipient.auth
    )
    assert reported.status_code == 200, reported.text
    return Call("GET", f"/v1/deliveries/{delivery_id}/status-packet")


@builds("POST", "/v1/transfers/failed/resend")
async def _resend_all(world: World, caller: str, target: str) -> Call:
    return Call("POST", "/v1/transfers/failed/resend", {"json": {"agency_code": world.code(target)}})


@builds("POST", "/v1/signatures/verify")
async def _verify(world: World, caller: str, target: str) -> Call:
    return Call(
        "POST", "/v1/signatures/verify", {"files": {"file": ("a.pdf", make_pdf(["Chua ky"]), "application/pdf")}}
    )


@builds("POST", "/v1/signatures/trust-store/certificates")
async def _trust(world: World, caller: str, target: str) -> Call:
    cert, _ = ca_certificate(f"CA {uuid.uuid4().hex[:8]}")
    return Call("POST", "/v1/signatures/trust-store/certificates", {"json": {"kind": "root", "certificate": pem(cert)}})


@builds("DELETE", "/v1/signatures/trust-store/certificates/{certificate_id}")
async def _untrust(world: World, caller: str, target: str) -> Call:
    cert, _ = ca_certificate(f"CA {uuid.uuid4().hex[:8]}")
    made = await world.api.http.post(
        "/v1/signatures/trust-store/certificates",
        json={"kind": "root", "certificate": pem(cert)},
        headers=await world.admin(),
    )
    assert made.status_code == 201, made.text
    return Call("DELETE", f"/v1/signatures/trust-store/certificates/{made.json()['id']}")


@builds("POST", "/v1/signatures/trust-store/crls")
async def _crl(world: World, caller: str, target: str) -> Call:
    return Call("POST", "/v1/signatures/trust-store/crls", {"json": {"crl": crl_pem()}})


@builds("DELETE", "/v1/signatures/trust-store/crls/{crl_id}")
async def _delete_crl(world: World, caller: str, target: str) -> Call:
    made = await world.api.http.post(
        "/v1/signatures/trust-store/crls", json={"crl": crl_pem()}, headers=await world.admin()
    )
    assert made.status_code == 201, made.text
    return Call("DELETE", f"/v1/signatures/trust-store/crls/{made.json()['id']}")


@builds("POST", "/v1/archive/records")
async def _ingest(world: World, caller: str, target: str) -> Call:
    body = {
        "code_number": str(random.randint(1, 10**9)),
        "code_notation": "QĐ-UBND",
        "type_name": "Quyết định",
        "subject": "Quyết định số hoá",
        "promulgation_date": "1998-05-04",
        "issuer_code": world.a,
    }
    scan = ("scan.pdf", make_pdf([f"Quyet dinh {uuid.uuid4().hex}"]), "application/pdf")
    return Call("POST", "/v1/archive/records", {"data": {"metadata": json.dumps(body)}, "files": {"file": scan}})


def user_body(world: World) -> dict[str, str]:
    return {
        "username": f"u-{uuid.uuid4().hex[:12]}",
        "display_name": "Người dùng thử",
        "agency_code": world.a,
        "password": "mat-khau-du-dai-12",
    }


async def fresh_user(world: World) -> str:
    made = await world.api.http.post("/v1/users", json=user_body(world), headers=await world.admin())
    assert made.status_code == 201, made.text
    return str(made.json()["username"])


@builds("POST", "/v1/users")
async def _user(world: World, caller: str, target: str) -> Call:
    return Call("POST", "/v1/users", {"json": user_body(world)})


@builds("GET", "/v1/users/{username}")
async def _get_user(world: World, caller: str, target: str) -> Call:
    return Call("GET", f"/v1/users/{await fresh_user(world)}")


@builds("PATCH", "/v1/users/{username}")
async def _patch_user(world: World, caller: str, target: str) -> Call:
    return Call("PATCH", f"/v1/users/{await fresh_user(world)}", {"json": {"display_name": "Tên mới"}})


async def default_call(world: World, method: str, path: str, target: str) -> Call:
    return Call(method, fill(world, path, target))


def has_targets(path: str) -> bool:
    """Whether own and foreign differ for an operation: it names an agency's thing in its path."""
    return any(name in path for name in ("{code}", "{client_id}", "{document_id}", "{delivery_id}"))


TARGETED = {("GET", "/v1/documents"), ("POST", "/v1/transfers/failed/resend")}  # the agency is a parameter


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    var = tmp_path_factory.mktemp("authz-matrix") / "var"
    async with running_system(var) as api:
        a, b, c = (
            (await api.create_agency())["code"],
            (await api.create_agency())["code"],
            (await api.create_agency())["code"],
        )
        callers: dict[str, Client | None] = {ANONYMOUS: None}
        secrets: dict[str, tuple[str, str]] = {}
        for role in (Role.AGENCY, Role.REGISTRY_ADMIN, Role.AUDITOR, Role.STATISTICS):
            created = await api.http.post(
                f"/v1/agencies/{a}/clients", json={"name": f"{role} system", "role": role}, headers=await api.admin()
            )
            assert created.status_code == 201, created.text
            body = created.json()
            assert body["role"] == role
            token = await api.token(body["client_id"], body["client_secret"])
            assert token.status_code == 200, token.text
            callers[role] = Client(a, body["client_id"], body["client_secret"], token.json()["access_token"])
            secrets[role] = (body["client_id"], body["client_secret"])
        agency_a = callers[Role.AGENCY]
        assert agency_a is not None
        agency_b, agency_c = await api.agency_client(b), await api.agency_client(c)
        world = World(api, a, b, c, agency_b, agency_c, callers, secrets)
        world.clients = {OWN: agency_a.client_id, FOREIGN: agency_b.client_id}
        group = await api.http.post(
            "/v1/groups", json={"name": "authz-matrix", "title": "Nhóm", "members": [b]}, headers=await api.admin()
        )
        assert group.status_code == 201, group.text
        world.group = "authz-matrix"
        own = await fresh_document(world, agency_a, b)  # A sent it to B
        foreign = await fresh_document(world, agency_b, c)  # B sent it to C, nothing of A's
        to_a = await fresh_document(world, agency_b, a)  # a delivery addressed to A
        for target, accepted in ((OWN, own), (FOREIGN, foreign)):
            seen = await api.http.get(f"/v1/documents/{accepted['id']}", headers=callers[Role.AUDITOR].auth)  # type: ignore[union-attr]
            assert seen.status_code == 200, seen.text
            world.documents[target] = {"id": accepted["id"], "attachment_id": seen.json()["attachments"][0]["id"]}
        world.deliveries = {OWN: to_a["deliveries"][0]["id"], FOREIGN: foreign["deliveries"][0]["id"]}

        async def archived() -> bool:
            auditor = callers[Role.AUDITOR]
            assert auditor is not None
            for target in (OWN, FOREIGN):
                path = f"/v1/archive/records/{world.documents[target]['id']}"
                if (await api.http.get(path, headers=auditor.auth)).status_code != 200:
                    return False
            return True

        await wait_until(archived, within=10, what="the archive to hold both documents")
        yield world


async def public_operations(api: Api) -> set[tuple[str, str]]:
    schema = (await api.http.get("/openapi.json")).json()
    assert "x-services-unavailable" not in schema["info"]
    methods = {"get", "post", "put", "patch", "delete"}
    return {(m.upper(), path) for path, item in schema["paths"].items() for m in item if m in methods}


async def test_every_operation_has_a_rule(world: World) -> None:
    operations = await public_operations(world.api)
    assert sorted(operations - RULES.keys()) == [], "operations without a rule in RULES: add one"
    assert sorted(RULES.keys() - operations) == [], "rules for operations the API no longer has"


async def test_every_role_gets_exactly_its_answer_on_every_operation(world: World) -> None:
    operations = await public_operations(world.api)
    wrong: list[str] = []
    calls = 0
    for method, path in sorted(operations & RULES.keys()):
        rule = RULES[(method, path)]
        targets = (OWN, FOREIGN) if has_targets(path) or (method, path) in TARGETED else (OWN,)
        for caller in CALLERS:
            client = world.callers[caller]
            headers = client.auth if client is not None else {}
            for target in targets:
                builder = BUILDERS.get((method, path))
                if builder is not None:
                    call = await builder(world, str(caller), target)
                else:
                    call = await default_call(world, method, path, target)
                response = await world.api.http.request(call.method, call.path, headers=headers, **call.kwargs)
                calls += 1
                expected = rule.expected(str(caller), target)
                if response.status_code != expected:
                    wrong.append(
                        f"{method} {path} as {caller} ({target}): {response.status_code}, expected {expected}: "
                        f"{response.text[:300]}"
                    )
                elif response.status_code >= 400:
                    assert response.headers["content-type"] == "application/problem+json", (method, path, caller)
    assert not wrong, f"{len(wrong)} of {calls} calls answered otherwise:\n" + "\n".join(wrong)


async def test_an_agency_acts_only_as_itself(world: World) -> None:
    """Nothing in a request makes a client act for another agency: the token's agency is the sender."""
    agency_a = world.callers[Role.AGENCY]
    assert agency_a is not None
    accepted = await fresh_document(world, agency_a, world.b)
    seen = await world.api.http.get(f"/v1/documents/{accepted['id']}", headers=world.agency_b.auth)
    assert seen.json()["sender_code"] == world.a
    # the internal routes are not reachable through the gateway, whatever the token
    for client in (agency_a, world.callers[Role.REGISTRY_ADMIN]):
        assert client is not None
        hidden = await world.api.http.get(f"/internal/v1/documents/{accepted['id']}", headers=client.auth)
        assert hidden.status_code == 404


async def test_an_auditor_reads_metadata_never_content(world: World) -> None:
    auditor = world.callers[Role.AUDITOR]
    assert auditor is not None
    foreign = world.documents[FOREIGN]
    seen = await world.api.http.get(f"/v1/documents/{foreign['id']}", headers=auditor.auth)
    assert seen.status_code == 200
    body = seen.json()
    assert body["sender_code"] == world.b
    assert [d["recipient_code"] for d in body["deliveries"]] == [world.c]
    download = await world.api.http.get(
        f"/v1/documents/{foreign['id']}/attachments/{foreign['attachment_id']}", headers=auditor.auth
    )
    assert download.status_code == 403
    search = await world.api.http.get("/v1/archive/search", params={"q": "ke hoach"}, headers=auditor.auth)
    assert search.status_code == 403
    unnamed = await world.api.http.get("/v1/documents", headers=auditor.auth)
    assert unnamed.status_code == 400  # an auditor names the agency it lists
    listed = await world.api.http.get(
        "/v1/documents", params={"box": "received", "agency": world.c}, headers=auditor.auth
    )
    assert foreign["id"] in [item["document_id"] for item in listed.json()["items"]]


async def test_roles_and_scopes_do_not_mix_on_creation(world: World) -> None:
    created = await world.api.http.post(
        f"/v1/agencies/{world.a}/clients",
        json={"name": "x", "role": "auditor", "scopes": ["audit:read"]},
        headers=await world.admin(),
    )
    assert created.status_code == 422
    unknown = await world.api.http.post(
        f"/v1/agencies/{world.a}/clients", json={"name": "x", "role": "root"}, headers=await world.admin()
    )
    assert unknown.status_code == 422
    narrowed = await world.api.http.post(
        f"/v1/agencies/{world.a}/clients",
        json={"name": "x", "scopes": ["documents:receive"]},
        headers=await world.admin(),
    )
    assert narrowed.status_code == 201
    assert narrowed.json()["role"] == "agency"
