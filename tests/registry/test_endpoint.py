"""Delivery endpoints: pull by default, push with its secret shown once, refused endpoints (webhook
URLs the deployment's policy refuses: no SSRF; AMQP without RabbitMQ), who sets them, their history."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AMQP_URL, running_system
from tests.helpers import (
    Api,
    FakeDns,
    assert_problem,
    history_of,
)

LOCAL_WEBHOOKS = {"allow_http": True, "allowed_networks": ["127.0.0.0/8", "::1/128"]}  # as `lienthong dev` sets


@pytest.fixture
async def local_api(database_url: str | None, tmp_path: Path, dns: FakeDns) -> AsyncIterator[Api]:
    """A deployment configured with RabbitMQ that lets webhooks point to this machine."""
    async with running_system(tmp_path / "var", database_url, broker_url=AMQP_URL, webhooks=LOCAL_WEBHOOKS) as caller:
        yield caller


async def endpoint_of(api: Api, code: str) -> dict[str, Any]:
    response = await api.http.get(f"/v1/agencies/{code}/endpoint", headers=await api.admin())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- delivery endpoints ----------------------------------------------------------------------


async def test_delivery_endpoint_defaults_to_pull_and_push_shows_its_secret_once(local_api: Api) -> None:
    api = local_api
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


async def test_invalid_delivery_endpoints_are_refused(api: Api, dns: FakeDns) -> None:
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


async def test_an_agency_sets_its_own_endpoint_only(api: Api, dns: FakeDns) -> None:
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


async def test_endpoint_history_records_the_previous_mode(api: Api, dns: FakeDns) -> None:
    code = (await api.create_agency())["code"]
    url = "https://qlvb.example.gov.vn/hook"
    response = await api.http.put(
        f"/v1/agencies/{code}/endpoint", json={"mode": "push", "webhook_url": url}, headers=await api.admin()
    )
    assert response.status_code == 200, response.text
    entry = (await history_of(api, code))[-1]
    assert entry["changes"]["before"] == {"mode": "pull", "webhook_url": None, "amqp_queue": None}
    assert entry["changes"]["after"] == {"mode": "push", "webhook_url": url, "amqp_queue": None}


# --- the webhook URL policy: no request forgery into the province's network ---------------------

REFUSED_IN_PRODUCTION = [
    ("https://127.0.0.1/hook", "address_not_allowed"),
    ("https://localhost/hook", "address_not_allowed"),  # resolved: 127.0.0.1 (and ::1)
    ("https://169.254.169.254/latest/meta-data/", "address_not_allowed"),
    ("https://10.1.2.3/hook", "address_not_allowed"),
    ("https://[::1]/hook", "address_not_allowed"),
    ("https://[::ffff:127.0.0.1]/hook", "address_not_allowed"),
    ("https://0.0.0.0/hook", "address_not_allowed"),
    ("https://2130706433/hook", "address_not_allowed"),  # 127.0.0.1 spelt as a number
    ("https://internal.example.gov.vn/hook", "address_not_allowed"),  # a name resolving to 10.0.0.8
    ("https://rebind.example.gov.vn/hook", "address_not_allowed"),  # one public, one private answer
    ("https://gone.example.gov.vn/hook", "host_unresolved"),
    ("https://user:pass@qlvb.example.gov.vn/hook", "credentials_in_url"),
    ("http://qlvb.example.gov.vn/hook", "http_not_allowed"),
    ("http://localhost:8080/hook", "http_not_allowed"),
]


async def test_webhook_urls_into_the_network_are_refused_and_change_nothing(api: Api, dns: FakeDns) -> None:
    dns.answers["internal.example.gov.vn"] = ["10.0.0.8"]
    dns.answers["rebind.example.gov.vn"] = ["93.184.215.14", "10.0.0.8"]
    dns.answers["gone.example.gov.vn"] = []
    own = await api.agency_client()
    code = own.agency_code
    good = "https://qlvb.example.gov.vn/hook"
    set_up = await api.http.put(
        f"/v1/agencies/{code}/endpoint", json={"mode": "push", "webhook_url": good}, headers=own.auth
    )
    assert set_up.status_code == 200, set_up.text
    before, history = await endpoint_of(api, code), await history_of(api, code)

    for url, reason in REFUSED_IN_PRODUCTION:
        for auth in (own.auth, await api.admin()):  # the admin is held to the same policy
            response = await api.http.put(
                f"/v1/agencies/{code}/endpoint", json={"mode": "push", "webhook_url": url}, headers=auth
            )
            problem = assert_problem(response, 422, "webhook_url_refused")
            assert problem["reason"] == reason, (url, problem)
            assert response.headers["content-type"].startswith("application/problem+json")
    assert await endpoint_of(api, code) == before
    assert await history_of(api, code) == history


async def test_a_refusal_names_the_setting_that_would_allow_it(api: Api, dns: FakeDns) -> None:
    code = (await api.create_agency())["code"]
    cases = {
        "http://qlvb.example.gov.vn/hook": ("LIENTHONG_WEBHOOKS__ALLOW_HTTP", "https"),
        "https://169.254.169.254/": ("LIENTHONG_WEBHOOKS__ALLOWED_NETWORKS", "link-local"),
        "https://10.1.2.3/": ("LIENTHONG_WEBHOOKS__ALLOWED_NETWORKS", "private"),
    }
    for url, (setting, why) in cases.items():
        response = await api.http.put(
            f"/v1/agencies/{code}/endpoint", json={"mode": "push", "webhook_url": url}, headers=await api.admin()
        )
        problem = assert_problem(response, 422, "webhook_url_refused")
        assert problem["setting"] == setting and setting in problem["detail"] and why in problem["detail"], problem
    dns.answers["gone.example.gov.vn"] = []
    unresolved = await api.http.put(
        f"/v1/agencies/{code}/endpoint",
        json={"mode": "push", "webhook_url": "https://gone.example.gov.vn/hook"},
        headers=await api.admin(),
    )
    assert "cannot resolve host gone.example.gov.vn" in assert_problem(unresolved, 422, "webhook_url_refused")["detail"]
    assert (await endpoint_of(api, code))["mode"] == "pull"


async def test_an_allowed_network_lets_webhooks_in_and_no_further(tmp_path: Path, dns: FakeDns) -> None:
    dns.answers["qlvb.noi-bo.example.gov.vn"] = ["10.20.4.5"]
    dns.answers["other.noi-bo.example.gov.vn"] = ["10.21.0.1"]
    webhooks = {"allowed_networks": ["10.20.0.0/16"]}
    async with running_system(tmp_path / "var", webhooks=webhooks) as api:
        code = (await api.create_agency())["code"]
        for url in ["https://10.20.1.5/hook", "https://qlvb.noi-bo.example.gov.vn/hook"]:
            response = await api.http.put(
                f"/v1/agencies/{code}/endpoint", json={"mode": "push", "webhook_url": url}, headers=await api.admin()
            )
            assert response.status_code == 200, response.text
            assert (await endpoint_of(api, code))["webhook_url"] == url
        for url in ["https://10.21.0.1/hook", "https://other.noi-bo.example.gov.vn/hook", "https://127.0.0.1/hook"]:
            response = await api.http.put(
                f"/v1/agencies/{code}/endpoint", json={"mode": "push", "webhook_url": url}, headers=await api.admin()
            )
            assert_problem(response, 422, "webhook_url_refused")
        http = await api.http.put(
            f"/v1/agencies/{code}/endpoint",
            json={"mode": "push", "webhook_url": "http://10.20.1.5/hook"},
            headers=await api.admin(),
        )
        assert_problem(http, 422, "webhook_url_refused")  # an allowed network does not allow http


async def test_local_webhooks_are_allowed_where_the_policy_says_so(local_api: Api) -> None:
    code = (await local_api.create_agency())["code"]
    for url in ["http://127.0.0.1:9000/hook", "http://localhost:8080/hook", "http://[::1]:9000/hook"]:
        response = await local_api.http.put(
            f"/v1/agencies/{code}/endpoint", json={"mode": "push", "webhook_url": url}, headers=await local_api.admin()
        )
        assert response.status_code == 200, (url, response.text)
    refused = await local_api.http.put(
        f"/v1/agencies/{code}/endpoint",
        json={"mode": "push", "webhook_url": "http://169.254.169.254/"},
        headers=await local_api.admin(),
    )
    assert_problem(refused, 422, "webhook_url_refused")


async def test_amqp_delivery_needs_rabbitmq(api: Api) -> None:
    assert api.settings.broker_url.startswith("memory://")
    code = (await api.create_agency())["code"]
    before, history = await endpoint_of(api, code), await history_of(api, code)
    response = await api.http.put(
        f"/v1/agencies/{code}/endpoint", json={"mode": "amqp", "amqp_queue": "qlvb.inbox"}, headers=await api.admin()
    )
    problem = assert_problem(response, 422, "amqp_needs_broker")
    assert "AMQP delivery needs RabbitMQ: set LIENTHONG_BROKER_URL=amqp://" in problem["detail"]
    assert await endpoint_of(api, code) == before
    assert await history_of(api, code) == history
