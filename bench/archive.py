"""Archive search: a generated corpus of Vietnamese documents (Decree 30 metadata and a page of
text each) in the production topology (five processes, PostgreSQL, RabbitMQ).

1. indexing: the corpus is written to the archive's records (PostgreSQL COPY, as a bulk import or
   a long history would leave them) while the archive runs; the rate at which the running archive
   makes them searchable (its index feeder: read the changed records, fold, index, commit), and
   its CPU ms per document; beside it, the raw ceiling of the same run: Tantivy indexing the same
   documents, already folded, in this process (one writer thread, no database);
2. search: p50/p95 latency of typical queries through the gateway (``GET /v1/archive/search``,
   top 20, one at a time), broad two-word queries included, with and without filters, for an agency
   that reads about half the corpus and for a department; beside each, the raw Tantivy time of the
   same query (words, filters and the reader's clause) on the same index, opened by this process;
   the archive's and the gateway's CPU ms per search.

``LIENTHONG_BENCH_ARCHIVE_DOCUMENTS`` (default 1,000,000) sets the corpus size;
``LIENTHONG_BENCH_ARCHIVE_REPEAT`` (default 30) how often each query runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import tantivy
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bench.common import asyncpg_dsn, cpu_snapshot, production_topology, token
from services.archive.search.index import build_schema, code_key
from services.archive.search.query import parse, text_query
from shared.text import fold

DOCUMENTS = int(os.environ.get("LIENTHONG_BENCH_ARCHIVE_DOCUMENTS", "1000000"))
REPEAT = int(os.environ.get("LIENTHONG_BENCH_ARCHIVE_REPEAT", "30"))
COPY_CHUNK = 5000
PROVINCE = "000.00.00.H98"
DEPARTMENTS = [f"000.{n:02d}.00.H98" for n in range(1, 31)]
DISTRICTS = [f"000.00.{n:02d}.H98" for n in range(1, 61)]
ADMIN_SECRET = "bench"  # production_topology's

TYPES = [  # (name, abbreviation, weight)
    ("Công văn", "UBND", 40),
    ("Kế hoạch", "KH", 10),
    ("Thông báo", "TB", 10),
    ("Báo cáo", "BC", 10),
    ("Quyết định", "QĐ", 10),
    ("Giấy mời", "GM", 8),
    ("Tờ trình", "TTr", 4),
    ("Chỉ thị", "CT", 2),
    ("Hướng dẫn", "HD", 3),
    ("Biên bản", "BB", 3),
]
TOPICS = [
    "chuyển đổi số",
    "cải cách hành chính",
    "phòng chống thiên tai",
    "xây dựng nông thôn mới",
    "phát triển kinh tế xã hội",
    "quản lý đất đai",
    "bảo vệ môi trường",
    "an toàn giao thông",
    "giáo dục và đào tạo",
    "y tế cơ sở",
    "phòng cháy chữa cháy",
    "thu ngân sách nhà nước",
    "đầu tư công",
    "giải phóng mặt bằng",
    "văn hóa thể thao và du lịch",
    "an sinh xã hội",
    "công tác cán bộ",
    "thi đua khen thưởng",
]
PLACES = ["Đồng Xoài", "Bình Long", "Phước Long", "Chơn Thành", "Lộc Ninh", "Bù Đăng", "Hớn Quản", "Đồng Phú"]
SENTENCES = [
    "Thực hiện chỉ đạo của Ủy ban nhân dân tỉnh về {topic}, các cơ quan, đơn vị triển khai ngay các nội dung sau.",
    "Đề nghị các sở, ban, ngành và Ủy ban nhân dân các huyện, thị xã, thành phố khẩn trương thực hiện.",
    "Văn bản này được gửi qua hệ thống quản lý văn bản và điều hành, có giá trị như văn bản giấy.",
    "Kết quả thực hiện báo cáo về Ủy ban nhân dân tỉnh trước ngày {day} tháng {month} năm {year}.",
    "Giao Sở Tài chính chủ trì, phối hợp với Sở Kế hoạch và Đầu tư tham mưu bố trí kinh phí.",
    "Tình hình {topic} trên địa bàn {place} trong thời gian qua có nhiều chuyển biến tích cực.",
    "Tuy nhiên, vẫn còn một số tồn tại, hạn chế cần được khắc phục trong thời gian tới.",
    "Các đơn vị tăng cường ứng dụng công nghệ thông tin, sử dụng văn bản điện tử và chữ ký số.",
    "Tổ chức hội nghị sơ kết, đánh giá kết quả thực hiện và đề ra giải pháp trong năm {year}.",
    "Trong quá trình thực hiện, nếu có khó khăn, vướng mắc, báo cáo kịp thời để xem xét, giải quyết.",
    "Ủy ban nhân dân tỉnh yêu cầu thủ trưởng các cơ quan, đơn vị nghiêm túc thực hiện.",
    "Thời gian: 08 giờ 00, ngày {day} tháng {month} năm {year}, tại hội trường Ủy ban nhân dân {place}.",
    "Thành phần tham dự gồm lãnh đạo các sở, ngành và đại diện Ủy ban Mặt trận Tổ quốc.",
    "Căn cứ Nghị định số 30/2020/NĐ-CP của Chính phủ về công tác văn thư.",
    "Nâng cao chất lượng giải quyết thủ tục hành chính, đảm bảo đúng hạn, công khai, minh bạch.",
    "Phân công cán bộ theo dõi, đôn đốc việc thực hiện {topic} tại cơ sở.",
    "Kinh phí thực hiện từ nguồn ngân sách nhà nước và các nguồn vốn hợp pháp khác.",
    "Sở Nội vụ tổng hợp kết quả, tham mưu Ủy ban nhân dân tỉnh khen thưởng các tập thể, cá nhân.",
    "Người dân và doanh nghiệp được hướng dẫn thực hiện dịch vụ công trực tuyến toàn trình.",
    "Rà soát, cập nhật số liệu về {topic}, bảo đảm chính xác, đầy đủ, kịp thời.",
]

# (label, q, filters): typical queries; the broad two-word ones first
QUERIES: list[tuple[str, str, dict[str, str]]] = [
    ("broad, two words", "văn bản", {}),
    ("broad, two words, no diacritics", "uy ban", {}),
    ("broad, no diacritics", "ke hoach thuc hien", {}),
    ("specific words", "chuyen doi so", {}),
    ("phrase", '"cải cách hành chính"', {}),
    ("prefix", "giải phóng mặt*", {}),
    ("place", "dong xoai", {}),
    ("number/notation", "{notation}", {}),
    ("broad + type", "van ban", {"type": "Kế hoạch"}),
    ("broad + year", "uy ban", {"date_from": "2024-01-01", "date_to": "2024-12-31"}),
    ("words + issuer subtree", "bao cao", {"issuer": PROVINCE, "subtree": "true"}),
    ("words + urgency + status", "phong chong thien tai", {"urgency": "2", "status": "pending"}),
    ("broad + facets", "van ban", {"facets": "true"}),
]


def weighted_types() -> list[tuple[str, str]]:
    return [(name, abbr) for name, abbr, weight in TYPES for _ in range(weight)]


def corpus(count: int, seed: int = 30) -> Iterator[tuple[Any, ...]]:
    """``count`` archive records: metadata, readers, a page of text (about 1.5 KB)."""
    rng = random.Random(seed)
    kinds = weighted_types()
    numbers: dict[str, int] = {}
    now = dt.datetime.now(dt.UTC)
    for _ in range(count):
        roll = rng.random()
        sender = PROVINCE if roll < 0.1 else rng.choice(DEPARTMENTS) if roll < 0.6 else rng.choice(DISTRICTS)
        recipients = set(rng.sample(DEPARTMENTS + DISTRICTS, rng.randint(1, 4)))
        if sender != PROVINCE and rng.random() < 0.4:
            recipients.add(PROVINCE)
        recipients.discard(sender)
        type_name, abbr = rng.choice(kinds)
        numbers[sender] = number = numbers.get(sender, 0) + 1
        day = dt.date(2018, 1, 1) + dt.timedelta(days=rng.randrange(9 * 365))
        topic, place = rng.choice(TOPICS), rng.choice(PLACES)
        fill = {"topic": topic, "place": place, "day": day.day, "month": day.month, "year": day.year}
        text = " ".join(rng.choice(SENTENCES).format(**fill) for _ in range(rng.randint(12, 18)))
        deliveries = {
            r: {"delivery_id": str(uuid.uuid4()), "status": "pending", "recall_status": None} for r in recipients
        }
        yield (
            uuid.uuid4(),
            "exchanged",
            "new",
            sender,
            f"{number}/{abbr}-UBND" if abbr != "UBND" else f"{number}/UBND-VP",
            type_name,
            f"{type_name} về việc {topic} tại {place} năm {day.year}",
            rng.choice((0, 0, 0, 0, 1, 2)),
            day,
            json.dumps(sorted(recipients)),
            json.dumps(deliveries),
            json.dumps(sorted({sender, *recipients})),
            "{}",
            text,
            "done",
            now,
            now,
            now,
        )


COLUMNS = (
    "document_id",
    "source",
    "kind",
    "sender_code",
    "code",
    "type_name",
    "subject",
    "urgency",
    "promulgation_date",
    "recipient_codes",
    "deliveries",
    "readers",
    "details",
    "text",
    "text_status",
    "submitted_at",
    "archived_at",
    "changed_at",
)


def _percentiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94]


def _stamped(chunk: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows with ``archived_at`` and ``changed_at`` of the moment they are written, as the
    archive's own writers stamp them (the index feeder counts on a change committing within seconds
    of its stamp)."""
    now = dt.datetime.now(dt.UTC)
    return [(*row[:-2], now, now) for row in chunk]


