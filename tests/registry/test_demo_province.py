"""The demo province: Bình Phước (sample codes) as seeded by `lienthong dev`, then its 2025 merger into
Đồng Nai (`lienthong demo --merger-2025`): the district level retired, every agency retired with a
successor, and a document to a retired district redirected to its successor (the registry's rule:
docs/registry.md, *Lifecycle*)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.demo import (
    DEMO_CLIENTS,
    DEMO_DATA,
    MERGER_CLIENTS,
    MERGER_DATA,
    MERGER_RETIREMENTS,
    Credentials,
    apply_merger_2025,
    read_rows,
    run_merger_demo,
    seed_demo_province,
)
from tests.conftest import running_system
from tests.helpers import Api, assert_problem

QCVN_102 = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")


def test_the_data_files_are_marked_samples_and_the_merger_covers_the_province() -> None:
    era1, adds, retirements = read_rows(DEMO_DATA), read_rows(MERGER_DATA), read_rows(MERGER_RETIREMENTS)
    for path in (DEMO_DATA, MERGER_DATA, MERGER_RETIREMENTS):
        assert "SAMPLE" in path.read_text(encoding="utf-8").split("\ncode,")[0], path  # said in the header comment
    for row in era1 + adds:
        assert QCVN_102.match(row["code"]), row
        assert row["name"].endswith("(mẫu)"), row
    assert {r["code"][-3:] for r in era1} == {"H10"} and {r["code"][-3:] for r in adds} == {"H19"}
    # every Bình Phước agency retires once, each to an agency the merger adds (active when named)
    assert sorted(r["code"] for r in retirements) == sorted(r["code"] for r in era1)
    assert {r["successor_code"] for r in retirements} <= {r["code"] for r in adds}
    assert all(r["reason"] for r in retirements)


@pytest.fixture(scope="module")
async def merged(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Api, dict[str, Any]]]:
    """One system on SQLite: the demo province seeded (twice), then merged (twice)."""
    var_dir = tmp_path_factory.mktemp("demo-province") / "var"
    async with running_system(var_dir) as api:
        secret = api.settings.registry.admin_client_secret
        assert secret is not None
        admin = Credentials(api.settings.registry.admin_client_id, secret.get_secret_value())
        file = var_dir / "demo-credentials.json"
        seeded = await seed_demo_province(api.http, admin, file)
        era1 = {
            "tree": (await api.http.get("/v1/agencies/tree?root=000.00.00.H10", headers=await api.admin())).json(),
            "creds": seeded,
        }
        said: list[str] = []
        creds = await apply_merger_2025(api.http, admin, file, said.append)
        again: list[str] = []
        assert await apply_merger_2025(api.http, admin, file, again.append) == creds  # idempotent
        reseeded = await seed_demo_province(api.http, admin, file)  # `make run` again after the merger
        yield api, {**era1, "merged": creds, "said": said, "again": again, "reseeded": reseeded}


async def test_the_demo_province_before_the_merger(merged: tuple[Api, dict[str, Any]]) -> None:
    _api, state = merged
    assert sorted(state["creds"]) == sorted(DEMO_CLIENTS)
    (province,) = state["tree"]
    assert province["name"] == "Ủy ban nhân dân tỉnh Bình Phước (mẫu)"
    by_level: dict[str, list[dict[str, Any]]] = {}
    for child in province["children"]:
        by_level.setdefault(child["level"], []).append(child)
    assert len(by_level["department"]) == 17 and len(by_level["district"]) == 11
    names = {d["name"] for d in by_level["district"]}
    for place in ("Đồng Xoài", "Bình Long", "Phước Long", "Chơn Thành", "Bù Đăng", "Lộc Ninh", "Phú Riềng"):
        assert any(place in n for n in names), place
    communes = {d["code"]: [c["name"] for c in d["children"]] for d in by_level["district"] if d["children"]}
    assert len(communes) == 5 and sum(map(len, communes.values())) == 19
    assert "Ủy ban nhân dân phường Tân Phú (mẫu)" in communes["000.00.21.H10"]


async def test_the_merger_retires_the_province_and_the_district_level(merged: tuple[Api, dict[str, Any]]) -> None:
    api, state = merged
    admin = await api.admin()
    exported = (await api.http.get("/v1/agencies/export?format=json", headers=admin)).json()["agencies"]
    rows = {r["code"]: r for r in exported}
    expected = {r["code"]: r["successor_code"] for r in read_rows(MERGER_RETIREMENTS)}
    assert {c: (rows[c]["status"], rows[c]["successor_code"]) for c in expected} == {
        c: ("retired", s) for c, s in expected.items()
    }
    assert rows["000.00.30.H10"]["successor_code"] == "000.00.54.H19"  # huyện Lộc Ninh → xã Lộc Ninh
    assert rows["000.00.04.H10"]["successor_code"] == "000.00.02.H19"  # Kế hoạch và Đầu tư → Tài chính
    # the district level has no active agency left; the new communes hang from the province
    districts = (await api.http.get("/v1/agencies?level=district&status=active", headers=admin)).json()
    assert districts["items"] == []
    tree = (await api.http.get("/v1/agencies/tree?root=000.00.00.H19", headers=admin)).json()[0]
    levels = [c["level"] for c in tree["children"]]
    assert levels.count("department") == 12 and levels.count("commune") == 16 and len(levels) == 28
    members = (await api.http.get("/v1/groups/ubnd-cap-huyen/members", headers=admin)).json()
    assert members["count"] == 0
    assert any("48 agencies of Bình Phước retired" in m for m in state["said"])
    assert any("0 agencies of Bình Phước retired" in m for m in state["again"])
    history = (await api.http.get("/v1/agencies/000.00.00.H10/history", headers=admin)).json()
    assert history[-1]["changes"]["successor_code"] == "000.00.00.H19"


async def test_credentials_follow_the_merger(merged: tuple[Api, dict[str, Any]]) -> None:
    api, state = merged
    assert sorted(state["merged"]) == sorted(MERGER_CLIENTS)  # the retired agencies' are dropped
    assert state["reseeded"] == state["merged"]  # seeding again issues nothing for the retired ones
    old = state["creds"]["000.00.01.H10"]
    refused = await api.token(old.client_id, old.client_secret)
    assert_problem(refused, 403, "agency_inactive")


async def test_a_document_to_a_retired_district_goes_to_its_successor(merged: tuple[Api, dict[str, Any]]) -> None:
    api, state = merged
    steps: list[str] = []
    sent = await run_merger_demo(api.http, state["merged"], steps.append)
    assert sent["redirected"] == [{"from_code": "000.00.30.H10", "to_code": "000.00.54.H19"}]
    assert [d["recipient_code"] for d in sent["deliveries"]] == ["000.00.54.H19"]
    assert [s.split(".")[0] for s in steps] == ["8", "9", "10"]
