"""Input found by fuzzing the API (schemathesis and by hand) that once produced a 500: each now
gets a clear 4xx problem+json and changes nothing."""

from __future__ import annotations

import json

from tests.helpers import Api, assert_problem


async def test_lone_surrogates_in_json_text_are_refused(api: Api) -> None:
    admin = await api.admin()
    body = '{"code": "123.45.67.H89", "name": "\\ud800 Sở", "level": "department"}'
    response = await api.http.post("/v1/agencies", content=body, headers={**admin, "Content-Type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (await api.http.get("/v1/agencies/123.45.67.H89", headers=admin)).status_code == 404


async def test_absurdly_nested_json_is_refused(api: Api) -> None:
    admin = await api.admin()
    deep = "[" * 100_000 + "]" * 100_000
    response = await api.http.post("/v1/agencies/import", params={"format": "json"}, content=deep, headers=admin)
    assert_problem(response, 422, "import_invalid")
    response = await api.http.post(
        "/v1/agencies/lookup", content=deep, headers={**admin, "Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text


async def test_huge_numbers_and_huge_csv_cells_are_refused(api: Api) -> None:
    admin = await api.admin()
    response = await api.http.post(
        "/v1/agencies/import", params={"format": "json"}, content="[" + "9" * 5000 + "]", headers=admin
    )
    assert_problem(response, 422, "import_invalid")
    csv_body = "code,name,level\n000.00.00.H41," + '"' + "x" * 200_000 + '"' + ",province\n"
    response = await api.http.post("/v1/agencies/import", params={"format": "csv"}, content=csv_body, headers=admin)
    assert_problem(response, 422, "import_invalid")


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


async def test_basic_credentials_that_are_not_ascii_are_refused(api: Api) -> None:
    response = await api.http.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic é€".encode()},
    )
    assert_problem(response, 401, "invalid_client")


async def test_non_ascii_header_values_pass_through_the_proxy(api: Api) -> None:
    client = await api.agency_client()
    response = await api.http.get("/v1/inbox", headers={**client.auth, "X-Note": "Sở Nội vụ".encode()})
    assert response.status_code == 200, response.text


async def test_a_tree_thousands_deep_imports_and_exports(api: Api) -> None:
    """No recursion limit in ordering an import or computing depths for an export."""
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