async def _load(dsn: str, progress: Progress) -> tuple[float, str]:
    """COPY the corpus into the archive's records; return when the first chunk was committed, and a
    number/notation of the province's to look up."""
    connection = await asyncpg.connect(dsn)
    task = progress.add_task("writing the corpus to the archive's records", total=DOCUMENTS)
    first_commit = 0.0
    notation = ""
    try:
        chunk: list[tuple[Any, ...]] = []
        for row in corpus(DOCUMENTS):
            if not notation and row[3] == PROVINCE:
                notation = row[4]
            chunk.append(row)
            if len(chunk) == COPY_CHUNK:
                await connection.copy_records_to_table(
                    "archive_record", records=_stamped(chunk), columns=COLUMNS, schema_name="archive"
                )
                first_commit = first_commit or time.perf_counter()
                progress.advance(task, len(chunk))
                chunk = []
        if chunk:
            await connection.copy_records_to_table(
                "archive_record", records=_stamped(chunk), columns=COLUMNS, schema_name="archive"
            )
            first_commit = first_commit or time.perf_counter()
            progress.advance(task, len(chunk))
    finally:
        await connection.close()
    return first_commit, notation


def _raw_ceiling(sample: int) -> float:
    """Documents per second Tantivy indexes in this process, already folded, one writer thread."""
    schema = build_schema()
    rows = list(corpus(sample, seed=31))
    documents = []
    for row in rows:
        day: dt.date = row[8]
        documents.append(
            tantivy.Document(
                id=str(row[0]),
                all=fold("\n".join((row[6], row[4], row[5], row[13]))),
                subject=fold(row[6]),
                code=code_key(row[4]),
                readers=json.loads(row[11]),
                issuer=row[3],
                recipients=json.loads(row[9]),
                type=row[5],
                type_key=fold(row[5]),
                status=["*:pending"],
                verdict="none",
                source="exchanged",
                year=day.year,
                urgency=row[7],
                date=dt.datetime(day.year, day.month, day.day),
            )
        )
    with tempfile.TemporaryDirectory() as directory:
        index = tantivy.Index(schema, path=directory)
        writer = index.writer(heap_size=256 * 1024 * 1024, num_threads=1)
        started = time.perf_counter()
        for document in documents:
            writer.add_document(document)
        writer.commit()
        writer.wait_merging_threads()
        return sample / (time.perf_counter() - started)


