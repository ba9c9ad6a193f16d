"""The registry's agencies through the gateway: codes in both national forms, Vietnamese names and
search, levels as data, a hierarchy of any depth, listing and lookup, the lifecycle and its history, and
what suspension and retirement do."""

from __future__ import annotations

import datetime as dt
import random
import string
import unicodedata
from typing import Any

from shared.auth import Scope
from tests.conftest import ONE_DATABASE
from tests.helpers import (
    Api,
    add_level,
    agency_codes,
    assert_problem,
    get_agency,
    history_of,
    member_codes,
    poll,
    race,
    random_code,
    send,
    set_status,
)

DEFAULT_LEVELS = [("province", 10), ("department", 20), ("district", 30), ("commune", 40), ("other", 90)]


def random_word(length: int = 8) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=length))


class Tree:
    """province → district → commune → village → hamlet, plus district2 → commune2 and a department."""

    def __init__(self, **codes: str) -> None:
        self.__dict__.update(codes)

    province: str
    district: str
    commune: str
    village: str
    hamlet: str
    district2: str
    commune2: str
    department: str


async def build_tree(api: Api) -> Tree:
    async def make(level: str, parent: str | None) -> str:
        return str((await api.create_agency(level=level, parent_code=parent))["code"])

    province = await make("province", None)
    district = await make("district", province)
    commune = await make("commune", district)
    village = await make("village", commune)
    hamlet = await make("other", village)
    district2 = await make("district", province)
    commune2 = await make("commune", district2)
    department = await make("department", province)
    return Tree(
        province=province,
        district=district,
        commune=commune,
        village=village,
        hamlet=hamlet,
        district2=district2,
        commune2=commune2,
        department=department,
    )


def shape(node: dict[str, Any]) -> tuple[str, list[Any]]:
    """A tree node as (code, [children's shapes]) in the order given."""
    return node["code"], [shape(child) for child in node["children"]]


# --- agencies --------------------------------------------------------------------------------


async def test_admin_creates_an_agency(api: Api) -> None:
    parent = await api.create_agency(level="province")
    code = random_code()
    body = {
        "code": f"  {code.lower()} ",
        "name": unicodedata.normalize("NFD", " Sở Thông tin và Truyền thông "),
        "short_name": "Sở TT&TT",
        "level": "department",
        "parent_code": parent["code"],
        "email": "stttt@nghean.gov.vn",
        "phone": "0238 3 123 456",
        "address": "16 Trường Thi, TP Vinh",
    }
    response = await api.http.post("/v1/agencies", json=body, headers=await api.admin())
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["code"] == code
    assert created["name"] == "Sở Thông tin và Truyền thông"
    assert unicodedata.is_normalized("NFC", created["name"])
    assert created["parent_code"] == parent["code"]
    assert created["status"] == "active"
    assert {k: created[k] for k in ("short_name", "level", "email", "phone", "address")} == {
        k: body[k] for k in ("short_name", "level", "email", "phone", "address")
    }
    assert dt.datetime.fromisoformat(created["created_at"]).tzinfo is not None

    fetched = await api.http.get(f"/v1/agencies/{code.lower()}", headers=await api.admin())
    assert fetched.status_code == 200
    assert fetched.json() == created


async def test_name_limit_counts_nfc_characters(api: Api) -> None:
    name = ("Ủy ban nhân dân huyện Quỳnh Lưu, tỉnh Nghệ An " * 4)[:180].strip()
    assert len(unicodedata.normalize("NFD", name)) > 200
    body = {"code": random_code(), "name": unicodedata.normalize("NFD", name), "level": "department"}
    response = await api.http.post("/v1/agencies", json=body, headers=await api.admin())
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name


async def test_duplicate_code_is_refused_and_the_first_agency_is_kept(api: Api) -> None:
    first = await api.create_agency(name="Sở Nội vụ")
    response = await api.http.post(
        "/v1/agencies",
        json={"code": first["code"].lower(), "name": "Sở khác", "level": "department"},
        headers=await api.admin(),
    )
    body = assert_problem(response, 409, "agency_exists")
    assert body["agency_code"] == first["code"]
    assert await agency_codes(api) == [first["code"]]
    fetched = await api.http.get(f"/v1/agencies/{first['code']}", headers=await api.admin())
    assert fetched.json()["name"] == "Sở Nội vụ"


