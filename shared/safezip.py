"""Opening ZIP archives sent by others without letting them choose how much memory, disk or time
it costs (zip bombs).

Every archive a service opens (an office document sniffed at upload, an archive's package) goes
through :func:`open_archive`, which checks the central directory before anything is inflated:

- at most ``max_entries`` entries;
- the entries' declared sizes add up to at most ``max_total_bytes``;
- no entry declares more than ``max_ratio`` times its compressed size.

Entries are then read with :func:`read_entry`, which inflates at most ``max_bytes`` (and never more
than the entry declares: :mod:`zipfile` stops at the declared size and checks the CRC), in chunks,
so a lying or hostile entry costs at most that much memory. Nothing is ever extracted to disk.

The limits come from ``LIENTHONG_LIMITS__ZIP_MAX_ENTRIES``, ``…__ZIP_MAX_TOTAL_BYTES`` and
``…__ZIP_MAX_RATIO`` (:meth:`ArchiveLimits.from_settings`).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

CHUNK = 64 * 1024


class ArchiveError(ValueError):
    """The file is not a ZIP archive that may be opened."""


class BadArchiveError(ArchiveError):
    """Not a valid ZIP archive."""


class UnsafeArchiveError(ArchiveError):
    """A valid archive past one of the limits (a likely zip bomb)."""


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = 10_000
    max_total_bytes: int = 512 * 1024 * 1024
    max_ratio: int = 200

    @classmethod
    def from_settings(cls, limits: Any) -> ArchiveLimits:
        """From the ``limits`` section of the settings (shared.config.LimitsSection)."""
        return cls(limits.zip_max_entries, limits.zip_max_total_bytes, limits.zip_max_ratio)


def check_archive(archive: zipfile.ZipFile, limits: ArchiveLimits) -> None:
    """Raise UnsafeArchiveError unless the archive's directory is within ``limits``."""
    entries = archive.infolist()
    if len(entries) > limits.max_entries:
        raise UnsafeArchiveError(f"the archive has {len(entries)} entries; at most {limits.max_entries} are accepted")
    total = 0
    for info in entries:
        total += info.file_size
        if total > limits.max_total_bytes:
            raise UnsafeArchiveError(f"the archive inflates to more than {limits.max_total_bytes} bytes")
        # a stored entry inflates to its own size; a compressed one to at most max_ratio times it
        if info.file_size > max(info.compress_size, 1) * limits.max_ratio and info.file_size > CHUNK:
            raise UnsafeArchiveError(
                f"the entry {info.filename[:100]!r} inflates {info.file_size // max(info.compress_size, 1)} times;"
                f" at most {limits.max_ratio} is accepted"
            )


def open_archive(source: Path | IO[bytes], limits: ArchiveLimits) -> zipfile.ZipFile:
    """Open and check an archive (close it when done: use it in a ``with`` block)."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise BadArchiveError(f"not a valid ZIP archive: {exc}") from exc
    try:
        check_archive(archive, limits)
    except BaseException:
        archive.close()
        raise
    return archive


def read_entry(
    archive: zipfile.ZipFile, name: str | zipfile.ZipInfo, max_bytes: int, *, truncate: bool = False
) -> bytes:
    """Inflate one entry, at most ``max_bytes`` of it: past that, return the first ``max_bytes``
    (``truncate``) or raise UnsafeArchiveError. Never inflates more than ``max_bytes`` + one chunk."""
    chunks: list[bytes] = []
    size = 0
    try:
        with archive.open(name) as entry:
            while size <= max_bytes:
                chunk = entry.read(min(CHUNK, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError, EOFError) as exc:
        # a corrupt stream, an unsupported method, an encrypted entry, a bad CRC
        raise BadArchiveError(f"the entry {str(name)[:100]!r} cannot be read: {exc}") from exc
    data = b"".join(chunks)
    if len(data) > max_bytes:
        if not truncate:
            raise UnsafeArchiveError(f"the entry {str(name)[:100]!r} is larger than {max_bytes} bytes")
        return data[:max_bytes]
    return data
