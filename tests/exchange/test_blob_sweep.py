"""The blob sweep: attachment blobs no document references are deleted once older than the grace
period — never a referenced one, never a young one (a document in flight commits its blob just
before its row); a dry run deletes nothing. On SQLite and PostgreSQL, through the runtime's
periodic task and through `lienthong blobs sweep`."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app as cli
from services.exchange.blobstore import BlobStore, sweep_unreferenced
from services.exchange.dependencies import ExchangeRuntime, attachment_references
from tests.conftest import running_system
from tests.helpers import Api, send_ok, wait_until

DAY = 24 * 3600


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def age(path: Path, seconds: float) -> None:
    """Make a file look ``seconds`` old."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def exchange_of(api: Api) -> ExchangeRuntime:
    runtime = api.service_runtime("exchange")
    assert isinstance(runtime, ExchangeRuntime)
    return runtime


async def three_blobs(api: Api) -> tuple[Path, Path, Path]:
    """A blob a sent document references, an unreferenced old one and an unreferenced young one;
    the first two two days old."""
    store = exchange_of(api).blobs
    sender, recipient = await api.agency_client(), await api.agency_client()
    await send_ok(api, sender, [recipient])
    [referenced] = [blob.path for blob in store.iter_blobs()]
    old = store.path((await store.put(stream(b"left by a failed send"), max_bytes=1024)).sha256)
    young = store.path((await store.put(stream(b"a document in flight"), max_bytes=1024)).sha256)
    age(referenced, 2 * DAY)
    age(old, 2 * DAY)
    return referenced, old, young


# --- the store's listing -------------------------------------------------------------------------


