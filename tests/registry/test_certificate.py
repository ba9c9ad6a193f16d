"""Agency certificates in PEM and DER: upload, what is not a certificate, deletion, who changes them."""

from __future__ import annotations

import base64
import datetime as dt
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tests.helpers import (
    Api,
    assert_problem,
    history_of,
    make_certificate,
    upload_certificate,
)

# --- certificates ----------------------------------------------------------------------------


async def test_certificates_in_pem_and_der(api: Api) -> None:
    code = (await api.create_agency(name="Sở Tài chính"))["code"]
    seal, _ = make_certificate("Sở Tài chính tỉnh Nghệ An")
    pem = seal.public_bytes(serialization.Encoding.PEM).decode()
    uploaded = await api.http.post(
        f"/v1/agencies/{code}/certificates", json={"kind": "seal", "certificate": pem}, headers=await api.admin()
    )
    assert uploaded.status_code == 201, uploaded.text
    body = uploaded.json()
    assert body["agency_code"] == code and body["kind"] == "seal"
    assert body["subject"] == seal.subject.rfc4514_string()
    assert "CN=Sở Tài chính tỉnh Nghệ An" in body["subject"]
    assert body["issuer"] == seal.issuer.rfc4514_string()
    assert body["serial"] == format(seal.serial_number, "x")
    assert dt.datetime.fromisoformat(body["not_before"]) == seal.not_valid_before_utc
    assert dt.datetime.fromisoformat(body["not_after"]) == seal.not_valid_after_utc
    assert body["sha1"] == seal.fingerprint(hashes.SHA1()).hex()
    assert body["sha256"] == seal.fingerprint(hashes.SHA256()).hex()
    assert body["key_usage"] == ["digital_signature", "content_commitment"]
    assert x509.load_pem_x509_certificate(body["pem"].encode()) == seal

    signer, _ = make_certificate("Nguyễn Văn Ánh")
    der = base64.b64encode(signer.public_bytes(serialization.Encoding.DER)).decode()
    uploaded_der = await api.http.post(
        f"/v1/agencies/{code}/certificates", json={"kind": "signer", "certificate": der}, headers=await api.admin()
    )
    assert uploaded_der.status_code == 201, uploaded_der.text
    assert uploaded_der.json()["kind"] == "signer"
    assert uploaded_der.json()["sha256"] == signer.fingerprint(hashes.SHA256()).hex()
    assert uploaded_der.json()["subject"] == signer.subject.rfc4514_string()

    seal_der = base64.b64encode(seal.public_bytes(serialization.Encoding.DER)).decode()
    for kind, text in [("seal", pem), ("signer", seal_der)]:
        again = await api.http.post(
            f"/v1/agencies/{code}/certificates", json={"kind": kind, "certificate": text}, headers=await api.admin()
        )
        assert_problem(again, 409, "certificate_exists")

    listed = await api.http.get(f"/v1/agencies/{code}/certificates", headers=await api.admin())
    assert listed.status_code == 200
    assert [c["sha256"] for c in listed.json()] == [body["sha256"], uploaded_der.json()["sha256"]]
    actions = [h["action"] for h in await history_of(api, code)]
    assert actions == ["created", "certificate_added", "certificate_added"]


async def test_what_is_not_a_certificate_is_refused(api: Api) -> None:
    code = (await api.create_agency())["code"]
    _, key = make_certificate("Khóa riêng")
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    for garbage in [
        "hello",
        private_pem,
        base64.b64encode(os.urandom(600)).decode(),
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    ]:
        response = await api.http.post(
            f"/v1/agencies/{code}/certificates",
            json={"kind": "seal", "certificate": garbage},
            headers=await api.admin(),
        )
        assert_problem(response, 422, "certificate_invalid")
    assert (await api.http.get(f"/v1/agencies/{code}/certificates", headers=await api.admin())).json() == []
    assert [h["action"] for h in await history_of(api, code)] == ["created"]


async def test_certificate_is_deleted_once(api: Api) -> None:
    code = (await api.create_agency())["code"]
    cert, _ = make_certificate("Văn thư Sở")
    certificate_id = await upload_certificate(api, code, cert)
    other_code = (await api.create_agency())["code"]
    wrong_agency = await api.http.delete(
        f"/v1/agencies/{other_code}/certificates/{certificate_id}", headers=await api.admin()
    )
    assert_problem(wrong_agency, 404, "certificate_not_found")

    deleted = await api.http.delete(f"/v1/agencies/{code}/certificates/{certificate_id}", headers=await api.admin())
    assert deleted.status_code == 204
    assert (await api.http.get(f"/v1/agencies/{code}/certificates", headers=await api.admin())).json() == []
    again = await api.http.delete(f"/v1/agencies/{code}/certificates/{certificate_id}", headers=await api.admin())
    assert_problem(again, 404, "certificate_not_found")
    assert [h["action"] for h in await history_of(api, code)][-2:] == ["certificate_added", "certificate_removed"]
    # once removed, the same certificate may be registered again
    assert await upload_certificate(api, code, cert) != certificate_id


async def test_agencies_list_certificates_but_only_the_admin_changes_them(api: Api) -> None:
    agency = await api.agency_client()
    cert, _ = make_certificate("Sở Thử")
    certificate_id = await upload_certificate(api, agency.agency_code, cert)
    other, _ = make_certificate("Sở Giả")
    refused = await api.http.post(
        f"/v1/agencies/{agency.agency_code}/certificates",
        json={"kind": "seal", "certificate": other.public_bytes(serialization.Encoding.PEM).decode()},
        headers=agency.auth,
    )
    assert_problem(refused, 403, "forbidden")
    removal = await api.http.delete(
        f"/v1/agencies/{agency.agency_code}/certificates/{certificate_id}", headers=agency.auth
    )
    assert_problem(removal, 403, "forbidden")

    reader = await api.agency_client()
    listed = await api.http.get(f"/v1/agencies/{agency.agency_code}/certificates", headers=reader.auth)
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()] == [certificate_id]
