"""The content-addressed blob store: by sha256, once, nothing kept past the size limit."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.exchange import blobstore
from services.exchange.blobstore import CHUNK, HEAD, BlobStore
from shared.errors import PayloadTooLargeError, UnsupportedMediaTypeError


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def read_all(store: BlobStore, sha256: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(sha256)])


def stored_files(store: BlobStore) -> list[Path]:
    """Every blob in the store (the tmp/ directory excluded)."""
    return sorted(p for p in store.root.rglob("*") if p.is_file() and "tmp" not in p.relative_to(store.root).parts)


def tmp_files(store: BlobStore) -> list[Path]:
    return list((store.root / "tmp").iterdir())


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


async def test_put_stores_the_bytes_under_their_sha256(store: BlobStore) -> None:
    data = b"%PDF-1.7 van ban"
    blob = await store.put(stream(data[:5], data[5:]), max_bytes=1024)
    sha = hashlib.sha256(data).hexdigest()
    assert (blob.sha256, blob.size, blob.head) == (sha, len(data), data)
    assert store.path(sha) == store.root / sha[:2] / sha[2:4] / sha
    assert store.path(sha).read_bytes() == data
    assert store.exists(sha)
    assert stored_files(store) == [store.path(sha)]
    assert tmp_files(store) == []


async def test_identical_content_is_stored_once(store: BlobStore) -> None:
    first = await store.put(stream(b"same ", b"bytes"), max_bytes=1024)
    second = await store.put(stream(b"same bytes"), max_bytes=1024)
    assert first.sha256 == second.sha256
    assert stored_files(store) == [store.path(first.sha256)]
    assert tmp_files(store) == []


async def test_different_content_gets_different_files(store: BlobStore) -> None:
    a = await store.put(stream(b"a"), max_bytes=10)
    b = await store.put(stream(b"b"), max_bytes=10)
    assert a.sha256 != b.sha256
    assert stored_files(store) == sorted([store.path(a.sha256), store.path(b.sha256)])


async def test_exactly_max_bytes_is_accepted(store: BlobStore) -> None:
    blob = await store.put(stream(b"x" * 600, b"y" * 424), max_bytes=1024)
    assert blob.size == 1024
    assert store.exists(blob.sha256)


@pytest.mark.parametrize("chunks", [[b"x" * 1025], [b"x" * 600, b"y" * 600], [b"x" * 1024, b"!"]])
async def test_past_max_bytes_raises_and_keeps_nothing(store: BlobStore, chunks: list[bytes]) -> None:
    with pytest.raises(PayloadTooLargeError) as info:
        await store.put(stream(*chunks), max_bytes=1024)
    assert info.value.status == 413
    assert info.value.extra == {"max_bytes": 1024}
    assert stored_files(store) == []
    assert tmp_files(store) == []


async def test_failing_stream_keeps_nothing(store: BlobStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.put(broken(), max_bytes=1024)
    assert stored_files(store) == []
    assert tmp_files(store) == []


async def test_inspect_head_sees_the_first_bytes_once(store: BlobStore) -> None:
    seen: list[bytes] = []
    data = os.urandom(HEAD + 5000)
    await store.put(stream(data[:100], data[100:HEAD], data[HEAD:]), max_bytes=len(data), inspect_head=seen.append)
    assert seen == [data[:HEAD]]


async def test_inspect_head_sees_a_short_file_whole(store: BlobStore) -> None:
    seen: list[bytes] = []
    await store.put(stream(b"%PDF-", b"1.7"), max_bytes=100, inspect_head=seen.append)
    assert seen == [b"%PDF-1.7"]


async def test_refused_head_keeps_nothing(store: BlobStore) -> None:
    def refuse(head: bytes) -> None:
        raise UnsupportedMediaTypeError(f"not accepted: {head[:4]!r}")

    with pytest.raises(UnsupportedMediaTypeError):
        await store.put(stream(b"MZ\x90\x00" * 3000), max_bytes=10**6, inspect_head=refuse)
    with pytest.raises(UnsupportedMediaTypeError):
        await store.put(stream(b"MZ"), max_bytes=10**6, inspect_head=refuse)
    assert stored_files(store) == []
    assert tmp_files(store) == []


async def test_read_streams_back_identical_bytes(store: BlobStore) -> None:
    data = os.urandom(2 * CHUNK + 12345)
    blob = await store.put(stream(data[:1000], data[1000 : CHUNK + 7], data[CHUNK + 7 :]), max_bytes=3 * CHUNK)
    assert blob.size == len(data)
    assert blob.head == data[:HEAD]
    chunks = [chunk async for chunk in store.read(blob.sha256)]
    assert len(chunks) == 3
    assert b"".join(chunks) == data


async def test_empty_stream_is_an_empty_blob(store: BlobStore) -> None:
    blob = await store.put(stream(), max_bytes=10)
    assert (blob.sha256, blob.size, blob.head) == (hashlib.sha256(b"").hexdigest(), 0, b"")
    assert await read_all(store, blob.sha256) == b""


async def test_store_survives_a_restart(tmp_path: Path) -> None:
    blob = await BlobStore(tmp_path / "blobs").put(stream(b"kept"), max_bytes=10)
    assert await read_all(BlobStore(tmp_path / "blobs"), blob.sha256) == b"kept"


async def test_start_up_removes_uploads_left_by_a_killed_process_and_keeps_live_ones(store: BlobStore) -> None:
    import asyncio
    import subprocess
    import sys

    # a process that stages an upload (holding its lock) and is killed before committing it
    script = (
        "import asyncio, os, signal, sys\n"
        "from pathlib import Path\n"
        "from services.exchange.blobstore import BlobStore\n"
        "async def chunks():\n"
        "    yield b'half an upload' * 100_000\n"  # past a chunk: written to tmp/ while it streams
        "async def main():\n"
        "    await BlobStore(Path(sys.argv[1])).stage(chunks(), max_bytes=10**7)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "asyncio.run(main())\n"
    )
    killed = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script, str(store.root)], capture_output=True, timeout=60
    )
    assert killed.returncode == -9, killed.stderr
    assert len(tmp_files(store)) == 1

    big = b"an upload in progress here" * 50_000
    live = await store.stage(stream(big), max_bytes=2 * CHUNK)  # this process holds it
    assert store.remove_abandoned_uploads() == 1
    assert tmp_files(store) == [live.path]
    blob = await store.commit(live)  # the live upload is intact
    assert await read_all(store, blob.sha256) == big
    assert tmp_files(store) == []
    assert store.remove_abandoned_uploads() == 0


async def test_an_upload_cancelled_while_its_file_is_being_written_leaves_nothing(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is created and written in a worker thread: a request cancelled meanwhile (the client
    went away) must not leave the file in tmp/ once the thread is done."""
    entered, release = threading.Event(), threading.Event()
    real_write_all = blobstore._write_all

    def slow_write_all(handle: object, pieces: list[bytes], *, sync: bool) -> None:
        entered.set()
        release.wait(5)
        real_write_all(handle, pieces, sync=sync)  # type: ignore[arg-type]

    monkeypatch.setattr(blobstore, "_write_all", slow_write_all)
    staging = asyncio.create_task(store.stage(stream(b"%PDF-1.7 ", os.urandom(CHUNK + 10)), max_bytes=4 * CHUNK))
    await asyncio.to_thread(entered.wait, 5)
    assert len(tmp_files(store)) == 1  # created in the thread, now being written
    staging.cancel()
    with pytest.raises(asyncio.CancelledError):
        await staging
    release.set()
    for _ in range(100):  # the thread finishes, then its file is deleted
        if not tmp_files(store):
            break
        await asyncio.sleep(0.01)
    assert tmp_files(store) == []
    assert stored_files(store) == []


