"""The registry's API clients: the secret shown once, scopes, several clients per agency, rotation and
revocation, who sees and changes them."""

from __future__ import annotations

import datetime as dt

from shared.auth import Scope
from tests.helpers import Api, assert_problem, client_ids, random_code

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


# --- API clients -----------------------------------------------------------------------------


async def test_several_clients_per_agency_with_their_own_scopes(api: Api) -> None:
    code = (await api.create_agency())["code"]
    sender = await api.agency_client(code, scopes=[Scope.SEND])
    receiver = await api.agency_client(code, scopes=[Scope.RECEIVE, Scope.SEARCH])
    full = await api.agency_client(code)
    for client, scopes in [
        (sender, [Scope.SEND]),
        (receiver, [Scope.RECEIVE, Scope.SEARCH]),
        (full, list(Scope.AGENCY_DEFAULT)),
    ]:
        token = await api.token(client.client_id, client.client_secret)
        assert token.status_code == 200, token.text
        assert sorted(token.json()["scope"].split()) == sorted(scopes)
        assert token.json()["agency_code"] == code

    listed = await api.http.get(f"/v1/agencies/{code}/clients", headers=await api.admin())
    assert [c["client_id"] for c in listed.json()] == [sender.client_id, receiver.client_id, full.client_id]
    assert all("client_secret" not in c for c in listed.json())
    assert_problem(await api.http.get("/v1/inbox", headers=sender.auth), 403, "forbidden")
    assert (await api.http.get("/v1/inbox", headers=receiver.auth)).status_code == 200


async def test_rotation_with_overlap_keeps_the_old_secret_working(api: Api) -> None:
    client = await api.agency_client()
    before = dt.datetime.now(dt.UTC)
    rotated = await api.http.post(
        f"/v1/clients/{client.client_id}/rotate", json={"overlap_seconds": 3600}, headers=await api.admin()
    )
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["client_id"] == client.client_id
    assert body["client_secret"] != client.client_secret
    expires = dt.datetime.fromisoformat(body["previous_secrets_expire_at"])
    assert before + dt.timedelta(seconds=3590) <= expires <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3610)

    new = await api.token(client.client_id, body["client_secret"])
    old = await api.token(client.client_id, client.client_secret)
    assert new.status_code == 200, new.text
    assert old.status_code == 200, old.text


async def test_rotation_without_overlap_refuses_the_old_secret_at_once(api: Api) -> None:
    client = await api.agency_client()
    rotated = await api.http.post(
        f"/v1/clients/{client.client_id}/rotate", json={"overlap_seconds": 0}, headers=await api.admin()
    )
    assert rotated.status_code == 200, rotated.text
    assert_problem(await api.token(client.client_id, client.client_secret), 401, "invalid_client")
    new = await api.token(client.client_id, rotated.json()["client_secret"])
    assert new.status_code == 200, new.text

    again = await api.http.post(
        f"/v1/clients/{client.client_id}/rotate", json={"overlap_seconds": 0}, headers=await api.admin()
    )
    assert again.status_code == 200
    assert_problem(await api.token(client.client_id, rotated.json()["client_secret"]), 401, "invalid_client")
    assert (await api.token(client.client_id, again.json()["client_secret"])).status_code == 200

    for overlap in [-1, 30 * 86400 + 1]:
        bad = await api.http.post(
            f"/v1/clients/{client.client_id}/rotate", json={"overlap_seconds": overlap}, headers=await api.admin()
        )
        assert_problem(bad, 422, "validation_failed")
    assert (await api.token(client.client_id, again.json()["client_secret"])).status_code == 200


async def test_revoked_client_gets_no_token(api: Api) -> None:
    client = await api.agency_client()
    sibling = await api.agency_client(client.agency_code)
    revoked = await api.http.post(f"/v1/clients/{client.client_id}/revoke", headers=await api.admin())
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert_problem(await api.token(client.client_id, client.client_secret), 401, "invalid_client")
    rotate = await api.http.post(
        f"/v1/clients/{client.client_id}/rotate", json={"overlap_seconds": 0}, headers=await api.admin()
    )
    assert_problem(rotate, 404, "client_not_found")
    assert_problem(await api.token(client.client_id, client.client_secret), 401, "invalid_client")
    assert (await api.token(sibling.client_id, sibling.client_secret)).status_code == 200
    shown = await api.http.get(f"/v1/clients/{client.client_id}", headers=await api.admin())
    assert shown.json()["revoked_at"] == revoked.json()["revoked_at"]


async def test_clients_are_visible_to_their_agency_and_changed_by_the_admin_only(api: Api) -> None:
    client = await api.agency_client()
    sibling = await api.agency_client(client.agency_code)
    outsider = await api.agency_client()

    for caller in [client, sibling]:
        shown = await api.http.get(f"/v1/clients/{client.client_id}", headers=caller.auth)
        assert shown.status_code == 200, shown.text
        assert shown.json()["client_id"] == client.client_id
        assert shown.json()["agency_code"] == client.agency_code
        assert "client_secret" not in shown.json()
    assert_problem(
        await api.http.get(f"/v1/clients/{client.client_id}", headers=outsider.auth), 404, "client_not_found"
    )

    for caller in [client, outsider]:
        rotate = await api.http.post(
            f"/v1/clients/{client.client_id}/rotate", json={"overlap_seconds": 0}, headers=caller.auth
        )
        assert_problem(rotate, 403, "forbidden")
        revoke = await api.http.post(f"/v1/clients/{client.client_id}/revoke", headers=caller.auth)
        assert_problem(revoke, 403, "forbidden")
    assert (await api.token(client.client_id, client.client_secret)).status_code == 200
    shown = await api.http.get(f"/v1/clients/{client.client_id}", headers=await api.admin())
    assert shown.json()["revoked_at"] is None