async def test_concurrent_duplicate_creations_answer_409(api: Api) -> None:
    """All three requests pass the duplicate check before any inserts (see writes_held)."""
    body = {"code": random_code(), "name": "Sở Tài chính", "level": "department"}
    headers = await api.admin()
    calls = [api.http.post("/v1/agencies", json=body, headers=headers) for _ in range(3)]
    statuses = await race(api, "registry", "agency", calls)
    assert sorted(statuses, key=str) == [201, 409, 409]
    assert await agency_codes(api) == [body["code"]]


INVALID_CODES = ["", "000.00.00", "00.00.00.H41", "000.00.00.H4", "000.00.00.H411", "000-00-00-H41", "000.00.00.141"]


@ONE_DATABASE  # refused by validation, before any database
async def test_invalid_code_forms_are_refused(api: Api) -> None:
    for code in [*INVALID_CODES, "ABC.00.00.H41"]:
        response = await api.http.post(
            "/v1/agencies", json={"code": code, "name": "Sở", "level": "department"}, headers=await api.admin()
        )
        body = assert_problem(response, 422, "validation_failed")
        assert ["body", "code"] in [e["loc"] for e in body["errors"]], code
    assert await agency_codes(api) == []


@ONE_DATABASE  # refused by validation, before any database
async def test_invalid_agency_fields_are_refused(api: Api) -> None:
    for field, value in [
        ("name", "   "),
        ("name", "x" * 201),
        ("level", "Department"),
        ("level", ""),
        ("email", "not-an-email"),
        ("status", "inactive"),  # not a field one may set
    ]:
        body = {"code": random_code(), "name": "Sở Y tế", "level": "department", field: value}
        response = await api.http.post("/v1/agencies", json=body, headers=await api.admin())
        problem = assert_problem(response, 422, "validation_failed")
        assert ["body", field] in [e["loc"] for e in problem["errors"]], (field, value)
    assert await agency_codes(api) == []


async def test_unknown_parent_is_refused_and_nothing_is_created(api: Api) -> None:
    code, parent = random_code(), random_code("X")
    response = await api.http.post(
        "/v1/agencies",
        json={"code": code, "name": "Phòng", "level": "department", "parent_code": parent},
        headers=await api.admin(),
    )
    assert_problem(response, 404, "parent_agency_not_found")
    missing = await api.http.get(f"/v1/agencies/{code}", headers=await api.admin())
    assert_problem(missing, 404, "agency_not_found")


async def test_get_unknown_agency_is_404(api: Api) -> None:
    response = await api.http.get(f"/v1/agencies/{random_code()}", headers=await api.admin())
    body = assert_problem(response, 404, "agency_not_found")
    assert body["instance"].startswith("/v1/agencies/")


async def test_any_agency_may_read_the_directory(api: Api) -> None:
    reader = await api.agency_client()
    other = await api.create_agency()
    response = await api.http.get(f"/v1/agencies/{other['code']}", headers=reader.auth)
    assert response.status_code == 200
    assert response.json()["code"] == other["code"]


async def test_list_children_of_a_parent_page_by_page(api: Api) -> None:
    parent = await api.create_agency(level="province")
    children = sorted([(await api.create_agency(parent_code=parent["code"]))["code"] for _ in range(3)])
    unrelated = await api.create_agency()
    headers = await api.admin()

    first = await api.http.get("/v1/agencies", params={"parent": parent["code"], "limit": 2}, headers=headers)
    assert first.status_code == 200
    page1 = first.json()
    assert [a["code"] for a in page1["items"]] == children[:2]
    assert all(a["parent_code"] == parent["code"] for a in page1["items"])
    assert page1["next_cursor"]

    params = {"parent": parent["code"], "limit": 2, "cursor": page1["next_cursor"]}
    second = await api.http.get("/v1/agencies", params=params, headers=headers)
    page2 = second.json()
    assert [a["code"] for a in page2["items"]] == children[2:]
    assert page2["next_cursor"] is None

    everyone = await agency_codes(api)
    assert everyone == sorted([parent["code"], *children, unrelated["code"]])


