"""The exchange's signature policy: a type that requires a valid signature is refused without one,
a flagged type is accepted and verified just after, and everyone who reads the document sees the
verdict; the signature service down never lets an unverified document through ``require``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.exchange.dependencies import ExchangeRuntime
from services.exchange.signatures.client import SignatureClient
from services.exchange.signatures.service import FlaggedVerifier
from tests.conftest import running_system
from tests.helpers import Api, Client, assert_problem, upload_certificate, wait_until
from tests.signature.conftest import Samples, trust
from tests.signature.pki import SEAL_NAME, Pki

POLICY = {
    "signature_policy": {"QĐ": "require", "Công văn": "off"},
    "signature_policy_default": "flag",
    "signature_retry_schedule": [0.1, 0.2],
}


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> AsyncIterator[Api]:
    """The system on SQLite, shared by the module's tests (each has agencies of its own): decisions
    require a valid signature, plans are flagged, official letters are not checked; the test PKI
    trusted."""
    var = tmp_path_factory.mktemp("signature-policy") / "var"
    async with running_system(var, signature={"verify_workers": 1}, exchange=POLICY) as caller:
        await trust(caller, pki)
        yield caller


def pdf(data: bytes) -> list[tuple[str, bytes, str]]:
    return [("quyet-dinh.pdf", data, "application/pdf")]


async def document(api: Api, reader: Client, document_id: str) -> dict[str, Any]:
    response = await api.http.get(f"/v1/documents/{document_id}", headers=reader.auth)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def received(api: Api, recipient: Client) -> list[dict[str, Any]]:
    response = await api.http.get("/v1/documents", params={"box": "received"}, headers=recipient.auth)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def exchange_runtime(api: Api) -> ExchangeRuntime:
    runtime = api.service_runtime("exchange")
    assert isinstance(runtime, ExchangeRuntime)
    return runtime


def signature_service_down(api: Api) -> Callable[[], None]:
    """The exchange's calls to the signature service go to a port nothing listens on; returns what
    puts the real one back."""
    runtime = exchange_runtime(api)
    real = (runtime._signatures, runtime._verifier)

    def back() -> None:
        runtime._signatures, runtime._verifier = real

    http = httpx.AsyncClient(base_url="http://127.0.0.1:9")
    runtime.on_shutdown(http.aclose)
    client = SignatureClient(http, runtime.internal_authorization, timeout=2)
    runtime._signatures = client
    runtime._verifier = FlaggedVerifier(runtime.db, runtime.blobs.path, client)
    return back


async def test_a_decision_signed_by_the_person_then_sealed_is_accepted_and_everyone_sees_it_valid(
    api: Api, samples: Samples
) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    response = await api.send(
        sender,
        [recipient.agency_code],
        files=pdf(samples.person_then_seal),
        type_name="Quyết định",
        code_notation="QĐ-UBND",
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["signature"]["verdict"] == "valid" and accepted["signature"]["checked_at"]
    for reader in (sender, recipient):
        assert (await document(api, reader, accepted["id"]))["signature"]["verdict"] == "valid"
    assert [item["signature_verdict"] for item in await received(api, recipient)] == ["valid"]


@pytest.mark.parametrize(
    ("sample", "verdict", "words"),
    [
        ("modified", "invalid", "changed"),
        ("revoked", "invalid", "revoked"),
        ("untrusted", "indeterminate", "trust anchor"),
        ("unsigned", "unsigned", "signature"),
    ],
)
async def test_a_decision_without_a_valid_signature_is_refused_and_nothing_is_sent(
    api: Api, samples: Samples, sample: str, verdict: str, words: str
) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    response = await api.send(
        sender, [recipient.agency_code], files=pdf(getattr(samples, sample)), type_name="QĐ", code_notation="QĐ-UBND"
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "signature_required"
    assert problem["verdict"] == verdict
    assert problem["reasons"] and words in " ".join(problem["reasons"]).lower() + problem["detail"].lower()
    assert await received(api, recipient) == []


async def test_a_flagged_plan_is_accepted_pending_then_its_verdict_is_kept(api: Api, samples: Samples) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    response = await api.send(sender, [recipient.agency_code], files=pdf(samples.revoked))  # a plan: flagged
    assert response.status_code == 202, response.text
    document_id = response.json()["id"]
    assert response.json()["signature"]["verdict"] == "pending"

    async def checked() -> bool:
        return (await document(api, recipient, document_id))["signature"]["verdict"] != "pending"

    await wait_until(checked, within=30, what="the flagged document's verdict")
    signature = (await document(api, sender, document_id))["signature"]
    assert signature["verdict"] == "invalid"
    assert any("revoked" in reason.lower() for reason in signature["reasons"])
    assert [item["signature_verdict"] for item in await received(api, recipient)] == ["invalid"]


async def test_a_flagged_plan_signed_well_ends_valid(api: Api, samples: Samples) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    response = await api.send(sender, [recipient.agency_code], files=pdf(samples.person_then_seal))
    document_id = response.json()["id"]

    async def valid() -> bool:
        return (await document(api, recipient, document_id))["signature"]["verdict"] == "valid"

    await wait_until(valid, within=30, what="the flagged document's verdict")


async def test_an_official_letter_whose_policy_is_off_is_not_verified(api: Api, samples: Samples) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    response = await api.send(
        sender, [recipient.agency_code], files=pdf(samples.modified), type_name="Công văn", code_notation="UBND-VP"
    )
    assert response.status_code == 202, response.text
    assert response.json()["signature"] is None
    assert (await document(api, recipient, response.json()["id"]))["signature"] is None


async def test_with_the_signature_service_down_a_decision_waits_and_a_flagged_plan_ends_indeterminate(
    api: Api, samples: Samples
) -> None:
    back = signature_service_down(api)
    try:
        await _down_then_back(api, samples, back)
    finally:
        back()  # the module's other tests share the system


async def _down_then_back(api: Api, samples: Samples, back: Callable[[], None]) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    refused = await api.send(
        sender, [recipient.agency_code], files=pdf(samples.person_then_seal), type_name="QĐ", code_notation="QĐ-UBND"
    )
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "dependency_unavailable" and "retry" in refused.json()["detail"]
    assert await received(api, recipient) == []

    flagged = await api.send(sender, [recipient.agency_code], files=pdf(samples.person_then_seal))
    assert flagged.status_code == 202, flagged.text
    document_id = flagged.json()["id"]

    async def settled() -> bool:
        return (await document(api, recipient, document_id))["signature"]["verdict"] != "pending"

    await wait_until(settled, within=30, what="the verdict after the last try")
    signature = (await document(api, recipient, document_id))["signature"]
    assert signature["verdict"] == "indeterminate"
    assert "signature service" in signature["reasons"][0]

    # the service is back: an administrator has the file verified again
    back()
    again = f"/v1/documents/{document_id}/signature/check"
    assert (await api.http.post(again, headers=sender.auth)).status_code == 403  # not the sender's to ask
    queued = await api.http.post(again, headers=await api.admin())
    assert queued.status_code == 202, queued.text
    assert queued.json()["signature"]["verdict"] == "pending"

    async def valid() -> bool:
        return (await document(api, recipient, document_id))["signature"]["verdict"] == "valid"

    await wait_until(valid, within=30, what="the verdict checked again")
    unknown = await api.http.post(f"/v1/documents/{uuid.uuid4()}/signature/check", headers=await api.admin())
    assert_problem(unknown, 404, "document_not_found")


def test_a_policy_naming_an_unknown_type_is_refused_at_start() -> None:
    from pydantic import ValidationError

    from services.exchange.config import ExchangeSection

    with pytest.raises(ValidationError, match="not a document type"):
        ExchangeSection(signature_policy={"Thư tình": "require"})
    assert ExchangeSection(signature_policy={"qd": "require"}).signature_mode("Quyết định") == "require"


async def test_a_required_signature_from_the_senders_registered_seal_is_sent_and_a_revoked_one_refused(
    tmp_path: Path, samples: Samples, pki: Pki
) -> None:
    exchange = {"signature_policy_default": "require"}
    async with running_system(tmp_path / "var", exchange=exchange, signature={"verify_workers": 1}) as api:
        await trust(api, pki)
        sender = await api.agency_client((await api.create_agency(name=SEAL_NAME))["code"])
        await upload_certificate(api, sender.agency_code, pki.seal.cert, "seal")
        recipient = (await api.create_agency())["code"]

        sent = await api.send(sender, [recipient], files=[("qd.pdf", samples.person_then_seal, "application/pdf")])
        assert sent.status_code == 202, sent.text
        assert sent.json()["signature"]["verdict"] == "valid"

        refused = await api.send(
            sender, [recipient], code_number="991", files=[("qd.pdf", samples.revoked, "application/pdf")]
        )
        problem = assert_problem(refused, 422, "signature_required")
        assert "revoked" in str(problem)

        unsigned = await api.send(
            sender, [recipient], code_number="992", files=[("qd.pdf", samples.unsigned, "application/pdf")]
        )
        assert_problem(unsigned, 422, "signature_required")
