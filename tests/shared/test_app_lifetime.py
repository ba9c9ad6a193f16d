"""A stopped system leaves nothing of itself behind: every app it built can be collected. A map keyed
weakly by app whose values reach back to the app (an app's metrics → its collectors → its runtime →
the in-process transports → the apps) kept every system a test process ever started alive."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from gateway.runtime import GatewayRuntime
from shared.runtime import app_runtime
from tests.conftest import running_system


async def test_a_stopped_system_can_be_collected(tmp_path: Path) -> None:
    async with running_system(tmp_path / "var") as api:
        sender = await api.agency_client()
        assert (await api.http.get("/v1/agencies", headers=sender.auth)).status_code == 200
        apps = [api.app, *app_runtime(api.app, GatewayRuntime).embedded.values()]
        alive = [weakref.ref(app) for app in apps]
        del apps, sender
    del api
    gc.collect()
    assert [ref() for ref in alive if ref() is not None] == []
