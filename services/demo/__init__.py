"""The demo province (seeded by `lienthong dev` and `lienthong up`) and the end-to-end demo exchange.

Both talk to a running instance through the public API only, so they work the same in both modes.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from services.demo.pdf import make_pdf

# The demo province: Bình Phước as it was before 1 July 2025 (the province of the original plan), a
# sample data set in the import format (SAMPLE codes in the QCVN 102 form, H10: not an official list),
# and the agencies that get an API client.
DATA_DIR = Path(__file__).resolve().parents[1] / "registry" / "data"
DEMO_DATA = DATA_DIR / "demo-province.csv"
DEMO_CLIENTS = (
    "000.00.00.H10",  # Ủy ban nhân dân tỉnh Bình Phước
    "000.00.01.H10",  # Sở Nội vụ
    "000.00.02.H10",  # Sở Tài chính
    "000.00.21.H10",  # Ủy ban nhân dân thành phố Đồng Xoài
    "000.00.30.H10",  # Ủy ban nhân dân huyện Lộc Ninh
    "000.01.21.H10",  # Ủy ban nhân dân phường Tân Phú
    "000.01.30.H10",  # Ủy ban nhân dân thị trấn Lộc Ninh
)
# Its merger into Đồng Nai (H19) on 1 July 2025, when the district level also ended: the agencies the
# merged province adds, and who retires with which successor (`lienthong demo --merger-2025`).
MERGER_DATA = DATA_DIR / "demo-merger-2025.csv"
MERGER_RETIREMENTS = DATA_DIR / "demo-merger-2025-retirements.csv"
MERGER_CLIENTS = (
    "000.00.00.H19",  # Ủy ban nhân dân tỉnh Đồng Nai
    "000.00.01.H19",  # Sở Nội vụ
    "000.00.02.H19",  # Sở Tài chính
    "000.00.42.H19",  # Ủy ban nhân dân phường Đồng Xoài
    "000.00.54.H19",  # Ủy ban nhân dân xã Lộc Ninh
)
DEMO_GROUPS: tuple[dict[str, Any], ...] = (
    {"name": "so-ban-nganh", "title": "Các sở, ban, ngành tỉnh", "rules": [{"level": "department"}]},
    {"name": "ubnd-cap-huyen", "title": "Ủy ban nhân dân cấp huyện", "rules": [{"level": "district"}]},
    {"name": "ubnd-cap-xa", "title": "Ủy ban nhân dân cấp xã", "rules": [{"level": "commune"}]},
)


@dataclass(frozen=True)
class DemoPair:
    """Who sends to whom in the demo exchange, in one era of the province."""

    sender: str
    sender_name: str
    recipient: str
    recipient_name: str
    place: str


# before the merger Bình Phước's Sở Nội vụ sends to its Sở Tài chính; after it, Đồng Nai's do
DEMO_PAIRS = (
    DemoPair("000.00.01.H10", "Sở Nội vụ", "000.00.02.H10", "Sở Tài chính", "Bình Phước"),
    DemoPair("000.00.01.H19", "Sở Nội vụ", "000.00.02.H19", "Sở Tài chính", "Đồng Nai"),
)
# after the merger Đồng Nai's Sở Nội vụ writes to the retired UBND huyện Lộc Ninh: its successor receives
MERGER_SENDER = "000.00.01.H19"
MERGER_RETIRED_RECIPIENT = "000.00.30.H10"

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
    unless their stored credentials still work; write the credentials to ``credentials_file`` (0600).

    After the merger (:func:`apply_merger_2025`) the province's retired agencies get no client (they
    can no longer act) and the merged province's keep theirs."""
    auth = await _admin_headers(http, admin)
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
    codes = [*DEMO_CLIENTS, *(code for code in stored if code not in DEMO_CLIENTS)]
    result = await _ensure_clients(http, auth, codes, stored, say)
    await asyncio.to_thread(_write_credentials, credentials_file, result)
    return result


async def _admin_headers(http: httpx.AsyncClient, admin: Credentials) -> dict[str, str]:
    token = await get_token(http, admin)
    if token is None:
        raise DemoError("the bootstrap admin credential was refused; check LIENTHONG_REGISTRY__ADMIN_CLIENT_SECRET")
    return {"Authorization": f"Bearer {token}"}


