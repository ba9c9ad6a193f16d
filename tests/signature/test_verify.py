"""Verification of PDF (PAdES), detached CMS and edXML XML-DSig signatures: each sample gives its
verdict and its reason in plain words."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import Api, assert_problem
from tests.signature.conftest import Samples, verify
from tests.signature.pki import Pki, edxml_packet, sign_edxml_as_the_samples


def _reasons(body: dict[str, Any]) -> str:
    return " | ".join(body["reasons"])


async def test_pdf_signatures_each_with_its_verdict_and_reason(signature_api: Api, samples: Samples) -> None:
    cases: list[tuple[str, bytes, str, str]] = [
        ("person", samples.person, "valid", "all valid, trusted and not revoked"),
        ("person then seal", samples.person_then_seal, "valid", "all valid"),
        ("seal only", samples.seal_only, "valid", "all valid"),
        ("modified after signing", samples.modified, "invalid", "changed after signing"),
        ("content appended after the signature", samples.appended, "invalid", "Content was changed after this"),
        ("revoked signer", samples.revoked, "invalid", "certificate was revoked on"),
        ("expired signer", samples.expired, "invalid", "certificate expired on"),
        ("untrusted root", samples.untrusted, "indeterminate", "does not chain to a trust anchor"),
    ]
    for label, data, verdict, reason in cases:
        response = await verify(signature_api, data)
        assert response.status_code == 200, (label, response.text)
        body = response.json()
        assert body["verdict"] == verdict, (label, body["reasons"])
        assert reason in _reasons(body), (label, body["reasons"])
        assert body["file"]["format"] == "pdf"
        assert all(s["format"] == "pades" for s in body["signatures"])

    body = (await verify(signature_api, samples.person_then_seal)).json()
    first, second = body["signatures"]
    assert first["signer"]["common_name"] == "Nguyễn Văn An" and first["role"] == "person"
    assert first["integrity"] == {
        "intact": True,
        "signature_valid": True,
        "coverage": "entire_revision",
        "revision": 1,
        "later_revisions": 1,
        "later_changes": "signatures_and_form_fields",
        "later_changes_allowed": True,
    }
    assert first["chain"]["trusted"] and "LienThong Test Root CA" in first["chain"]["anchor"]
    assert first["revocation"]["status"] == "not_revoked" and first["revocation"]["mode"] == "soft-fail"
    assert first["key_usage_ok"] and first["signing_time"]["claimed"] is not None
    assert second["role"] == "seal" and second["integrity"]["coverage"] == "entire_file"
    assert body["decree30"] == {
        "person_signature": 0,
        "seal_signature": 1,
        "person_signed_first": True,
        "sealed_by_sender": None,
        "complete": True,
        "notes": [],
    }

    revoked = (await verify(signature_api, samples.revoked)).json()["signatures"][0]
    assert revoked["revocation"]["status"] == "revoked" and revoked["revocation"]["revoked_at"] is not None
    appended = (await verify(signature_api, samples.appended)).json()["signatures"][0]
    assert appended["integrity"]["later_changes"] == "other"
    assert appended["integrity"]["later_changes_allowed"] is False
    trailing = (await verify(signature_api, samples.person + b"\nappended bytes\n")).json()
    assert trailing["verdict"] == "indeterminate" and "appended after the signature" in _reasons(trailing)


async def test_the_signing_time_of_a_timestamp(signature_api: Api, samples: Samples) -> None:
    body = (await verify(signature_api, samples.timestamped)).json()
    assert body["verdict"] == "valid", body["reasons"]
    time = body["signatures"][0]["signing_time"]
    assert time["timestamp"] is not None and time["timestamp_valid"] is True
    assert time["claimed"] is not None


async def test_decree30_reading_of_the_order_and_the_roles(signature_api: Api, samples: Samples) -> None:
    seal_only = (await verify(signature_api, samples.seal_only)).json()
    assert seal_only["decree30"]["seal_signature"] == 0 and seal_only["decree30"]["person_signature"] is None
    assert not seal_only["decree30"]["complete"]
    assert "No signature of a person" in " ".join(seal_only["decree30"]["notes"])

    reversed_order = (await verify(signature_api, samples.seal_then_person)).json()
    assert reversed_order["verdict"] == "valid"  # both signatures are good; the order is the reading's business
    assert reversed_order["decree30"]["person_signed_first"] is False
    assert not reversed_order["decree30"]["complete"]
    assert "seal was applied before the person signed" in " ".join(reversed_order["decree30"]["notes"])


async def test_detached_cms_valid_and_tampered(signature_api: Api, samples: Samples) -> None:
    good = await verify(signature_api, samples.cms, signed=samples.cms_content, name="file.p7s")
    assert good.status_code == 200, good.text
    body = good.json()
    assert body["verdict"] == "valid" and body["file"]["format"] == "cms"
    assert body["signatures"][0]["format"] == "cms" and body["signatures"][0]["signer"]["organization"]
    assert body["decree30"] is None

    tampered = (await verify(signature_api, samples.cms, signed=samples.cms_content + b"!")).json()
    assert tampered["verdict"] == "invalid"
    assert "changed after signing" in _reasons(tampered)
    assert tampered["signatures"][0]["integrity"]["intact"] is False

    missing = await verify(signature_api, samples.cms)
    assert_problem(missing, 422, "signed_file_missing")


@pytest.mark.parametrize("placement", ["ds", "default"])
async def test_edxml_packets_in_both_placements(signature_api: Api, samples: Samples, placement: str) -> None:
    packet = samples.edxml_ds if placement == "ds" else samples.edxml_default
    if placement == "default":
        # the national samples' placement: <Signature> in the edXML namespace, not ds
        assert b"<edXML:Signature>" in packet and b"xmldsig#" not in packet.split(b"<edXML:Signature>")[1][:20]
    good = await verify(signature_api, packet, name="packet.edxml")
    assert good.status_code == 200, good.text
    body = good.json()
    assert body["verdict"] == "valid", body["reasons"]
    signature = body["signatures"][0]
    assert signature["format"] == "xmldsig" and signature["integrity"]["coverage"] == "entire_file"
    assert ("edXML" if placement == "default" else "ds") in signature["name"]
    assert signature["chain"]["trusted"]

    tampered = packet.replace("Kế hoạch chuyển đổi số".encode(), "Kế hoạch khác".encode())
    assert tampered != packet
    bad = (await verify(signature_api, tampered, name="packet.edxml")).json()
    assert bad["verdict"] == "invalid"
    assert "changed after signing" in _reasons(bad)


async def test_results_are_cached_until_the_trust_store_changes(signature_api: Api, samples: Samples, pki) -> None:  # type: ignore[no-untyped-def]
    first = (await verify(signature_api, samples.person)).json()
    again = (await verify(signature_api, samples.person)).json()
    assert (first["cached"], again["cached"]) == (False, True)
    assert again["verdict"] == "valid" and again["trust_store_version"] == first["trust_store_version"]

    admin = await signature_api.admin()
    roots = (await signature_api.http.get("/v1/signatures/trust-store/certificates?kind=root", headers=admin)).json()
    [root] = roots["items"]
    removed = await signature_api.http.delete(f"/v1/signatures/trust-store/certificates/{root['id']}", headers=admin)
    assert removed.status_code == 204
    after = (await verify(signature_api, samples.person)).json()
    assert after["cached"] is False and after["trust_store_version"] == first["trust_store_version"] + 1
    assert after["verdict"] == "indeterminate" and "trust anchor" in _reasons(after)


async def test_the_internal_verification_for_the_exchange(signature_api: Api, samples: Samples) -> None:
    from gateway.runtime import GatewayRuntime
    from shared.auth import Scope, load_issuer
    from shared.runtime import app_runtime

    settings = signature_api.settings
    issuer = load_issuer(settings.private_key_file, settings.auth.issuer, settings.auth.audience, 300)
    internal = {"Authorization": f"Bearer {issuer.issue('exchange', None, [Scope.INTERNAL])}"}
    assert signature_api.app is not None
    service = app_runtime(signature_api.app, GatewayRuntime).embedded["signature"]
    files = {"file": ("van-ban.pdf", samples.person_then_seal, "application/pdf")}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service), base_url="http://signature") as http:
        answered = await http.post("/internal/v1/signatures/verify", files=files, headers=internal)
        assert answered.status_code == 200, answered.text
        assert answered.json()["verdict"] == "valid" and answered.json()["decree30"]["complete"]
        agency = await signature_api.agency_client()
        refused = await http.post("/internal/v1/signatures/verify", files=files, headers=agency.auth)
        assert_problem(refused, 403, "forbidden")
    # never routed by the gateway
    through_gateway = await signature_api.http.post("/internal/v1/signatures/verify", files=files, headers=internal)
    assert through_gateway.status_code == 404


async def test_an_edxml_packet_signed_as_the_national_samples_is_valid(signature_api: Api, pki: Pki) -> None:
    """The samples' layout: SignedInfo in the edXML default namespace, canonicalised inclusively
    (libxml2 alone would add ``xmlns=""`` below it and never match what the signer signed)."""
    signed = sign_edxml_as_the_samples(edxml_packet(), pki.tsa)
    good = (await verify(signature_api, signed, name="packet.edxml")).json()
    assert good["signatures"][0]["integrity"]["intact"] is True, good["reasons"]
    tampered = signed.replace("Kế hoạch chuyển đổi số".encode(), "Kế hoạch khác".encode())
    bad = (await verify(signature_api, tampered, name="packet.edxml")).json()
    assert bad["verdict"] == "invalid" and "changed after signing" in _reasons(bad)
