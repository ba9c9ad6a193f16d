"""The blob store's syncer process: an upload held in memory is sent to a process of its own, which
writes it to a locked file, makes it durable (synced, renamed, its directories synced) and answers
each commit, the event loop's thread touching no file; a syncer that dies fails the commits it had
and is started again."""

from __future__ import annotations

import asyncio
import builtins
import fcntl
import hashlib
import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from gateway.runtime import GatewayRuntime
from services.exchange import blobsync
from services.exchange.blobstore import CHUNK, BlobStore
from services.exchange.blobsync import BlobSyncer, SyncerStoppedError, serve
from services.exchange.dependencies import ExchangeRuntime
from shared.runtime import app_runtime
from tests.conftest import running_system
from tests.exchange.test_blobstore import stored_files, stream, tmp_files
from tests.helpers import PDF, send


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[BlobStore]:
    blobs = BlobStore(tmp_path / "blobs", syncer=BlobSyncer())
    try:
        yield blobs
    finally:
        await blobs.close()


def test_the_file_is_synced_before_its_rename_and_its_directories_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ab" / "cd").mkdir(parents=True)
    tmp = tmp_path / "upload"
    final = tmp_path / "ab" / "cd" / "abcd"
    steps: list[str] = []
    opened: dict[int, str] = {}
    real_open, real_fsync, real_replace = os.open, os.fsync, os.replace

    def recording_open(path: Any, flags: int, *args: Any) -> int:
        descriptor = real_open(path, flags, *args)
        opened[descriptor] = Path(path).name
        return descriptor

    def recording_fsync(descriptor: int) -> None:
        steps.append(f"fsync {opened[descriptor]}")
        real_fsync(descriptor)

    def recording_replace(source: Any, target: Any) -> None:
        steps.append("rename")
        real_replace(source, target)

    monkeypatch.setattr(blobsync.os, "open", recording_open)
    monkeypatch.setattr(blobsync.os, "fsync", recording_fsync)
    monkeypatch.setattr(blobsync.os, "replace", recording_replace)
    blobsync.store_durably(str(tmp), b"van ban", str(final), [str(final.parent), str(final.parent.parent)])
    assert steps == ["fsync upload", "rename", "fsync cd", "fsync ab"]
    assert final.read_bytes() == b"van ban" and not tmp.exists()


def test_each_request_is_answered_with_its_error_if_any(tmp_path: Path) -> None:
    tmp = tmp_path / "upload"
    requests = [
        {"id": 1, "tmp": str(tmp), "final": str(tmp_path / "done"), "directories": [str(tmp_path)], "size": 1},
        {
            "id": 2,
            "tmp": str(tmp_path / "missing" / "u"),
            "final": str(tmp_path / "other"),
            "directories": [],
            "size": 1,
        },
        {"id": 3, "final": "no tmp"},  # a request it cannot read: answered, not dropped
    ]
    stream = b"".join(json.dumps(r).encode() + b"\n" + (b"x" if "size" in r else b"") for r in requests)
    answers = io.BytesIO()
    serve(io.BytesIO(stream), answers, workers=2)
    said = {a["id"]: a for a in map(json.loads, answers.getvalue().splitlines())}
    assert said[1] == {"id": 1} and (tmp_path / "done").read_bytes() == b"x"
    assert said[2]["errno"] == 2 and "No such file" in said[2]["error"]
    assert said[3]["errno"] == 0 and "KeyError" in said[3]["error"]


