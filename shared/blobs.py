"""The blob store's layout, shared by the exchange that writes it and the services that may read a
file by its hash (the claim check of an event: ``sha256`` names the bytes; content-addressed files
never change once in place)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def blob_path(root: Path, sha256: str) -> Path:
    """Where the blob of this hash lives under the store's root."""
    return root / sha256[:2] / sha256[2:4] / sha256


def read_blob(root: Path, sha256: str) -> bytes | None:
    """The bytes of a blob read straight from the store, when this process sees the store and the
    file there is whole (its hash checked); None otherwise (the caller asks the exchange)."""
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        return None
    try:
        data = blob_path(root, sha256).read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None
