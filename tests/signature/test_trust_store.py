"""The trust store through its admin API: roots, intermediates and CRLs added, listed, removed; the
version every change bumps, the history, the event; who may change it; what is refused."""

from __future__ import annotations

import base64
from pathlib import Path

from sqlalchemy import select

from services.signature.models import messaging
from tests.conftest import running_system
from tests.helpers import Api, assert_problem
from tests.signature.conftest import Samples, verify
from tests.signature.pki import Pki

BASE = "/v1/signatures/trust-store"


async def test_trust_store_changes_are_versioned_recorded_and_published(
    migrated_pg_database: str, tmp_path: Path, pki: Pki, samples: Samples
) -> None:
    async with running_system(tmp_path / "var", migrated_pg_database) as api:
        admin = await api.admin()
        start = (await api.http.get(BASE, headers=admin)).json()
        assert start["version"] == 0 and start["roots"] == 0 and start["revocation_mode"] == "soft-fail"

        root = await api.http.post(
            f"{BASE}/certificates", json={"kind": "root", "certificate": pki.root.pem}, headers=admin
        )
        assert root.status_code == 201, root.text
        assert root.json()["sha256"] == pki.root.sha256 and "LienThong Test Root CA" in root.json()["subject"]
        der = base64.b64encode(pki.intermediate.der).decode()
        inter = await api.http.post(
            f"{BASE}/certificates", json={"kind": "intermediate", "certificate": der}, headers=admin
        )
        assert inter.status_code == 201, inter.text
        crl = await api.http.post(f"{BASE}/crls", json={"crl": base64.b64encode(pki.crl).decode()}, headers=admin)
        assert crl.status_code == 201, crl.text
        assert crl.json()["revoked_count"] == 1

        again = await api.http.post(
            f"{BASE}/certificates", json={"kind": "root", "certificate": pki.root.pem}, headers=admin
        )
        assert_problem(again, 409, "trust_item_exists")
        leaf = await api.http.post(
            f"{BASE}/certificates", json={"kind": "root", "certificate": pki.seal.pem}, headers=admin
        )
        assert_problem(leaf, 422, "trust_item_invalid")
        for garbage in ("hello", base64.b64encode(b"\x30\x03\x02\x01\x01").decode()):
            bad = await api.http.post(f"{BASE}/crls", json={"crl": garbage}, headers=admin)
            assert_problem(bad, 422, "trust_item_invalid")

        verified = (await verify(api, samples.revoked)).json()  # on PostgreSQL, with the CRL
        assert verified["verdict"] == "invalid" and verified["trust_store_version"] == 3

        summary = (await api.http.get(BASE, headers=admin)).json()
        assert (summary["version"], summary["roots"], summary["intermediates"], summary["crls"]) == (3, 1, 1, 1)
        listed = (await api.http.get(f"{BASE}/certificates", headers=admin)).json()
        assert [c["sha256"] for c in listed["items"]] == [pki.root.sha256, pki.intermediate.sha256]
        page = (await api.http.get(f"{BASE}/certificates?limit=1", headers=admin)).json()
        assert len(page["items"]) == 1 and page["next_cursor"]

        removed = await api.http.delete(f"{BASE}/crls/{crl.json()['id']}", headers=admin)
        assert removed.status_code == 204
        gone = await api.http.delete(f"{BASE}/crls/{crl.json()['id']}", headers=admin)
        assert_problem(gone, 404, "trust_item_not_found")

        changes = (await api.http.get(f"{BASE}/changes", headers=admin)).json()["items"]
        assert [(c["version"], c["action"], c["item"]) for c in changes] == [
            (4, "removed", "crl"),
            (3, "added", "crl"),
            (2, "added", "intermediate"),
            (1, "added", "root"),
        ]
        assert {c["actor"] for c in changes} == {api.settings.registry.admin_client_id}

        runtime = api.service_runtime("signature")
        async with runtime.db.session() as session:
            rows = (await session.execute(select(messaging.outbox.c.routing_key, messaging.outbox.c.payload))).all()
        published = [payload for kind, payload in rows if kind == "trust_store.changed.v1"]
        assert [p["version"] for p in sorted(published, key=lambda p: p["version"])] == [1, 2, 3, 4]


async def test_only_the_admin_changes_the_trust_store(signature_api: Api, pki: Pki) -> None:
    agency = await signature_api.agency_client()
    body = {"kind": "root", "certificate": pki.untrusted_root.pem}
    assert_problem(
        await signature_api.http.post(f"{BASE}/certificates", json=body, headers=agency.auth), 403, "forbidden"
    )
    assert_problem(await signature_api.http.get(BASE, headers=agency.auth), 403, "forbidden")
    assert_problem(await signature_api.http.post(f"{BASE}/certificates", json=body), 401, "unauthorized")
    summary = (await signature_api.http.get(BASE, headers=await signature_api.admin())).json()
    assert summary["roots"] == 1  # unchanged
