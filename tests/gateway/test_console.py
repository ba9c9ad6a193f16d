"""The web console without a browser: users in the registry, sign-in and its refusals, the
session cookie's flags, CSRF on every POST, who may open which page, and a clerk's round trip
(send, receive, report 03) through the console's forms. The browser tests are in
tests/e2e/test_console_browser.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from services.demo.pdf import make_pdf
from tests.conftest import running_system
from tests.helpers import Api, make_certificate, random_code, wait_until

PASSWORD = "mat-khau-rat-dai-123"
pytestmark = pytest.mark.xdist_group("console-system")  # one xdist worker, one system for the module


@dataclass
class Console:
    api: Api

    def browser(self) -> httpx.AsyncClient:
        """A new visitor of the console (its own cookie jar)."""
        assert self.api.app is not None
        transport = httpx.ASGITransport(app=self.api.app, client=("10.1.2.3", 50000))
        return httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30)

    async def user(self, agency_code: str, role: str = "agency", username: str | None = None) -> str:
        username = username or f"u{random_code().replace('.', '')}".lower()
        body = {
            "username": username,
            "display_name": "Nguyễn Thị Văn Thư",
            "agency_code": agency_code,
            "role": role,
            "password": PASSWORD,
        }
        response = await self.api.http.post("/v1/users", json=body, headers=await self.api.admin())
        assert response.status_code == 201, response.text
        return username


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def sign_in(browser: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    form = await browser.get("/console/sign-in")
    return await browser.post(
        "/console/sign-in", data={"csrf": csrf_of(form.text), "username": username, "password": password}
    )


@pytest.fixture(scope="module")
async def console(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    var = tmp_path_factory.mktemp("console") / "var"
    async with running_system(var) as api:
        yield Console(api)


async def test_users_are_created_by_the_admin_only_and_validated(console: Console) -> None:
    api = console.api
    agency = await api.create_agency()
    username = await console.user(agency["code"])
    admin = await api.admin()
    again = await api.http.post(
        "/v1/users",
        json={"username": username, "display_name": "X", "agency_code": agency["code"], "password": PASSWORD},
        headers=admin,
    )
    assert again.status_code == 409 and again.json()["code"] == "user_exists"
    short = await api.http.post(
        "/v1/users",
        json={"username": "short-pw", "display_name": "X", "agency_code": agency["code"], "password": "abc"},
        headers=admin,
    )
    assert short.status_code == 422
    unknown = await api.http.post(
        "/v1/users",
        json={"username": "nobody-here", "display_name": "X", "agency_code": random_code(), "password": PASSWORD},
        headers=admin,
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "agency_not_found"
    clerk = await api.agency_client(agency["code"])
    refused = await api.http.get("/v1/users", headers=clerk.auth)
    assert refused.status_code == 403
    listed = await api.http.get("/v1/users", params={"agency": agency["code"]}, headers=admin)
    assert [u["username"] for u in listed.json()] == [username]
    read = listed.json()[0]
    assert read["role"] == "agency" and read["status"] == "active" and "password" not in str(read)


async def test_sign_in_refusals_session_cookie_and_csrf(console: Console) -> None:
    agency = await console.api.create_agency()
    username = await console.user(agency["code"])
    async with console.browser() as browser:
        assert (await browser.get("/console/inbox")).headers["location"].startswith("/console/sign-in")
        wrong = await sign_in(browser, username, "not-the-password-at-all")
        assert wrong.status_code == 401 and "Sai tên đăng nhập" in wrong.text
        nobody = await sign_in(browser, "no-such-user", PASSWORD)
        assert nobody.status_code == 401
        forged = await browser.post("/console/sign-in", data={"csrf": "x", "username": username, "password": PASSWORD})
        assert forged.status_code == 400
        ok = await sign_in(browser, username)
        assert ok.status_code == 303 and ok.headers["location"] == "/console/inbox"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
        inbox = await browser.get("/console/inbox")
        assert inbox.status_code == 200 and "Văn bản đến" in inbox.text
        assert "script-src 'self'" in inbox.headers["content-security-policy"]
        # a POST without the session's token changes nothing
        nowhere = "/console/documents/00000000-0000-0000-0000-000000000000/recall"
        no_csrf = await browser.post(nowhere, data={"reason": "x"})
        assert no_csrf.status_code == 403
        # the clerk's role does not open the admin's pages
        assert (await browser.get("/console/admin/agencies")).status_code == 403
        english = await browser.get("/console/inbox", headers={"Accept-Language": "en-GB,en;q=0.9"})
        assert "Received" in english.text
        filtered = await browser.get("/console/inbox", params={"status": "03", "overdue": "true"})
        switch = re.search(r'href="(/console/language/en\?back=[^"]+)"', filtered.text)
        assert switch, filtered.text
        chosen = await browser.get(switch.group(1).replace("&amp;", "&"))
        assert chosen.headers["location"] == "/console/inbox?status=03&overdue=true"  # back with the filters
        assert "Received" in (await browser.get(chosen.headers["location"])).text  # the cookie's language
        signed_out = await browser.post("/console/sign-out", data={"csrf": csrf_of(inbox.text)})
        assert signed_out.status_code == 303
        assert (await browser.get("/console/inbox")).headers["location"].startswith("/console/sign-in")
    admin = await console.api.admin()
    disabled = await console.api.http.patch(f"/v1/users/{username}", json={"status": "disabled"}, headers=admin)
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    async with console.browser() as browser:
        assert (await sign_in(browser, username)).status_code == 401
        # guessing is throttled per user name as token requests are per client id (10 in 5 minutes)
        target = await console.user(agency["code"])
        answers = [(await sign_in(browser, target, f"doan-mo-{n:04d}-sai")).status_code for n in range(11)]
        assert answers == [401] * 10 + [429]
        assert (await sign_in(browser, target)).status_code == 429  # the right password waits too

    async def throttled() -> bool:
        response = await console.api.http.get("/v1/audit/entries", params={"action": "token.throttled"}, headers=admin)
        return f"user:{target}" in {e["target"] for e in response.json()["items"]}

    await wait_until(throttled, what="the throttled sign-in's audit entry")

    actions: set[str] = set()

    async def all_recorded() -> bool:
        response = await console.api.http.get("/v1/audit/entries", params={"agency": agency["code"]}, headers=admin)
        actions.update(e["action"] for e in response.json()["items"])
        return {"user.created", "user.signed_in", "user.updated"} <= actions

    await wait_until(all_recorded, what="user.created, user.signed_in and user.updated")
    refused = await console.api.http.get("/v1/audit/entries", params={"action": "user.sign_in_refused"}, headers=admin)
    assert username in {e["target"] for e in refused.json()["items"]}


async def test_clerks_round_trip_through_the_console(console: Console) -> None:
    api = console.api
    sender_agency, recipient_agency = await api.create_agency(), await api.create_agency()
    sender_user = await console.user(sender_agency["code"])
    recipient_user = await console.user(recipient_agency["code"])
    async with console.browser() as sender, console.browser() as recipient:
        await sign_in(sender, sender_user)
        await sign_in(recipient, recipient_user)
        form = await sender.get("/console/send")
        sent = await sender.post(
            "/console/send",
            data={
                "csrf": csrf_of(form.text),
                "code_number": "15",
                "code_notation": "CV-UBND",
                "type_name": "Công văn",
                "promulgation_date": "2026-11-20",
                "subject": "Về việc thử nghiệm bàn làm việc điện tử",
                "recipients": recipient_agency["code"],
                "urgency": "0",
            },
            files=[("files", ("cong-van.pdf", make_pdf(["Cong van thu nghiem"]), "application/pdf"))],
        )
        assert sent.status_code == 303, sent.text
        document_path = sent.headers["location"].split("?")[0]
        inbox = await recipient.get("/console/inbox")
        assert "Về việc thử nghiệm bàn làm việc điện tử" in inbox.text
        for status in ("pending", "01", "02", "03", "04", "05", "06"):  # every filter offered is one the API takes
            assert (await recipient.get("/console/inbox", params={"status": status})).status_code == 200
        page = await recipient.get(document_path)
        delivery = re.search(r"/console/deliveries/([0-9a-f-]+)/status", page.text)
        assert delivery
        for status in ("01", "03"):
            reported = await recipient.post(
                f"/console/deliveries/{delivery.group(1)}/status",
                data={"csrf": csrf_of(page.text), "status": status, "document_id": document_path.rsplit("/", 1)[1]},
            )
            assert reported.status_code == 303, reported.text
        seen = await sender.get(document_path)
        assert "03 Đã tiếp nhận" in seen.text
        bad = await sender.post("/console/send", data={"csrf": csrf_of(form.text), "subject": "x"})
        assert bad.status_code == 422 and "error" in bad.text
        # a replacement, its form filled in from the original; then a recall of the replacement
        original_id = document_path.rsplit("/", 1)[1]
        prefilled = await sender.get("/console/send", params={"relation": "replace", "of": original_id})
        assert "Về việc thử nghiệm bàn làm việc điện tử" in prefilled.text
        assert recipient_agency["code"] in prefilled.text
        replaced = await sender.post(
            "/console/send",
            data={
                "csrf": csrf_of(form.text),
                "relation": "replace",
                "of": original_id,
                "code_number": "16",
                "code_notation": "CV-UBND",
                "type_name": "Công văn",
                "promulgation_date": "2026-11-21",
                "subject": "Về việc thử nghiệm (thay thế)",
                "recipients": recipient_agency["code"],
            },
            files=[("files", ("thay-the.pdf", make_pdf(["Thay the"]), "application/pdf"))],
        )
        assert replaced.status_code == 303, replaced.text
        replacement = await sender.get(replaced.headers["location"])
        assert "Văn bản thay thế" in replacement.text and original_id in replacement.text
        recalled = await sender.post(
            replaced.headers["location"].split("?")[0] + "/recall", data={"csrf": csrf_of(form.text), "reason": "Nhầm"}
        )
        assert recalled.status_code == 303
        assert "13 Yêu cầu thu hồi" in (await sender.get(recalled.headers["location"])).text


async def test_a_changed_role_or_a_disabled_user_ends_open_sessions(console: Console) -> None:
    agency = await console.api.create_agency()
    admin = await console.api.admin()
    demoted, disabled = await console.user(agency["code"]), await console.user(agency["code"])
    async with console.browser() as first, console.browser() as second:
        await sign_in(first, demoted)
        await sign_in(second, disabled)
        assert (await first.get("/console/inbox")).status_code == 200  # the guard has the status cached
        assert (await second.get("/console/inbox")).status_code == 200
        for username, change in ((demoted, {"role": "auditor"}), (disabled, {"status": "disabled"})):
            response = await console.api.http.patch(f"/v1/users/{username}", json=change, headers=admin)
            assert response.status_code == 200, response.text

        async def signed_out(browser: httpx.AsyncClient) -> bool:
            page = await browser.get("/console/inbox")
            return page.status_code == 303 and "session_expired" in page.headers["location"]

        # user.updated.v1 empties the guard's cache: refused at the next page, not 30 s later
        await wait_until(lambda: signed_out(first), within=5, what="the demoted user's session to end")
        await wait_until(lambda: signed_out(second), within=5, what="the disabled user's session to end")


async def test_hostile_console_input_gets_a_page_never_a_500(console: Console) -> None:
    agency = await console.api.create_agency()
    clerk, admin = await console.user(agency["code"]), await console.user(agency["code"], role="registry_admin")
    async with console.browser() as as_clerk, console.browser() as as_admin:
        await sign_in(as_clerk, clerk)
        await sign_in(as_admin, admin)
        csrf = csrf_of((await as_clerk.get("/console/send")).text)
        admin_csrf = csrf_of((await as_admin.get("/console/admin/agencies")).text)
        answers = [
            await as_clerk.get("/console/documents/not-a-uuid"),
            await as_clerk.get("/console/documents/00000000-0000-0000-0000-000000000000"),
            await as_clerk.get("/console/documents/x/attachments/y"),
            await as_clerk.get("/console/inbox", params={"status": "99", "date_from": "tomorrow", "cursor": "%%%"}),
            await as_clerk.get("/console/send", params={"relation": "update", "of": "nope"}),
            await as_clerk.get("/console/search", params={"q": "\x00\u202e" * 10}),
            await as_clerk.get("/console/language/xx", params={"back": "https://evil.example/"}),
            await as_clerk.post("/console/deliveries/nope/status", data={"csrf": csrf, "status": "07"}),
            await as_clerk.post("/console/send", data={"csrf": csrf, "urgency": "x", "relation": "replace", "of": "y"}),
            await as_admin.get("/console/admin/agencies/..%2F..%2Fetc"),
            await as_admin.get("/console/statistics/levels.exe"),
            await as_admin.post("/console/admin/agencies", data={"csrf": admin_csrf, "code": "<script>", "level": "?"}),
            await as_admin.post("/console/admin/clients/nope/rotate", data={"csrf": admin_csrf, "agency": "x"}),
            await as_admin.post("/console/admin/failed-pushes/nope/resend", data={"csrf": admin_csrf}),
            await as_admin.post(f"/console/admin/agencies/{agency['code']}/users", data={"csrf": admin_csrf}),
        ]
        assert [a.status_code for a in answers if a.status_code >= 500] == []
        assert answers[6].headers["location"] == "/console"  # never sent off-site
        assert "&lt;script&gt;" in answers[11].text and "<script>" not in answers[11].text.split("</head>")[1]


async def test_the_admins_pages_change_the_directory_through_the_api(console: Console) -> None:
    api = console.api
    province = await api.create_agency(level="province")
    district = await api.create_agency(level="district", parent_code=province["code"])
    clerk = await console.user(district["code"])
    admin_user = await console.user(province["code"], role="registry_admin")
    admin = await api.admin()
    async with console.browser() as browser:
        await sign_in(browser, admin_user)
        tree = await browser.get("/console/admin/hierarchy")
        assert tree.status_code == 200 and district["code"] in tree.text
        page = await browser.get(f"/console/admin/agencies/{district['code']}")
        csrf = csrf_of(page.text)
        assert clerk in page.text

        async def post(path: str, **data: str) -> httpx.Response:
            return await browser.post(path, data={"csrf": csrf, **data})

        suspended = await post(f"/console/admin/agencies/{district['code']}/status", status="suspended", reason="thử")
        assert suspended.status_code == 303
        assert (await api.http.get(f"/v1/agencies/{district['code']}", headers=admin)).json()["status"] == "suspended"
        assert (await post(f"/console/admin/agencies/{district['code']}/status", status="active")).status_code == 303
        certificate, _key = make_certificate(f"UBND {district['code']}")
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
        added = await post(f"/console/admin/agencies/{district['code']}/certificates", kind="seal", certificate=pem)
        assert added.status_code == 303
        listed = await api.http.get(f"/v1/agencies/{district['code']}/certificates", headers=admin)
        assert [c["kind"] for c in listed.json()] == ["seal"]
        pull = await post(f"/console/admin/agencies/{district['code']}/endpoint", mode="pull")
        assert pull.status_code == 303
        disabled = await post(f"/console/admin/users/{clerk}", status="disabled", agency=district["code"])
        assert disabled.status_code == 303
        assert (await api.http.get(f"/v1/users/{clerk}", headers=admin)).json()["status"] == "disabled"
        renewed = await post(f"/console/admin/users/{clerk}", status="active", password="mat-khau-moi-hoan-toan")
        assert renewed.status_code == 303
        group = await post(
            "/console/admin/groups", name="cac-huyen", title="Các huyện", rule_level="district", members=""
        )
        assert group.status_code == 303
        members = await api.http.get("/v1/groups/cac-huyen/members", headers=admin)
        assert district["code"] in {m["code"] for m in members.json()["members"]}
        refused = await post("/console/admin/groups", name="Bad Name", title="x")
        assert refused.status_code == 422 and "error" in refused.text
        not_a_certificate = await post("/console/admin/truststore", kind="root", certificate="không phải PEM")
        assert 400 <= not_a_certificate.status_code < 500
        for path, shows in (
            ("/console/admin/groups", "cac-huyen"),
            ("/console/admin/failed-pushes", "Gửi webhook thất bại"),
            ("/console/admin/truststore", "Kho chứng thư tin cậy"),
        ):
            page = await browser.get(path)
            assert page.status_code == 200 and shows in page.text, path
        assert (await browser.get("/console/admin/audit")).status_code == 403  # the auditor's page
    async with console.browser() as browser:  # the clerk's new password works
        assert (await sign_in(browser, clerk, "mat-khau-moi-hoan-toan")).status_code == 303
    auditor = await console.user(province["code"], role="auditor")
    async with console.browser() as browser:
        assert (await sign_in(browser, auditor)).headers["location"] == "/console/admin/audit"

        async def listed() -> bool:
            trail = await browser.get("/console/admin/audit", params={"action": "user.created"})
            return trail.status_code == 200 and f"<td>{auditor}</td>" in trail.text

        await wait_until(listed, what="the auditor's own creation in the audit trail page")


# Who opens each console page: the roles whose users get it; any other role gets 403, an
# anonymous visitor the sign-in form. Every console route has a row (checked below).
PAGES: dict[tuple[str, str], set[str]] = {
    ("GET", "/console/inbox"): {"agency"},
    ("GET", "/console/sent"): {"agency"},
    ("GET", "/console/send"): {"agency"},
    ("POST", "/console/send"): {"agency"},
    ("GET", "/console/search"): {"agency"},
    ("GET", "/console/documents/{document_id}"): {"agency"},
    ("GET", "/console/documents/{document_id}/attachments/{attachment_id}"): {"agency"},
    ("POST", "/console/documents/{document_id}/recall"): {"agency"},
    ("POST", "/console/deliveries/{delivery_id}/status"): {"agency"},
    ("GET", "/console/admin/agencies"): {"registry_admin"},
    ("POST", "/console/admin/agencies"): {"registry_admin"},
    ("GET", "/console/admin/agencies/{code}"): {"registry_admin"},
    ("POST", "/console/admin/agencies/{code}/clients"): {"registry_admin"},
    ("POST", "/console/admin/agencies/{code}/users"): {"registry_admin"},
    ("POST", "/console/admin/agencies/{code}/status"): {"registry_admin"},
    ("POST", "/console/admin/agencies/{code}/endpoint"): {"registry_admin"},
    ("POST", "/console/admin/agencies/{code}/certificates"): {"registry_admin"},
    ("POST", "/console/admin/clients/{client_id}/rotate"): {"registry_admin"},
    ("POST", "/console/admin/clients/{client_id}/revoke"): {"registry_admin"},
    ("POST", "/console/admin/users/{username}"): {"registry_admin"},
    ("GET", "/console/admin/hierarchy"): {"registry_admin"},
    ("GET", "/console/admin/groups"): {"registry_admin"},
    ("POST", "/console/admin/groups"): {"registry_admin"},
    ("GET", "/console/admin/failed-pushes"): {"registry_admin"},
    ("POST", "/console/admin/failed-pushes/{failure_id}/resend"): {"registry_admin"},
    ("GET", "/console/admin/truststore"): {"registry_admin"},
    ("POST", "/console/admin/truststore"): {"registry_admin"},
    ("GET", "/console/admin/audit"): {"auditor"},
    ("GET", "/console/statistics"): {"statistics", "registry_admin"},
    ("GET", "/console/statistics/{table}.{extension}"): {"statistics", "registry_admin"},
}
OPEN = {  # no session needed: the console's entry, the sign-in, the language switch
    ("GET", "/console"),
    ("GET", "/console/sign-in"),
    ("POST", "/console/sign-in"),
    ("POST", "/console/sign-out"),
    ("GET", "/console/language/{language}"),
}
ROLES = ("agency", "registry_admin", "auditor", "statistics")
FORBIDDEN = "Bạn không có quyền xem trang này."  # the console's own refusal, not the API's


def test_every_console_route_has_a_rule() -> None:
    from gateway.console.admin import router as admin_pages
    from gateway.console.router import router as pages

    routes = {
        (method, route.path)
        for module_router in (pages, admin_pages)
        for route in module_router.routes
        for method in getattr(route, "methods", ())
    }
    assert routes == set(PAGES) | OPEN, routes ^ (set(PAGES) | OPEN)


async def test_each_role_opens_its_pages_only(console: Console) -> None:
    agency = await console.api.create_agency()
    browsers: dict[str, httpx.AsyncClient] = {}
    tokens: dict[str, str] = {}
    async with console.browser() as anonymous:
        for role in ROLES:
            browsers[role] = console.browser()
            await browsers[role].__aenter__()
            await sign_in(browsers[role], await console.user(agency["code"], role=role))
            tokens[role] = csrf_of((await browsers[role].get("/console/sign-in")).text)
        try:
            for (method, path), allowed in PAGES.items():
                concrete = path.format(
                    document_id="00000000-0000-0000-0000-000000000000",
                    attachment_id="00000000-0000-0000-0000-000000000000",
                    delivery_id="00000000-0000-0000-0000-000000000000",
                    code=agency["code"],
                    client_id="lt_nobody",
                    username="nobody-here",
                    failure_id="00000000-0000-0000-0000-000000000000",
                    table="months",
                    extension="csv",
                )
                nobody = await anonymous.request(method, concrete)
                assert nobody.status_code == 303 and "/console/sign-in" in nobody.headers["location"], path
                for role in ROLES:
                    data = {"csrf": tokens[role]} if method == "POST" else None
                    answer = await browsers[role].request(method, concrete, data=data)
                    refused = answer.status_code == 403 and FORBIDDEN in answer.text
                    # allowed: past the page's check, the API answers (a 404 for what is not there)
                    assert refused == (role not in allowed), (method, path, role, answer.status_code)
        finally:
            for browser in browsers.values():
                await browser.__aexit__(None, None, None)


async def test_a_page_shows_the_message_its_redirect_named_and_never_an_addresss_own_text(console: Console) -> None:
    """``?flash=`` after a POST names a message of the catalogue, shown on whichever page it lands;
    any other text in the address is not shown as the console's word."""
    province = await console.api.create_agency(level="province")
    admin_user = await console.user(province["code"], role="registry_admin")
    async with console.browser() as browser:
        await sign_in(browser, admin_user)
        for page in (f"/console/admin/agencies/{province['code']}", "/console/admin/hierarchy"):
            saved = await browser.get(page, params={"flash": "saved"}, headers={"Accept-Language": "en"})
            assert saved.status_code == 200 and '<p class="flash" role="status">Saved.</p>' in saved.text, page
            spoofed = await browser.get(page, params={"flash": "Hệ thống bảo trì: gửi mật khẩu tới evil.example"})
            assert spoofed.status_code == 200 and 'class="flash"' not in spoofed.text, page
