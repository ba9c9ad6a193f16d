"""What a Tantivy commit costs the archive, by how many records it holds: ``python -m bench
index_commits``.

The archive's index feeder commits what changed since its last pass (services/archive/indexer.py).
Under a steady load of the send benchmark a pass every 0.5 s held 15 – 30 records; this writes
records shaped as the archive's (its schema and ``ArchiveIndex``, a page of Vietnamese text each) into
an index of the same kind, in commits of 15, 30, 60 and 120 records, and prints the CPU of the
whole process (the writer's and the merge threads' included: ``getrusage``) per record and per
commit, for 1,800 records a case, the merges waited for at the end. The ceiling beside it: the
same records added in one commit.

``LIENTHONG_BENCH_DIR`` puts the index on another file system (the figures in
docs/performance.md: an ext4 image, as for the send benchmark).
"""

from __future__ import annotations

import datetime as dt
import resource
import time
import uuid

import tantivy

from bench.common import scratch_dir
from services.archive.models import ArchiveRecord
from services.archive.search.index import ArchiveIndex, IndexState

RECORDS = 1800
SIZES = (15, 30, 60, 120)
TEXT = (
    "Ủy ban nhân dân tỉnh Bình Phước đề nghị các sở, ban, ngành triển khai kế hoạch chuyển đổi số, "
    "cải cách hành chính và báo cáo kết quả thực hiện trước ngày 15 hằng tháng. "
) * 10


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _records(count: int) -> list[ArchiveRecord]:
    now = dt.datetime.now(dt.UTC)
    return [
        ArchiveRecord(
            document_id=uuid.uuid4(),
            source="exchanged",
            kind="new",
            sender_code="000.00.01.H10",
            recipient_codes=["000.00.31.H10"],
            code=f"{n}/KH-UBND",
            type_name="Kế hoạch",
            subject=f"Kế hoạch số {n} về chuyển đổi số",
            text=TEXT,
            urgency=0,
            promulgation_date=dt.date(2026, 11, 30),
            submitted_at=now,
            changed_at=now,
            deliveries={"000.00.31.H10": {"status": "01"}},
            readers=["000.00.01.H10", "000.00.31.H10"],
            archived_at=now,
        )
        for n in range(count)
    ]


def _case(per_commit: int, records: list[ArchiveRecord]) -> tuple[float, float, float]:
    """CPU ms a record and a commit, and seconds of wall time, for ``records`` in commits of ``per_commit``."""
    with scratch_dir("lt-bench-index-") as directory:
        path = directory / "slot-0"
        path.mkdir()
        tantivy.Index(ArchiveIndex(path).schema, path=str(path), reuse=False)
        IndexState().save(path)
        index = ArchiveIndex(path)
        index.open()
        began, wall = _cpu(), time.perf_counter()
        for start in range(0, len(records), per_commit):
            index.upsert(records[start : start + per_commit])
            index.commit(None)
        index._writer.wait_merging_threads()  # the merges the commits started, counted too
        spent = _cpu() - began
        commits = -(-len(records) // per_commit)
        return 1000 * spent / len(records), 1000 * spent / commits, time.perf_counter() - wall


async def main() -> None:
    records = _records(RECORDS)
    _case(RECORDS, records[:60])  # warm-up: the library loaded, the page cache warm
    print(f"{RECORDS:,} records shaped as the archive's, committed in batches (CPU of this process)")
    print(f"{'records a commit':>17} {'ms a record':>12} {'ms a commit':>12} {'wall s':>7}")
    for size in SIZES:
        per_record, per_commit, wall = _case(size, records)
        print(f"{size:>17} {per_record:>12.3f} {per_commit:>12.1f} {wall:>7.1f}")
    per_record, _, wall = _case(RECORDS, records)
    print(f"{'ceiling: one':>17} {per_record:>12.3f} {'—':>12} {wall:>7.1f}")
