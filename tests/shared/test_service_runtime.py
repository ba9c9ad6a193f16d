"""A service's runtime starts and stops cleanly: a failed start leaves nothing open behind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.archive.models import messaging
from shared.service import ServiceRuntime
from tests.conftest import make_settings


def _runtime(tmp_path: Path) -> ServiceRuntime:
    return ServiceRuntime("archive", make_settings(tmp_path / "var"), messaging)


async def test_a_failed_start_closes_what_it_opened_and_a_new_start_works(tmp_path):
    runtime = _runtime(tmp_path)
    closed: list[str] = []

    async def open_index() -> None:
        runtime.on_shutdown(lambda: _note(closed, "index closed"))

    async def fail() -> None:
        raise RuntimeError("the index is corrupt")

    runtime.on_startup(open_index)
    runtime.on_startup(fail)
    with pytest.raises(RuntimeError, match="corrupt"):
        await runtime.start()

    assert closed == ["index closed"]  # the hook registered before the failure ran
    assert runtime.clients == {}  # every client closed and forgotten
    assert runtime.relay is not None and runtime.relay._task is None  # the relay stopped
    relay = runtime.relay

    fresh = _runtime(tmp_path)  # the same database starts again: nothing was left locked
    await fresh.start()
    try:
        assert set(fresh.clients) == {"registry", "exchange", "signature", "archive"}
        await fresh.db.ping()
    finally:
        await fresh.stop()
    assert relay._task is None


async def test_stop_runs_the_services_hooks_before_closing_clients_and_database(tmp_path):
    runtime = _runtime(tmp_path)
    seen: list[str] = []

    async def on_stop() -> None:
        seen.append(f"hook, clients open: {not runtime.client('registry').is_closed}")
        await runtime.db.ping()  # the database is still there for a final flush
        seen.append("database still answers")

    runtime.on_shutdown(on_stop)
    await runtime.start()
    client = runtime.client("registry")
    await runtime.stop()
    assert seen == ["hook, clients open: True", "database still answers"]
    assert client.is_closed and runtime.clients == {}
    await runtime.stop()  # stopping twice is harmless


async def _note(closed: list[str], what: str) -> None:
    closed.append(what)
