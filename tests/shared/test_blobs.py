"""Reading a blob by its hash straight from the store (the archive's claim check in the embedded
mode): only a whole file under its own hash is believed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from shared.blobs import blob_path, read_blob


def test_a_blob_is_read_by_its_hash_and_only_when_it_is_whole(tmp_path: Path) -> None:
    data = b"%PDF-1.7 cong van"
    sha = hashlib.sha256(data).hexdigest()
    path = blob_path(tmp_path, sha)
    assert path == tmp_path / sha[:2] / sha[2:4] / sha
    assert read_blob(tmp_path, sha) is None  # not in this store: ask the exchange
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    assert read_blob(tmp_path, sha) == data
    path.write_bytes(data[:-1])  # cut short, or changed: not these bytes
    assert read_blob(tmp_path, sha) is None
    assert read_blob(tmp_path, "../" * 3 + "etc/passwd") is None  # a hash, or nothing
    assert read_blob(tmp_path, sha.upper()) is None
