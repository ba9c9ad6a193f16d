"""The web console in a real browser: headless Chromium (Debian's, .ci/browser.sh) driven by
Playwright, against the whole system served by uvicorn. One system and one browser for the module.

A clerk sends a document that another clerk receives and marks 03, and the sender sees 03; an
admin creates an agency and issues it an API client; a leader's dashboard shows a seeded month's
numbers; the sign-in works from the keyboard alone and every form field has a label. The
screenshots in docs/img/console-*.png (docs/operations.md, "The web console") are made here, with
``LIENTHONG_TEST_SCREENSHOTS=docs/img``."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, FilePayload, Page, ViewportSize, async_playwright

from services.demo.pdf import make_pdf
from services.exchange.config import ExchangeSection
from tests.conftest import running_system
from tests.helpers import Api, random_code, report, serving, wait_until

# the module's tests on one xdist worker (one system and one browser for them all), beside the
# other groups rather than queued behind the topology tests
pytestmark = pytest.mark.xdist_group("console-browser")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# the pictures of docs/operations.md are made by these tests when asked to
# (`LIENTHONG_TEST_SCREENSHOTS=docs/img`); a plain run takes none and leaves the work tree as it was
SCREENSHOTS = Path(os.environ["LIENTHONG_TEST_SCREENSHOTS"]) if os.environ.get("LIENTHONG_TEST_SCREENSHOTS") else None


async def shoot(page: Page, name: str, *, full: bool = False) -> None:
    """Save the page as docs/operations.md shows it, when screenshots are asked for (encoding a
    full page costs a browser's CPU: a plain test run takes none)."""
    if SCREENSHOTS is not None:
        await page.screenshot(path=SCREENSHOTS / name, full_page=full)


PASSWORD = "mat-khau-rat-dai-123"
LAPTOP: ViewportSize = {"width": 1280, "height": 860}
PHONE: ViewportSize = {"width": 390, "height": 844}
NAMES = {
    "agency": "Nguyễn Thị Lan",
    "registry_admin": "Trần Quốc Huy",
    "statistics": "Lê Văn Thành",
}
TIMEOUT_MS = 10_000  # a page that never shows what is awaited fails in 10 s, not Playwright's 30

# the form fields a keyboard and a screen reader must reach by a label
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden' && el.labels.length === 0 && !el.getAttribute('aria-label'))
  .map(el => el.name || el.id)"""


@dataclass
class Site:
    api: Api
    url: str
    browser: Browser

    async def user(self, agency_code: str, role: str = "agency") -> str:
        username = f"u{random_code().replace('.', '')}".lower()
        body = {
            "username": username,
            "display_name": NAMES[role],
            "agency_code": agency_code,
            "role": role,
            "password": PASSWORD,
        }
        response = await self.api.http.post("/v1/users", json=body, headers=await self.api.admin())
        assert response.status_code == 201, response.text
        return username

    async def signed_in(self, username: str, *, viewport: ViewportSize = LAPTOP, lang: str = "vi") -> Page:
        """A new browser context (its own cookies) signed in as ``username``."""
        context = await self.browser.new_context(viewport=viewport, locale=lang)
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        await page.goto(f"{self.url}/console/sign-in")
        await page.get_by_label("Tên đăng nhập" if lang == "vi" else "User name").fill(username)
        await page.get_by_label("Mật khẩu" if lang == "vi" else "Password").fill(PASSWORD)
        await page.get_by_role("button", name="Đăng nhập" if lang == "vi" else "Sign in").click()
        await page.wait_for_url(lambda url: "/sign-in" not in url)
        return page


async def unlabelled(page: Page) -> list[str]:
    found: list[str] = await page.evaluate(UNLABELLED)
    return found


def statistics_settings() -> dict[str, Any]:
    """Rollups refreshed five times a second in this system, counting what is a second old (a
    settling time of 0 can miss a row whose transaction commits after a refresh has passed its time),
    where the statistics exist."""
    fields = ExchangeSection.model_fields
    if "statistics_refresh_seconds" not in fields:
        return {}
    return {"exchange": {"statistics_refresh_seconds": 0.2, "statistics_settle_seconds": 1}}


@pytest.fixture(scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    var = tmp_path_factory.mktemp("console-browser") / "var"
    if SCREENSHOTS is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with (
        running_system(var, **statistics_settings()) as api,
        serving(api.app) as url,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield Site(api, url, browser)
        finally:
            await browser.close()


async def test_a_clerk_sends_another_marks_03_and_the_sender_sees_it(site: Site) -> None:
    sender_agency = await site.api.create_agency(name="Sở Thông tin và Truyền thông")
    recipient_agency = await site.api.create_agency(name="UBND huyện Nghi Lộc", level="district")
    sender = await site.signed_in(await site.user(sender_agency["code"]))
    recipient = await site.signed_in(await site.user(recipient_agency["code"]))

    await sender.get_by_role("link", name="Gửi văn bản").click()
    await sender.wait_for_url("**/console/send")
    assert await unlabelled(sender) == []
    await sender.get_by_label("Số", exact=True).fill("127")
    await sender.get_by_label("Ký hiệu").fill("STTTT-CĐS")
    await sender.get_by_label("Trích yếu").fill("Về việc triển khai nền tảng số dùng chung năm 2027")
    await sender.get_by_label("Họ tên người ký").fill("Trần Văn Bình")
    await sender.get_by_label("Mã định danh nơi nhận").fill(recipient_agency["code"])
    await sender.get_by_label("Tệp đính kèm").set_input_files(
        [FilePayload(name="cong-van-127.pdf", mimeType="application/pdf", buffer=make_pdf(["Cong van 127"]))]
    )
    await shoot(sender, "console-send.png", full=True)
    await sender.get_by_role("button", name="Gửi văn bản").click()
    await sender.wait_for_url("**/console/documents/**")
    document_url = sender.url.split("?")[0]
    assert "Đã gửi văn bản" in await sender.locator("main").inner_text()

    await recipient.reload()
    row = recipient.get_by_role("link", name="Về việc triển khai nền tảng số dùng chung năm 2027")
    await row.wait_for()
    await shoot(recipient, "console-inbox.png", full=True)
    await row.click()
    await recipient.wait_for_url("**/console/documents/**")
    assert await unlabelled(recipient) == []
    for status in ("01", "03"):
        await recipient.get_by_label("Trạng thái", exact=True).select_option(status)
        await recipient.get_by_role("button", name="Lưu").click()
        await recipient.locator("#own-status").filter(has_text=status).wait_for()
    await shoot(recipient, "console-document.png", full=True)

    await sender.goto(document_url)
    delivery = sender.locator("section.delivery", has_text=recipient_agency["code"])
    assert "03 Đã tiếp nhận" in await delivery.locator("h3").inner_text()
    assert "03 Đã tiếp nhận" in await delivery.locator("table").inner_text()  # in its history too
    await sender.get_by_role("link", name="Văn bản đi").click()
    await sender.wait_for_url("**/console/sent")
    assert "03 Đã tiếp nhận: 1" in await sender.locator("table").inner_text()

    phone = await site.signed_in(await site.user(recipient_agency["code"]), viewport=PHONE)
    await shoot(phone, "console-inbox-phone.png", full=True)
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]  # no sideways scrolling of the page on a phone (tables scroll alone)


async def test_an_admin_creates_an_agency_and_issues_it_a_client(site: Site) -> None:
    province = await site.api.create_agency(name="Văn phòng UBND tỉnh", level="province")
    admin = await site.signed_in(await site.user(province["code"], role="registry_admin"), lang="en")
    await admin.wait_for_url("**/console/admin/agencies")
    assert await unlabelled(admin) == []
    await admin.get_by_label("Agency code").fill("not-a-code")  # refused: the API's answer on the form
    await admin.get_by_label("Name", exact=True).last.fill("Sở Khoa học và Công nghệ")
    await admin.get_by_role("button", name="Add an agency").click()
    await admin.get_by_role("alert").wait_for()
    assert "not-a-code" in await admin.get_by_label("Agency code").input_value()  # kept for correcting
    code = random_code()
    await admin.get_by_label("Agency code").fill(code)
    await admin.get_by_label("Name", exact=True).last.fill("Sở Khoa học và Công nghệ")
    await admin.get_by_label("Level").select_option("department")
    await admin.get_by_label("Parent agency (code)").fill(province["code"])
    await admin.get_by_role("button", name="Add an agency").click()
    await admin.wait_for_url(f"**/console/admin/agencies/{code}?**")
    assert "Agency added." in await admin.locator("main").inner_text()
    await admin.get_by_label("System name").fill("Hệ thống QLVB Sở KH&CN")
    await admin.get_by_role("button", name="Issue an API client").click()
    secret = admin.locator("#client-secret")
    await secret.wait_for()
    client_id = await admin.locator("#client-id").inner_text()
    await shoot(admin, "console-admin-agency.png", full=True)
    token = await site.api.token(client_id, await secret.inner_text())
    assert token.status_code == 200 and token.json()["agency_code"] == code  # the client works at once

    agency = await site.api.http.get(f"/v1/agencies/{code}", headers=await site.api.admin())
    assert agency.json()["parent_code"] == province["code"]


async def test_a_leaders_dashboard_shows_a_seeded_month(site: Site) -> None:
    probe = await site.api.http.get("/v1/statistics/summary", headers=await site.api.admin())
    if probe.status_code == 404 and probe.json().get("code") == "route_not_found":
        pytest.skip("the statistics API is not in this tree")
    # a district that sent 3 documents to two of its communes; one commune reported 01 and 03
    district = await site.api.create_agency(name="UBND huyện Hưng Nguyên", level="district")
    sender = await site.api.agency_client(district["code"])
    communes = [
        await site.api.agency_client(
            (await site.api.create_agency(name=f"UBND xã Hưng {n}", level="commune", parent_code=district["code"]))[
                "code"
            ]
        )
        for n in ("Đạo", "Tây")
    ]
    for _ in range(3):
        sent = await site.api.send(sender, [c.agency_code for c in communes])
        assert sent.status_code == 202, sent.text
        delivery = next(d for d in sent.json()["deliveries"] if d["recipient_code"] == communes[0].agency_code)
        for status in ("01", "03"):
            assert (await report(site.api, communes[0], delivery["id"], status)).status_code == 200
    # the statistics count months by Vietnam's calendar, not UTC's
    month = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%Y-%m")

    async def counted() -> bool:
        rows = await site.api.http.get(
            "/v1/statistics/months", params={"root": sender.agency_code}, headers=await site.api.admin()
        )
        return any(
            r["month"] == month and r["documents_sent"] == 3 and r["answered_01"] == 3 for r in rows.json()["rows"]
        )

    await wait_until(counted, within=20, what="the rollups to count the seeded month")
    leader = await site.signed_in(await site.user(sender.agency_code, role="statistics"))
    await leader.wait_for_url("**/console/statistics")
    await leader.goto(f"{site.url}/console/statistics?root={sender.agency_code}")
    row = leader.locator("#table-months tr", has=leader.locator("th", has_text=month))
    assert [(await cell.inner_text()).strip() for cell in await row.locator("td").all()][:2] == ["3", "6"]
    slowest = leader.locator("#table-slowest tbody tr")
    assert await slowest.count() == 1 and communes[0].agency_code in await slowest.inner_text()
    assert await leader.locator("svg.chart title").count() >= 3  # the charts beside the tables
    assert await unlabelled(leader) == []
    await shoot(leader, "console-statistics.png", full=True)


async def test_sign_in_by_keyboard_alone(site: Site) -> None:
    agency = await site.api.create_agency()
    username = await site.user(agency["code"])
    context = await site.browser.new_context(viewport=LAPTOP, locale="vi-VN")
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    await page.goto(f"{site.url}/console/sign-in")
    assert await unlabelled(page) == []
    await shoot(page, "console-sign-in.png")
    await page.keyboard.press("Tab")  # the first stop: the skip link
    assert await page.evaluate("document.activeElement.className") == "skip"
    focused = []
    for _ in range(10):  # on to the user name field, through the header's links
        await page.keyboard.press("Tab")
        focused.append(await page.evaluate("document.activeElement.id || document.activeElement.textContent"))
        if focused[-1] == "username":
            break
    assert focused[-1] == "username", focused
    await page.keyboard.type(username)
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "password"
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/console/inbox")
    # the menu is reached with Tab, shows where the focus is, and opens a page with Enter
    for _ in range(10):
        await page.keyboard.press("Tab")
        if (await page.evaluate("document.activeElement.textContent")).strip() == "Văn bản đi":
            break
    else:
        raise AssertionError("Tab never reached the menu's 'Văn bản đi'")
    assert await page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/console/sent")
    await context.close()
