"""The registry through the gateway: agencies, API clients, the OAuth2 token endpoint."""

from __future__ import annotations

import base64
import datetime as dt
import unicodedata
from pathlib import Path
from typing import Any

from shared.auth import Scope, TokenIssuer, TokenVerifier, generate_keypair
from tests.helpers import Api, Client, assert_problem, race, random_code


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def agency_codes(api: Api, **params: Any) -> list[str]:
    response = await api.http.get("/v1/agencies", params={"limit": 500, **params}, headers=await api.admin())
    assert response.status_code == 200, response.text
    return [a["code"] for a in response.json()["items"]]


async def client_ids(api: Api, code: str) -> list[str]:
    response = await api.http.get(f"/v1/agencies/{code}/clients", headers=await api.admin())
    assert response.status_code == 200, response.text
    return [c["client_id"] for c in response.json()]


# --- agencies --------------------------------------------------------------------------------


async def test_admin_creates_an_agency(api: Api) -> None:
    parent = await api.create_agency(level="province")
    code = random_code()
    body = {
        "code": f"  {code.lower()} ",
        "name": unicodedata.normalize("NFD", " Sở Thông tin và Truyền thông "),
        "short_name": "Sở TT&TT",
        "level": "department",
        "parent_code": parent["code"],
        "email": "stttt@nghean.gov.vn",
        "phone": "0238 3 123 456",
        "address": "16 Trường Thi, TP Vinh",
    }
    response = await api.http.post("/v1/agencies", json=body, headers=await api.admin())
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["code"] == code
    assert created["name"] == "Sở Thông tin và Truyền thông"
    assert unicodedata.is_normalized("NFC", created["name"])
    assert created["parent_code"] == parent["code"]
    assert created["status"] == "active"
    assert {k: created[k] for k in ("short_name", "level", "email", "phone", "address")} == {
        k: body[k] for k in ("short_name", "level", "email", "phone", "address")
    }
    assert dt.datetime.fromisoformat(created["created_at"]).tzinfo is not None

    fetched = await api.http.get(f"/v1/agencies/{code.lower()}", headers=await api.admin())
    assert fetched.status_code == 200
    assert fetched.json() == created


async def test_name_limit_counts_nfc_characters(api: Api) -> None:
    name = ("Ủy ban nhân dân huyện Quỳnh Lưu, tỉnh Nghệ An " * 4)[:180].strip()
    assert len(unicodedata.normalize("NFD", name)) > 200
    body = {"code": random_code(), "name": unicodedata.normalize("NFD", name), "level": "department"}
    response = await api.http.post("/v1/agencies", json=body, headers=await api.admin())
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name


async def test_duplicate_code_is_refused_and_the_first_agency_is_kept(api: Api) -> None:
    first = await api.create_agency(name="Sở Nội vụ")
    response = await api.http.post(
        "/v1/agencies",
        json={"code": first["code"].lower(), "name": "Sở khác", "level": "department"},
        headers=await api.admin(),
    )
    body = assert_problem(response, 409, "agency_exists")
    assert body["agency_code"] == first["code"]
    assert await agency_codes(api) == [first["code"]]
    fetched = await api.http.get(f"/v1/agencies/{first['code']}", headers=await api.admin())
    assert fetched.json()["name"] == "Sở Nội vụ"


async def test_concurrent_duplicate_creations_answer_409(api: Api) -> None:
    """All three requests pass the duplicate check before any inserts (see writes_held)."""
    body = {"code": random_code(), "name": "Sở Tài chính", "level": "department"}
    headers = await api.admin()
    calls = [api.http.post("/v1/agencies", json=body, headers=headers) for _ in range(3)]
    statuses = await race(api, "registry", "agency", calls)
    assert sorted(statuses, key=str) == [201, 409, 409]
    assert await agency_codes(api) == [body["code"]]


INVALID_CODES = ["", "000.00.00", "00.00.00.H41", "000.00.00.H4", "000.00.00.H411", "000-00-00-H41", "000.00.00.141"]


