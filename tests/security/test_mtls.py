"""Mutual TLS for agency systems (RFC 8705), over a real TLS connection: the gateway of an embedded
system served by uvicorn with the project's HTTP protocol (shared/httpserver.py) on HTTPS, asking
for client certificates from a test CA; httpx presents them. A certificate registered for a client
gets it a token bound to the certificate; the token works only with it. The header of a
TLS-terminating proxy is believed from the configured proxy addresses only."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import quote

import httpx
import jwt
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.mtls import thumbprint
from shared.httpserver import PROTOCOL
from tests.conftest import free_port, running_system
from tests.helpers import Api, Client, assert_problem

PROXY = "10.9.9.9"  # the address of the trusted TLS-terminating proxy (in-process calls)


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    cert_file: Path
    key_file: Path

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.cert.public_bytes(serialization.Encoding.DER))


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


class Authority:
    """A certificate authority of the test's own, and the certificates it issues (files in ``directory``)."""

    def __init__(self, directory: Path, name: str = "LienThong test CA") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.file = directory / f"{name.replace(' ', '-')}.pem"
        self.file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, *, server: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))]),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        else:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_file, key_file = self.directory / f"{common_name}.crt", self.directory / f"{common_name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return Issued(cert, cert_file, key_file)


@dataclass
class Tls:
    api: Api
    url: str
    ca: Authority
    server: Issued
    system_cert: Issued  # registered for the client
    other_cert: Issued  # from the same CA, registered for nobody
    rogue_cert: Issued  # from another CA
    client: Client

    def https(self, cert: Issued | None = None) -> httpx.AsyncClient:
        context = ssl.create_default_context(cafile=str(self.ca.file))
        if cert is not None:
            context.load_cert_chain(str(cert.cert_file), str(cert.key_file))
        return httpx.AsyncClient(base_url=self.url, verify=context, timeout=10)


@pytest.fixture(scope="module")
async def tls(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Tls]:
    """The system (SQLite) with its gateway also served over HTTPS by uvicorn on a free port,
    asking for client certificates of the test CA; an agency client with a registered certificate."""
    directory = tmp_path_factory.mktemp("mtls")
    rogue_directory = tmp_path_factory.mktemp("rogue-ca")
    ca = Authority(directory)
    server_cert = ca.issue("gateway.test", server=True)
    gateway = {
        "tls_cert_file": str(server_cert.cert_file),
        "tls_key_file": str(server_cert.key_file),
        "tls_client_ca_file": str(ca.file),
        "client_cert_header": "X-Client-Cert",
        "trusted_proxies": [f"{PROXY}/32"],
    }
    async with running_system(directory / "var", gateway=gateway) as api:
        from services.cli import _tls_options

        port = free_port()
        config = uvicorn.Config(
            api.app, host="127.0.0.1", port=port, http=PROTOCOL, lifespan="off", log_config=None,
            **_tls_options(api.settings),
        )  # fmt: skip
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                assert not serving.done(), "the HTTPS server did not start"
                await asyncio.sleep(0.02)
            client = await api.agency_client()
            system_cert = ca.issue("agency-system")
            response = await api.http.post(
                f"/v1/clients/{client.client_id}/certificates",
                json={"certificate": system_cert.pem},
                headers=await api.admin(),
            )
            assert response.status_code == 201, response.text
            assert response.json()["thumbprint"] == system_cert.thumbprint
            yield Tls(
                api,
                f"https://127.0.0.1:{port}",
                ca,
                server_cert,
                system_cert,
                ca.issue("unregistered-system"),
                Authority(rogue_directory, "Rogue CA").issue("rogue-system"),
                client,
            )
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, 10)


def token_form(client_id: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client_id}


async def test_the_registered_certificate_gets_a_token_bound_to_it(tls: Tls) -> None:
    async with tls.https(tls.system_cert) as https:
        response = await https.post("/v1/auth/token", data=token_form(tls.client.client_id))
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        assert response.json()["agency_code"] == tls.client.agency_code
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["cnf"] == {"x5t#S256": tls.system_cert.thumbprint}
        assert claims["sub"] == tls.client.client_id
        # the token works over a connection presenting the certificate
        sent = await https.get("/v1/documents", params={"box": "sent"}, headers={"Authorization": f"Bearer {token}"})
        assert sent.status_code == 200, sent.text
    # and not without it: over TLS without a client certificate, or with another one
    async with tls.https() as anonymous:
        bearer = {"Authorization": f"Bearer {token}"}
        refused = await anonymous.get("/v1/documents", params={"box": "sent"}, headers=bearer)
        assert_problem(refused, 401, "token_certificate_mismatch")
    async with tls.https(tls.other_cert) as other:
        refused = await other.get("/v1/documents", params={"box": "sent"}, headers=bearer)
        assert_problem(refused, 401, "token_certificate_mismatch")
    refused = await tls.api.http.get("/v1/documents", headers={"Authorization": f"Bearer {token}"})  # no TLS at all
    assert_problem(refused, 401, "token_certificate_mismatch")


