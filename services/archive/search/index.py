"""The archive's Tantivy index: derived from the records, never the source of truth.

Each replica keeps its own index in a *slot* (``<index_dir>/slot-N``) it holds a file lock on, so
that two processes on one host never write the same files. A slot is complete when its
``state.json`` exists: a rebuild writes ``slot-N.building`` and renames it into place only once it
holds every record, so an index is never served half-built.

Text is folded before Tantivy sees it (:func:`shared.text.fold`: one character for one character,
đ→d, ệ→e), and queries are folded the same way: "van ban" and "văn bản" are the same terms.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import tantivy

from services.archive.models import ArchiveRecord
from shared.text import fold

log = logging.getLogger("lienthong.archive.index")

SCHEMA_VERSION = 3  # a change of fields below, or of what the state means: every slot is rebuilt at the next start
STATE = "state.json"


def build_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    # folded: the subject (twice: its words weigh more in the ranking), number/notation, text …
    builder.add_text_field("all", tokenizer_name="default")
    builder.add_text_field("code", tokenizer_name="raw")  # folded, lower case: 24/kh-ubnd
    builder.add_text_field("readers", tokenizer_name="raw")
    builder.add_text_field("issuer", tokenizer_name="raw", fast=True)
    builder.add_text_field("recipients", tokenizer_name="raw")
    builder.add_text_field("type", tokenizer_name="raw", fast=True)  # as written: "Kế hoạch"
    builder.add_text_field("type_key", tokenizer_name="raw")  # folded, lower case: "ke hoach"
    builder.add_text_field("status", tokenizer_name="raw")  # "<recipient>:<status>" and "*:<status>"
    builder.add_text_field("verdict", tokenizer_name="raw")
    builder.add_text_field("source", tokenizer_name="raw")
    builder.add_integer_field("year", indexed=True, fast=True)
    builder.add_integer_field("urgency", indexed=True, fast=True)
    builder.add_date_field("date", indexed=True, fast=True)
    return builder.build()


def code_key(code: str) -> str:
    """A number/notation as the index keeps it: folded, lower case, no spaces ("24/KH-UBND" → "24/kh-ubnd")."""
    return "".join(fold(code).split())


def searchable_text(record: ArchiveRecord) -> str:
    """Everything a query's words may match in a record, original (not folded) text."""
    details = record.details or {}
    extra = [str(details.get(k) or "") for k in ("promulgation_place", "signer_name", "signer_position", "description")]
    return "\n".join([record.subject, record.code, record.type_name, *extra, record.text or ""])


def indexed_text(record: ArchiveRecord) -> list[str]:
    """What the ``all`` field indexes, folded: the subject, then the searchable text (the subject
    again in it), so that a word of the subject counts twice in BM25's term frequency (one field
    and one term per word to intersect: a second field for the subject, boosted, cost a third of a
    broad query). Two values: Tantivy leaves a position gap between them, so no phrase runs from
    the end of one into the other."""
    return [fold(record.subject), fold(searchable_text(record))]


def readers_field(record: ArchiveRecord) -> list[str]:
    if record.source == "digitised":
        return sorted(set(record.readers or []))
    return sorted({record.sender_code, *(record.readers or [])})


def document_of(record: ArchiveRecord) -> tantivy.Document:
    """The index document of a record."""
    day = record.promulgation_date or record.submitted_at.date()
    statuses: set[str] = set()
    for code, delivery in (record.deliveries or {}).items():
        for value in (delivery.get("status"), delivery.get("recall_status")):
            if value:
                statuses.update((f"{code}:{value}", f"*:{value}"))
    return tantivy.Document(
        id=str(record.document_id),
        all=indexed_text(record),
        code=code_key(record.code),
        readers=readers_field(record),
        issuer=record.sender_code,
        recipients=list(record.recipient_codes or []),
        type=record.type_name,
        type_key=fold(record.type_name),
        status=sorted(statuses),
        verdict=record.signature_verdict or "none",
        source=record.source,
        year=day.year,
        urgency=record.urgency,
        date=dt.datetime(day.year, day.month, day.day),  # tantivy takes naive datetimes (UTC)
    )