async def test_invalid_code_forms_are_refused(api: Api) -> None:
    for code in [*INVALID_CODES, "ABC.00.00.H41"]:
        response = await api.http.post(
            "/v1/agencies", json={"code": code, "name": "Sở", "level": "department"}, headers=await api.admin()
        )
        body = assert_problem(response, 422, "validation_failed")
        assert ["body", "code"] in [e["loc"] for e in body["errors"]], code
    assert await agency_codes(api) == []


async def test_invalid_agency_fields_are_refused(api: Api) -> None:
    for field, value in [
        ("name", "   "),
        ("name", "x" * 201),
        ("level", "Department"),
        ("level", ""),
        ("email", "not-an-email"),
        ("status", "inactive"),  # not a field one may set
    ]:
        body = {"code": random_code(), "name": "Sở Y tế", "level": "department", field: value}
        response = await api.http.post("/v1/agencies", json=body, headers=await api.admin())
        problem = assert_problem(response, 422, "validation_failed")
        assert ["body", field] in [e["loc"] for e in problem["errors"]], (field, value)
    assert await agency_codes(api) == []


async def test_unknown_parent_is_refused_and_nothing_is_created(api: Api) -> None:
    code, parent = random_code(), random_code("X")
    response = await api.http.post(
        "/v1/agencies",
        json={"code": code, "name": "Phòng", "level": "department", "parent_code": parent},
        headers=await api.admin(),
    )
    assert_problem(response, 404, "parent_agency_not_found")
    missing = await api.http.get(f"/v1/agencies/{code}", headers=await api.admin())
    assert_problem(missing, 404, "agency_not_found")


async def test_get_unknown_agency_is_404(api: Api) -> None:
    response = await api.http.get(f"/v1/agencies/{random_code()}", headers=await api.admin())
    body = assert_problem(response, 404, "agency_not_found")
    assert body["instance"].startswith("/v1/agencies/")


async def test_any_agency_may_read_the_directory(api: Api) -> None:
    reader = await api.agency_client()
    other = await api.create_agency()
    response = await api.http.get(f"/v1/agencies/{other['code']}", headers=reader.auth)
    assert response.status_code == 200
    assert response.json()["code"] == other["code"]


async def test_list_children_of_a_parent_page_by_page(api: Api) -> None:
    parent = await api.create_agency(level="province")
    children = sorted([(await api.create_agency(parent_code=parent["code"]))["code"] for _ in range(3)])
    unrelated = await api.create_agency()
    headers = await api.admin()

    first = await api.http.get("/v1/agencies", params={"parent": parent["code"], "limit": 2}, headers=headers)
    assert first.status_code == 200
    page1 = first.json()
    assert [a["code"] for a in page1["items"]] == children[:2]
    assert all(a["parent_code"] == parent["code"] for a in page1["items"])
    assert page1["next_cursor"]

    params = {"parent": parent["code"], "limit": 2, "cursor": page1["next_cursor"]}
    second = await api.http.get("/v1/agencies", params=params, headers=headers)
    page2 = second.json()
    assert [a["code"] for a in page2["items"]] == children[2:]
    assert page2["next_cursor"] is None

    everyone = await agency_codes(api)
    assert everyone == sorted([parent["code"], *children, unrelated["code"]])


async def test_list_by_level(api: Api) -> None:
    province = await api.create_agency(level="province")
    await api.create_agency(level="department")
    assert await agency_codes(api, level="province") == [province["code"]]


async def test_list_with_an_exact_page_has_no_next_cursor(api: Api) -> None:
    codes = sorted([(await api.create_agency())["code"] for _ in range(2)])
    response = await api.http.get("/v1/agencies", params={"limit": 2}, headers=await api.admin())
    assert [a["code"] for a in response.json()["items"]] == codes
    assert response.json()["next_cursor"] is None


async def test_parent_filter_takes_any_spelling_of_a_known_code(api: Api) -> None:
    parent = await api.create_agency(level="province")
    child = await api.create_agency(parent_code=parent["code"])
    assert await agency_codes(api, parent=parent["code"].lower()) == [child["code"]]
    unknown = await api.http.get("/v1/agencies", params={"parent": random_code("Z")}, headers=await api.admin())
    assert_problem(unknown, 404, "agency_not_found")


