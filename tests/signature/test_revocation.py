"""The revocation policy: revocation information that cannot be had (fetching on, the distribution
point unreachable, no CRL uploaded) is tolerated under soft-fail and makes the verdict indeterminate
under hard-fail; an uploaded CRL answers without fetching."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.conftest import running_system
from tests.signature.conftest import Samples, trust, verify
from tests.signature.pki import Pki


async def test_unreachable_revocation_information_under_soft_and_hard_fail(
    tmp_path: Path, samples: Samples, pki: Pki
) -> None:
    for mode, verdict in (("soft-fail", "valid"), ("hard-fail", "indeterminate")):
        settings = {"verify_workers": 1, "revocation_mode": mode, "fetch_revocation": True, "fetch_timeout_seconds": 2}
        async with running_system(tmp_path / mode, signature=settings) as api:
            await trust(api, pki, crl=False)
            body = (await verify(api, samples.person)).json()
            assert body["verdict"] == verdict, (mode, body["reasons"])
            assert body["signatures"][0]["revocation"]["mode"] == mode
            if mode == "hard-fail":
                assert "Revocation information for the signer's certificate could not be obtained" in body["reasons"][0]
                crl = base64.b64encode(pki.crl).decode()
                added = await api.http.post(
                    "/v1/signatures/trust-store/crls", json={"crl": crl}, headers=await api.admin()
                )
                assert added.status_code == 201
                now = (await verify(api, samples.person)).json()
                assert now["verdict"] == "valid" and now["signatures"][0]["revocation"]["status"] == "not_revoked"
                revoked = (await verify(api, samples.revoked)).json()
                assert revoked["verdict"] == "invalid" and "revoked" in revoked["reasons"][0]
