"""The exchange's `require` signature policy against the real signature service: its client calls
`POST /internal/v1/signatures/verify` with the sender's code; a valid, trusted, unrevoked file is
sent, anything else refused with the report's reasons."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import running_system
from tests.helpers import assert_problem, upload_certificate
from tests.signature.conftest import Samples, trust
from tests.signature.pki import SEAL_NAME, Pki


async def test_a_required_signature_is_verified_before_the_send(tmp_path: Path, samples: Samples, pki: Pki) -> None:
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