@dataclass
class IndexState:
    """What a complete slot records next to its files: up to when it has taken the records' changes."""

    schema_version: int = SCHEMA_VERSION
    watermark: str | None = None  # ISO timestamp: every change made before it is in the index
    documents: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> IndexState | None:
        try:
            raw = json.loads((path / STATE).read_text())
            return cls(raw["schema_version"], raw.get("watermark"), int(raw.get("documents", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        temporary = path / (STATE + ".tmp")
        body = {"schema_version": self.schema_version, "watermark": self.watermark, "documents": self.documents}
        temporary.write_text(json.dumps(body))
        os.replace(temporary, path / STATE)


def try_slot(index_dir: Path, number: int) -> tuple[Path, IO[str]] | None:
    """Lock slot ``number`` if no process holds it; return its path and the lock file."""
    lock = open(index_dir / f"slot-{number}.lock", "w")  # noqa: SIM115 - held for the replica's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return index_dir / f"slot-{number}", lock


def claim_slot(index_dir: Path) -> tuple[Path, IO[str]]:
    """Lock the first free slot under ``index_dir`` (a replica's own index); return its path and the
    lock file, held until it is closed."""
    index_dir.mkdir(parents=True, exist_ok=True)
    number = 0
    while (held := try_slot(index_dir, number)) is None:
        number += 1
    return held


class ArchiveIndex:
    """One slot's index: a writer whose commits are batched, and searchers reloaded after each."""

    def __init__(self, path: Path, *, heap_mb: int = 64) -> None:
        self.path = path
        self.heap_bytes = heap_mb * 1024 * 1024
        self.schema = build_schema()
        self._index: tantivy.Index | None = None
        self._writer: Any = None
        self._lock = threading.Lock()
        self.checkpoint = IndexState()

    # --- opening and building ---------------------------------------------------------------------

    def is_complete(self) -> bool:
        """Whether the slot holds a complete index of this schema that Tantivy can open."""
        state = IndexState.load(self.path)
        if state is None or state.schema_version != SCHEMA_VERSION:
            return False
        try:
            index = tantivy.Index.open(str(self.path))
            index.searcher().num_docs  # noqa: B018 - reads the segments' metadata
        except (ValueError, OSError, RuntimeError) as exc:
            log.warning("index %s cannot be opened (%s): it will be rebuilt", self.path, exc)
            return False
        return True

    def open(self) -> None:
        """Open the complete index of the slot for writing and searching."""
        state = IndexState.load(self.path)
        if state is None:
            raise RuntimeError(f"{self.path} holds no complete index")
        self.checkpoint = state
        self._index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
        self._writer = self._index.writer(heap_size=self.heap_bytes, num_threads=1)

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.rollback()
                self._writer = None
            self._index = None

    @property
    def index(self) -> tantivy.Index:
        if self._index is None:
            raise RuntimeError("the archive index is not open")
        return self._index

    def building(self) -> IndexBuild:
        """Start a complete rebuild next to the slot (swapped in by :meth:`IndexBuild.finish`)."""
        return IndexBuild(self)

    # --- writing ----------------------------------------------------------------------------------

    def upsert(self, records: Iterable[ArchiveRecord]) -> int:
        """Replace the documents of these records (idempotent: a record is one document, however
        often it is indexed); visible after :meth:`commit`."""
        count = 0
        with self._lock:
            for record in records:
                self._writer.delete_documents("id", str(record.document_id))
                self._writer.add_document(document_of(record))
                count += 1
        return count

    def commit(self, watermark: dt.datetime | None) -> None:
        """Make what was written searchable, and record how far the index has come."""
        with self._lock:
            self._writer.commit()
        self.index.reload()
        if watermark is not None:
            self.checkpoint.watermark = watermark.isoformat()
        self.checkpoint.documents = self.index.searcher().num_docs
        self.checkpoint.save(self.path)

    # --- searching --------------------------------------------------------------------------------

    def search(self, query: tantivy.Query, *, limit: int, offset: int) -> tuple[list[tuple[float, str]], int]:
        """The ids of the best ``limit`` matches after ``offset``, with their scores, and how many match."""
        searcher = self.index.searcher()
        result = searcher.search(query, limit=limit, offset=offset, count=True)
        hits = [(score, searcher.doc(address)["id"][0]) for score, address in result.hits]
        return hits, int(getattr(result, "count", 0) or 0)

    def facets(self, query: tantivy.Query, size: int = 20) -> dict[str, list[tuple[str, int]]]:
        """Counts of the matches by type, issuing agency and year."""
        aggregations = {
            "type": {"terms": {"field": "type", "size": size}},
            "issuer": {"terms": {"field": "issuer", "size": size}},
            "year": {"terms": {"field": "year", "size": 100, "order": {"_key": "desc"}}},
        }
        answer = self.index.searcher().aggregate(query, aggregations)
        return {
            name: [(str(b["key"]), int(b["doc_count"])) for b in answer.get(name, {}).get("buckets", [])]
            for name in aggregations
        }

    @property
    def num_docs(self) -> int:
        return int(self.index.searcher().num_docs)


class IndexBuild:
    """A rebuild in ``<slot>.building``: documents added, then swapped in whole, or thrown away."""

    def __init__(self, target: ArchiveIndex) -> None:
        self.target = target
        self.path = target.path.with_name(target.path.name + ".building")
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        self._index = tantivy.Index(target.schema, path=str(self.path))
        self._writer = self._index.writer(heap_size=target.heap_bytes, num_threads=1)
        self.count = 0

    def add(self, records: Sequence[ArchiveRecord]) -> None:
        for record in records:
            self._writer.add_document(document_of(record))
        self.count += len(records)

    def finish(self, watermark: dt.datetime) -> None:
        """Commit, write the state and put the new index in the slot's place (the old one goes)."""
        self._writer.commit()
        self._writer.wait_merging_threads()
        IndexState(watermark=watermark.isoformat(), documents=self.count).save(self.path)
        self.target.close()
        old = self.target.path.with_name(self.target.path.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.target.path.exists():
            os.replace(self.target.path, old)
        os.replace(self.path, self.target.path)
        shutil.rmtree(old, ignore_errors=True)

    def abandon(self) -> None:
        self._writer.rollback()
        shutil.rmtree(self.path, ignore_errors=True)
