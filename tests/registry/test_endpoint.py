"""Delivery endpoints: pull by default, push with its secret shown once, refused endpoints, who sets
them, their history."""

from __future__ import annotations

import json

from tests.helpers import (
    Api,
    assert_problem,
    history_of,
)

# --- delivery endpoints ----------------------------------------------------------------------


async def test_delivery_endpoint_defaults_to_pull_and_push_shows_its_secret_once(api: Api) -> None:
    agency = await api.create_agency(new_code="H41")
    code = agency["code"]
    default = await api.http.get(f"/v1/agencies/{code}/endpoint", headers=await api.admin())
    assert default.status_code == 200, default.text
    assert default.json() == {
        "agency_code": code,
        "mode": "pull",
        "webhook_url": None,
        "has_webhook_secret": False,
        "amqp_queue": None,
        "updated_at": None,
    }

    url = "https://qlvb.example.gov.vn/lienthong/webhook"
    pushed = await api.http.put(
        f"/v1/agencies/{code}/endpoint", json={"mode": "push", "webhook_url": url}, headers=await api.admin()
    )
    assert pushed.status_code == 200, pushed.text
    body = pushed.json()
    assert body["mode"] == "push" and body["webhook_url"] == url and body["has_webhook_secret"] is True
    assert isinstance(body["webhook_secret"], str) and len(body["webhook_secret"]) >= 32

    shown = await api.http.get("/v1/agencies/H41/endpoint", headers=await api.admin())
    assert shown.json()["has_webhook_secret"] is True
    assert shown.json()["webhook_url"] == url
    assert "webhook_secret" not in shown.json()
    assert body["webhook_secret"] not in shown.text

    entry = (await history_of(api, code))[-1]
    assert entry["action"] == "endpoint"
    assert entry["actor"] == api.settings.registry.admin_client_id
    assert entry["changes"]["after"] == {"mode": "push", "webhook_url": url, "amqp_queue": None}
    assert body["webhook_secret"] not in json.dumps(entry)

    local = await api.http.put(
        f"/v1/agencies/{code}/endpoint",
        json={"mode": "push", "webhook_url": "http://localhost:8080/hook", "webhook_secret": "s" * 32},
        headers=await api.admin(),
    )
    assert local.status_code == 200, local.text
    assert local.json()["webhook_secret"] is None  # given, not generated: not echoed
    assert local.json()["has_webhook_secret"] is True

    amqp = await api.http.put(
        f"/v1/agencies/{code}/endpoint",
        json={"mode": "amqp", "amqp_queue": "qlvb.h41.inbox"},
        headers=await api.admin(),
    )
    assert amqp.status_code == 200, amqp.text
    assert amqp.json()["mode"] == "amqp" and amqp.json()["amqp_queue"] == "qlvb.h41.inbox"
    assert amqp.json()["has_webhook_secret"] is False and amqp.json()["webhook_secret"] is None
    assert amqp.json()["webhook_url"] is None


async def test_invalid_delivery_endpoints_are_refused(api: Api) -> None:
    code = (await api.create_agency())["code"]
    url = "https://qlvb.example.gov.vn/hook"
    set_up = await api.http.put(
        f"/v1/agencies/{code}/endpoint", json={"mode": "push", "webhook_url": url}, headers=await api.admin()
    )
    assert set_up.status_code == 200
    before = (await api.http.get(f"/v1/agencies/{code}/endpoint", headers=await api.admin())).json()
    history = await history_of(api, code)

    for body in [
        {"mode": "push"},
        {"mode": "push", "webhook_url": "http://example.org/hook"},
        {"mode": "push", "webhook_url": "ftp://example.org/hook"},
        {"mode": "push", "webhook_url": url, "webhook_secret": "short"},
        {"mode": "amqp"},
        {"mode": "amqp", "amqp_queue": "bad queue name"},
        {"mode": "pull", "webhook_url": url},
        {"mode": "pull", "amqp_queue": "q"},
        {"mode": "email"},
    ]:
        response = await api.http.put(f"/v1/agencies/{code}/endpoint", json=body, headers=await api.admin())
        assert response.status_code == 422, (body, response.text)
        assert response.json()["code"] == "validation_failed"
    assert (await api.http.get(f"/v1/agencies/{code}/endpoint", headers=await api.admin())).json() == before
    assert await history_of(api, code) == history


async def test_an_agency_sets_its_own_endpoint_only(api: Api) -> None:
    own = await api.agency_client()
    other = await api.agency_client()
    url = "https://van-thu.example.gov.vn/hook"
    response = await api.http.put(
        f"/v1/agencies/{own.agency_code}/endpoint", json={"mode": "push", "webhook_url": url}, headers=own.auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["webhook_secret"]
    mine = await api.http.get(f"/v1/agencies/{own.agency_code}/endpoint", headers=own.auth)
    assert mine.json()["mode"] == "push"
    entry = (await history_of(api, own.agency_code))[-1]
    assert entry["action"] == "endpoint" and entry["actor"] == own.client_id

    before = (await api.http.get(f"/v1/agencies/{own.agency_code}/endpoint", headers=await api.admin())).json()
    refused = await api.http.put(
        f"/v1/agencies/{own.agency_code}/endpoint",
        json={"mode": "amqp", "amqp_queue": "steal"},
        headers=other.auth,
    )
    assert_problem(refused, 403, "forbidden")
    assert_problem(await api.http.get(f"/v1/agencies/{own.agency_code}/endpoint", headers=other.auth), 403, "forbidden")
    assert (await api.http.get(f"/v1/agencies/{own.agency_code}/endpoint", headers=await api.admin())).json() == before


async def test_endpoint_history_records_the_previous_mode(api: Api) -> None:
    code = (await api.create_agency())["code"]
    url = "https://qlvb.example.gov.vn/hook"
    response = await api.http.put(
        f"/v1/agencies/{code}/endpoint", json={"mode": "push", "webhook_url": url}, headers=await api.admin()
    )
    assert response.status_code == 200, response.text
    entry = (await history_of(api, code))[-1]
    assert entry["changes"]["before"] == {"mode": "pull", "webhook_url": None, "amqp_queue": None}
    assert entry["changes"]["after"] == {"mode": "push", "webhook_url": url, "amqp_queue": None}