def test_an_upload_sent_with_its_bytes_is_written_locked_synced_renamed_then_its_directories_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tmp").mkdir()
    final = tmp_path / "ab" / "cd" / "abcd"  # its directories are new: made before the rename
    steps: list[str] = []
    names: dict[int, str] = {}
    real_open, real_write, real_fsync, real_replace = os.open, os.write, os.fsync, os.replace
    real_flock, real_mkdir = blobsync.fcntl.flock, os.mkdir

    def recording_open(path: Any, flags: int, *args: Any) -> int:
        descriptor = real_open(path, flags, *args)
        names[descriptor] = Path(path).name
        return descriptor

    def recording_write(descriptor: int, data: Any) -> int:
        written = real_write(descriptor, memoryview(data)[:3])  # a short write each time: all is written
        steps.append(f"write {names[descriptor]}")
        return written

    def recording_flock(descriptor: int, operation: int) -> None:
        steps.append(f"lock {names[descriptor]}")
        real_flock(descriptor, operation)

    monkeypatch.setattr(blobsync.os, "open", recording_open)
    monkeypatch.setattr(blobsync.os, "write", recording_write)
    monkeypatch.setattr(blobsync.os, "fsync", lambda d: (steps.append(f"fsync {names[d]}"), real_fsync(d))[1])
    monkeypatch.setattr(blobsync.os, "replace", lambda a, b: (steps.append("rename"), real_replace(a, b))[1])
    monkeypatch.setattr(blobsync.os, "mkdir", lambda d: (steps.append(f"mkdir {Path(d).name}"), real_mkdir(d))[1])
    monkeypatch.setattr(blobsync.fcntl, "flock", recording_flock)
    blobsync.store_durably(str(tmp_path / "tmp" / "upload-1"), b"van ban", str(final), [str(final.parent)])
    assert steps == [
        "lock upload-1",
        "write upload-1",
        "write upload-1",
        "write upload-1",
        "fsync upload-1",
        "mkdir cd",  # refused: its parent is new too
        "mkdir ab",
        "mkdir cd",
        "rename",
        "fsync cd",
    ]
    assert final.read_bytes() == b"van ban" and list((tmp_path / "tmp").iterdir()) == []
    assert oct(final.stat().st_mode & 0o777) == "0o600"


