"""Content-addressed blob store on disk: a file lives at ``<root>/ab/cd/<sha256>``, stored once.

Uploads are hashed while they stream to a temporary file, fsynced, then renamed into place, so
memory stays flat whatever the file size and a crash never leaves a partial blob under its hash.

A staged file is held under an exclusive ``flock`` until it is committed or discarded. The kernel
drops the lock when its process dies, so at start the store deletes every ``tmp/`` file nobody
holds: what a killed process left behind, never a live replica's upload in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from shared.errors import PayloadTooLargeError

log = logging.getLogger("lienthong.exchange.blobstore")

CHUNK = 1024 * 1024
HEAD = 8192


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    head: bytes  # the first bytes, for content sniffing


@dataclass(frozen=True)
class StagedBlob(StoredBlob):
    """An upload hashed and written to ``tmp/``, not yet in the store; its open handle holds the lock."""

    path: Path
    handle: BinaryIO | None = field(default=None, compare=False, repr=False)

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "tmp").mkdir(parents=True, exist_ok=True)

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
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    async def stage(
        self,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
        inspect_head: Callable[[bytes], object] | None = None,
    ) -> StagedBlob:
        """Write a stream to ``tmp/`` while hashing it; nothing is in the store until :meth:`commit`.

        Raises PayloadTooLargeError past ``max_bytes``; ``inspect_head`` sees the first bytes before
        the rest is read and may refuse the file by raising. Either way nothing is kept."""
        digest = hashlib.sha256()
        size = 0
        head = b""
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp", prefix="upload-")
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until commit or discard; a dead process's lock is dropped
        tmp = Path(tmp_name)
        out = os.fdopen(fd, "wb")
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
                await asyncio.to_thread(out.write, chunk)
            if inspect_head is not None:  # a file shorter than the head
                inspect_head(head)
            await asyncio.to_thread(_flush_and_sync, out)
            return StagedBlob(sha256=digest.hexdigest(), size=size, head=head, path=tmp, handle=out)
        except BaseException:
            tmp.unlink(missing_ok=True)  # noqa: ASYNC240 - synchronous on purpose: must run even when cancelled
            out.close()
            raise

    async def commit(self, staged: StagedBlob) -> StoredBlob:
        """Move a staged upload into the store under its hash (one copy of identical bytes)."""
        try:
            await asyncio.to_thread(self._move_into_place, staged.path, staged.sha256)
        finally:
            staged.release()
        return StoredBlob(sha256=staged.sha256, size=staged.size, head=staged.head)

    @staticmethod
    def discard(staged: StagedBlob) -> None:
        """Forget a staged upload (nothing happens to one already committed)."""
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

    def _move_into_place(self, tmp: Path, sha256: str) -> None:
        final = self.path(sha256)
        if final.exists():  # the same bytes are stored already: keep one copy
            tmp.unlink()
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)

    async def read(self, sha256: str) -> AsyncIterator[bytes]:
        """Stream a blob's bytes."""
        path = self.path(sha256)
        with path.open("rb") as handle:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk


def _flush_and_sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
