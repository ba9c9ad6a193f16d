"""Input found by fuzzing the API (schemathesis and by hand) that once produced a 500: each now
gets a clear 4xx problem+json and changes nothing."""

from __future__ import annotations

import json

from tests.conftest import ONE_DATABASE
from tests.helpers import Api, assert_problem


@ONE_DATABASE
async def test_lone_surrogates_in_json_text_are_refused(api: Api) -> None:
    admin = await api.admin()
    body = '{"code": "123.45.67.H89", "name": "\\ud800 Sở", "level": "department"}'
    response = await api.http.post("/v1/agencies", content=body, headers={**admin, "Content-Type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (await api.http.get("/v1/agencies/123.45.67.H89", headers=admin)).status_code == 404


@ONE_DATABASE
async def test_absurdly_nested_json_is_refused(api: Api) -> None:
    admin = await api.admin()
    deep = "[" * 100_000 + "]" * 100_000
    response = await api.http.post("/v1/agencies/import", params={"format": "json"}, content=deep, headers=admin)
    assert_problem(response, 422, "import_invalid")
    response = await api.http.post(
        "/v1/agencies/lookup", content=deep, headers={**admin, "Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text


@ONE_DATABASE
async def test_huge_numbers_and_huge_csv_cells_are_refused(api: Api) -> None:
    admin = await api.admin()
    response = await api.http.post(
        "/v1/agencies/import", params={"format": "json"}, content="[" + "9" * 5000 + "]", headers=admin
    )
    assert_problem(response, 422, "import_invalid")
    csv_body = "code,name,level\n000.00.00.H41," + '"' + "x" * 200_000 + '"' + ",province\n"
    response = await api.http.post("/v1/agencies/import", params={"format": "csv"}, content=csv_body, headers=admin)
    assert_problem(response, 422, "import_invalid")


@ONE_DATABASE
async def test_document_metadata_that_json_cannot_read_is_refused(api: Api) -> None:
    sender = await api.agency_client()
    recipient = await api.agency_client()
    for raw in ("[" * 100_000, '{"code_number": ' + "1" * 5000 + "}"):
        response = await api.http.post(
            "/v1/documents",
            data={"metadata": raw},
            files={"files": ("a.pdf", b"%PDF-1.7\n", "application/pdf")},
            headers=sender.auth,
        )
        assert_problem(response, 422, "metadata_invalid")
    inbox = await api.http.get("/v1/inbox", headers=recipient.auth)
    assert inbox.json()["items"] == []


@ONE_DATABASE
async def test_basic_credentials_that_are_not_ascii_are_refused(api: Api) -> None:
    response = await api.http.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic é€".encode()},
    )
    assert_problem(response, 401, "invalid_client")


@ONE_DATABASE
async def test_non_ascii_header_values_pass_through_the_proxy(api: Api) -> None:
    client = await api.agency_client()
    response = await api.http.get("/v1/inbox", headers={**client.auth, "X-Note": "Sở Nội vụ".encode()})
    assert response.status_code == 200, response.text


@ONE_DATABASE  # the recursion would be Python's
async def test_a_tree_thousands_deep_imports_and_exports(api: Api) -> None:
    """No recursion limit in ordering an import or computing depths for an export (on one database:
    the ordering and the depths are the registry's Python, not SQL)."""
    admin = await api.admin()
    rows = [{"code": "900.00.00.T01", "name": "Gốc", "level": "other"}]
    for n in range(1, 1200):
        rows.append(
            {
                "code": f"9{n // 10000:02d}.{n // 100 % 100:02d}.{n % 100:02d}.T02",
                "name": f"Cấp {n}",
                "level": "other",
                "parent_code": rows[-1]["code"],
            }
        )
    rows.reverse()  # children first: the import must order them
    response = await api.http.post(
        "/v1/agencies/import", params={"format": "json"}, content=json.dumps(rows), headers=admin
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["created"]) == 1200
    exported = await api.http.get("/v1/agencies/export", params={"format": "json"}, headers=admin)
    assert exported.status_code == 200
    codes = [a["code"] for a in exported.json()["agencies"]]
    assert codes.index("900.00.00.T01") < codes.index(rows[0]["code"])


@ONE_DATABASE
async def test_paths_that_change_meaning_once_decoded_never_reach_a_service(api: Api) -> None:
    client = await api.agency_client()
    for path in ("/v1/agencies/%01", "/v1/agencies/%00", "/v1/agencies/%7F"):
        assert_problem(await api.http.get(path, headers=client.auth), 404, "route_not_found")
    # %2F would turn one segment into two: /v1/agencies/{code}/history
    response = await api.http.get(f"/v1/agencies/{client.agency_code}%2Fhistory", headers=client.auth)
    assert_problem(response, 404, "route_not_found")


async def test_nul_bytes_and_surrogates_in_text_are_refused_everywhere(api: Api) -> None:
    admin = await api.admin()
    agency = await api.create_agency()
    for body in ('{"name": "S\\u1edf\\u0000 N\\u1ed9i v\\u1ee5"}', '{"address": "s\\u1ed1 1\\ud800"}'):
        response = await api.http.patch(
            f"/v1/agencies/{agency['code']}", content=body, headers={**admin, "Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert (await api.http.get(f"/v1/agencies/{agency['code']}", headers=admin)).json()["name"] == agency["name"]
    for params in ({"q": "a\x00b"}, {"level": "a\x00"}):
        response = await api.http.get("/v1/agencies", params=params, headers=admin)
        assert 200 <= response.status_code < 500, response.text  # a filter that matches nothing, or a 4xx
    token = await api.token("a\x00b", "secret")
    assert_problem(token, 401, "invalid_client")


async def test_an_idempotency_key_reused_for_other_metadata_is_refused(api: Api) -> None:
    sender = await api.agency_client()
    recipient = await api.agency_client()
    first = await api.send(sender, [recipient.agency_code], headers={"Idempotency-Key": "k-1"}, code_number="7")
    assert first.status_code == 202, first.text
    other = await api.send(sender, [recipient.agency_code], headers={"Idempotency-Key": "k-1"}, code_number="8")
    body = assert_problem(other, 422, "idempotency_key_reused")
    assert body["document_id"] == first.json()["id"]
    inbox = await api.http.get("/v1/inbox", headers=recipient.auth)
    assert len(inbox.json()["items"]) == 1


async def test_csv_export_defuses_formulas_and_reimports_unchanged(api: Api) -> None:
    admin = await api.admin()
    agency = await api.create_agency(name='=HYPERLINK("http://x")', phone="+84 238 3844 000")
    exported = await api.http.get("/v1/agencies/export", params={"format": "csv"}, headers=admin)
    line = next(row for row in exported.text.splitlines() if row.startswith(agency["code"]))
    assert "'=HYPERLINK" in line and "'+84 238" in line
    again = await api.http.post(
        "/v1/agencies/import", params={"format": "csv"}, content=exported.text.encode(), headers=admin
    )
    assert again.status_code == 200, again.text
    assert agency["code"] not in [u["code"] for u in again.json()["updated"]]
    assert (await api.http.get(f"/v1/agencies/{agency['code']}", headers=admin)).json()["phone"] == "+84 238 3844 000"


@ONE_DATABASE
async def test_blank_or_repeated_scopes_ask_for_nothing_odd(api: Api) -> None:
    client = await api.agency_client()
    blank = await api.token(client.client_id, client.client_secret, scope=" ")
    assert blank.status_code == 200 and set(blank.json()["scope"].split()) == {
        "documents:send",
        "documents:receive",
        "archive:search",
    }
    repeated = await api.token(client.client_id, client.client_secret, scope="documents:send documents:send")
    assert repeated.json()["scope"] == "documents:send"


@ONE_DATABASE
async def test_recalling_from_an_empty_list_of_recipients_is_invalid(api: Api) -> None:
    sender = await api.agency_client()
    recipient = await api.agency_client()
    sent = await api.send(sender, [recipient.agency_code])
    response = await api.http.post(
        f"/v1/documents/{sent.json()['id']}/recall", json={"reason": "x", "recipients": []}, headers=sender.auth
    )
    assert_problem(response, 422, "validation_failed")