async def test_a_stored_file_and_the_directories_naming_it_are_synced_to_disk(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's bytes, then its rename: the directory holding it, and the parent of each
    directory made for it, are fsynced (what a power loss keeps is what the committed row names)."""
    synced: list[Path] = []
    fsync = os.fsync

    def recording(descriptor: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{descriptor}")))
        fsync(descriptor)

    monkeypatch.setattr(blobstore.os, "fsync", recording)
    first = await store.put(stream(b"van ban mot"), max_bytes=100)
    path = store.path(first.sha256)
    assert path.parent in synced and path.parent.parent in synced and store.root in synced  # new directories
    assert synced.index(path.parent) > next(i for i, p in enumerate(synced) if p.parent == store.root / "tmp")

    synced.clear()
    again = await store.put(stream(b"van ban mot"), max_bytes=100)  # stored already: nothing renamed
    assert again.sha256 == first.sha256
    # its directory synced all the same (a concurrent first commit's rename may not be yet), its
    # ancestors not again
    assert synced == [path.parent]


async def test_directories_made_by_someone_else_are_synced_once_before_a_commit_returns(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hash directory another replica (or a concurrent commit) made may not be on disk yet: the
    first commit under it syncs the names above it too; later ones only their own directory."""
    synced: list[Path] = []
    fsync = os.fsync

    def recording(descriptor: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{descriptor}")))
        fsync(descriptor)

    data = b"cong van so 1"
    sha = hashlib.sha256(data).hexdigest()
    leaf = store.path(sha).parent
    leaf.mkdir(parents=True)  # made by another replica, never synced by this process
    monkeypatch.setattr(blobstore.os, "fsync", recording)
    await store.put(stream(data), max_bytes=100)
    directories = [p for p in synced if p.parent != store.root / "tmp"]
    assert directories == [leaf, leaf.parent, store.root]

    synced.clear()
    for i in range(100_000):  # another content whose hash falls in the same directory
        other = b"%d" % i
        if hashlib.sha256(other).hexdigest()[:4] == sha[:4]:
            break
    else:  # pragma: no cover - 100,000 tries find one with near certainty (1 in 65,536 each)
        pytest.skip("no content found for the same directory")
    await store.put(stream(other), max_bytes=100)
    assert [p for p in synced if p.parent != store.root / "tmp"] == [leaf]


@pytest.mark.parametrize("size", [100, CHUNK + 4], ids=["held-in-memory", "streamed"])
async def test_an_upload_file_deleted_by_a_starting_replica_before_its_lock_is_made_again(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """Another replica's start-up deletes the unlocked files of tmp/: one it takes between the
    file's creation and its lock is replaced by a new one, and the commit succeeds."""
    flock = blobstore.fcntl.flock
    taken: list[str] = []

    def racing(descriptor: int, operation: int) -> None:
        if not taken:
            name = os.readlink(f"/proc/self/fd/{descriptor}")
            taken.append(name)
            assert store.remove_abandoned_uploads() == 1  # the other replica, right before this lock
        flock(descriptor, operation)

    monkeypatch.setattr(blobstore.fcntl, "flock", racing)
    data = os.urandom(size)
    blob = await store.put(stream(data), max_bytes=2 * CHUNK)
    assert taken and store.path(blob.sha256).read_bytes() == data
    assert tmp_files(store) == []


async def test_a_small_upload_is_held_in_memory_until_its_commit_writes_it_in_one_hop(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Smaller than a chunk: staging touches no disk (a send refused after it leaves nothing), and
    the commit writes, syncs and renames it in one worker-thread hop."""
    data = b"%PDF-1.7 cong van " + os.urandom(1000)
    staged = await store.stage(stream(data[:10], data[10:]), max_bytes=CHUNK)
    assert staged.in_memory and tmp_files(store) == [] and stored_files(store) == []
    assert staged.sha256 == hashlib.sha256(data).hexdigest() and staged.size == len(data)
    store.discard(staged)  # refused by a later check: nothing to delete
    assert tmp_files(store) == [] and stored_files(store) == []

    hops: list[str] = []
    to_thread = asyncio.to_thread

    async def counting(function: object, /, *args: object, **kwargs: object) -> object:
        hops.append(getattr(function, "__name__", repr(function)))
        return await to_thread(function, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(blobstore.asyncio, "to_thread", counting)
    blob = await store.commit(await store.stage(stream(data), max_bytes=CHUNK))
    assert hops == ["_store_pieces"]
    assert store.path(blob.sha256).read_bytes() == data and tmp_files(store) == []
    assert oct(store.path(blob.sha256).stat().st_mode & 0o777) == "0o600"  # as a streamed upload's file


async def test_the_same_small_bytes_again_write_nothing(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    first = await store.put(stream(b"mot ban"), max_bytes=100)
    old = 1_000_000_000.0
    os.utime(store.path(first.sha256), (old, old))
    writes: list[int] = []
    write = os.write

    def recording(descriptor: int, data: object) -> int:
        writes.append(descriptor)
        return write(descriptor, data)  # type: ignore[arg-type]

    monkeypatch.setattr(blobstore.os, "write", recording)
    again = await store.put(stream(b"mot ban"), max_bytes=100)
    assert again.sha256 == first.sha256 and writes == [] and tmp_files(store) == []
    assert store.path(first.sha256).stat().st_mtime > old  # young again for the sweep


async def test_a_small_upload_spilled_to_disk_is_a_locked_staged_file(store: BlobStore) -> None:
    """Read from a file before the send (a ZIP's entries, a signature required): written to tmp/,
    held as a streamed upload is, committed or discarded the same way."""
    staged = await store.stage(stream(b"PK\x03\x04 a zip"), max_bytes=100)
    spilled = await store.spill(staged)
    assert not spilled.in_memory and spilled.path is not None and spilled.path.read_bytes() == b"PK\x03\x04 a zip"
    assert store.remove_abandoned_uploads() == 0  # locked: a live upload
    assert await store.spill(spilled) is spilled
    blob = await store.commit(spilled)
    assert store.path(blob.sha256).read_bytes() == b"PK\x03\x04 a zip" and tmp_files(store) == []
    other = await store.spill(await store.stage(stream(b"another"), max_bytes=100))
    store.discard(other)
    assert tmp_files(store) == []


async def test_a_file_past_a_chunk_is_written_while_it_streams(store: BlobStore) -> None:
    staged = await store.stage(stream(os.urandom(CHUNK), b"more"), max_bytes=2 * CHUNK)
    assert not staged.in_memory and tmp_files(store) == [staged.path]
    store.discard(staged)
    assert tmp_files(store) == []


async def test_a_send_holds_at_most_a_megabyte_of_small_files_in_memory(store: BlobStore) -> None:
    """Past ``MEMORY_PER_SEND``, each further small file goes to tmp/ once staged (a send of many
    files costs no more memory than the multipart parser's spool); a ZIP always does (its entries
    are read from the file); a refused send leaves nothing either way."""
    import io
    import zipfile

    from services.exchange.document.schemas import AttachmentUpload
    from services.exchange.document.service import MEMORY_PER_SEND, commit_files, discard_files, stage_files

    def pdf(size: int) -> bytes:
        return b"%PDF-1.7\n" + os.urandom(size - 9)

    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("a.txt", "van ban")
    files = [pdf(MEMORY_PER_SEND // 2), pdf(MEMORY_PER_SEND // 3), pdf(MEMORY_PER_SEND // 3), packed.getvalue()]
    uploads = [AttachmentUpload(f"f{i}.{'zip' if i == 3 else 'pdf'}", stream(data)) for i, data in enumerate(files)]
    staged = await stage_files(files=uploads, blobs=store, max_bytes=CHUNK)
    assert [file.blob.in_memory for file in staged] == [True, True, False, False]
    assert sum(file.blob.size for file in staged if file.blob.in_memory) <= MEMORY_PER_SEND
    assert len(tmp_files(store)) == 2
    await commit_files(staged=staged, blobs=store)
    discard_files(staged=staged, blobs=store)  # as the send does after its commit: nothing left
    assert tmp_files(store) == []
    assert sorted(p.read_bytes() for p in stored_files(store)) == sorted(files)

    refused = await stage_files(
        files=[AttachmentUpload(f"g{i}.pdf", stream(pdf(MEMORY_PER_SEND // 2))) for i in range(3)],
        blobs=store,
        max_bytes=CHUNK,
    )
    discard_files(staged=refused, blobs=store)  # a check after staging refused the send
    assert tmp_files(store) == [] and len(stored_files(store)) == 4
