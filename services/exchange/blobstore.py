"""Content-addressed blob store on disk: a file lives at ``<root>/ab/cd/<sha256>``, stored once.

Uploads are hashed while they stream to a temporary file, fsynced, then renamed into place and
the directory synced (the rename itself on disk), so memory stays flat whatever the file size, a
crash never leaves a partial blob under its hash, and a power loss never loses a committed one. An
upload smaller than :data:`CHUNK` (the framework holds it in memory already) stays in memory until
it is committed, and is then written, synced, renamed and its directory synced in one request to
the syncer process (:mod:`services.exchange.blobsync`; without one, in one hop of a worker thread):
nothing on disk for a send refused by a later check, no file system call on the event loop's thread,
and no write at all when the same bytes are stored already.

A staged file is held under an exclusive ``flock`` until it is committed or discarded. The kernel
drops the lock when its process dies, so at start the store deletes every ``tmp/`` file nobody
holds: what a killed process left behind, never a live replica's upload in progress.

A blob no attachment row names any more (its document's transaction failed after the file moved
into place, or rows were removed) is deleted by :func:`sweep_unreferenced`, and only once it is
older than a grace period: a document commits its blob just before its row, and committing bytes
that are stored already makes the blob young again, so a document in flight never loses its file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

from services.exchange.blobsync import BlobSyncer, SyncerUnavailableError, locked_new_file, make_directory
from shared.blobs import blob_path, sync_directory
from shared.errors import PayloadTooLargeError

log = logging.getLogger("lienthong.exchange.blobstore")

CHUNK = 1024 * 1024
HEAD = 8192
SWEEP_BATCH = 500  # hashes per "which are still referenced?" query
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

ReferenceCheck = Callable[[Sequence[str]], Awaitable[set[str]]]
"""Given hashes, return those an attachment row still names."""


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    head: bytes  # the first bytes, for content sniffing


@dataclass(frozen=True)
class StagedBlob(StoredBlob):
    """An upload hashed, not yet in the store: written to ``tmp/`` (``path``; its open handle holds
    the lock), or, smaller than :data:`CHUNK`, held in memory (``pieces``, ``path`` None) until
    :meth:`BlobStore.commit` or :meth:`BlobStore.spill`."""

    path: Path | None
    handle: BinaryIO | None = field(default=None, compare=False, repr=False)
    pieces: tuple[bytes, ...] = field(default=(), compare=False, repr=False)

    @property
    def in_memory(self) -> bool:
        return self.path is None

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()


class _Staging(NamedTuple):
    """An upload's file in ``tmp/`` while it is written, and its open (locked) handle."""

    path: Path
    handle: BinaryIO

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.handle.close()


def _discard_orphan(work: asyncio.Future[_Staging]) -> None:
    if not work.cancelled() and work.exception() is None:
        work.result().discard()


class BlobFile(NamedTuple):
    """A blob found in the store: its hash, its file and when it was last written (or re-committed)."""

    sha256: str
    path: Path
    mtime: float


@dataclass
class SweepReport:
    """What a sweep found: every blob it looked at, those it kept and why, the unreferenced old ones
    (deleted when ``applied``, else only listed) with their sizes."""

    applied: bool
    grace_seconds: float
    scanned: int = 0
    young: int = 0
    referenced: int = 0
    unreferenced: list[tuple[Path, int]] = field(default_factory=list)
    deleted: int = 0
    freed_bytes: int = 0

    @property
    def unreferenced_bytes(self) -> int:
        return sum(size for _path, size in self.unreferenced)


