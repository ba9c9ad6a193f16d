"""Recipient groups: their current active members, replace and delete, refused groups, sending to a group."""

from __future__ import annotations

from tests.helpers import (
    Api,
    assert_problem,
    create_group,
    member_codes,
    members_of,
    poll,
    random_code,
    send,
    set_status,
)

# --- recipient groups ------------------------------------------------------------------------


async def test_groups_resolve_their_current_active_members(api: Api) -> None:
    province = (await api.create_agency(level="province"))["code"]
    departments = sorted([(await api.create_agency(parent_code=province))["code"] for _ in range(3)])
    district_x = (await api.create_agency(level="district", parent_code=province))["code"]
    district_y = (await api.create_agency(level="district", parent_code=province))["code"]
    communes_x = sorted([(await api.create_agency(level="commune", parent_code=district_x))["code"] for _ in range(2)])
    commune_y = (await api.create_agency(level="commune", parent_code=district_y))["code"]
    retired = (await api.create_agency(level="other"))["code"]
    successor = (await api.create_agency(level="other"))["code"]

    await create_group(api, "static", members=[departments[0], departments[1], retired])
    await create_group(api, "all-departments", rules=[{"level": "department"}])
    await create_group(api, "communes-of-x", rules=[{"level": "commune", "under": district_x}])
    await create_group(api, "districts-of-province", rules=[{"under": province, "level": "district"}])
    await create_group(api, "everything-under-x", rules=[{"under": district_x.lower()}])

    assert await member_codes(api, "all-departments") == departments
    assert await member_codes(api, "communes-of-x") == communes_x
    assert await member_codes(api, "districts-of-province") == sorted([district_x, district_y])
    assert await member_codes(api, "everything-under-x") == communes_x
    assert commune_y not in await member_codes(api, "communes-of-x")

    # suspension and retirement are seen at once, without touching the groups
    await set_status(api, departments[1], "suspended", reason="Kiểm tra")
    await set_status(api, retired, "retired", successor=successor)
    await set_status(api, communes_x[0], "suspended")

    static = await members_of(api, "static")
    assert static["count"] == 2
    assert {m["code"]: m["via"] for m in static["members"]} == {
        departments[0]: "group:static",
        successor: f"group:static,successor:{retired}",
    }
    assert static["skipped"] == [departments[1]]
    assert await member_codes(api, "all-departments") == [departments[0], departments[2]]
    assert await member_codes(api, "communes-of-x") == [communes_x[1]]

    group = await api.http.get("/v1/groups/static", headers=await api.admin())
    assert group.json()["members"] == sorted([departments[0], departments[1], retired])
    listed = await api.http.get("/v1/groups", headers=await api.admin())
    assert [g["name"] for g in listed.json()] == [
        "all-departments",
        "communes-of-x",
        "districts-of-province",
        "everything-under-x",
        "static",
    ]


