"""Forged and stale access tokens are refused with 401 problem+json: expired, not yet valid, another
audience, another issuer, an unknown key id, another key, HS256 keyed with the public key,
``alg: none``. Each is sent to the gateway (its credential guard verifies first) and straight to a
service (every service verifies again)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth import Scope
from shared.keyring import load_private_key, thumbprint
from tests.conftest import running_system
from tests.helpers import Api, Client, assert_problem


@pytest.fixture(scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Api, Client]]:
    """One system on SQLite for the module, and an agency client whose token is the template."""
    async with running_system(tmp_path_factory.mktemp("tokens") / "var") as api:
        yield api, await api.agency_client()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def claims(api: Api, client: Client, **changes: Any) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    values: dict[str, Any] = {
        "iss": api.settings.auth.issuer,
        "aud": api.settings.auth.audience,
        "sub": client.client_id,
        "agency": client.agency_code,
        "scope": " ".join(Scope.AGENCY_DEFAULT),
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + dt.timedelta(minutes=10)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    values.update(changes)
    return values


def signing_key(api: Api) -> Ed25519PrivateKey:
    return load_private_key(api.settings.private_key_file.read_bytes())


def sign(api: Api, payload: dict[str, Any], key: Ed25519PrivateKey | None = None, kid: str | None = None) -> str:
    key = key or signing_key(api)
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid or thumbprint(key.public_key())})


async def refused_everywhere(api: Api, token: str, reason: str) -> None:
    """The gateway refuses the token, and so does the service behind it when reached directly; the
    detail says why (``reason``, a fragment of it)."""
    headers = {"Authorization": f"Bearer {token}"}
    response = await api.http.get("/v1/documents", params={"box": "sent"}, headers=headers)
    body = assert_problem(response, 401, "unauthorized")
    assert reason in body["detail"], body
    transport = httpx.ASGITransport(app=_embedded(api, "registry"))
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as registry:
        direct = await registry.get("/v1/agencies", headers=headers)
    assert reason in assert_problem(direct, 401, "unauthorized")["detail"]


def _embedded(api: Api, name: str) -> Any:
    from gateway.runtime import GatewayRuntime
    from shared.runtime import app_runtime

    assert api.app is not None
    return app_runtime(api.app, GatewayRuntime).embedded[name]


async def test_the_template_token_is_accepted(system: tuple[Api, Client]) -> None:
    api, client = system
    token = sign(api, claims(api, client))
    response = await api.http.get("/v1/documents", params={"box": "sent"}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


async def test_expired_token(system: tuple[Api, Client]) -> None:
    api, client = system
    now = int(dt.datetime.now(dt.UTC).timestamp())
    expired = sign(api, claims(api, client, iat=now - 1200, nbf=now - 1200, exp=now - 60))
    await refused_everywhere(api, expired, "expired")


async def test_token_not_yet_valid(system: tuple[Api, Client]) -> None:
    api, client = system
    now = int(dt.datetime.now(dt.UTC).timestamp())
    await refused_everywhere(api, sign(api, claims(api, client, nbf=now + 300, exp=now + 900)), "not yet valid")


async def test_token_for_another_audience(system: tuple[Api, Client]) -> None:
    api, client = system
    await refused_everywhere(api, sign(api, claims(api, client, aud="another-system")), "Audience")


async def test_token_from_another_issuer(system: tuple[Api, Client]) -> None:
    api, client = system
    await refused_everywhere(api, sign(api, claims(api, client, iss="someone-else")), "issuer")


async def test_token_with_an_unknown_kid(system: tuple[Api, Client]) -> None:
    api, client = system
    # the right key, but a key id the ring does not hold
    unknown = sign(api, claims(api, client), kid="no-such-key-" + uuid.uuid4().hex)
    await refused_everywhere(api, unknown, "does not know")


async def test_token_signed_by_another_key(system: tuple[Api, Client]) -> None:
    api, client = system
    other = Ed25519PrivateKey.generate()
    await refused_everywhere(api, sign(api, claims(api, client), key=other), "does not know")  # its own kid: unknown
    real_kid = thumbprint(signing_key(api).public_key())
    await refused_everywhere(api, sign(api, claims(api, client), key=other, kid=real_kid), "Signature")  # the real kid


async def test_token_signed_by_another_key_without_kid(system: tuple[Api, Client]) -> None:
    api, client = system
    forged = jwt.encode(claims(api, client), Ed25519PrivateKey.generate(), algorithm="EdDSA")
    assert "kid" not in jwt.get_unverified_header(forged)
    await refused_everywhere(api, forged, "Signature")


def _hs256(api: Api, payload: dict[str, Any], secret: bytes) -> str:
    kid = thumbprint(signing_key(api).public_key())
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_segment(payload)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


async def test_hs256_keyed_with_the_public_key(system: tuple[Api, Client]) -> None:
    api, client = system
    public_pem = api.settings.public_key_file.read_bytes()
    await refused_everywhere(api, _hs256(api, claims(api, client), public_pem), "must be EdDSA")
    await refused_everywhere(api, _hs256(api, claims(api, client), public_pem.strip()), "must be EdDSA")


async def test_alg_none(system: tuple[Api, Client]) -> None:
    api, client = system
    kid = thumbprint(signing_key(api).public_key())
    for alg in ("none", "None", "NONE"):
        unsigned = f"{_segment({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{_segment(claims(api, client))}."
        await refused_everywhere(api, unsigned, "must be EdDSA")


async def test_a_real_token_names_its_key(system: tuple[Api, Client]) -> None:
    api, client = system
    header = jwt.get_unverified_header(client.token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == thumbprint(signing_key(api).public_key())
