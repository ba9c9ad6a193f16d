"""The registry's limits come from its settings section (LIENTHONG_REGISTRY__*), not from constants."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import running_system
from tests.helpers import assert_problem


async def test_import_size_and_successor_chains_follow_the_settings(tmp_path: Path) -> None:
    registry = {"max_import_bytes": 200, "max_successor_hops": 2}
    async with running_system(tmp_path / "var", registry=registry) as api:
        admin = await api.admin()
        header = b"code,name,level\n"
        assert (await api.http.post("/v1/agencies/import", content=header, headers=admin)).status_code == 200
        large = header + b"000.00.01.H41,So thu nghiem,department\n" * 5
        assert len(large) > 200
        response = await api.http.post("/v1/agencies/import", content=large, headers=admin)
        assert_problem(response, 413, "payload_too_large")

        # c retired into b, b retired into a: two agencies looked at along a chain, so b reaches a
        # and c (three along its chain) reaches no one
        a, b, c = [(await api.create_agency())["code"] for _ in range(3)]
        for retired, successor in ((c, b), (b, a)):  # a successor must be active when named
            change = {"status": "retired", "successor_code": successor}
            response = await api.http.post(f"/v1/agencies/{retired}/status", json=change, headers=admin)
            assert response.status_code == 200, response.text
        response = await api.http.post("/v1/agencies/resolve", json={"codes": [b, c]}, headers=admin)
        assert response.status_code == 200, response.text
        resolution = response.json()
        assert resolution["redirected"] == [{"from_code": b, "to_code": a}]
        assert resolution["inactive"] == [{"code": c, "status": "retired"}]