async def test_group_is_replaced_and_deleted(api: Api) -> None:
    a, b, c = [(await api.create_agency())["code"] for _ in range(3)]
    district = (await api.create_agency(level="district"))["code"]
    commune = (await api.create_agency(level="commune", parent_code=district))["code"]
    created = await create_group(api, "notice", members=[a, b], title="Nhận thông báo")
    assert created["members"] == sorted([a, b]) and created["rules"] == []

    replaced = await api.http.put(
        "/v1/groups/notice",
        json={
            "title": "Nhận thông báo mới",
            "description": "Danh sách sau sắp xếp",
            "members": [c],
            "rules": [{"level": "commune", "under": district}],
        },
        headers=await api.admin(),
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["title"] == "Nhận thông báo mới"
    assert body["members"] == [c]
    assert body["rules"] == [{"level": "commune", "under": district}]
    assert body["created_at"] == created["created_at"]
    assert await member_codes(api, "notice") == sorted([c, commune])
    assert (await api.http.get("/v1/groups/notice", headers=await api.admin())).json() == body

    deleted = await api.http.delete("/v1/groups/notice", headers=await api.admin())
    assert deleted.status_code == 204
    assert_problem(await api.http.get("/v1/groups/notice", headers=await api.admin()), 404, "group_not_found")
    assert_problem(await api.http.get("/v1/groups/notice/members", headers=await api.admin()), 404, "group_not_found")
    assert_problem(await api.http.delete("/v1/groups/notice", headers=await api.admin()), 404, "group_not_found")
    assert (await api.http.get("/v1/groups", headers=await api.admin())).json() == []


async def test_invalid_groups_are_refused_and_nothing_is_written(api: Api) -> None:
    known = (await api.create_agency())["code"]
    unknown_member, unknown_root = random_code("Z"), random_code("Y")
    for definition, detail in [
        ({"members": [known, unknown_member]}, {"unknown_members": [unknown_member]}),
        ({"rules": [{"level": "hamlet"}]}, {"unknown_levels": ["hamlet"]}),
        ({"rules": [{"level": "commune", "under": unknown_root}]}, {"unknown_rule_agencies": [unknown_root]}),
    ]:
        response = await api.http.post(
            "/v1/groups", json={"name": "broken", "title": "Nhóm lỗi", **definition}, headers=await api.admin()
        )
        body = assert_problem(response, 422, "group_invalid")
        for key, value in detail.items():
            assert body[key] == value, body
        assert_problem(await api.http.get("/v1/groups/broken", headers=await api.admin()), 404, "group_not_found")

    empty = await api.http.post("/v1/groups", json={"name": "empty", "title": "Rỗng"}, headers=await api.admin())
    assert_problem(empty, 422, "validation_failed")
    assert (await api.http.get("/v1/groups", headers=await api.admin())).json() == []

    original = await create_group(api, "kept", members=[known])
    duplicate = await api.http.post(
        "/v1/groups",
        json={"name": "kept", "title": "Trùng", "rules": [{"level": "province"}]},
        headers=await api.admin(),
    )
    assert_problem(duplicate, 409, "group_exists")
    bad_put = await api.http.put(
        "/v1/groups/kept", json={"title": "Sửa lỗi", "members": [unknown_member]}, headers=await api.admin()
    )
    assert_problem(bad_put, 422, "group_invalid")
    assert (await api.http.get("/v1/groups/kept", headers=await api.admin())).json() == original

    agency = await api.agency_client()
    refused = await api.http.post(
        "/v1/groups", json={"name": "mine", "title": "Của tôi", "members": [known]}, headers=agency.auth
    )
    assert_problem(refused, 403, "forbidden")
    assert_problem(await api.http.get("/v1/groups/mine", headers=agency.auth), 404, "group_not_found")
    assert [g["name"] for g in (await api.http.get("/v1/groups", headers=agency.auth)).json()] == ["kept"]


async def test_sending_to_a_group_delivers_to_each_current_member_but_the_sender(api: Api) -> None:
    sender = await api.agency_client()
    member = await api.agency_client()
    district = (await api.create_agency(level="district"))["code"]
    communes = []
    for _ in range(2):
        commune = await api.create_agency(level="commune", parent_code=district)
        communes.append(await api.agency_client(commune["code"]))
    suspended = (await api.create_agency())["code"]
    await set_status(api, suspended, "suspended")
    await create_group(
        api,
        "broadcast",
        members=[sender.agency_code, member.agency_code, suspended],
        rules=[{"level": "commune", "under": district}],
    )

    response = await send(api, sender, [], groups=["broadcast"])
    assert response.status_code == 202, response.text
    accepted = response.json()
    expected = sorted([member.agency_code, *(c.agency_code for c in communes)])
    assert sorted(d["recipient_code"] for d in accepted["deliveries"]) == expected
    assert accepted["redirected"] == []
    for receiver in [member, *communes]:
        inbox = await api.http.get("/v1/inbox", headers=receiver.auth)
        assert [i["document_id"] for i in inbox.json()["items"]] == [accepted["id"]]
        assert inbox.json()["items"][0]["sender_code"] == sender.agency_code
    own = await api.http.get("/v1/inbox", headers=sender.auth)
    assert own.json()["items"] == []


async def test_group_changes_reach_the_exchange(api: Api) -> None:
    sender = await api.agency_client()
    receiver = await api.agency_client()

    unknown = await send(api, sender, [], groups=["later"])
    body = assert_problem(unknown, 422, "recipient_invalid")
    assert body["unknown_groups"] == ["later"]

    # the exchange cached "no such group"; creating it empties that cache through an event
    await create_group(api, "later", members=[sender.agency_code])
    only_sender = await poll(
        lambda: send(api, sender, [], groups=["later"]), lambda r: r.json().get("unknown_groups") != ["later"]
    )
    assert_problem(only_sender, 422, "recipient_invalid")
    assert (await api.http.get("/v1/inbox", headers=receiver.auth)).json()["items"] == []

    replaced = await api.http.put(
        "/v1/groups/later",
        json={"title": "Sau", "members": [sender.agency_code, receiver.agency_code]},
        headers=await api.admin(),
    )
    assert replaced.status_code == 200, replaced.text
    sent = await poll(lambda: send(api, sender, [], groups=["later"]), lambda r: r.status_code == 202)
    assert sent.status_code == 202, sent.text
    assert [d["recipient_code"] for d in sent.json()["deliveries"]] == [receiver.agency_code]
    inbox = await api.http.get("/v1/inbox", headers=receiver.auth)
    assert [i["document_id"] for i in inbox.json()["items"]] == [sent.json()["id"]]

    deleted = await api.http.delete("/v1/groups/later", headers=await api.admin())
    assert deleted.status_code == 204
    other = (await api.create_agency())["code"]
    gone = await send(api, sender, [other], groups=["later"])
    body = assert_problem(gone, 422, "recipient_invalid")
    assert body["unknown_groups"] == ["later"]
    assert len((await api.http.get("/v1/inbox", headers=receiver.auth)).json()["items"]) == 1