async def test_a_certificate_identifies_only_the_client_it_is_registered_for(tls: Tls) -> None:
    another = await tls.api.agency_client()
    async with tls.https(tls.system_cert) as https:
        response = await https.post("/v1/auth/token", data=token_form(another.client_id))
        assert_problem(response, 401, "invalid_client")
    async with tls.https(tls.other_cert) as https:  # the right CA, but registered for nobody
        response = await https.post("/v1/auth/token", data=token_form(tls.client.client_id))
        assert_problem(response, 401, "invalid_client")
    async with tls.https() as https:  # no certificate, no secret
        response = await https.post("/v1/auth/token", data=token_form(tls.client.client_id))
        assert_problem(response, 401, "invalid_client")


async def test_a_certificate_from_another_ca_fails_the_handshake(tls: Tls) -> None:
    async with tls.https(tls.rogue_cert) as https:
        with pytest.raises(httpx.TransportError):
            await https.post("/v1/auth/token", data=token_form(tls.client.client_id))


async def test_a_secret_still_works_over_tls_and_its_token_is_not_bound(tls: Tls) -> None:
    async with tls.https(tls.system_cert) as https:
        form = {**token_form(tls.client.client_id), "client_secret": tls.client.client_secret}
        response = await https.post("/v1/auth/token", data=form)
        assert response.status_code == 200, response.text
        assert "cnf" not in jwt.decode(response.json()["access_token"], options={"verify_signature": False})


async def test_the_proxy_header_is_believed_from_the_trusted_proxy_only(tls: Tls) -> None:
    assert tls.api.app is not None
    pem_header = {"X-Client-Cert": quote(tls.system_cert.pem)}  # nginx $ssl_client_escaped_cert
    der = tls.system_cert.cert.public_bytes(serialization.Encoding.DER)
    rfc9440_header = {"X-Client-Cert": ":" + base64.b64encode(der).decode() + ":"}
    form = token_form(tls.client.client_id)
    # from anyone else (here 127.0.0.1), the header is ignored: no certificate, no secret
    refused = await tls.api.http.post("/v1/auth/token", data=form, headers=pem_header)
    assert_problem(refused, 401, "invalid_client")
    proxy = httpx.ASGITransport(app=tls.api.app, client=(PROXY, 40000))
    async with httpx.AsyncClient(transport=proxy, base_url="http://gateway") as behind_proxy:
        for header in (pem_header, rfc9440_header):
            response = await behind_proxy.post("/v1/auth/token", data=form, headers=header)
            assert response.status_code == 200, response.text
            token = response.json()["access_token"]
            claims = jwt.decode(token, options={"verify_signature": False})
            assert claims["cnf"] == {"x5t#S256": tls.system_cert.thumbprint}
            auth = {"Authorization": f"Bearer {token}", **header}
            assert (await behind_proxy.get("/v1/documents", params={"box": "sent"}, headers=auth)).status_code == 200
        garbage = await behind_proxy.post("/v1/auth/token", data=form, headers={"X-Client-Cert": "not a certificate"})
        assert_problem(garbage, 401, "invalid_client")


async def test_registering_and_removing_client_certificates(tls: Tls) -> None:
    api = tls.api
    admin = await api.admin()
    client = await api.agency_client()
    path = f"/v1/clients/{client.client_id}/certificates"
    cert = tls.ca.issue(f"system-{client.client_id}")
    assert (await api.http.post(path, json={"certificate": cert.pem}, headers=admin)).status_code == 201
    again = await api.http.post(path, json={"certificate": cert.pem}, headers=admin)
    assert_problem(again, 409, "client_certificate_exists")
    elsewhere = await api.http.post(
        f"/v1/clients/{tls.client.client_id}/certificates", json={"certificate": cert.pem}, headers=admin
    )
    assert_problem(elsewhere, 409, "client_certificate_exists")
    garbage = await api.http.post(path, json={"certificate": "not a certificate"}, headers=admin)
    assert_problem(garbage, 422, "certificate_invalid")
    by_agency = await api.http.post(path, json={"certificate": cert.pem}, headers=client.auth)
    assert_problem(by_agency, 403, "forbidden")
    listed = await api.http.get(path, headers=client.auth)  # the agency sees its own client's
    assert [c["thumbprint"] for c in listed.json()] == [cert.thumbprint]
    async with tls.https(cert) as https:
        assert (await https.post("/v1/auth/token", data=token_form(client.client_id))).status_code == 200
        removed = await api.http.delete(f"{path}/{cert.thumbprint}", headers=admin)
        assert removed.status_code == 204
        refused = await https.post("/v1/auth/token", data=token_form(client.client_id))
        assert_problem(refused, 401, "invalid_client")
    gone = await api.http.delete(f"{path}/{cert.thumbprint}", headers=admin)
    assert_problem(gone, 404, "client_certificate_not_found")
