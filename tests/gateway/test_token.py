"""The OAuth2 token endpoint: the client's agency and scopes in the token, bad credentials, grant types,
narrowed scopes, HTTP Basic credentials."""

from __future__ import annotations

import base64

from shared.auth import Scope, TokenVerifier
from tests.helpers import Api, Client, assert_problem

# --- token endpoint --------------------------------------------------------------------------


async def test_token_carries_the_clients_agency_and_scopes(api: Api) -> None:
    client = await api.agency_client()
    response = await api.token(client.client_id, client.client_secret)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == api.settings.gateway.token_ttl_seconds
    assert body["agency_code"] == client.agency_code
    assert sorted(body["scope"].split()) == sorted(Scope.AGENCY_DEFAULT)
    verifier = TokenVerifier(
        api.settings.public_key_file.read_bytes(), api.settings.auth.issuer, api.settings.auth.audience
    )
    principal = verifier.verify(body["access_token"])
    assert (principal.client_id, principal.agency_code) == (client.client_id, client.agency_code)
    assert principal.scopes == frozenset(Scope.AGENCY_DEFAULT)


async def test_admin_token_acts_for_no_agency(api: Api) -> None:
    secret = api.settings.registry.admin_client_secret
    assert secret is not None
    response = await api.token(api.settings.registry.admin_client_id, secret.get_secret_value())
    assert response.status_code == 200
    assert response.json()["agency_code"] is None
    assert Scope.REGISTRY_ADMIN in response.json()["scope"].split()


async def test_bad_credentials_are_invalid_client(api: Api) -> None:
    client = await api.agency_client()
    for client_id, secret in [
        (client.client_id, client.client_secret + "x"),  # wrong secret
        ("lt_" + "0" * 24, client.client_secret),  # unknown client
        (client.client_id, ""),  # no secret
    ]:
        response = await api.http.post(
            "/v1/auth/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )
        body = assert_problem(response, 401, "invalid_client")
        assert body["error"] == "invalid_client"
        assert response.headers["www-authenticate"] == "Bearer"
        assert "access_token" not in body


async def test_unsupported_grant_type(api: Api) -> None:
    client = await api.agency_client()
    response = await api.http.post(
        "/v1/auth/token",
        data={"grant_type": "password", "client_id": client.client_id, "client_secret": client.client_secret},
    )
    body = assert_problem(response, 400, "unsupported_grant_type")
    assert body["error"] == "unsupported_grant_type"


async def test_scope_can_be_narrowed(api: Api) -> None:
    client = await api.agency_client()
    response = await api.token(client.client_id, client.client_secret, scope=Scope.RECEIVE)
    assert response.status_code == 200
    assert response.json()["scope"] == Scope.RECEIVE
    narrowed = Client(client.agency_code, client.client_id, client.client_secret, response.json()["access_token"])
    assert (await api.http.get("/v1/inbox", headers=narrowed.auth)).status_code == 200
    send = await api.send(narrowed, [client.agency_code])
    assert_problem(send, 403, "forbidden")


async def test_ungranted_scope_is_invalid_scope(api: Api) -> None:
    client = await api.agency_client(scopes=[Scope.RECEIVE])
    response = await api.token(client.client_id, client.client_secret, scope=f"{Scope.RECEIVE} {Scope.REGISTRY_ADMIN}")
    body = assert_problem(response, 400, "invalid_scope")
    assert body["error"] == "invalid_scope"
    assert body["granted"] == [Scope.RECEIVE]


async def test_http_basic_credentials_are_accepted(api: Api) -> None:
    client = await api.agency_client()
    basic = base64.b64encode(f"{client.client_id}:{client.client_secret}".encode()).decode()
    response = await api.http.post(
        "/v1/auth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["agency_code"] == client.agency_code


async def test_bad_or_missing_http_basic_credentials_are_invalid_client(api: Api) -> None:
    for headers in [
        {"Authorization": "Basic !!!not-base64!!!"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon-here").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"lt_unknown:secret").decode()},
        {},
    ]:
        response = await api.http.post("/v1/auth/token", data={"grant_type": "client_credentials"}, headers=headers)
        assert_problem(response, 401, "invalid_client")