async def test_list_by_level(api: Api) -> None:
    province = await api.create_agency(level="province")
    await api.create_agency(level="department")
    assert await agency_codes(api, level="province") == [province["code"]]


async def test_list_with_an_exact_page_has_no_next_cursor(api: Api) -> None:
    codes = sorted([(await api.create_agency())["code"] for _ in range(2)])
    response = await api.http.get("/v1/agencies", params={"limit": 2}, headers=await api.admin())
    assert [a["code"] for a in response.json()["items"]] == codes
    assert response.json()["next_cursor"] is None


async def test_parent_filter_takes_any_spelling_of_a_known_code(api: Api) -> None:
    parent = await api.create_agency(level="province")
    child = await api.create_agency(parent_code=parent["code"])
    assert await agency_codes(api, parent=parent["code"].lower()) == [child["code"]]
    unknown = await api.http.get("/v1/agencies", params={"parent": random_code("Z")}, headers=await api.admin())
    assert_problem(unknown, 404, "agency_not_found")


@ONE_DATABASE  # refused by validation, before any database
async def test_bad_list_parameters_are_refused(api: Api) -> None:
    for params, status, code in [
        ({"limit": 0}, 422, "validation_failed"),
        ({"limit": 501}, 422, "validation_failed"),
        ({"cursor": "abc"}, 400, "bad_request"),  # not base64
        ({"cursor": "_w=="}, 400, "bad_request"),  # not UTF-8 once decoded
    ]:
        response = await api.http.get("/v1/agencies", params=params, headers=await api.admin())
        assert_problem(response, status, code)


async def test_lookup_returns_found_and_missing(api: Api) -> None:
    a, b = await api.create_agency(), await api.create_agency()
    unknown = random_code("Z")
    response = await api.http.post(
        "/v1/agencies/lookup",
        json={"codes": [a["code"], b["code"].lower(), unknown, a["code"]]},
        headers=await api.admin(),
    )
    assert response.status_code == 200
    body = response.json()
    assert sorted(x["code"] for x in body["found"]) == sorted([a["code"], b["code"]])
    assert body["missing"] == [unknown]


@ONE_DATABASE  # refused by validation, before any database
async def test_lookup_needs_codes_and_a_token(api: Api) -> None:
    empty = await api.http.post("/v1/agencies/lookup", json={"codes": []}, headers=await api.admin())
    assert_problem(empty, 422, "validation_failed")
    anonymous = await api.http.post("/v1/agencies/lookup", json={"codes": [random_code()]})
    assert_problem(anonymous, 401, "unauthorized")


# --- codes -----------------------------------------------------------------------------------


async def test_qcvn_102_code_forms(api: Api) -> None:
    created = await api.create_agency("000.00.00.H41", level="province")
    assert created["code"] == "000.00.00.H41"
    lower = random_code()
    assert (await api.create_agency(lower.lower()))["code"] == lower

    for code in ["00.00.00.H41", "000.00.00.h4", "000.00.00.41H", "", "000.00.00", "000.00.00.H411", "000-00-00-H41"]:
        response = await api.http.post(
            "/v1/agencies", json={"code": code, "name": "Sở thử", "level": "department"}, headers=await api.admin()
        )
        body = assert_problem(response, 422, "validation_failed")
        assert ["body", "code"] in [e["loc"] for e in body["errors"]], code
    assert await agency_codes(api) == sorted(["000.00.00.H41", lower])