async def _statuses(http: httpx.AsyncClient, auth: dict[str, str], codes: list[str]) -> dict[str, dict[str, Any]]:
    """Return the agencies among ``codes`` that the registry knows, by code."""
    found = _check(await http.post("/v1/agencies/lookup", json={"codes": codes}, headers=auth), "looking agencies up")
    return {a["code"]: a for a in found["found"]}


async def _ensure_clients(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    codes: list[str],
    stored: dict[str, Credentials],
    say: Say,
) -> dict[str, Credentials]:
    """Return working credentials for the active agencies among ``codes``: the stored ones while they
    still get a token, new clients otherwise. Retired, suspended and unknown agencies are left out."""
    known = await _statuses(http, auth, codes)
    result: dict[str, Credentials] = {}
    for code in codes:
        if known.get(code, {}).get("status") != "active":
            continue
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
    return result


def read_rows(path: Path) -> list[dict[str, str]]:
    """Read a demo data file: CSV with a header line, lines starting with # are comments."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")]
    return list(csv.DictReader(lines))


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


async def apply_merger_2025(
    http: httpx.AsyncClient, admin: Credentials, credentials_file: Path, say: Say = lambda _m: None
) -> dict[str, Credentials]:
    """Merge the demo's Bình Phước into Đồng Nai as on 1 July 2025, through the registry API (idempotent).

    1. Import the agencies of ``demo-merger-2025.csv`` that the registry lacks (an existing Đồng Nai is
       left as it is): Đồng Nai's People's Committee, its departments, the new communes.
    2. Retire every agency of ``demo-merger-2025-retirements.csv`` with its successor, in file order
       (the communes, the district level, then the province level), unless it already is.
    3. Give the merged province's demo agencies an API client; drop the retired ones' credentials.
    """
    auth = await _admin_headers(http, admin)
    adds, retirements = await asyncio.to_thread(lambda: (read_rows(MERGER_DATA), read_rows(MERGER_RETIREMENTS)))
    known = await _statuses(http, auth, [row["code"] for row in adds])
    absent = [row for row in adds if row["code"] not in known]
    if absent:
        report = _check(
            await http.post("/v1/agencies/import", params={"format": "csv"}, content=_csv(absent), headers=auth),
            "importing the merged province",
        )
        say(f"merger: {len(report['created'])} agencies of Đồng Nai created")
    current = await _statuses(http, auth, [row["code"] for row in retirements])
    retired = 0
    for row in retirements:
        agency = current.get(row["code"])
        if agency is None:
            raise DemoError(f"{row['code']} is not in the registry: seed the demo province first")
        if agency["status"] == "retired" and agency["successor_code"] == row["successor_code"]:
            continue
        change = {"status": "retired", "successor_code": row["successor_code"], "reason": row["reason"]}
        _check(
            await http.post(f"/v1/agencies/{row['code']}/status", json=change, headers=auth),
            f"retiring {row['code']}",
        )
        retired += 1
    already = len(retirements) - retired
    say(f"merger: {retired} agencies of Bình Phước retired with a successor ({already} already were)")
    stored = await asyncio.to_thread(_read_credentials, credentials_file)
    codes = [*MERGER_CLIENTS, *(code for code in stored if code not in MERGER_CLIENTS)]
    result = await _ensure_clients(http, auth, codes, stored, say)
    await asyncio.to_thread(_write_credentials, credentials_file, result)
    return result


async def run_merger_demo(http: httpx.AsyncClient, creds: dict[str, Credentials], say: Say) -> dict[str, Any]:
    """After the merger: Đồng Nai's Sở Nội vụ writes to the retired UBND huyện Lộc Ninh; the registry
    redirects the document to its successor, the sender is told, and the successor finds it in its inbox."""
    sender, retired = MERGER_SENDER, MERGER_RETIRED_RECIPIENT
    token_a = await get_token(http, creds[sender]) if sender in creds else None
    if token_a is None:
        raise DemoError(f"no working credentials for {sender}: run `lienthong demo --merger-2025` to apply the merger")
    a = {"Authorization": f"Bearer {token_a}"}
    target = _check(await http.get(f"/v1/agencies/{retired}", headers=a), f"reading {retired}")
    successor = target["successor_code"]
    if target["status"] != "retired" or successor not in creds:
        raise DemoError(f"{retired} is {target['status']}: the merger has not been applied")
    say(f"8. {retired} ({target['name']}) is retired: {target['status_reason']}; its successor is {successor}")

    number = str(uuid.uuid4().int % 900 + 100)
    pdf = make_pdf([f"So: {number}/SNV-VP", "Cong van ve viec ban giao ho so", "Demo LienThong"])
    metadata = {
        "code_number": number,
        "code_notation": "SNV-VP",
        "type_name": "Công văn",
        "subject": "Về việc bàn giao hồ sơ khi kết thúc hoạt động cấp huyện",
        "promulgation_place": "Đồng Nai",
        "promulgation_date": "2026-11-26",
        "signer": {"competence": "KT. Giám đốc", "position": "Phó Giám đốc", "full_name": "Trần Thị B"},
        "recipients": [retired],
    }
    sent = _check(
        await http.post(
            "/v1/documents",
            data={"metadata": json.dumps(metadata, ensure_ascii=False)},
            files={"files": ("cong-van.pdf", pdf, "application/pdf")},
            headers={**a, "Idempotency-Key": f"demo-{uuid.uuid4()}"},
        ),
        "sending to the retired district",
    )
    redirect = sent["redirected"]
    if redirect != [{"from_code": retired, "to_code": successor}]:
        raise DemoError(f"the document to {retired} was not redirected to {successor}: {redirect}")
    say(
        f"9. {sender} sent {number}/SNV-VP to {retired}: redirected to {successor} "
        f"(delivery to {sent['deliveries'][0]['recipient_code']})"
    )
    token_c = await get_token(http, creds[successor])
    if token_c is None:
        raise DemoError(f"the credentials of {successor} were refused")
    inbox = _check(
        await http.get("/v1/inbox", headers={"Authorization": f"Bearer {token_c}"}), f"reading {successor}'s inbox"
    )
    if not any(i["document_id"] == sent["id"] for i in inbox["items"]):
        raise DemoError(f"document {sent['id']} is not in {successor}'s inbox")
    say(f"10. {successor} found it in its inbox")
    return sent


def demo_pair(creds: dict[str, Credentials]) -> DemoPair:
    """Return the era's demo pair whose credentials are there (the merged province's after the merger)."""
    return next((p for p in DEMO_PAIRS if p.sender in creds and p.recipient in creds), DEMO_PAIRS[0])


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
    """Agency A sends a PDF to agency B; B finds it, downloads it, reports 01; A sees 01 and is told in its feed.

    A and B are Bình Phước's Sở Nội vụ and Sở Tài chính, or Đồng Nai's once the merger is applied."""
    pair = demo_pair(creds)
    sender, recipient = pair.sender, pair.recipient
    if sender not in creds or recipient not in creds:
        raise DemoError(f"credentials for {sender} and {recipient} are missing; restart `make run` to seed them")
    token_a = await get_token(http, creds[sender])
    token_b = await get_token(http, creds[recipient])
    if not token_a or not token_b:
        raise DemoError("the demo credentials were refused; restart `make run` to issue fresh ones")
    a = {"Authorization": f"Bearer {token_a}"}
    b = {"Authorization": f"Bearer {token_b}"}
    say(
        f"1. {sender} ({pair.sender_name} tỉnh {pair.place}) and {recipient} ({pair.recipient_name}) "
        "each got an access token"
    )

    number = str(uuid.uuid4().int % 900 + 100)
    pdf = make_pdf([f"So: {number}/KH-SNV", "KE HOACH chuyen doi so nam 2027", "Demo LienThong"])
    metadata = {
        "code_number": number,
        "code_notation": "KH-SNV",
        "type_name": "Kế hoạch",
        "subject": "Kế hoạch chuyển đổi số năm 2027",
        "promulgation_place": pair.place,
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
