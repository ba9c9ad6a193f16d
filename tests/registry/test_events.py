"""What the registry writes to its outbox is what services/registry/events.py (and so docs/registry.md)
describes: every event it publishes, each payload exactly its model's, field for field; and docs/registry.md
prints those schemas."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from services.registry.events import EVENTS, payload
from services.registry.models import messaging
from shared.audit import AUDIT_EVENT, AuditRecorded
from tests.helpers import Api, FakeDns

DOC = Path(__file__).resolve().parents[2] / "docs" / "registry.md"


def self_signed_pem(common_name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


async def test_every_published_payload_is_its_documented_model(api: Api, dns: FakeDns) -> None:
    admin = await api.admin()
    province = await api.create_agency(level="province")
    agency = await api.create_agency(parent_code=province["code"])
    code = agency["code"]

    async def ok(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await api.http.request(method, path, headers=admin, **kwargs)
        assert response.status_code < 300, response.text
        body: dict[str, Any] = response.json() if response.content else {}
        return body

    await ok("PATCH", f"/v1/agencies/{code}", json={"short_name": "Sở TN", "parent_code": None})
    await ok("PUT", f"/v1/agencies/{code}/endpoint", json={"mode": "push", "webhook_url": "https://a.example/x"})
    certificate = await ok(
        "POST", f"/v1/agencies/{code}/certificates", json={"kind": "seal", "certificate": self_signed_pem(code)}
    )
    await ok("DELETE", f"/v1/agencies/{code}/certificates/{certificate['id']}")
    group = {"name": f"g-{code.lower()}", "title": "Nhóm thử", "members": [code]}
    await ok("POST", "/v1/groups", json=group)
    await ok("PUT", f"/v1/groups/{group['name']}", json={"title": "Nhóm thử 2", "rules": [{"level": "province"}]})
    await ok("DELETE", f"/v1/groups/{group['name']}")
    client = await ok("POST", f"/v1/agencies/{code}/clients", json={"name": "hệ thống thử"})
    await ok("POST", f"/v1/clients/{client['client_id']}/rotate", json={"overlap_seconds": 60})
    await ok("POST", f"/v1/clients/{client['client_id']}/revoke")
    user = {"username": f"u-{code.lower()}", "display_name": "Văn thư", "agency_code": code, "password": "x" * 12}
    await ok("POST", "/v1/users", json=user)
    await ok("PATCH", f"/v1/users/{user['username']}", json={"status": "disabled"})
    await ok("POST", f"/v1/agencies/{code}/status", json={"status": "retired", "successor_code": province["code"]})

    async with api.service_runtime("registry").db.session() as session:
        rows = (await session.execute(select(messaging.outbox.c.routing_key, messaging.outbox.c.payload))).all()
    audit = [data for key, data in rows if key == AUDIT_EVENT]  # the audit trail's (tests/security/test_audit.py)
    assert {AuditRecorded.model_validate(data).action for data in audit} >= {"agency.updated", "client.revoked"}
    rows = [row for row in rows if row.routing_key != AUDIT_EVENT]
    published = {row.routing_key for row in rows}
    assert published == set(EVENTS), published ^ set(EVENTS)
    for routing_key, data in rows:
        assert payload(EVENTS[routing_key].model_validate(data)) == data, routing_key
    shapes = {tuple(sorted(data)) for key, data in rows if key == "agency.updated.v1"}
    assert shapes == {
        ("agency", "changed"),
        ("agency", "changed", "delivery_endpoint"),
        ("agency", "certificate_sha256", "changed"),
    }
    rotated = next(data for key, data in rows if key == "client.rotated.v1")
    assert str(rotated["previous_secrets_expire_at"]).endswith("+00:00")


def test_registry_event_schemas_in_the_docs_match_the_code():
    text = DOC.read_text(encoding="utf-8")
    block = text.split("```json\n")[-1].split("```")[0]
    documented = json.loads(block)
    assert documented == {name: model.model_json_schema() for name, model in EVENTS.items()}, (
        "regenerate the block with: .venv/bin/python -m services.registry.events"
    )
