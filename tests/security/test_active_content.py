"""Active content and loose input: downloads never render as our pages, file names and text fields
carry no bidi tricks or terminal escapes, numbers and booleans are not coerced, dates are sane."""

from __future__ import annotations

import datetime as dt
import json

from tests.conftest import ONE_DATABASE
from tests.helpers import Api, assert_problem, metadata

XHTML = b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>'


@ONE_DATABASE
async def test_downloads_are_sandboxed_and_file_names_lose_bidi_controls(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    response = await api.send(
        sender, [recipient.agency_code], files=[("hoa-don-\u202egpj\x1b[31m.xml", XHTML, "application/xhtml+xml")]
    )
    assert response.status_code == 202, response.text
    attachment = response.json()["attachments"][0]
    assert attachment["file_name"] == "hoa-don-gpj.xml"
    download = await api.http.get(
        f"/v1/documents/{response.json()['id']}/attachments/{attachment['id']}", headers=recipient.auth
    )
    assert download.status_code == 200
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-security-policy"] == "sandbox"
    assert download.headers["content-disposition"].startswith("attachment;")


async def test_control_characters_and_escapes_in_text_are_refused(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    admin = await api.admin()
    for subject in ("Báo cáo \x1b[2J\x1b[31mkhẩn", "Báo cáo\u202e gnohk", "Báo cáo \x9b31m", "Báo\x07 cáo"):
        response = await api.send(sender, [recipient.agency_code], subject=subject)
        assert_problem(response, 422, "metadata_invalid")
        agency = {"code": "123.45.67.H88", "name": subject, "level": "department"}
        assert_problem(await api.http.post("/v1/agencies", json=agency, headers=admin), 422, "validation_failed")
    assert (await api.http.get("/v1/inbox", headers=recipient.auth)).json()["items"] == []


@ONE_DATABASE
async def test_tabs_and_line_breaks_stay_allowed(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    response = await api.send(sender, [recipient.agency_code], description="Dòng một\nDòng hai\tcột")
    assert response.status_code == 202, response.text


LOOSE: list[tuple[str, object]] = [
    ("urgency", "2"),
    ("urgency", True),
    ("urgency", 2.0),
    ("steering_type", "1"),
    ("page_count", "3"),
    (
        "relation",
        {"kind": "update", "document_id": "00000000-0000-0000-0000-000000000000", "metadata_changed": "yes"},
    ),
    ("promulgation_date", "0001-01-01"),
    ("promulgation_date", "9999-12-31"),
    ("promulgation_date", (dt.date.today() + dt.timedelta(days=400)).isoformat()),
    ("due_date", "9999-12-31"),
]


@ONE_DATABASE
async def test_loose_numbers_booleans_and_insane_dates_are_refused(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    for field, value in LOOSE:
        response = await api.http.post(
            "/v1/documents",
            data={"metadata": json.dumps(metadata([recipient.agency_code], **{field: value}))},
            files={"files": ("a.pdf", b"%PDF-1.7\n", "application/pdf")},
            headers=sender.auth,
        )
        body = assert_problem(response, 422, "metadata_invalid")
        assert field in json.dumps(body), (field, value)
    assert (await api.http.get("/v1/inbox", headers=recipient.auth)).json()["items"] == []


@ONE_DATABASE
async def test_registry_numbers_are_strict(api: Api) -> None:
    admin = await api.admin()
    response = await api.http.post(
        "/v1/agency-levels", json={"code": "ward", "name": "Phường", "rank": "5"}, headers=admin
    )
    assert_problem(response, 422, "validation_failed")
    assert "rank" in response.text
    client = await api.agency_client()
    response = await api.http.post(
        f"/v1/clients/{client.client_id}/rotate", json={"overlap_seconds": "60"}, headers=admin
    )
    assert_problem(response, 422, "validation_failed")
