"""The signature tests' fixtures: the test PKI and the signed documents, made once per session, and
the system with a trust store holding the test root, intermediate and CRL."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.demo.pdf import make_pdf
from tests.conftest import running_system
from tests.helpers import Api
from tests.signature.pki import (
    Pki,
    append_page_text,
    build_pki,
    edxml_packet,
    sign_detached,
    sign_edxml_default_namespace,
    sign_edxml_ds,
    sign_pdf,
)


@dataclass(frozen=True)
class Samples:
    """Documents signed by the test PKI (bytes)."""

    unsigned: bytes
    person: bytes
    person_then_seal: bytes
    timestamped: bytes
    seal_only: bytes
    seal_then_person: bytes
    modified: bytes
    appended: bytes
    revoked: bytes
    expired: bytes
    untrusted: bytes
    cms_content: bytes
    cms: bytes
    edxml_ds: bytes
    edxml_default: bytes


@pytest.fixture(scope="session")
def pki() -> Pki:
    return build_pki()


@pytest.fixture(scope="session")
def samples(pki: Pki) -> Samples:
    chain = [pki.intermediate]
    pdf = make_pdf(["UBND TINH NGHE AN", "So: 24/KH-STC", "Ke hoach chuyen doi so"])
    person = sign_pdf(pdf, pki.person, chain, "Nguoi ky")
    seal = sign_pdf(pdf, pki.seal, chain, "Con dau")
    modified = bytearray(person)
    at = modified.index(b"(So: 24/KH-STC)")
    modified[at + 5 : at + 7] = b"99"  # the number changed inside the signed bytes
    content = "Báo cáo tháng 11".encode()
    return Samples(
        unsigned=pdf,
        person=person,
        person_then_seal=sign_pdf(person, pki.seal, chain, "Con dau"),
        timestamped=sign_pdf(pdf, pki.seal, chain, "Con dau", tsa=pki.tsa),
        seal_only=seal,
        seal_then_person=sign_pdf(seal, pki.person, chain, "Nguoi ky"),
        modified=bytes(modified),
        appended=append_page_text(person, "Noi dung them sau khi ky"),
        revoked=sign_pdf(pdf, pki.revoked, chain),
        expired=sign_pdf(pdf, pki.expired, chain),
        untrusted=sign_pdf(pdf, pki.untrusted, [pki.untrusted_root]),
        cms_content=content,
        cms=sign_detached(content, pki.seal, chain),
        edxml_ds=sign_edxml_ds(edxml_packet(), pki.seal),
        edxml_default=sign_edxml_default_namespace(edxml_packet(), pki.seal),
    )


async def trust(api: Api, pki: Pki, *, crl: bool = True) -> None:
    """Put the test root, intermediate and (unless ``crl`` is false) CRL into the trust store."""
    admin = await api.admin()
    for kind, identity in (("root", pki.root), ("intermediate", pki.intermediate)):
        response = await api.http.post(
            "/v1/signatures/trust-store/certificates", json={"kind": kind, "certificate": identity.pem}, headers=admin
        )
        assert response.status_code == 201, response.text
    if not crl:
        return
    response = await api.http.post(
        "/v1/signatures/trust-store/crls", json={"crl": base64.b64encode(pki.crl).decode()}, headers=admin
    )
    assert response.status_code == 201, response.text


@pytest.fixture
async def signature_api(tmp_path: Path, pki: Pki) -> AsyncIterator[Api]:
    """The system on SQLite, one verification worker, the test PKI trusted."""
    async with running_system(tmp_path / "var", signature={"verify_workers": 1}) as api:
        await trust(api, pki)
        yield api


async def verify(
    api: Api, data: bytes, *, signed: bytes | None = None, sender: str | None = None, name: str = "file.pdf"
) -> dict:
    """POST /v1/signatures/verify with an admin token; return the response."""
    files = {"file": (name, data, "application/octet-stream")}
    if signed is not None:
        files["signed_file"] = ("signed.bin", signed, "application/octet-stream")
    params = {"sender": sender} if sender else {}
    return await api.http.post("/v1/signatures/verify", files=files, params=params, headers=await api.admin())  # type: ignore[return-value]