def _raw_query(index: tantivy.Index, q: str, reader: str, filters: dict[str, str]) -> tantivy.Query:
    """The query the archive builds, for the raw timing (the filters the raw run can express)."""
    schema = index.schema
    Occur, Query = tantivy.Occur, tantivy.Query
    clauses = [
        (Occur.Must, text_query(schema, parse(q))),
        (Occur.Must, Query.const_score_query(Query.term_query(schema, "readers", reader), 0.0)),
    ]
    if "type" in filters:
        clauses.append((Occur.Must, Query.term_query(schema, "type_key", fold(filters["type"]))))
    if "date_from" in filters:
        lower = dt.datetime.fromisoformat(filters["date_from"])
        upper = dt.datetime.fromisoformat(filters["date_to"])
        clauses.append((Occur.Must, Query.range_query(schema, "date", tantivy.FieldType.Date, lower, upper)))
    if "urgency" in filters:
        clauses.append((Occur.Must, Query.term_query(schema, "urgency", int(filters["urgency"]))))
    if "issuer" in filters:
        clauses.append((Occur.Must, Query.term_set_query(schema, "issuer", [PROVINCE, DEPARTMENTS[0]])))
    return Query.boolean_query(clauses)


async def main() -> None:
    print(f"corpus: {DOCUMENTS:,} documents; each query {REPEAT} times per reader", flush=True)
    index_dir = Path(tempfile.mkdtemp(prefix="lt-bench-archive-"))
    env = {"LIENTHONG_ARCHIVE__INDEX_DIR": str(index_dir), "LIENTHONG_ARCHIVE__INDEX_HEAP_MB": "256"}
    async with production_topology(env) as running:
        topology = running.topology
        pids = {name: topology.processes[name].pid for name in ("archive", "gateway")}
        async with httpx.AsyncClient(base_url=topology.url("gateway"), timeout=60) as http:
            admin = {"Authorization": f"Bearer {await token(http, 'admin', ADMIN_SECRET)}"}
            readers = {}
            for code, parent in ((PROVINCE, None), (DEPARTMENTS[0], PROVINCE)):
                body = {"code": code, "name": f"Cơ quan {code}", "level": "department", "parent_code": parent}
                (await http.post("/v1/agencies", json=body, headers=admin)).raise_for_status()
                created = await http.post(f"/v1/agencies/{code}/clients", json={"name": "bench"}, headers=admin)
                created.raise_for_status()
                secret = created.json()
                readers[code] = {
                    "Authorization": f"Bearer {await token(http, secret['client_id'], secret['client_secret'])}"
                }
            scopes = {"name": "bench auditor", "scopes": ["archive:search", "audit:read"]}
            created = await http.post(f"/v1/agencies/{PROVINCE}/clients", json=scopes, headers=admin)
            created.raise_for_status()
            secret = created.json()
            auditor = {"Authorization": f"Bearer {await token(http, secret['client_id'], secret['client_secret'])}"}

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns) as progress:
                cpu_before = cpu_snapshot(pids)
                started = time.perf_counter()
                first_commit, notation = await _load(asyncpg_dsn(running.database_url), progress)
                loaded = time.perf_counter()
                task = progress.add_task("the archive indexing them", total=DOCUMENTS)
                while True:
                    answer = await http.get("/v1/archive/search", params={"limit": 1}, headers=auditor)
                    answer.raise_for_status()
                    total = answer.json()["total"]
                    progress.update(task, completed=total)
                    if total >= DOCUMENTS:
                        break
                    await asyncio.sleep(0.2)
                indexed = time.perf_counter()
                cpu_after = cpu_snapshot(pids)
            load_rate = DOCUMENTS / (loaded - started)
            index_rate = DOCUMENTS / (indexed - first_commit)
            archive_cpu = (cpu_after["archive"] - cpu_before["archive"]) / DOCUMENTS
            print("ceiling: raw Tantivy indexing in this process …", flush=True)
            ceiling = await asyncio.to_thread(_raw_ceiling, min(DOCUMENTS, 100_000))

            raw_index = tantivy.Index.open(str(index_dir / "slot-0"))
            searches = 0
            rows = []
            cpu_before = cpu_snapshot(pids)
            for reader in (PROVINCE, DEPARTMENTS[0]):
                for label, q, filters in QUERIES:
                    q = q.format(notation=notation)
                    params = {"q": q, "limit": "20", **filters}
                    latencies, raw_times = [], []
                    matches = 0
                    for _ in range(REPEAT):
                        begin = time.perf_counter()
                        response = await http.get("/v1/archive/search", params=params, headers=readers[reader])
                        latencies.append((time.perf_counter() - begin) * 1000)
                        response.raise_for_status()
                        matches = response.json()["total"]
                        searches += 1
                    raw_index.reload()
                    searcher = raw_index.searcher()
                    query = _raw_query(raw_index, q, reader, filters)
                    for _ in range(REPEAT):
                        begin = time.perf_counter()
                        searcher.search(query, limit=20, count=True)
                        raw_times.append((time.perf_counter() - begin) * 1000)
                    rows.append((reader, label, q, filters, matches, _percentiles(latencies), _percentiles(raw_times)))
            cpu_after = cpu_snapshot(pids)

    print(
        f"\nindexing: corpus written at {load_rate:,.0f} docs/s (COPY); the running archive indexed "
        f"{DOCUMENTS:,} documents at {index_rate:,.0f} docs/s ({archive_cpu:.2f} ms archive CPU per document); "
        f"ceiling, raw Tantivy in one thread, pre-folded: {ceiling:,.0f} docs/s"
    )
    print(
        f"index size: {sum(p.stat().st_size for p in (index_dir / 'slot-0').rglob('*') if p.is_file()) / 2**20:,.0f} MB"
    )
    print("\nsearch, top 20, one at a time: through the gateway p50 / p95 ms | raw Tantivy p50 / p95 ms | matches")
    for reader, label, q, filters, matches, (p50, p95), (r50, r95) in rows:
        shown = " ".join(f"{k}={v}" for k, v in filters.items())
        figures = f"{p50:6.1f} / {p95:6.1f} | {r50:6.2f} / {r95:6.2f} | {matches:,}"
        print(f"  {reader} {label:<32} {q!r:<26} {shown:<40} {figures}")
    per_search = {name: (cpu_after[name] - cpu_before[name]) / searches for name in pids}
    print(f"CPU per search: archive {per_search['archive']:.2f} ms, gateway {per_search['gateway']:.2f} ms")
    print("target: p95 under 50 ms through the gateway")
