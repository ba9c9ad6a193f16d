"""What keeps a replica's index current, and what fills the records' text.

- :class:`IndexFeeder`: at most once per ``index_commit_seconds`` (an idle feeder at once when an
  event arrives: every replica listens to the exchange's events), the records changed since the
  index's watermark are (re)indexed and committed together: near-real-time, one commit per pass,
  never per document. While records change faster than :data:`BUSY_RECORDS_PER_SECOND`, the
  passes are ``index_commit_max_seconds`` apart instead: a Tantivy commit costs about the same
  CPU whatever it holds.
  Reading the changes from the database, not from the messages, is what lets every replica keep
  a complete index while the replicas share the work of recording the events.
- :class:`TextEnricher`: records waiting for their text (``text_status`` pending) are claimed, their
  attachments fetched from the exchange (internal route) or their scan read from the archive's
  files, their text extracted in a bounded worker, and their Decree 30 details completed.
- :func:`rebuild`: a complete index from the records (start-up when missing or corrupt, and
  ``lienthong archive reindex``), swapped in only when whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from services.archive.extractor import Extracted, TextExtractor
from services.archive.record.repository import ArchiveRecordRepository
from services.archive.record.service import ATTACHMENT_FIELDS, TEXTUAL
from services.archive.search.index import ArchiveIndex
from shared.db import Database, utcnow

log = logging.getLogger("lienthong.archive.indexer")

# how long a transaction may take between stamping its records' changed_at and committing: each
# pass reads again what changed within this of the previous pass's start (indexing is idempotent;
# what was indexed unchanged is skipped)
OVERLAP = dt.timedelta(seconds=10)
PAGE = 1000
# A Tantivy commit costs about the same CPU whatever it holds (it writes a segment of a dozen
# fields' files, the merges that follow rewrite them, the searchers are reloaded): 30 ms or more on
# the 2-core development machine (``python -m bench index_commits``), 1 ms a record at 30 records
# a commit against 0.5 at 120 (docs/performance.md, "The thirteenth session"). Records changing
# faster than this (a document with attachments changes twice: recorded, then its text), the
# feeder's passes are ``max_interval`` apart, so each commit holds more; slower, a change is
# searchable within ``interval``.
BUSY_RECORDS_PER_SECOND = 20.0


async def rebuild(
    index: ArchiveIndex, database: Database, *, progress: Callable[[int, int], None] | None = None
) -> int:
    """Build the whole index again from the records and swap it in; return how many were indexed."""
    started = utcnow()
    build = await asyncio.to_thread(index.building)
    try:
        async with database.session() as session:
            records = ArchiveRecordRepository(session)
            total = await records.count()
            done = 0
            async for chunk in records.chunks(PAGE):
                await asyncio.to_thread(build.add, chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        await asyncio.to_thread(build.finish, started - OVERLAP)
    except BaseException:
        await asyncio.to_thread(build.abandon)
        raise
    await asyncio.to_thread(index.open)
    return done


class IndexFeeder:
    """Takes the records' changes into the index, a batch per commit: a pass at most every
    ``interval``, every ``max_interval`` while records change faster than
    :data:`BUSY_RECORDS_PER_SECOND` (default: four times ``interval``)."""

    def __init__(
        self, index: ArchiveIndex, database: Database, interval: float, max_interval: float | None = None
    ) -> None:
        self.index = index
        self.database = database
        self.interval = interval
        self.max_interval = max(interval, max_interval if max_interval is not None else 4 * interval)
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._seen: dict[uuid.UUID, dt.datetime] = {}
        self.passes = 0
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._wake.set()

    def next_interval(self, indexed: int, cycle: float) -> float:
        """How long after a pass's start the next one starts: ``interval``, or ``max_interval``
        when the pass indexed records changing faster than :data:`BUSY_RECORDS_PER_SECOND` (those
        of the ``cycle`` seconds since the pass before began)."""
        if indexed > BUSY_RECORDS_PER_SECOND * max(cycle, self.interval):
            return self.max_interval
        return self.interval

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        previous: float | None = None
        while not self._stopping:
            began = loop.time()
            indexed = 0
            try:
                indexed = await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away for a moment: try again next pass
                log.exception("index pass failed")
            wait = self.next_interval(indexed, began - previous if previous is not None else self.interval)
            previous = began
            # at most one pass (one commit) per interval: under load, what arrives meanwhile is
            # gathered into the next commit instead of a pass per event
            with contextlib.suppress(TimeoutError):  # stop() ends the wait
                await asyncio.wait_for(self._stopped.wait(), max(0.05, wait - (loop.time() - began)))
            if self._stopping:
                break
            if wait <= self.interval and not self._wake.is_set():
                # idle: the next event, or a look at the interval's end (under load the next pass is
                # due now: another replica's records wake no one here)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    async def catch_up(self) -> int:
        """Index every record changed since the watermark, a page at a time; one commit; return
        how many were (re)indexed.

        The watermark means "every change made before it is in the index". A pass that starts at
        ``T`` sees every transaction committed by then, so once it is done every change made before
        ``T - OVERLAP`` is in (a transaction commits within ``OVERLAP`` of stamping its records):
        the next pass reads from there, not from the newest change it saw minus an overlap, which
        after a burst would read the burst again on every pass."""
        started = utcnow()
        watermark = self.index.checkpoint.watermark
        since = dt.datetime.fromisoformat(watermark) if watermark else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        count = 0
        taken: list[tuple[uuid.UUID, dt.datetime]] = []
        after: tuple[dt.datetime, uuid.UUID] | None = None
        while True:
            async with self.database.session() as session:
                records = ArchiveRecordRepository(session)
                # the changes' keys first: what the previous pass indexed (read again because it
                # changed within OVERLAP of that pass) costs a key, not a record with its JSON
                rows = await records.changes_since(since, after, PAGE)
                unseen = [row.document_id for row in rows if self._seen.get(row.document_id) != row.changed_at]
                changed = await records.indexed(unseen) if unseen else []
            if changed:
                await asyncio.to_thread(self.index.upsert, changed)
                count += len(changed)
                # what the next pass may read again (changed within OVERLAP of its start) is remembered
                # once committed: a pass that fails before its commit is read again whole
                recent = started - OVERLAP
                taken.extend((row.document_id, row.changed_at) for row in changed if row.changed_at >= recent)
            if rows:
                after = (rows[-1].changed_at, rows[-1].document_id)
            if len(rows) < PAGE:
                break
        self.passes += 1
        reached = max(since, started - OVERLAP)
        if count:
            await asyncio.to_thread(self.index.commit, reached)
            self._seen.update(taken)
            self._seen = {k: v for k, v in self._seen.items() if v >= reached}
        else:
            self.index.checkpoint.watermark = reached.isoformat()  # saved with the next commit
        return count


class TextEnricher:
    """Fills the text (and the details an event leaves out) of the records waiting for it."""

    def __init__(
        self,
        database: Database,
        extractor: TextExtractor,
        *,
        exchange: httpx.AsyncClient,
        authorization: Callable[[], str],
        files_dir: Path,
        blob_dir: Path | None = None,
        max_bytes: int,
        max_chars: int,
        changed: Callable[[], None],
        batch: int = 32,
        linger: float = 0.0,
    ) -> None:
        self.database = database
        self.extractor = extractor
        self.exchange = exchange
        self.authorization = authorization
        self.files_dir = files_dir
        self.blob_dir = blob_dir
        self.max_bytes = max_bytes
        self.max_chars = max_chars
        self.changed = changed
        self.batch = batch
        self.linger = linger
        self._wake = asyncio.Event()
        self._waiting = 0  # records said to wait for their text since the last claim
        self._stopping = False
        self.passes = 0  # claims made, and records claimed: what the batches hold on average
        self.claimed = 0

    def wake(self, waiting: int = 1) -> None:
        """Records wait for their text (``waiting`` of them, when the caller knows): a claim soon."""
        self._waiting += waiting
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                # a full batch claimed: more may be waiting, claim again at once
                while not self._stopping and await self.enrich_some(self.batch) >= self.batch:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("text extraction pass failed")
            with contextlib.suppress(TimeoutError):  # woken, or a look every 2 s (claims gone stale)
                await asyncio.wait_for(self._wake.wait(), 2.0)
            if self._wake.is_set():
                await self._linger()

    async def _linger(self) -> None:
        """After a wake-up, ``linger`` seconds for the records that follow it (the batch consumers'
        linger): a claim of a batch, not one per record, unless a full batch is already waiting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger
        while not self._stopping and self._waiting < self.batch and (left := deadline - loop.time()) > 0:
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for may swallow the cancellation
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._wake.wait()
        self._wake.clear()
        self._waiting = 0

    async def enrich_some(self, limit: int = 32) -> int:
        """Claim up to ``limit`` records waiting for text and fill them; return how many were claimed.

        A batch: one statement claims them and returns what their extraction needs, their files are
        read and extracted side by side, one transaction writes every result (an executemany
        UPDATE, not a statement per record)."""
        now = utcnow()
        async with self.database.session() as session:
            claimed = await ArchiveRecordRepository(session).claim_pending_text(
                now, now - dt.timedelta(minutes=10), limit
            )
        self.passes += 1
        if not claimed:
            return 0
        self.claimed += len(claimed)
        results = await asyncio.gather(
            *(
                self._values(
                    record.document_id,
                    record.source,
                    record.file_sha256,
                    record.content_type,
                    dict(record.details or {}),
                )
                for record in claimed
            )
        )
        async with self.database.session() as session:
            await ArchiveRecordRepository(session).write_texts(
                [(record.document_id, values) for record, (values, _later) in zip(claimed, results, strict=True)],
                utcnow(),
            )
        self.changed()
        if any(later for _values, later in results):  # the exchange is away: the next batch a moment later
            await asyncio.sleep(1)
        return len(claimed)

    async def _values(
        self,
        document_id: uuid.UUID,
        source: str,
        sha256: str | None,
        content_type: str | None,
        details: dict[str, Any],
    ) -> tuple[dict[str, Any], bool]:
        """The columns a record's text fills, and whether it waits because the exchange is away."""
        try:
            if source == "digitised":
                return await self._digitised(sha256, content_type), False
            return await self._exchanged(document_id, details), False
        except _Later as exc:
            log.warning("text of %s later: %s", document_id, exc)
            return {"text_status": "pending", "text_claimed_at": None}, True

    async def _digitised(self, sha256: str | None, content_type: str | None) -> dict[str, Any]:
        if not sha256 or not content_type:
            return {"text_status": "failed", "text_error": "no file"}
        data = await asyncio.to_thread((self.files_dir / sha256[:2] / sha256).read_bytes)
        extracted = await self.extractor.extract(data, content_type)
        if extracted.error:
            return {"text_status": "failed", "text_error": extracted.error[:500]}
        return {"text": extracted.text[: self.max_chars], "text_status": "done", "text_error": None}

    async def _exchanged(self, document_id: uuid.UUID, details: dict[str, Any]) -> dict[str, Any]:
        filled: dict[str, Any] = {}  # the details, when they are fetched (else the record has them)
        if "attachments" not in details:  # an event of an exchange that did not carry the details
            document = await self._get(f"/internal/v1/documents/{document_id}")
            if document is None:
                return {"text_status": "failed", "text_error": "the exchange has no such document"}
            body = document.json()
            signer = body.get("signer") or {}
            details = {
                "promulgation_place": body.get("promulgation_place"),
                "signer_name": signer.get("full_name"),
                "signer_position": signer.get("position"),
                "signer_competence": signer.get("competence"),
                "steering_type": body.get("steering_type"),
                "page_count": body.get("page_count"),
                "description": body.get("description"),
                "attachments": [{k: a.get(k) for k in ATTACHMENT_FIELDS} for a in body.get("attachments", [])],
            }
            filled = {"details": details}
        texts: list[str] = []
        errors: list[str] = []
        for attachment in details["attachments"]:
            if attachment.get("content_type") not in TEXTUAL or int(attachment.get("size", 0)) > self.max_bytes:
                continue
            extracted = await self._attachment_text(document_id, attachment)
            if extracted is None:
                continue
            if extracted.error:
                errors.append(f"{attachment.get('file_name')}: {extracted.error}")
            elif extracted.text.strip():
                texts.append(extracted.text)
        return {
            **filled,
            "text": "\n".join(texts)[: self.max_chars],
            "text_status": "failed" if errors and not texts else "done",
            "text_error": "; ".join(errors)[:500] or None,
        }

    async def _attachment_text(self, document_id: uuid.UUID, attachment: dict[str, Any]) -> Extracted | None:
        """An attachment's text: its file read by the extraction's worker straight from the blob
        store by its hash when this process sees it (the embedded mode, or a host or volume shared
        with the exchange; the worker checks the hash), else its bytes from the exchange's internal
        route; None when the exchange has no such attachment."""
        sha256 = attachment.get("sha256")
        content_type = attachment["content_type"]
        if self.blob_dir is not None and isinstance(sha256, str):
            extracted = await self.extractor.extract_blob(self.blob_dir, sha256, content_type, self.max_bytes)
            if extracted is not None:
                return extracted
        response = await self._get(f"/internal/v1/documents/{document_id}/attachments/{attachment['id']}")
        return None if response is None else await self.extractor.extract(response.content, content_type)

    async def _get(self, path: str) -> httpx.Response | None:
        try:
            response = await self.exchange.get(path, headers={"Authorization": self.authorization()})
        except httpx.HTTPError as exc:
            raise _Later(f"the exchange does not answer: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _Later(f"the exchange answered {response.status_code}")
        return response


class _Later(Exception):
    """The exchange is away: the record waits for its text and is tried again."""


Starter = Callable[[], Awaitable[None]]