async def test_decision_20_new_code_forms(api: Api) -> None:
    # level 1 first, then numeric levels of one to three digits, at most 35 characters in all
    for new_code in ["H41", "H52.101.114", "h40.1", "H52.1.2.3.4", "G22" + ".123" * 8]:
        created = await api.create_agency(new_code=new_code)
        assert created["new_code"] == new_code.upper()

    for new_code in ["52.H", "H5", "H52.1234", "H52" + ".1" * 17, "H52.", "41", ""]:
        code = random_code()
        response = await api.http.post(
            "/v1/agencies",
            json={"code": code, "new_code": new_code, "name": "Sở thử", "level": "department"},
            headers=await api.admin(),
        )
        body = assert_problem(response, 422, "validation_failed")
        assert ["body", "new_code"] in [e["loc"] for e in body["errors"]], new_code
        assert_problem(await api.http.get(f"/v1/agencies/{code}", headers=await api.admin()), 404, "agency_not_found")
    assert len(await agency_codes(api)) == 5


async def test_new_code_is_unique(api: Api) -> None:
    first = await api.create_agency(new_code="H52.101.114", name="Ủy ban nhân dân xã Thử Nhất")
    taken = random_code()
    response = await api.http.post(
        "/v1/agencies",
        json={"code": taken, "new_code": "h52.101.114", "name": "Xã khác", "level": "commune"},
        headers=await api.admin(),
    )
    body = assert_problem(response, 409, "agency_exists")
    assert body["agency_code"] == first["code"]
    assert_problem(await api.http.get(f"/v1/agencies/{taken}", headers=await api.admin()), 404, "agency_not_found")

    other = await api.create_agency(new_code="H52.101.115")
    patch = await api.http.patch(
        f"/v1/agencies/{other['code']}", json={"new_code": "H52.101.114"}, headers=await api.admin()
    )
    assert_problem(patch, 409, "agency_exists")
    assert (await get_agency(api, other["code"]))["new_code"] == "H52.101.115"
    assert (await get_agency(api, "H52.101.114"))["code"] == first["code"]
    assert await agency_codes(api) == sorted([first["code"], other["code"]])


