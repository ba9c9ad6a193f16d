"""Who may do and change what in the registry: an agency token gets 403 on every admin write, a bad
token 401."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from shared.auth import Scope, TokenIssuer, generate_keypair
from tests.helpers import (
    Api,
    agency_codes,
    assert_problem,
    client_ids,
    create_group,
    make_certificate,
    random_code,
    to_csv,
    upload_certificate,
)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def snapshot(api: Api, codes: list[str]) -> dict[str, Any]:
    """Everything the authorization test's refused writes could have changed."""
    admin = await api.admin()

    async def read(path: str, **params: Any) -> Any:
        response = await api.http.get(path, params=params, headers=admin)
        assert response.status_code == 200, (path, response.text)
        return response.json()

    state: dict[str, Any] = {
        "agencies": await read("/v1/agencies", limit=500),
        "levels": await read("/v1/agency-levels"),
        "groups": await read("/v1/groups"),
    }
    for code in codes:
        state[code] = {
            "history": await read(f"/v1/agencies/{code}/history"),
            "endpoint": await read(f"/v1/agencies/{code}/endpoint"),
            "certificates": await read(f"/v1/agencies/{code}/certificates"),
            "clients": await read(f"/v1/agencies/{code}/clients"),
        }
    return state


# --- who may do what -------------------------------------------------------------------------


async def test_agency_token_cannot_create_agencies_or_clients(api: Api) -> None:
    agency = await api.agency_client()
    new_code = random_code()
    response = await api.http.post(
        "/v1/agencies", json={"code": new_code, "name": "Sở giả", "level": "department"}, headers=agency.auth
    )
    body = assert_problem(response, 403, "forbidden")
    assert body["required_scope"] == Scope.REGISTRY_ADMIN

    response = await api.http.post(
        f"/v1/agencies/{agency.agency_code}/clients", json={"name": "x"}, headers=agency.auth
    )
    assert_problem(response, 403, "forbidden")

    assert await agency_codes(api) == [agency.agency_code]
    assert await client_ids(api, agency.agency_code) == [agency.client_id]


async def test_without_a_valid_token_the_answer_is_401(api: Api) -> None:
    for headers in [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}]:
        listing = await api.http.get("/v1/agencies", headers=headers)
        assert_problem(listing, 401, "unauthorized")
        assert listing.headers["www-authenticate"] == "Bearer"

        create = await api.http.post(
            "/v1/agencies", json={"code": random_code(), "name": "Sở", "level": "department"}, headers=headers
        )
        assert_problem(create, 401, "unauthorized")
    assert await agency_codes(api) == []


async def test_token_from_another_key_is_refused(api: Api, tmp_path: Path) -> None:
    private, _ = generate_keypair(tmp_path / "rogue")
    forged = TokenIssuer(private.read_bytes(), api.settings.auth.issuer, api.settings.auth.audience, 60).issue(
        "admin", None, [Scope.REGISTRY_ADMIN]
    )
    response = await api.http.post(
        "/v1/agencies", json={"code": random_code(), "name": "Sở", "level": "department"}, headers=auth(forged)
    )
    assert_problem(response, 401, "unauthorized")
    assert await agency_codes(api) == []


# --- who may change what ---------------------------------------------------------------------


async def test_an_agency_token_gets_403_on_every_write(api: Api) -> None:
    agency = await api.agency_client()
    other = await api.agency_client()
    code, other_code = agency.agency_code, other.agency_code
    await create_group(api, "kept", members=[other_code])
    cert, _ = make_certificate("Sở Thử")
    certificate_id = await upload_certificate(api, code, cert)
    second, _ = make_certificate("Sở Khác")
    before = await snapshot(api, [code, other_code])

    writes: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/agencies", {"json": {"code": random_code(), "name": "Sở Giả", "level": "department"}}),
        ("PATCH", f"/v1/agencies/{code}", {"json": {"name": "Tự đổi tên"}}),
        ("PATCH", f"/v1/agencies/{other_code}", {"json": {"parent_code": code}}),
        ("POST", f"/v1/agencies/{other_code}/status", {"json": {"status": "suspended", "reason": "x"}}),
        ("POST", f"/v1/agencies/{code}/status", {"json": {"status": "retired", "successor_code": other_code}}),
        ("POST", "/v1/agency-levels", {"json": {"code": "hamlet", "name": "Xóm"}}),
        ("POST", "/v1/groups", {"json": {"name": "mine", "title": "Của tôi", "members": [code]}}),
        ("PUT", "/v1/groups/kept", {"json": {"title": "Đổi", "members": [code]}}),
        ("DELETE", "/v1/groups/kept", {}),
        (
            "POST",
            f"/v1/agencies/{code}/certificates",
            {"json": {"kind": "seal", "certificate": second.public_bytes(serialization.Encoding.PEM).decode()}},
        ),
        ("DELETE", f"/v1/agencies/{code}/certificates/{certificate_id}", {}),
        ("POST", "/v1/agencies/import", {"content": to_csv([{"code": random_code(), "name": "X", "level": "other"}])}),
        ("GET", "/v1/agencies/export", {"params": {"format": "json"}}),
        ("POST", f"/v1/agencies/{code}/clients", {"json": {"name": "Hệ thống phụ"}}),
        ("POST", f"/v1/clients/{agency.client_id}/rotate", {"json": {"overlap_seconds": 0}}),
        ("POST", f"/v1/clients/{other.client_id}/rotate", {"json": {"overlap_seconds": 0}}),
        ("POST", f"/v1/clients/{other.client_id}/revoke", {}),
        ("PUT", f"/v1/agencies/{other_code}/endpoint", {"json": {"mode": "amqp", "amqp_queue": "steal"}}),
    ]
    for method, path, kwargs in writes:
        response = await api.http.request(method, path, headers=agency.auth, **kwargs)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "forbidden", (method, path)

    assert await snapshot(api, [code, other_code]) == before
    assert (await api.token(agency.client_id, agency.client_secret)).status_code == 200
    assert (await api.token(other.client_id, other.client_secret)).status_code == 200
