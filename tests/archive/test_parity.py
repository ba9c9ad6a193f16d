"""The archive shows each reader exactly what the exchange shows it: held side by side on both
backends, before and after statuses and a recall."""

from __future__ import annotations

from typing import Any

from tests.helpers import Api, Client, delivery_for, recall, report, wait_until


async def views(api: Api, document_id: str, readers: list[Client]) -> list[tuple[int, Any]]:
    """What each reader gets from the exchange and from the archive: status, and the deliveries
    (recipient, status, recall status) it is shown."""
    seen = []
    for reader in readers:
        exchange = await api.http.get(f"/v1/documents/{document_id}", headers=reader.auth)
        archive = await api.http.get(f"/v1/archive/records/{document_id}", headers=reader.auth)
        for response in (exchange, archive):
            shown = None
            if response.status_code == 200:
                shown = sorted(
                    (d["recipient_code"], d["status"], d["recall_status"]) for d in response.json()["deliveries"]
                )
            seen.append((response.status_code, shown))
    return seen


def paired(seen: list[tuple[int, Any]]) -> bool:
    return all(seen[i] == seen[i + 1] for i in range(0, len(seen), 2))


async def test_the_archive_shows_each_reader_what_the_exchange_shows(api: Api) -> None:
    sender, first, second, outsider = [await api.agency_client() for _ in range(4)]
    response = await api.send(sender, [first.agency_code, second.agency_code], subject="Giấy mời họp")
    assert response.status_code == 202, response.text
    accepted = response.json()
    document_id = accepted["id"]
    readers = [sender, first, second, outsider]

    async def same() -> bool:
        return paired(await views(api, document_id, readers))

    await wait_until(same, within=10, what="the archive to show what the exchange shows")
    assert [status for status, _ in await views(api, document_id, readers)] == [200] * 6 + [404] * 2

    assert (await report(api, first, delivery_for(accepted, first), "01")).status_code == 200
    assert (await recall(api, sender, document_id, "Gửi nhầm", recipients=[second.agency_code])).status_code == 200
    assert (await report(api, second, delivery_for(accepted, second), "15")).status_code == 200

    async def withdrawn() -> bool:
        seen = await views(api, document_id, readers)
        return paired(seen) and seen[4][0] == 404 and seen[0][1] is not None and ("15" in str(seen[0][1]))

    await wait_until(withdrawn, within=10, what="the recall reflected in the archive as in the exchange")
    seen = await views(api, document_id, readers)
    assert [status for status, _ in seen] == [200, 200, 200, 200, 404, 404, 404, 404]
    assert seen[2][1] == [(first.agency_code, "01", None)]