class BlobStore:
    def __init__(self, root: Path, *, syncer: BlobSyncer | None = None) -> None:
        self.root = root
        self._root_text = os.fspath(root)
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        # the hash directories ("ab", "ab/cd") whose own names this process has seen synced to disk
        # after they existed: a directory another commit (or replica) made may not be, yet
        self._durable: set[str] = set()
        # an upload held in memory is synced by this process of its own, not by a worker thread
        # (services.exchange.blobsync); None: by a worker thread
        self.syncer = syncer

    async def close(self) -> None:
        """Stop the syncer process, if any (the service's shutdown)."""
        if self.syncer is not None:
            await self.syncer.close()

    def remove_abandoned_uploads(self) -> int:
        """Delete the ``tmp/`` files no live process holds (left by a killed one); return how many."""
        removed = 0
        for path in (self.root / "tmp").iterdir():
            try:
                handle = path.open("rb")
            except OSError:  # gone meanwhile, or not a file
                continue
            with handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # an upload in progress in a live process
                    continue
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        if removed:
            log.warning("removed %d upload file(s) left in %s by a stopped process", removed, self.root / "tmp")
        return removed

    def path(self, sha256: str) -> Path:
        return blob_path(self.root, sha256)

    def _text_path(self, sha256: str) -> str:
        """:meth:`path` as text (the same layout, :func:`shared.blobs.blob_path`)."""
        return f"{self._root_text}/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def iter_blobs(self) -> Iterator[BlobFile]:
        """Yield every blob of the store (``tmp/`` and files that are not a blob at their hash's place
        are skipped); a file gone while listing is skipped too."""
        for first in _subdirectories(self.root):
            for second in _subdirectories(first):
                try:
                    entries = list(os.scandir(second))
                except FileNotFoundError:
                    continue
                for entry in entries:
                    name = entry.name
                    if not _SHA256.match(name) or (name[:2], name[2:4]) != (first.name, second.name):
                        continue
                    try:
                        if not entry.is_file(follow_symlinks=False):
                            continue
                        mtime = entry.stat(follow_symlinks=False).st_mtime
                    except FileNotFoundError:
                        continue
                    yield BlobFile(name, Path(entry.path), mtime)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    async def stage(
        self,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
        inspect_head: Callable[[bytes], object] | None = None,
    ) -> StagedBlob:
        """Hash a stream, writing it to ``tmp/`` once it passes :data:`CHUNK` bytes (a smaller one is
        kept in memory); nothing is in the store until :meth:`commit`.

        Raises PayloadTooLargeError past ``max_bytes``; ``inspect_head`` sees the first bytes before
        the rest is read and may refuse the file by raising. Either way nothing is kept."""
        digest = hashlib.sha256()
        size = 0
        head = b""
        # the file is created, written a megabyte at a time and, with the last piece, synced in worker
        # threads: a 100 KB file costs one hop and nothing on the event loop's thread (creating a file
        # waits on the file system's journal while other uploads are being synced)
        staging: _Staging | None = None
        pending: list[bytes] = []
        pending_bytes = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLargeError(
                        f"A file exceeds the limit of {max_bytes} bytes; split it or ask for a higher limit",
                        max_bytes=max_bytes,
                    )
                if len(head) < HEAD:
                    head += chunk[: HEAD - len(head)]
                if inspect_head is not None and len(head) >= HEAD:
                    inspect_head(head)
                    inspect_head = None
                digest.update(chunk)
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= CHUNK:
                    staging = await self._write_in_thread(staging, pending, sync=False)
                    pending, pending_bytes = [], 0
            if inspect_head is not None:  # a file shorter than the head
                inspect_head(head)
            if staging is None:  # smaller than a chunk: in memory until committed (one hop then)
                return StagedBlob(sha256=digest.hexdigest(), size=size, head=head, path=None, pieces=tuple(pending))
            staging = await self._write_in_thread(staging, pending, sync=True)
            return StagedBlob(sha256=digest.hexdigest(), size=size, head=head, path=staging.path, handle=staging.handle)
        except BaseException:
            if staging is not None:
                staging.discard()  # synchronous on purpose: must run even when cancelled
            raise

    async def _write_in_thread(self, staging: _Staging | None, pieces: list[bytes], *, sync: bool) -> _Staging:
        """:meth:`_write` in a worker thread; a file it creates after the caller was cancelled is
        deleted when the thread is done, not left in ``tmp/`` until the next start."""
        work = asyncio.ensure_future(asyncio.to_thread(self._write, staging, pieces, sync=sync))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            work.add_done_callback(_discard_orphan)
            raise

    def _write(self, staging: _Staging | None, pieces: list[bytes], *, sync: bool) -> _Staging:
        """Create the upload's file in ``tmp/`` (locked until commit or discard: a dead process's lock
        is dropped) unless it exists, write the pieces, with ``sync`` flush and fsync too."""
        if staging is None:
            fd, path = self._locked_file()
            try:
                staging = _Staging(path, os.fdopen(fd, "wb"))
            except BaseException:
                os.close(fd)
                path.unlink(missing_ok=True)
                raise
        try:
            _write_all(staging.handle, pieces, sync=sync)
        except BaseException:
            staging.discard()
            raise
        return staging

    async def spill(self, staged: StagedBlob) -> StagedBlob:
        """The staged upload written to ``tmp/`` (for a reader that needs a file: a ZIP's entries, a
        signature checked before the send); one on disk already is returned as it is."""
        if not staged.in_memory:
            return staged
        staging = await self._write_in_thread(None, list(staged.pieces), sync=True)
        return StagedBlob(
            sha256=staged.sha256, size=staged.size, head=staged.head, path=staging.path, handle=staging.handle
        )

    async def commit(self, staged: StagedBlob) -> StoredBlob:
        """Move a staged upload into the store under its hash (one copy of identical bytes)."""
        if staged.path is None:
            final = self._text_path(staged.sha256)  # text, not a Path: the hot path's cost (below)
            # one stat on the loop's thread (a look, no journal): are the bytes stored already
            if self.syncer is not None and not os.path.exists(final):  # noqa: ASYNC240
                await self._store_elsewhere(staged.pieces, staged.sha256, final)
            else:  # no syncer, or the same bytes stored already (reused by the thread)
                await asyncio.to_thread(self._store_pieces, staged.pieces, staged.sha256)
            return StoredBlob(sha256=staged.sha256, size=staged.size, head=staged.head)
        try:
            # the handle is closed (its lock dropped) in the same thread hop as the move: a close on
            # the event loop's thread gives up the GIL and may wait to get it back
            await asyncio.to_thread(self._move_into_place, staged.path, staged.sha256, staged.handle)
        finally:
            staged.release()
        return StoredBlob(sha256=staged.sha256, size=staged.size, head=staged.head)

    @staticmethod
    def discard(staged: StagedBlob) -> None:
        """Forget a staged upload (nothing happens to one already committed)."""
        if staged.path is not None:
            staged.path.unlink(missing_ok=True)
        staged.release()

    async def put(
        self,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
        inspect_head: Callable[[bytes], object] | None = None,
    ) -> StoredBlob:
        """Stage and commit in one step."""
        return await self.commit(await self.stage(chunks, max_bytes=max_bytes, inspect_head=inspect_head))

    def _store_pieces(self, pieces: Sequence[bytes], sha256: str) -> None:
        """An upload held in memory, into the store in one go (a worker thread's work): unless the
        same bytes are stored already, written to a locked file in ``tmp/``, synced, renamed under
        its hash and the directories synced, as a streamed upload's commit does."""
        final = self.path(sha256)
        if _reuse(final):  # the same bytes are stored already: one copy
            self._settle(final)  # its rename, perhaps a concurrent commit's still being synced
            return
        fd, tmp = self._locked_file()
        try:
            _write_pieces(fd, pieces)
            os.fsync(fd)
            self._place(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)

    async def _store_elsewhere(self, pieces: Sequence[bytes], sha256: str, final: str) -> None:
        """An upload held in memory stored by the syncer process: it writes the bytes to a new locked
        file of ``tmp/``, syncs it, renames it under its hash and syncs its directories; this thread
        makes no file system call (:mod:`services.exchange.blobsync` says why). On an error or a
        cancel the ``tmp/`` file is deleted (a rename the syncer made already stands: a blob no row
        names, for the sweep). When no syncer can be started, a worker thread stores it. The paths
        are text: ``pathlib`` cost this path about 0.1 ms a document (cProfile of the exchange,
        docs/performance.md "The sixteenth session")."""
        assert self.syncer is not None
        tmp = f"{self._root_text}/tmp/upload-{secrets.token_hex(8)}"
        try:
            try:
                await self.syncer.durable(tmp, final, self._unsynced(sha256), pieces)
            except SyncerUnavailableError as exc:
                log.warning("%s: an upload is stored by a worker thread instead", exc)
                await asyncio.to_thread(self._store_pieces, pieces, sha256)
            else:
                self._note_synced(sha256)
        except BaseException:
            _forget(Path(tmp))
            raise

    def _move_into_place(self, tmp: Path, sha256: str, handle: BinaryIO | None = None) -> None:
        """The file under its hash (or, the same bytes stored already, the file deleted), the rename
        itself on disk."""
        final = self.path(sha256)
        if _reuse(final):  # the same bytes are stored already: one copy
            tmp.unlink()
            self._settle(final)
        else:
            self._place(tmp, final)
        if handle is not None:
            handle.close()

    def _locked_file(self) -> tuple[int, Path]:
        """A new file in ``tmp/``, locked (:func:`services.exchange.blobsync.locked_new_file`)."""
        path = self.root / "tmp" / f"upload-{secrets.token_hex(8)}"
        return locked_new_file(path), path

    def _place(self, tmp: Path, final: Path) -> None:
        """Rename a synced file to its place (its directories made if need be), then :meth:`_settle`."""
        make_directory(final.parent)
        os.replace(tmp, final)
        self._settle(final)

    def _settle(self, final: Path) -> None:
        """The file's name on disk, and the names of its two directories: its directory synced (a
        rename lives in its directory, which a power loss can lose unsynced, with the committed row
        naming a file that is not there), and each directory above it once this process has seen it
        synced after it existed (a directory made by a concurrent commit, or by another replica, may
        not be on disk yet when this commit returns)."""
        for directory in self._unsynced_directories(final):
            sync_directory(directory)
        self._mark_synced(final)

    def _unsynced_directories(self, final: Path) -> list[Path]:
        """The directories to sync once a file is renamed to ``final`` (a blob's place): its own, and
        those above it this process has not seen synced since they existed."""
        return [Path(directory) for directory in self._unsynced(final.name)]

    def _unsynced(self, sha256: str) -> list[str]:
        """:meth:`_unsynced_directories` of the blob ``sha256``, as text."""
        leaf, parent = _hash_directories(sha256)
        if leaf in self._durable:
            return [f"{self._root_text}/{leaf}"]
        if parent in self._durable:
            return [f"{self._root_text}/{leaf}", f"{self._root_text}/{parent}"]  # the leaf's name in its parent
        return [
            f"{self._root_text}/{leaf}",
            f"{self._root_text}/{parent}",
            self._root_text,
        ]  # and the parent's in the root

    def _mark_synced(self, final: Path) -> None:
        self._note_synced(final.name)

    def _note_synced(self, sha256: str) -> None:
        """The blob's two directories seen synced by this process (:meth:`_unsynced` asks)."""
        self._durable.update(_hash_directories(sha256))

    async def read(self, sha256: str) -> AsyncIterator[bytes]:
        """Stream a blob's bytes."""
        path = self.path(sha256)
        with path.open("rb") as handle:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk


