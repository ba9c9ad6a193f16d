"""The sender's certificates: the registry's kinds decide who sealed, the report says whether a
signing certificate is one the registry lists for the sending agency; registry events empty the
cache."""

from __future__ import annotations

import asyncio

from tests.helpers import Api, upload_certificate
from tests.signature.conftest import Samples, verify
from tests.signature.pki import SEAL_NAME, Pki


async def test_the_seal_is_the_senders_when_the_registry_lists_it(
    signature_api: Api, samples: Samples, pki: Pki
) -> None:
    sender = (await signature_api.create_agency(name=SEAL_NAME))["code"]
    other = (await signature_api.create_agency(name="Sở Xây dựng tỉnh Nghệ An"))["code"]

    by_name = (await verify(signature_api, samples.person_then_seal, sender=sender)).json()
    assert by_name["sender"]["agency_known"] is True and by_name["sender"]["listed"] is False
    assert by_name["decree30"]["sealed_by_sender"] is True  # named after the sender, not listed
    assert "does not list it" in " ".join(by_name["decree30"]["notes"])

    await upload_certificate(signature_api, sender, pki.seal.cert, "seal")
    await upload_certificate(signature_api, sender, pki.person.cert, "signer")
    # the registry's agency.updated.v1 empties the signature service's cache (the relay publishes it
    # right after the commit; the loop only absorbs that moment)
    for _ in range(50):
        listed = (await verify(signature_api, samples.person_then_seal, sender=sender)).json()
        if listed["sender"]["listed"]:
            break
        await asyncio.sleep(0.1)
    assert listed["sender"] == {"agency_code": sender, "agency_known": True, "listed": True, "notes": []}
    assert [s["listed_for_sender"] for s in listed["signatures"]] == [True, True]
    assert [(s["role"], s["role_source"]) for s in listed["signatures"]] == [
        ("person", "registry"),
        ("seal", "registry"),
    ]
    assert listed["decree30"]["sealed_by_sender"] is True and listed["decree30"]["complete"] is True

    elsewhere = (await verify(signature_api, samples.person_then_seal, sender=other)).json()
    assert elsewhere["sender"]["listed"] is False
    assert elsewhere["decree30"]["sealed_by_sender"] is False and not elsewhere["decree30"]["complete"]

    unknown = (await verify(signature_api, samples.person_then_seal, sender="999.99.99.H99")).json()
    assert unknown["sender"]["agency_known"] is False
