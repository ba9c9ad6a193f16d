"""The blob store's layout, shared by the exchange that writes it and the services that may read a
file by its hash (the claim check of an event: ``sha256`` names the bytes; content-addressed files
never change once in place)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def blob_path(root: Path, sha256: str) -> Path:
    """Where the blob of this hash lives under the store's root."""
    return root / sha256[:2] / sha256[2:4] / sha256


def read_blob(root: Path, sha256: str, max_bytes: int | None = None) -> bytes | None:
    """The bytes of a blob read straight from the store, when this process sees the store and the
    file there is whole (its hash checked) and, with ``max_bytes``, no larger than that; None
    otherwise (the caller asks the exchange)."""
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        return None
    try:
        with blob_path(root, sha256).open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                return None
            # a read of the size it has (one more byte: it never grows, its hash would not match);
            # not a read of max_bytes, whose buffer would be allocated whole first
            data = file.read(size + 1)
    except OSError:
        return None
    if max_bytes is not None and len(data) > max_bytes:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None


def sync_directory(directory: Path) -> None:
    """fsync a directory: the entries made or renamed in it are on disk when it returns (a file's
    own fsync does not keep its name through a power loss)."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_durably(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` at once and for good: a reader sees the old file or the new,
    never a part, and once it returns a power loss keeps the new one (its bytes synced, then the
    directory holding its name, that directory's parent — another writer may have just made it, and
    not synced it yet — and the parent of each directory made for it). Created with ``mode`` (0600
    for a private key: never readable by others)."""
    created = [directory for directory in (path.parent.parent, path.parent) if not directory.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    for directory in {path.parent, path.parent.parent, *(new.parent for new in created)}:
        sync_directory(directory)