async def test_get_and_lookup_by_either_code_form(api: Api) -> None:
    a = await api.create_agency(new_code="H41", level="province")
    b = await api.create_agency(new_code="H52.101.114", level="commune")
    by_code = await get_agency(api, a["code"])
    assert await get_agency(api, "H41") == by_code
    assert await get_agency(api, "h41") == by_code
    assert (await get_agency(api, "H52.101.114"))["code"] == b["code"]

    unknown_new, unknown_old = "H99.999", random_code("Z")
    response = await api.http.post(
        "/v1/agencies/lookup",
        json={"codes": [a["code"], "h52.101.114", unknown_new, unknown_old]},
        headers=await api.admin(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(x["code"] for x in body["found"]) == sorted([a["code"], b["code"]])
    assert body["missing"] == sorted([unknown_new, unknown_old])


async def test_codes_in_request_bodies_accept_the_decision_20_form(api: Api) -> None:
    province = await api.create_agency(level="province", new_code="H41")
    code = random_code()
    created = await api.http.post(
        "/v1/agencies",
        json={"code": code, "name": "Sở Thử", "level": "department", "parent_code": "H41"},
        headers=await api.admin(),
    )
    assert created.status_code == 201, created.text
    assert created.json()["parent_code"] == province["code"]
    other = await api.create_agency()
    moved = await api.http.patch(
        f"/v1/agencies/{other['code']}", json={"parent_code": "H41"}, headers=await api.admin()
    )
    assert moved.status_code == 200, moved.text
    group = await api.http.post(
        "/v1/groups",
        json={"name": "tinh", "title": "Tỉnh", "members": ["H41"], "rules": [{"under": "H41", "level": "department"}]},
        headers=await api.admin(),
    )
    assert group.status_code == 201, group.text
    assert await member_codes(api, "tinh") == sorted([province["code"], code, other["code"]])
    retired = await api.http.post(
        f"/v1/agencies/{code}/status", json={"status": "retired", "successor_code": "H41"}, headers=await api.admin()
    )
    assert retired.status_code == 200, retired.text
    assert retired.json()["successor_code"] == province["code"]


# --- names and search ------------------------------------------------------------------------


async def test_names_are_stored_in_nfc(api: Api) -> None:
    name, short = "Sở Tài nguyên và Môi trường tỉnh Nghệ An", "Sở TN&MT"
    nfd_name, nfd_short = unicodedata.normalize("NFD", name), unicodedata.normalize("NFD", short)
    assert nfd_name != name
    created = await api.create_agency(name=nfd_name, short_name=nfd_short, address=unicodedata.normalize("NFD", "Vinh"))
    assert created["name"] == name and created["short_name"] == short
    fetched = await get_agency(api, created["code"])
    assert fetched["name"] == name
    assert unicodedata.is_normalized("NFC", fetched["name"])
    assert unicodedata.is_normalized("NFC", fetched["short_name"])

    patched = await api.http.patch(
        f"/v1/agencies/{created['code']}",
        json={"name": unicodedata.normalize("NFD", "Sở Xây dựng")},
        headers=await api.admin(),
    )
    assert patched.status_code == 200, patched.text
    assert (await get_agency(api, created["code"]))["name"] == "Sở Xây dựng"


async def test_search_without_diacritics(api: Api) -> None:
    token, other_token = random_word(), random_word()
    wanted = await api.create_agency(name=f"Sở Tài chính thử nghiệm {token}")
    await api.create_agency(name=f"Sở Tài nguyên thử nghiệm {token}")
    await api.create_agency(name=f"Sở Tài chính thử nghiệm {other_token}")
    await api.create_agency(name=unicodedata.normalize("NFD", f"Đài Phát thanh {token}"))

    assert await agency_codes(api, q=f"so tai chinh {token}") == [wanted["code"]]
    assert await agency_codes(api, q=f"SO TAI CHINH {token.upper()}") == [wanted["code"]]
    assert await agency_codes(api, q=unicodedata.normalize("NFD", f"Sở Tài Chính {token}")) == [wanted["code"]]
    assert len(await agency_codes(api, q=f"dai phat thanh {token}")) == 1
    assert len(await agency_codes(api, q=token)) == 3
    assert await agency_codes(api, q=f"so tai chinh {token} khongco") == []
    assert await agency_codes(api, q=f"zq{random_word()}") == []


# --- levels ----------------------------------------------------------------------------------


async def test_levels_are_data(api: Api) -> None:
    levels = await api.http.get("/v1/agency-levels", headers=await api.admin())
    assert levels.status_code == 200, levels.text
    assert [(lv["code"], lv["rank"]) for lv in levels.json()] == DEFAULT_LEVELS

    code = random_code()
    unknown = await api.http.post(
        "/v1/agencies", json={"code": code, "name": "Thôn Thử", "level": "village"}, headers=await api.admin()
    )
    body = assert_problem(unknown, 422, "agency_level_unknown")
    assert body["known_levels"] == [c for c, _ in DEFAULT_LEVELS]
    assert await agency_codes(api) == []

    added = await api.http.post(
        "/v1/agency-levels",
        json={"code": "village", "name": unicodedata.normalize("NFD", "Thôn, bản, tổ dân phố"), "rank": 50},
        headers=await api.admin(),
    )
    assert added.status_code == 201, added.text
    assert added.json() == {"code": "village", "name": "Thôn, bản, tổ dân phố", "rank": 50}
    listed = (await api.http.get("/v1/agency-levels", headers=await api.admin())).json()
    assert [(lv["code"], lv["rank"]) for lv in listed] == [*DEFAULT_LEVELS[:4], ("village", 50), ("other", 90)]
    village = await api.create_agency(code, level="village", name="Thôn Thử")
    assert village["level"] == "village"
    assert await agency_codes(api, level="village") == [code]

    again = await api.http.post(
        "/v1/agency-levels", json={"code": "village", "name": "Thôn"}, headers=await api.admin()
    )
    assert_problem(again, 409, "agency_level_exists")

    agency = await api.agency_client()
    refused = await api.http.post("/v1/agency-levels", json={"code": "hamlet", "name": "Xóm"}, headers=agency.auth)
    body = assert_problem(refused, 403, "forbidden")
    assert body["required_scope"] == Scope.REGISTRY_ADMIN
    after = (await api.http.get("/v1/agency-levels", headers=agency.auth)).json()
    assert after == listed


# --- hierarchy -------------------------------------------------------------------------------


async def test_hierarchy_of_any_depth(api: Api) -> None:
    await add_level(api, "village", 50)
    t = await build_tree(api)
    unrelated = await api.create_agency(level="province")

    below_province = [t.district, t.commune, t.village, t.hamlet, t.district2, t.commune2, t.department]
    assert await agency_codes(api, subtree=t.province) == sorted(below_province)
    assert await agency_codes(api, subtree=t.district) == sorted([t.commune, t.village, t.hamlet])
    assert await agency_codes(api, subtree=t.village) == [t.hamlet]
    assert await agency_codes(api, subtree=t.hamlet) == []
    assert await agency_codes(api, subtree=t.province, level="commune") == sorted([t.commune, t.commune2])
    assert await agency_codes(api, parent=t.province) == sorted([t.district, t.district2, t.department])
    assert await agency_codes(api, parent=t.commune) == [t.village]
    assert unrelated["code"] not in await agency_codes(api, subtree=t.province)

    tree = await api.http.get("/v1/agencies/tree", params={"root": t.province}, headers=await api.admin())
    assert tree.status_code == 200, tree.text
    expected = (
        t.province,
        sorted(
            [
                (t.district, [(t.commune, [(t.village, [(t.hamlet, [])])])]),
                (t.district2, [(t.commune2, [])]),
                (t.department, []),
            ]
        ),
    )
    assert [shape(node) for node in tree.json()] == [expected]
    root = tree.json()[0]
    assert root["level"] == "province" and root["status"] == "active"
    district = next(n for n in root["children"] if n["code"] == t.district)
    assert district["children"][0]["children"][0]["level"] == "village"

    unknown = random_code("Z")
    for params in [{"subtree": unknown}, {"parent": unknown}]:
        response = await api.http.get("/v1/agencies", params=params, headers=await api.admin())
        assert_problem(response, 404, "agency_not_found")
    missing_root = await api.http.get("/v1/agencies/tree", params={"root": unknown}, headers=await api.admin())
    assert_problem(missing_root, 404, "agency_not_found")

    whole = await api.http.get("/v1/agencies/tree", headers=await api.admin())
    assert sorted(shape(node) for node in whole.json()) == sorted([expected, (unrelated["code"], [])])


async def test_moving_under_a_descendant_is_a_cycle_and_changes_nothing(api: Api) -> None:
    await add_level(api, "village", 50)
    t = await build_tree(api)
    before = await get_agency(api, t.district)
    history = await history_of(api, t.district)

    for target in [t.hamlet, t.commune, t.district]:
        response = await api.http.patch(
            f"/v1/agencies/{t.district}",
            json={"name": "Tên mới không được lưu", "parent_code": target},
            headers=await api.admin(),
        )
        assert_problem(response, 409, "hierarchy_cycle")
    unknown_parent = await api.http.patch(
        f"/v1/agencies/{t.district}",
        json={"name": "Tên mới không được lưu", "parent_code": random_code("Z")},
        headers=await api.admin(),
    )
    assert_problem(unknown_parent, 404, "parent_agency_not_found")
    assert await get_agency(api, t.district) == before
    assert await history_of(api, t.district) == history
    assert await agency_codes(api, subtree=t.district) == sorted([t.commune, t.village, t.hamlet])
    assert await agency_codes(api, subtree=t.province) == sorted(
        [t.district, t.commune, t.village, t.hamlet, t.district2, t.commune2, t.department]
    )

    # a legal move is a data change like any other
    moved = await api.http.patch(
        f"/v1/agencies/{t.village}", json={"parent_code": t.commune2}, headers=await api.admin()
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["parent_code"] == t.commune2
    assert await agency_codes(api, subtree=t.district2) == sorted([t.commune2, t.village, t.hamlet])


async def test_reform_moves_communes_to_the_province_and_retires_the_district(api: Api) -> None:
    province = (await api.create_agency(level="province", name="Ủy ban nhân dân tỉnh Thử"))["code"]
    district = (await api.create_agency(level="district", parent_code=province))["code"]
    communes = sorted([(await api.create_agency(level="commune", parent_code=district))["code"] for _ in range(3)])
    sender = await api.agency_client((await api.create_agency(parent_code=province))["code"])

    for commune in communes:
        response = await api.http.patch(
            f"/v1/agencies/{commune}", json={"parent_code": province}, headers=await api.admin()
        )
        assert response.status_code == 200, response.text
    retired = await set_status(api, district, "retired", reason="Sắp xếp đơn vị hành chính 2025", successor=province)
    assert retired["status"] == "retired" and retired["successor_code"] == province

    assert await agency_codes(api, parent=province) == sorted([district, *communes, sender.agency_code])
    assert await agency_codes(api, subtree=district) == []
    assert await agency_codes(api, parent=province, level="commune") == communes
    assert [(await get_agency(api, c))["parent_code"] for c in communes] == [province] * 3
    change = (await history_of(api, communes[0]))[-1]
    assert change["action"] == "updated"
    assert change["changes"] == {"parent_code": [district, province]}

    # documents still addressed to the district reach the province
    sent = await send(api, sender, [district])
    assert sent.status_code == 202, sent.text
    assert sent.json()["redirected"] == [{"from_code": district, "to_code": province}]
    assert [d["recipient_code"] for d in sent.json()["deliveries"]] == [province]


@ONE_DATABASE  # refused by validation, before any database
async def test_patch_with_null_for_a_required_field_is_refused(api: Api) -> None:
    agency = await api.create_agency(name="Sở Nội vụ")
    response = await api.http.patch(f"/v1/agencies/{agency['code']}", json={"name": None}, headers=await api.admin())
    assert_problem(response, 422, "validation_failed")
    assert (await get_agency(api, agency["code"]))["name"] == "Sở Nội vụ"


# --- lifecycle and history -------------------------------------------------------------------


async def test_suspend_then_retire_with_history(api: Api) -> None:
    started = dt.datetime.now(dt.UTC)
    agency = await api.create_agency(name="Sở Thử")
    successor = await api.create_agency(name="Sở Kế thừa")
    code = agency["code"]
    patched = await api.http.patch(f"/v1/agencies/{code}", json={"phone": "0238 3 844 111"}, headers=await api.admin())
    assert patched.status_code == 200, patched.text

    suspended = await set_status(api, code, "suspended", reason="Tạm dừng để kiểm tra")
    assert suspended["status"] == "suspended"
    assert suspended["status_reason"] == "Tạm dừng để kiểm tra"
    assert suspended["successor_code"] is None
    assert (await get_agency(api, code))["status"] == "suspended"

    for body in [
        {"status": "retired", "reason": "Giải thể"},
        {"status": "retired", "successor_code": code},
        {"status": "retired", "successor_code": random_code("Z")},
        {"status": "suspended", "successor_code": successor["code"]},
    ]:
        response = await api.http.post(f"/v1/agencies/{code}/status", json=body, headers=await api.admin())
        assert_problem(response, 422, "successor_invalid")
    assert await get_agency(api, code) == suspended

    retired = await set_status(api, code, "retired", reason="Sáp nhập", successor=successor["code"])
    assert retired["status"] == "retired"
    assert retired["successor_code"] == successor["code"]
    assert (await get_agency(api, code))["successor_code"] == successor["code"]
    assert await agency_codes(api, status="retired") == [code]

    history = await history_of(api, code)
    assert [h["action"] for h in history] == ["created", "updated", "status:suspended", "status:retired"]
    admin_id = api.settings.registry.admin_client_id
    assert {h["actor"] for h in history} == {admin_id}
    assert history[0]["changes"]["code"] == code
    assert history[1]["changes"] == {"phone": [None, "0238 3 844 111"]}
    assert history[2]["changes"]["status"] == ["active", "suspended"]
    assert history[2]["changes"]["reason"] == "Tạm dừng để kiểm tra"
    assert history[3]["changes"] == {
        "status": ["suspended", "retired"],
        "reason": "Sáp nhập",
        "successor_code": successor["code"],
    }
    stamps = [dt.datetime.fromisoformat(h["created_at"]) for h in history]
    assert all(s.tzinfo is not None for s in stamps)
    assert stamps == sorted(stamps)
    assert started - dt.timedelta(seconds=5) <= stamps[0] <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)


async def test_an_agency_reads_its_own_history_only(api: Api) -> None:
    own = await api.agency_client()
    other = await api.create_agency()
    mine = await api.http.get(f"/v1/agencies/{own.agency_code}/history", headers=own.auth)
    assert mine.status_code == 200, mine.text
    assert [h["action"] for h in mine.json()] == ["created"]
    theirs = await api.http.get(f"/v1/agencies/{other['code']}/history", headers=own.auth)
    assert_problem(theirs, 403, "forbidden")


# --- what suspension and retirement do -------------------------------------------------------


async def test_suspended_agency_gets_no_token(api: Api) -> None:
    agency = await api.agency_client()
    await set_status(api, agency.agency_code, "suspended", reason="Kiểm tra")
    response = await api.token(agency.client_id, agency.client_secret)
    # valid credentials of an agency that may not act: 403 (OAuth2's unauthorized_client), not 401
    body = assert_problem(response, 403, "agency_inactive")
    assert "access_token" not in body
    assert body["error"] == "unauthorized_client"
    assert body["agency_status"] == "suspended"

    await set_status(api, agency.agency_code, "active")
    again = await api.token(agency.client_id, agency.client_secret)
    assert again.status_code == 200, again.text
    assert again.json()["agency_code"] == agency.agency_code


async def test_sending_to_a_suspended_agency_is_refused(api: Api) -> None:
    sender = await api.agency_client()
    recipient = await api.agency_client()
    await set_status(api, recipient.agency_code, "suspended", reason="Kiểm tra")

    response = await send(api, sender, [recipient.agency_code])
    body = assert_problem(response, 422, "recipient_invalid")
    assert body["inactive_recipients"] == [{"code": recipient.agency_code, "status": "suspended"}]
    assert body["unknown_recipients"] == []

    # nothing was delivered: once active again, its inbox is empty
    await set_status(api, recipient.agency_code, "active")
    inbox = await poll(
        lambda: api.http.get("/v1/inbox", headers=recipient.auth), lambda r: r.status_code != 403, within=5
    )
    assert inbox.status_code == 200, inbox.text
    assert inbox.json()["items"] == []


async def test_sending_to_a_retired_agency_reaches_its_successor(api: Api) -> None:
    sender = await api.agency_client()
    retired = await api.agency_client()
    successor = await api.agency_client()
    await set_status(api, retired.agency_code, "retired", successor=successor.agency_code)

    response = await send(api, sender, [retired.agency_code])
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["redirected"] == [{"from_code": retired.agency_code, "to_code": successor.agency_code}]
    assert [d["recipient_code"] for d in accepted["deliveries"]] == [successor.agency_code]

    inbox = await api.http.get("/v1/inbox", headers=successor.auth)
    assert [i["document_id"] for i in inbox.json()["items"]] == [accepted["id"]]
    document = await api.http.get(f"/v1/documents/{accepted['id']}", headers=sender.auth)
    assert [d["recipient_code"] for d in document.json()["deliveries"]] == [successor.agency_code]
    # the retired agency's credentials are refused, and it has no delivery of its own
    refused = await api.http.get("/v1/inbox", headers=retired.auth)
    assert_problem(refused, 403, "agency_inactive")

    # a chain of retirements is followed to the agency that is active now
    final = await api.agency_client()
    await set_status(api, successor.agency_code, "retired", successor=final.agency_code)
    chained = await send(api, sender, [retired.agency_code, successor.agency_code])
    assert chained.status_code == 202, chained.text
    assert chained.json()["redirected"] == [
        {"from_code": retired.agency_code, "to_code": final.agency_code},
        {"from_code": successor.agency_code, "to_code": final.agency_code},
    ]
    assert [d["recipient_code"] for d in chained.json()["deliveries"]] == [final.agency_code]
    inbox = await api.http.get("/v1/inbox", headers=final.auth)
    assert [i["document_id"] for i in inbox.json()["items"]] == [chained.json()["id"]]
