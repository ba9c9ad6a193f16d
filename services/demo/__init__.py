"""The demo province (seeded by `lienthong dev` and `lienthong up`) and the end-to-end demo exchange.

Both talk to a running instance through the public API only, so they work the same in both modes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from services.demo.pdf import make_pdf

# The demo province: a sample data set in the import format (sample codes in the QCVN 102 form for
# Nghệ An, H41: not an official list), and the agencies that get an API client.
DEMO_DATA = Path(__file__).resolve().parents[1] / "registry" / "data" / "demo-province.csv"
DEMO_CLIENTS = (
    "000.00.00.H41",  # Ủy ban nhân dân tỉnh
    "000.00.01.H41",  # Sở Nội vụ
    "000.00.02.H41",  # Sở Tài chính
    "000.00.21.H41",  # Ủy ban nhân dân thành phố Vinh
    "000.00.22.H41",  # Ủy ban nhân dân huyện Nghi Lộc
    "000.01.21.H41",  # Ủy ban nhân dân phường Hưng Bình
    "000.01.22.H41",  # Ủy ban nhân dân xã Nghi Phong
)
DEMO_GROUPS: tuple[dict[str, Any], ...] = (
    {"name": "so-ban-nganh", "title": "Các sở, ban, ngành tỉnh", "rules": [{"level": "department"}]},
    {"name": "ubnd-cap-huyen", "title": "Ủy ban nhân dân cấp huyện", "rules": [{"level": "district"}]},
    {"name": "ubnd-cap-xa", "title": "Ủy ban nhân dân cấp xã", "rules": [{"level": "commune"}]},
)
DEMO_SENDER = "000.00.01.H41"
DEMO_RECIPIENT = "000.00.02.H41"

Say = Callable[[str], None]


class DemoError(RuntimeError):
    """The demo could not go on; the message says why and what to do."""


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str


async def get_token(http: httpx.AsyncClient, creds: Credentials) -> str | None:
    response = await http.post(
        "/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        },
    )
    if response.status_code != 200:
        return None
    token: str = response.json()["access_token"]
    return token


def _check(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 400:
        raise DemoError(f"{what} failed: HTTP {response.status_code} {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


async def seed_demo_province(
    http: httpx.AsyncClient, admin: Credentials, credentials_file: Path, say: Say = lambda _m: None
) -> dict[str, Credentials]:
    """Import the demo province and its groups (idempotent), and give the demo agencies an API client
    unless their stored credentials still work; write the credentials to ``credentials_file`` (0600)."""
    token = await get_token(http, admin)
    if token is None:
        raise DemoError("the bootstrap admin credential was refused; check LIENTHONG_REGISTRY__ADMIN_CLIENT_SECRET")
    auth = {"Authorization": f"Bearer {token}"}
    stored = await asyncio.to_thread(_read_credentials, credentials_file)
    data = await asyncio.to_thread(DEMO_DATA.read_bytes)
    report = _check(
        await http.post("/v1/agencies/import", params={"format": "csv"}, content=data, headers=auth),
        "importing the demo province",
    )
    say(f"demo province: {len(report['created'])} agencies created, {report['unchanged']} unchanged")
    for group in DEMO_GROUPS:
        if (await http.get(f"/v1/groups/{group['name']}", headers=auth)).status_code == 404:
            _check(await http.post("/v1/groups", json=group, headers=auth), f"creating group {group['name']}")
            say(f"created group {group['name']}")
    result: dict[str, Credentials] = {}
    for code in DEMO_CLIENTS:
        creds = stored.get(code)
        if creds is not None and await get_token(http, creds) is not None:
            result[code] = creds
            continue
        body = _check(
            await http.post(f"/v1/agencies/{code}/clients", json={"name": f"Demo client {code}"}, headers=auth),
            f"creating a client for {code}",
        )
        result[code] = Credentials(body["client_id"], body["client_secret"])
        say(f"issued API client {body['client_id']} for {code}")
    await asyncio.to_thread(_write_credentials, credentials_file, result)
    return result


DEMO_USERS = (  # (user name, agency, role): the console's demo accounts
    ("vanthu.snv", "000.00.01.H41", "agency", "Văn thư Sở Nội vụ"),
    ("vanthu.stc", "000.00.02.H41", "agency", "Văn thư Sở Tài chính"),
    ("quantri", "000.00.00.H41", "registry_admin", "Quản trị hệ thống tỉnh"),
    ("lanhdao", "000.00.00.H41", "statistics", "Lãnh đạo UBND tỉnh"),
)


async def seed_demo_users(
    http: httpx.AsyncClient, admin: Credentials, users_file: Path, say: Say = lambda _m: None
) -> None:
    """Create the console's demo users that do not exist yet, each with a new random password,
    written to ``users_file`` (0600); users created before keep theirs (in the file already)."""
    token = await get_token(http, admin)
    if token is None:
        raise DemoError("the bootstrap admin credential was refused; check LIENTHONG_REGISTRY__ADMIN_CLIENT_SECRET")
    auth = {"Authorization": f"Bearer {token}"}
    stored = await asyncio.to_thread(_read_users, users_file)
    for username, agency, role, name in DEMO_USERS:
        if (await http.get(f"/v1/users/{username}", headers=auth)).status_code == 200:
            continue
        password = secrets.token_urlsafe(12)
        body = {"username": username, "display_name": name, "agency_code": agency, "role": role, "password": password}
        _check(await http.post("/v1/users", json=body, headers=auth), f"creating the console user {username}")
        stored[username] = {"password": password, "agency_code": agency, "role": role}
        say(f"created console user {username} ({role}, {agency})")
    await asyncio.to_thread(_write_private, users_file, json.dumps(stored, indent=2, ensure_ascii=False))


def _read_users(path: Path) -> dict[str, dict[str, str]]:
    users: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return users


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def _read_credentials(path: Path) -> dict[str, Credentials]:
    if not path.exists():
        return {}
    agencies = json.loads(path.read_text())["agencies"]
    return {code: Credentials(v["client_id"], v["client_secret"]) for code, v in agencies.items()}


def _write_credentials(path: Path, creds: dict[str, Credentials]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "agencies": {code: {"client_id": c.client_id, "client_secret": c.client_secret} for code, c in creds.items()}
    }
    path.write_text(json.dumps(body, indent=2))
    path.chmod(0o600)


def load_credentials(credentials_file: Path, wait_seconds: float = 60.0) -> dict[str, Credentials]:
    """Read the demo credentials, waiting a little for a system that is still seeding them."""
    deadline = time.monotonic() + wait_seconds
    while not credentials_file.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    if not credentials_file.exists():
        raise DemoError(f"{credentials_file} not found: start the system with `make run` (it seeds the demo province)")
    return _read_credentials(credentials_file)


async def run_demo(http: httpx.AsyncClient, creds: dict[str, Credentials], say: Say) -> dict[str, Any]:
    """Agency A sends a PDF to agency B; B finds it, downloads it, reports 01; A sees 01 and is told in its feed."""
    sender, recipient = DEMO_SENDER, DEMO_RECIPIENT
    if sender not in creds or recipient not in creds:
        raise DemoError(f"credentials for {sender} and {recipient} are missing; restart `make run` to seed them")
    token_a = await get_token(http, creds[sender])
    token_b = await get_token(http, creds[recipient])
    if not token_a or not token_b:
        raise DemoError("the demo credentials were refused; restart `make run` to issue fresh ones")
    a = {"Authorization": f"Bearer {token_a}"}
    b = {"Authorization": f"Bearer {token_b}"}
    say(f"1. {sender} (Sở Nội vụ) and {recipient} (Sở Tài chính) each got an access token")

    number = str(uuid.uuid4().int % 900 + 100)
    pdf = make_pdf([f"So: {number}/KH-SNV", "KE HOACH chuyen doi so nam 2027", "Demo LienThong"])
    metadata = {
        "code_number": number,
        "code_notation": "KH-SNV",
        "type_name": "Kế hoạch",
        "subject": "Kế hoạch chuyển đổi số năm 2027",
        "promulgation_place": "Nghệ An",
        "promulgation_date": "2026-11-26",
        "signer": {"competence": "KT. Giám đốc", "position": "Phó Giám đốc", "full_name": "Nguyễn Văn A"},
        "urgency": 1,
        "recipients": [recipient],
    }
    sent = _check(
        await http.post(
            "/v1/documents",
            data={"metadata": json.dumps(metadata, ensure_ascii=False)},
            files={"files": ("ke-hoach.pdf", pdf, "application/pdf")},
            headers={**a, "Idempotency-Key": f"demo-{uuid.uuid4()}"},
        ),
        "sending the document",
    )
    document_id = sent["id"]
    say(
        f"2. {sender} sent {number}/KH-SNV with a {len(pdf)}-byte PDF: document {document_id}, "
        f"delivery to {sent['deliveries'][0]['recipient_code']} is {sent['deliveries'][0]['status']}"
    )

    inbox = _check(await http.get("/v1/inbox", headers=b), "reading the inbox")
    item = next((i for i in inbox["items"] if i["document_id"] == document_id), None)
    if item is None:
        raise DemoError(f"document {document_id} is not in {recipient}'s inbox")
    say(f"3. {recipient} found it in its inbox: «{item['subject']}», delivery {item['delivery_id']}")

    document = _check(await http.get(f"/v1/documents/{document_id}", headers=b), "reading the document")
    attachment = document["attachments"][0]
    download = await http.get(f"/v1/documents/{document_id}/attachments/{attachment['id']}", headers=b)
    if download.status_code != 200 or hashlib.sha256(download.content).hexdigest() != attachment["sha256"]:
        raise DemoError(f"the attachment download failed or its hash differs (HTTP {download.status_code})")
    say(f"4. {recipient} downloaded {attachment['file_name']} ({attachment['size']} bytes, sha256 verified)")

    cursor = await _feed_end(http, a)
    _check(
        await http.post(f"/v1/deliveries/{item['delivery_id']}/status", json={"status": "01"}, headers=b),
        "reporting status 01",
    )
    say(f"5. {recipient} reported status 01 (arrived)")

    seen = _check(await http.get(f"/v1/documents/{document_id}", headers=a), "reading the sent document")
    status = seen["deliveries"][0]["status"]
    if status != "01":
        raise DemoError(f"{sender} sees status {status}, expected 01")
    say(
        f"6. {sender} sees {recipient}'s status: {status} (history: "
        f"{' → '.join(e['status'] for e in seen['deliveries'][0]['history'])})"
    )
    told = _check(await http.get("/v1/feed", params={"cursor": cursor, "wait": 10}, headers=a), "reading the feed")
    entry = next((e for e in told["entries"] if e["delivery_id"] == item["delivery_id"]), None)
    if entry is None or entry["type"] != "delivery.status_changed":
        raise DemoError(f"{sender}'s feed did not tell it of the status within 10 s")
    say(f"7. {sender} was told without asking: entry {entry['seq']} of its feed, status {entry['data']['status']}")
    return seen


async def _feed_end(http: httpx.AsyncClient, headers: dict[str, str]) -> str | None:
    """Return the cursor after an agency's last feed entry (the demo may have run before)."""
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = _check(await http.get("/v1/feed", params=params, headers=headers), "reading the feed")
        cursor = page["next_cursor"]
        if not page["entries"]:
            return cursor
