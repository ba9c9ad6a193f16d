"""The gateway's proxy keeps the services' internal routes out of reach, however the path is spelt."""

from __future__ import annotations

from tests.helpers import Api, assert_problem

# --- the internal credential check -----------------------------------------------------------


async def test_internal_credential_check_is_not_reachable_through_the_gateway(api: Api) -> None:
    client = await api.agency_client()
    credentials = {"client_id": client.client_id, "client_secret": client.client_secret}
    for path, code in [
        ("/internal/v1/credentials/verify", "not_found"),
        ("/v1/internal/v1/credentials/verify", "route_not_found"),
    ]:
        response = await api.http.post(path, json=credentials, headers=client.auth)
        body = assert_problem(response, 404, code)
        assert "scopes" not in body


async def test_encoded_dot_segments_do_not_reach_internal_routes(api: Api) -> None:
    client = await api.agency_client()
    response = await api.http.post(
        "/v1/agencies/%2e%2e/%2e%2e/internal/v1/credentials/verify",
        json={"client_id": client.client_id, "client_secret": client.client_secret},
        headers=client.auth,
    )
    assert response.status_code == 404
    assert not response.json()["instance"].startswith("/internal/")