def test_an_upload_file_deleted_by_a_starting_replica_before_the_syncer_locks_it_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica starting up deletes the unlocked files of tmp/: one it takes between the syncer's
    creation of the file and its lock is made again, and the upload is stored whole."""
    (tmp_path / "tmp").mkdir()
    store = BlobStore(tmp_path)  # the other replica, deleting at its start
    flock = blobsync.fcntl.flock
    taken: list[str] = []

    def racing(descriptor: int, operation: int) -> None:
        if not taken:
            taken.append(os.readlink(f"/proc/self/fd/{descriptor}"))
            assert store.remove_abandoned_uploads() == 1  # right before this lock
        flock(descriptor, operation)

    monkeypatch.setattr(blobsync.fcntl, "flock", racing)
    final = tmp_path / "ab" / "cd" / "abcd"
    blobsync.store_durably(str(tmp_path / "tmp" / "upload-1"), b"van ban", str(final), [str(final.parent)])
    assert taken == [str(tmp_path / "tmp" / "upload-1")]
    assert final.read_bytes() == b"van ban" and list((tmp_path / "tmp").iterdir()) == []


def test_uploads_sent_with_their_bytes_are_answered_each_and_a_failed_one_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / "upload-taken").write_bytes(b"someone else's")
    (tmp_path / "blocked").write_bytes(b"a file where a directory should be")

    def request(number: int, tmp: str, final: Path, data: bytes) -> bytes:
        line = {"id": number, "tmp": str(tmp_path / "tmp" / tmp), "final": str(final), "directories": []}
        return json.dumps(line | {"size": len(data)}).encode() + b"\n" + data

    first, second = os.urandom(300_000), b"hai"
    stream = io.BytesIO(
        request(1, "upload-1", tmp_path / "one", first)
        + request(2, "upload-taken", tmp_path / "two", b"x")  # its tmp exists: refused, not overwritten
        + request(3, "upload-3", tmp_path / "blocked" / "x" / "three", b"y")  # the rename cannot happen
        + request(4, "upload-4", tmp_path / "four", second)
        + request(5, "upload-5", tmp_path / "five", b"cut short")[:-3]  # the sender died mid-request
    )
    answers = io.BytesIO()
    serve(stream, answers, workers=2)
    said = {a["id"]: a for a in map(json.loads, answers.getvalue().splitlines())}
    assert sorted(said) == [1, 2, 3, 4]
    assert said[1] == {"id": 1} and (tmp_path / "one").read_bytes() == first
    assert said[2]["errno"] == 17 and (tmp_path / "tmp" / "upload-taken").read_bytes() == b"someone else's"
    assert said[3]["errno"] == 20 and not (tmp_path / "tmp" / "upload-3").exists()
    assert said[4] == {"id": 4} and (tmp_path / "four").read_bytes() == second
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == ["upload-taken"]
    assert not (tmp_path / "five").exists()


async def test_an_upload_goes_into_the_syncers_pipe_in_one_write(store: BlobStore) -> None:
    """The pipe holds a megabyte: the bytes are in it when the write returns, not buffered by the
    event loop and written in 64 KB pieces as the syncer drains them."""
    await store.put(stream(b"start the syncer"), max_bytes=100)
    assert store.syncer is not None and store.syncer._running is not None
    requests = store.syncer._running.requests
    data = os.urandom(CHUNK - 1000)
    commit = asyncio.ensure_future(store.commit(await store.stage(stream(data), max_bytes=CHUNK)))
    await asyncio.sleep(0)  # written, waiting for the answer
    assert not commit.done() and requests.transport.get_write_buffer_size() == 0
    blob = await commit
    assert store.path(blob.sha256).read_bytes() == data


async def test_a_commit_through_the_syncer_makes_no_file_system_call_on_the_event_loops_thread(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating and writing a file wait on the file system's journal while other uploads are being
    synced: the event loop's thread only asks (the pipe) and looks whether the bytes are stored."""
    await store.put(stream(b"start the syncer"), max_bytes=100)
    data = b"%PDF-1.7 " + os.urandom(200_000)
    staged = await store.stage(stream(data), max_bytes=CHUNK)
    calls: list[str] = []
    real_write = os.write

    def recording_write(descriptor: int, written: Any) -> int:
        if stat.S_ISREG(os.fstat(descriptor).st_mode):
            calls.append("write to a file")
        return real_write(descriptor, written)

    for name in ("open", "mkdir", "replace", "rename", "fsync", "unlink"):
        monkeypatch.setattr(os, name, lambda *args, _name=name, **kwargs: calls.append(_name))
    monkeypatch.setattr(os, "write", recording_write)
    # and the ways round os.open: the built-in open (pathlib's too) and a lock
    monkeypatch.setattr(builtins, "open", lambda *args, **kwargs: calls.append("open()"))
    monkeypatch.setattr(io, "open", lambda *args, **kwargs: calls.append("io.open()"))
    monkeypatch.setattr(fcntl, "flock", lambda *args: calls.append("flock"))
    blob = await store.commit(staged)
    monkeypatch.undo()
    assert calls == [] and store.path(blob.sha256).read_bytes() == data and tmp_files(store) == []


async def test_a_small_upload_is_made_durable_by_the_syncer_process(store: BlobStore) -> None:
    data = b"%PDF-1.7 cong van " + os.urandom(1000)
    blob = await store.commit(await store.stage(stream(data), max_bytes=CHUNK))
    assert store.path(blob.sha256).read_bytes() == data and tmp_files(store) == []
    assert oct(store.path(blob.sha256).stat().st_mode & 0o777) == "0o600"  # as a streamed upload's file
    assert store.syncer is not None and store.syncer.pid is not None
    syncer_pid = store.syncer.pid
    assert syncer_pid != os.getpid()
    # many at once: each answered, each in its place
    many = [b"van ban %d " % n + os.urandom(100) for n in range(40)]
    staged = [await store.stage(stream(d), max_bytes=CHUNK) for d in many]
    blobs = await asyncio.gather(*(store.commit(s) for s in staged))
    assert [store.path(b.sha256).read_bytes() for b in blobs] == many
    assert len(stored_files(store)) == 41 and tmp_files(store) == []
    assert store.syncer.pid == syncer_pid  # one syncer, started once
    await store.close()
    assert store.syncer.pid is None
    with pytest.raises(OSError, match="shutting down"):  # a commit after the service's stop: refused
        await store.put(stream(b"too late"), max_bytes=100)
    assert tmp_files(store) == []
    with pytest.raises(ProcessLookupError):
        os.kill(syncer_pid, 0)  # gone, not started again either