async def test_the_listing_holds_the_blobs_only(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    a = await store.put(stream(b"a"), max_bytes=10)
    b = await store.put(stream(b"b"), max_bytes=10)
    (store.root / "tmp" / "upload-x").write_bytes(b"in progress")
    (store.path(a.sha256).parent / "notes.txt").write_text("not a blob")
    misplaced = store.root / "00" / "00" / b.sha256  # a hash's name at another hash's place
    misplaced.parent.mkdir(parents=True)
    misplaced.write_bytes(b"b")
    listed = {blob.sha256: blob for blob in store.iter_blobs()}
    assert set(listed) == {a.sha256, b.sha256}
    assert listed[a.sha256].path == store.path(a.sha256)
    assert abs(listed[a.sha256].mtime - time.time()) < 60


async def test_storing_bytes_stored_already_makes_their_blob_young_again(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    blob = await store.put(stream(b"same bytes"), max_bytes=100)
    age(store.path(blob.sha256), 2 * DAY)
    await store.put(stream(b"same bytes"), max_bytes=100)
    assert time.time() - store.path(blob.sha256).stat().st_mtime < 60
    assert list((store.root / "tmp").iterdir()) == []


async def test_a_sweep_never_deletes_what_was_stored_again_meanwhile(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    blob = await store.put(stream(b"sent again"), max_bytes=100)
    age(store.path(blob.sha256), 2 * DAY)

    async def nothing_referenced_but_sent_again(hashes: object) -> set[str]:
        await store.put(stream(b"sent again"), max_bytes=100)  # a new document commits the same bytes
        return set()

    report = await sweep_unreferenced(store, nothing_referenced_but_sent_again, grace_seconds=DAY, apply=True)
    assert report.deleted == 0 and store.exists(blob.sha256)


@pytest.mark.parametrize("size", [100, 2 * 1024 * 1024], ids=["held-in-memory", "streamed"])
async def test_a_commit_between_the_sweeps_check_and_its_delete_keeps_its_blob(tmp_path: Path, size: int) -> None:
    """The sweep found the blob old; a new document commits the same bytes before the sweep deletes
    it: the commit waits for the sweep's lock and writes the file again, never answering with a blob
    that is about to go."""
    import threading

    from services.exchange import blobstore

    store = BlobStore(tmp_path / "blobs")
    data = b"%PDF-1.7 " + os.urandom(size)
    blob = await store.put(stream(data), max_bytes=4 * 1024 * 1024)
    path = store.path(blob.sha256)
    age(path, 2 * DAY)
    checked, go_on = threading.Event(), threading.Event()
    unlink = os.unlink

    def paused_unlink(target: object, *args: object, **kwargs: object) -> None:
        if Path(str(target)) == path and not checked.is_set():  # the sweep, its check made
            checked.set()
            go_on.wait(10)
        unlink(target, *args, **kwargs)  # type: ignore[arg-type]

    blobstore.os.unlink = paused_unlink  # type: ignore[assignment]
    try:
        sweep = asyncio.create_task(asyncio.to_thread(blobstore._delete_old, [path], time.time() - DAY))
        await asyncio.to_thread(checked.wait, 10)
        commit = asyncio.create_task(store.put(stream(data), max_bytes=4 * 1024 * 1024))
        await asyncio.sleep(0.2)  # the commit reaches the blob before the sweep deletes it
        go_on.set()
        assert [p for p, _ in await sweep] == [path]
        await commit
    finally:
        blobstore.os.unlink = unlink  # type: ignore[assignment]
    assert path.read_bytes() == data  # what the new document's row names is there
    assert list((store.root / "tmp").iterdir()) == []


# --- on the databases ----------------------------------------------------------------------------


async def test_a_dry_run_lists_and_apply_deletes_only_the_old_unreferenced_blob(api: Api) -> None:
    runtime = exchange_of(api)
    referenced, old, young = await three_blobs(api)
    asked: list[int] = []
    check = attachment_references(runtime.db)

    async def counted(hashes: list[str]) -> set[str]:
        asked.append(len(hashes))
        return await check(hashes)

    dry = await sweep_unreferenced(runtime.blobs, counted, grace_seconds=DAY, apply=False, batch_size=2)
    assert (dry.scanned, dry.referenced, dry.young, dry.deleted) == (3, 1, 1, 0)
    assert dry.unreferenced == [(old, len(b"left by a failed send"))]
    assert referenced.exists() and old.exists() and young.exists()
    assert asked and max(asked) <= 2  # batches of at most batch_size hashes, young blobs never asked about

    applied = await sweep_unreferenced(runtime.blobs, check, grace_seconds=DAY, apply=True)
    assert (applied.deleted, applied.freed_bytes) == (1, len(b"left by a failed send"))
    assert referenced.exists() and not old.exists() and young.exists()
    again = await sweep_unreferenced(runtime.blobs, check, grace_seconds=DAY, apply=True)
    assert again.deleted == 0 and again.scanned == 2


async def test_the_cli_dry_run_changes_nothing_and_apply_deletes(api: Api) -> None:
    referenced, old, young = await three_blobs(api)
    env = {"LIENTHONG_VAR_DIR": str(api.settings.var_dir), "LIENTHONG_LOG_JSON": "false"}
    if api.settings.database_url:
        env["LIENTHONG_DATABASE_URL"] = api.settings.database_url
    runner = CliRunner()

    dry = await asyncio.to_thread(runner.invoke, cli, ["blobs", "sweep", "--verbose"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "would delete 1 blob(s), 21 bytes; nothing deleted" in dry.output
    assert f"would delete {old}" in dry.output.replace("\n", "")
    assert referenced.exists() and old.exists() and young.exists()

    kept = await asyncio.to_thread(runner.invoke, cli, ["blobs", "sweep", "--apply", "--grace-hours", "72"], env=env)
    assert kept.exit_code == 0, kept.output
    assert "deleted 0 blob(s)" in kept.output and old.exists()  # two days old: younger than 72 h

    refused = await asyncio.to_thread(runner.invoke, cli, ["blobs", "sweep", "--grace-hours", "0"], env=env)
    assert refused.exit_code != 0

    applied = await asyncio.to_thread(runner.invoke, cli, ["blobs", "sweep", "--apply"], env=env)
    assert applied.exit_code == 0, applied.output
    assert "deleted 1 blob(s), freed 21 bytes" in applied.output
    assert referenced.exists() and not old.exists() and young.exists()


async def test_the_exchange_sweeps_by_itself_and_logs_it(
    tmp_path: Path, database_url: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lienthong.exchange.blobs")
    every = {"blob_sweep_interval_hours": 0.0002}  # 0.72 s
    async with running_system(tmp_path / "var", database_url, exchange=every) as api:
        referenced, old, young = await three_blobs(api)
        await wait_until(lambda: not old.exists(), within=10, what="the periodic sweep")
        assert referenced.exists() and young.exists()
        await wait_until(lambda: "1 unreferenced deleted, 21 bytes freed" in caplog.text, within=5, what="the log")
    # stopped with the service: no sweep after it
    assert not any(t.get_name() == "exchange-blob-sweep" and not t.done() for t in asyncio.all_tasks())


async def test_a_sweep_interval_of_zero_disables_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lienthong.exchange.blobs")
    async with running_system(tmp_path / "var", exchange={"blob_sweep_interval_hours": 0}):
        assert not any(t.get_name() == "exchange-blob-sweep" for t in asyncio.all_tasks())
    assert "blob sweep disabled" in caplog.text