def _hash_directories(sha256: str) -> tuple[str, str]:
    """A blob's directory and the one above it, relative to the store's root ("ab/cd", "ab")."""
    return f"{sha256[:2]}/{sha256[2:4]}", sha256[:2]


def _subdirectories(directory: Path) -> list[Path]:
    """Return the two-hex-digit subdirectories of a store level (``tmp/`` is not one)."""
    try:
        return sorted(p for p in directory.iterdir() if len(p.name) == 2 and p.is_dir() and not p.is_symlink())
    except FileNotFoundError:
        return []


def _take(blobs: Iterator[BlobFile], count: int) -> list[BlobFile]:
    """Return the next ``count`` blobs of a listing (fewer at its end)."""
    batch: list[BlobFile] = []
    for blob in blobs:
        batch.append(blob)
        if len(batch) == count:
            break
    return batch


def _sizes(paths: Sequence[Path]) -> list[tuple[Path, int]]:
    """Return the files' sizes (a file gone meanwhile is left out)."""
    found = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            found.append((path, path.stat().st_size))
    return found


def _reuse(final: Path) -> bool:
    """Whether a blob is stored at ``final``, made young again for the sweep if so. Under a shared
    lock of the file: a sweep deleting it (under an exclusive one) is either done, and the file is
    seen gone (False: the caller writes it again), or waits until the blob is young."""
    try:
        fd = os.open(final, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if os.fstat(fd).st_nlink == 0:  # swept while this waited for the lock
            return False
        os.utime(fd)
        return True
    finally:
        os.close(fd)


def _delete_old(paths: Sequence[Path], cutoff: float) -> list[tuple[Path, int]]:
    """Delete the files still older than ``cutoff``; return those deleted with their sizes.

    A blob re-committed since it was listed (a new document with the same bytes) is young again:
    it stays. Each file is checked and deleted under its exclusive lock, so a commit reusing it
    meanwhile (:func:`_reuse`, under a shared one) either made it young first or sees it gone."""
    deleted = []
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # deleted meanwhile (another replica's sweep)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            stat = os.fstat(fd)
            if stat.st_nlink == 0 or stat.st_mtime >= cutoff:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                deleted.append((path, stat.st_size))
        finally:
            os.close(fd)
    return deleted


async def sweep_unreferenced(
    store: BlobStore,
    referenced: ReferenceCheck,
    *,
    grace_seconds: float,
    apply: bool,
    batch_size: int = SWEEP_BATCH,
    now: float | None = None,
    progress: Callable[[SweepReport], None] | None = None,
) -> SweepReport:
    """Find the blobs older than the grace period that no attachment row references; delete them
    when ``apply`` (else only list them). Never touches a referenced or a younger blob.

    The store is listed ``batch_size`` files at a time, and each batch's old blobs are looked up in
    one query; ``progress`` sees the report after each batch."""
    cutoff = (time.time() if now is None else now) - grace_seconds
    report = SweepReport(applied=apply, grace_seconds=grace_seconds)
    listing = store.iter_blobs()
    while batch := await asyncio.to_thread(_take, listing, batch_size):
        report.scanned += len(batch)
        old = [blob for blob in batch if blob.mtime < cutoff]
        report.young += len(batch) - len(old)
        if old:
            kept = await referenced([blob.sha256 for blob in old])
            report.referenced += sum(1 for blob in old if blob.sha256 in kept)
            orphans = [blob.path for blob in old if blob.sha256 not in kept]
            if orphans and apply:
                deleted = await asyncio.to_thread(_delete_old, orphans, cutoff)
                report.unreferenced += deleted
                report.deleted += len(deleted)
                report.freed_bytes += sum(size for _path, size in deleted)
            elif orphans:
                report.unreferenced += await asyncio.to_thread(_sizes, orphans)
        if progress is not None:
            progress(report)
    return report


def _write_pieces(fd: int, pieces: Sequence[bytes]) -> None:
    """Every byte of the pieces to the file (a write may take part of what it is given)."""
    for piece in pieces:
        view = memoryview(piece)
        while view:
            view = view[os.write(fd, view) :]


def _forget(tmp: Path) -> None:
    """Delete a ``tmp/`` file whose commit failed (renamed already: nothing to do)."""
    tmp.unlink(missing_ok=True)


def _write_all(handle: BinaryIO, pieces: list[bytes], *, sync: bool) -> None:
    """Write the pieces; with ``sync``, flush and fsync too (the bytes are on disk when it returns)."""
    for piece in pieces:
        handle.write(piece)
    if sync:
        _flush_and_sync(handle)


def _flush_and_sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