async def test_bytes_stored_already_are_reused_without_the_syncer(store: BlobStore) -> None:
    data = b"mot ban"
    first = await store.put(stream(data), max_bytes=100)
    assert store.syncer is not None
    asked: list[Path] = []
    durable = store.syncer.durable

    async def counting(tmp: Path, final: Path, *rest: Any) -> None:
        asked.append(final)
        await durable(tmp, final, *rest)

    store.syncer.durable = counting  # type: ignore[method-assign]
    again = await store.put(stream(data), max_bytes=100)
    assert again.sha256 == first.sha256 and asked == [] and tmp_files(store) == []


async def test_a_syncer_that_dies_fails_its_commits_and_the_next_commit_starts_another(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.put(stream(b"first"), max_bytes=100)  # the syncer started
    assert store.syncer is not None and store.syncer._running is not None
    first_pid = store.syncer.pid
    assert first_pid is not None
    # the next request kills it before it answers
    requests = store.syncer._running.requests
    monkeypatch.setattr(requests, "write", lambda _data: os.kill(first_pid, signal.SIGKILL))
    data = b"never answered"
    with pytest.raises(SyncerStoppedError):
        await store.put(stream(data), max_bytes=100)
    assert tmp_files(store) == [] and not store.path(hashlib.sha256(data).hexdigest()).exists()
    again = await store.put(stream(data), max_bytes=100)  # a new syncer
    assert store.path(again.sha256).read_bytes() == data
    assert store.syncer.pid not in (None, first_pid)


async def test_an_answer_that_cannot_be_read_fails_its_commit_and_a_new_syncer_is_started(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.put(stream(b"first"), max_bytes=100)
    assert store.syncer is not None and store.syncer._running is not None
    first_pid = store.syncer.pid
    stdout = store.syncer._running.process.stdout
    assert stdout is not None
    readline = stdout.readline

    async def garbled() -> bytes:
        await readline()
        return b"not json\n"

    monkeypatch.setattr(stdout, "readline", garbled)
    await store.put(stream(b"answered before"), max_bytes=100)  # the reader was waiting already
    with pytest.raises(SyncerStoppedError):  # not left waiting for an answer forever
        await store.put(stream(b"garbled"), max_bytes=100)
    again = await store.put(stream(b"after"), max_bytes=100)
    assert store.path(again.sha256).read_bytes() == b"after" and store.syncer.pid != first_pid


async def test_no_syncer_process_the_upload_is_synced_by_a_thread(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(*_args: object, **_kwargs: object) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")  # a limit on processes

    monkeypatch.setattr(blobsync.asyncio, "create_subprocess_exec", refused)
    blob = await store.put(stream(b"still stored"), max_bytes=100)
    assert store.path(blob.sha256).read_bytes() == b"still stored" and tmp_files(store) == []
    assert store.syncer is not None and store.syncer.pid is None


def _syncers_of_this_process() -> list[int]:
    """The blob syncer processes this process started and that are still running."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and stat[0] != "Z" and b"blobsync.py" in command:
            found.append(int(entry.name))
    return found


async def test_a_stop_while_the_syncer_starts_leaves_none_running(tmp_path: Path) -> None:
    """The service stopping while its first commit starts the syncer: the syncer started is stopped
    too (it answers what it was asked first), and later commits are refused."""
    store = BlobStore(tmp_path / "blobs", syncer=BlobSyncer())
    commit = asyncio.ensure_future(store.put(stream(b"first"), max_bytes=100))
    await asyncio.sleep(0)  # the commit is starting the syncer
    await store.close()
    try:
        blob = await commit  # asked before the stop: answered
    except SyncerStoppedError:
        pass
    else:
        assert store.path(blob.sha256).read_bytes() == b"first"
    assert _syncers_of_this_process() == [] and store.syncer is not None and store.syncer.pid is None
    with pytest.raises(SyncerStoppedError):
        await store.put(stream(b"after"), max_bytes=100)
    assert _syncers_of_this_process() == []


def test_uploads_are_stored_through_the_syncer_under_uvloop(tmp_path: Path) -> None:
    """The services run on uvloop (the tests on asyncio's own loop): its pipes and subprocesses carry
    the same requests, the syncer is stopped with the store."""

    async def storing() -> None:
        store = BlobStore(tmp_path / "blobs", syncer=BlobSyncer())
        try:
            many = [os.urandom(300_000) + bytes([n]) for n in range(12)]  # more than the pipe holds at once
            blobs = await asyncio.gather(*(store.put(stream(d), max_bytes=CHUNK) for d in many))
            assert [store.path(b.sha256).read_bytes() for b in blobs] == many and tmp_files(store) == []
            assert store.syncer is not None and store.syncer._running is not None
            sock = store.syncer._running.requests.transport.get_extra_info("socket")  # uvloop's: a socket pair
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= blobsync.PIPE_BYTES
        finally:
            await store.close()

    uvloop.run(storing())
    assert _syncers_of_this_process() == []


def test_the_syncer_runs_without_the_application_on_its_path(tmp_path: Path) -> None:
    """By its file, isolated: from a directory without the repository, with no PYTHONPATH."""
    tmp = tmp_path / "upload"
    request = {"id": 1, "tmp": str(tmp), "final": str(tmp_path / "final"), "directories": [str(tmp_path)], "size": 1}
    answer = subprocess.run(
        [sys.executable, "-I", blobsync.__file__],
        input=json.dumps(request).encode() + b"\nx",
        capture_output=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        timeout=30,
        check=True,
    )
    assert json.loads(answer.stdout) == {"id": 1} and (tmp_path / "final").read_bytes() == b"x"


async def test_a_cancelled_commit_leaves_no_upload_file_behind(store: BlobStore) -> None:
    await store.put(stream(b"start the syncer"), max_bytes=100)
    data = b"cancelled " + os.urandom(50)
    staged = await store.stage(stream(data), max_bytes=CHUNK)
    commit = asyncio.ensure_future(store.commit(staged))
    await asyncio.sleep(0)  # written and asked; not answered yet
    commit.cancel()
    with pytest.raises(asyncio.CancelledError):
        await commit
    await store.put(stream(b"after"), max_bytes=100)  # the syncer still answers
    for _ in range(100):  # the cancelled request may still be in the syncer's hands
        if tmp_files(store) == []:
            break
        await asyncio.sleep(0.05)
    assert tmp_files(store) == []
    # renamed before the cancel was seen, or never: no half-written file at its place either way
    final = store.path(hashlib.sha256(data).hexdigest())
    assert not final.exists() or final.read_bytes() == data


async def test_a_system_with_the_default_setting_stores_uploads_through_its_syncer(tmp_path: Path) -> None:
    """The tests' systems keep uploads in the worker thread (tests/conftest.py); the default is the
    syncer, and a document sent through the whole system is stored by it."""
    async with running_system(tmp_path / "var", exchange={"blob_sync_process": True}) as api:
        exchange = app_runtime(app_runtime(api.app, GatewayRuntime).embedded["exchange"], ExchangeRuntime)
        assert exchange.config.blob_sync_process
        sender, recipient = await api.agency_client(), await api.agency_client()
        response = await send(api, sender, [recipient.agency_code], files=[("van-ban.pdf", PDF, "application/pdf")])
        assert response.status_code == 202, response.text
        [attachment] = response.json()["attachments"]
        syncer = exchange.blobs.syncer
        assert syncer is not None and syncer.pid is not None and syncer.pid != os.getpid()
        os.kill(syncer.pid, 0)  # started by the commit (a syncer starts with its first) and still running
        assert exchange.blobs.path(attachment["sha256"]).read_bytes() == PDF