async def test_bad_list_parameters_are_refused(api: Api) -> None:
    for params, status, code in [
        ({"limit": 0}, 422, "validation_failed"),
        ({"limit": 501}, 422, "validation_failed"),
        ({"cursor": "abc"}, 400, "bad_request"),  # not base64
        ({"cursor": "_w=="}, 400, "bad_request"),  # not UTF-8 once decoded
    ]:
        response = await api.http.get("/v1/agencies", params=params, headers=await api.admin())
        assert_problem(response, status, code)


async def test_lookup_returns_found_and_missing(api: Api) -> None:
    a, b = await api.create_agency(), await api.create_agency()
    unknown = random_code("Z")
    response = await api.http.post(
        "/v1/agencies/lookup",
        json={"codes": [a["code"], b["code"].lower(), unknown, a["code"]]},
        headers=await api.admin(),
    )
    assert response.status_code == 200
    body = response.json()
    assert sorted(x["code"] for x in body["found"]) == sorted([a["code"], b["code"]])
    assert body["missing"] == [unknown]


async def test_lookup_needs_codes_and_a_token(api: Api) -> None:
    empty = await api.http.post("/v1/agencies/lookup", json={"codes": []}, headers=await api.admin())
    assert_problem(empty, 422, "validation_failed")
    anonymous = await api.http.post("/v1/agencies/lookup", json={"codes": [random_code()]})
    assert_problem(anonymous, 401, "unauthorized")


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


# --- API clients -----------------------------------------------------------------------------


async def test_client_secret_is_shown_once(api: Api) -> None:
    agency = await api.create_agency()
    response = await api.http.post(
        f"/v1/agencies/{agency['code']}/clients", json={"name": "Hệ thống QLVB"}, headers=await api.admin()
    )
    assert response.status_code == 201
    created = response.json()
    assert created["client_id"].startswith("lt_")
    assert len(created["client_secret"]) >= 43
    assert created["agency_code"] == agency["code"]
    assert sorted(created["scopes"]) == sorted(Scope.AGENCY_DEFAULT)
    assert created["revoked_at"] is None

    listing = await api.http.get(f"/v1/agencies/{agency['code']}/clients", headers=await api.admin())
    assert listing.status_code == 200
    [listed] = listing.json()
    assert "client_secret" not in listed
    assert created["client_secret"] not in listing.text
    assert listed == {k: v for k, v in created.items() if k != "client_secret"}

    token = await api.token(created["client_id"], created["client_secret"])
    assert token.status_code == 200


async def test_clients_get_the_scopes_asked_for(api: Api) -> None:
    client = await api.agency_client(scopes=[Scope.RECEIVE, Scope.RECEIVE])
    [listed] = (await api.http.get(f"/v1/agencies/{client.agency_code}/clients", headers=await api.admin())).json()
    assert listed["scopes"] == [Scope.RECEIVE]


async def test_unknown_or_internal_scopes_cannot_be_granted(api: Api) -> None:
    agency = await api.create_agency()
    for scopes in [["documents:delete"], [Scope.INTERNAL], [Scope.SEND, "root"]]:
        response = await api.http.post(
            f"/v1/agencies/{agency['code']}/clients", json={"name": "x", "scopes": scopes}, headers=await api.admin()
        )
        assert_problem(response, 422, "validation_failed")
    assert await client_ids(api, agency["code"]) == []


async def test_client_for_unknown_agency_is_404(api: Api) -> None:
    response = await api.http.post(
        f"/v1/agencies/{random_code()}/clients", json={"name": "x"}, headers=await api.admin()
    )
    assert_problem(response, 404, "agency_not_found")


async def test_agency_lists_its_own_clients_but_not_another_agencys(api: Api) -> None:
    mine = await api.agency_client()
    theirs = await api.agency_client()
    own = await api.http.get(f"/v1/agencies/{mine.agency_code.lower()}/clients", headers=mine.auth)
    assert own.status_code == 200
    assert [c["client_id"] for c in own.json()] == [mine.client_id]

    other = await api.http.get(f"/v1/agencies/{theirs.agency_code}/clients", headers=mine.auth)
    body = assert_problem(other, 404, "agency_not_found")
    assert theirs.client_id not in other.text
    assert body["agency_code"] == theirs.agency_code


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
