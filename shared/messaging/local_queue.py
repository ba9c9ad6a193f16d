"""The in-process bus's work queues: RabbitMQ's retry and dead-letter behaviour without a broker.

A message published to a work queue is a row in a SQLite file (``var/bus.sqlite3`` in embedded
mode) before ``publish`` returns, synced to disk (``synchronous`` FULL, the default), so the outbox
row that produced it may be marked published and a crash, or a power loss, loses nothing.
Workers take due rows (at most ``prefetch`` at once), run the handler, and
delete the row, move it to a later try, or keep it as dead with its reason, exactly as
:class:`~shared.messaging.broker.RabbitBroker` does with its retry and dead-letter queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shared.messaging.broker import ATTEMPT_HEADER, Outcome, Subscription, delay_label, outcome_of
from shared.messaging.envelope import Envelope

log = logging.getLogger("lienthong.messaging")

SCHEMA = """
CREATE TABLE IF NOT EXISTS work_message (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    available_at REAL NOT NULL,
    leased INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    dead_reason TEXT,
    dead_at REAL
);
CREATE INDEX IF NOT EXISTS ix_work_message_due ON work_message (queue, dead_at, leased, available_at);
"""


@dataclass(frozen=True)
class LocalMessage:
    """A row of a local work queue."""

    id: int
    queue: str
    body: bytes
    attempt: int
    available_at: float
    last_error: str | None
    dead_reason: str | None


class LocalQueueStore:
    """The SQLite file holding every local work queue (``None``: in memory, for tests)."""

    def __init__(self, path: Path | None, *, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "EXTRA", "NORMAL"):
            raise ValueError("SQLite synchronous must be FULL, EXTRA or NORMAL")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")  # FULL: a put is on disk when it returns
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    async def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._run, sql, params)

    async def put(self, queue: str, body: bytes) -> None:
        await self.run(
            "INSERT INTO work_message (queue, body, available_at) VALUES (?, ?, ?)", (queue, body, time.time())
        )

    async def release_leases(self, queue: str) -> None:
        """Make the rows a previous process was handling when it died due again."""
        await self.run("UPDATE work_message SET leased = 0 WHERE queue = ? AND leased = 1", (queue,))

    async def take_due(self, queue: str, limit: int) -> list[LocalMessage]:
        """Lease up to ``limit`` due rows, oldest first."""

        def take() -> list[LocalMessage]:
            with self._lock:
                rows = self._db.execute(
                    "SELECT id, queue, body, attempt, available_at, last_error, dead_reason FROM work_message "
                    "WHERE queue = ? AND dead_at IS NULL AND leased = 0 AND available_at <= ? "
                    "ORDER BY available_at, id LIMIT ?",
                    (queue, time.time(), limit),
                ).fetchall()
                if rows:
                    marks = ",".join("?" * len(rows))
                    self._db.execute(f"UPDATE work_message SET leased = 1 WHERE id IN ({marks})", [r[0] for r in rows])
            return [LocalMessage(*row) for row in rows]

        return await asyncio.to_thread(take)

    async def next_due_in(self, queue: str) -> float | None:
        """Seconds until the next row of ``queue`` is due (None: nothing waits)."""
        rows = await self.run(
            "SELECT MIN(available_at) FROM work_message WHERE queue = ? AND dead_at IS NULL AND leased = 0", (queue,)
        )
        first = rows[0][0] if rows else None
        return None if first is None else max(0.0, float(first) - time.time())

    async def done(self, message_id: int) -> None:
        await self.run("DELETE FROM work_message WHERE id = ?", (message_id,))

    async def retry(self, message_id: int, *, attempt: int, delay: float, error: str) -> None:
        await self.run(
            "UPDATE work_message SET attempt = ?, available_at = ?, leased = 0, last_error = ? WHERE id = ?",
            (attempt, time.time() + delay, error[:2000], message_id),
        )

    async def bury(self, message_id: int, reason: str) -> None:
        await self.run(
            "UPDATE work_message SET leased = 0, dead_reason = ?, dead_at = ? WHERE id = ?",
            (reason[:2000], time.time(), message_id),
        )

    async def dead(self, queue: str) -> list[LocalMessage]:
        """The dead-lettered messages of a queue, oldest first."""
        rows = await self.run(
            "SELECT id, queue, body, attempt, available_at, last_error, dead_reason FROM work_message "
            "WHERE queue = ? AND dead_at IS NOT NULL ORDER BY dead_at, id",
            (queue,),
        )
        return [LocalMessage(*row) for row in rows]

    async def waiting(self, queue: str) -> int:
        """How many messages of a queue are not dead yet."""
        rows = await self.run("SELECT COUNT(*) FROM work_message WHERE queue = ? AND dead_at IS NULL", (queue,))
        return int(rows[0][0])

    async def depth(self, queue: str) -> tuple[int, int]:
        """How many messages of a queue wait (or are being handled), and how many are dead."""
        rows = await self.run(
            "SELECT COUNT(*) - COUNT(dead_at), COUNT(dead_at) FROM work_message WHERE queue = ?", (queue,)
        )
        return int(rows[0][0] or 0), int(rows[0][1] or 0)


class LocalWorkQueue:
    """One subscription's queue: workers run its handler with its retry policy."""

    def __init__(self, store: LocalQueueStore, subscription: Subscription, *, prefetch: int = 32) -> None:
        if subscription.retry is None:
            raise ValueError("a local work queue needs a retry policy")
        self.store = store
        self.subscription = subscription
        self.policy = subscription.retry
        self.limit = subscription.prefetch or prefetch
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.subscription.queue

    async def start(self) -> None:
        await self.store.release_leases(self.name)
        self._task = asyncio.create_task(self._run(), name=f"work-queue:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        tasks = [t for t in (task, *self._inflight) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()

    async def put(self, envelope: Envelope) -> None:
        """Keep the message for the workers (durably, before returning)."""
        await self.store.put(self.name, envelope.to_json())
        self._wake.set()

    async def _run(self) -> None:
        while True:
            free = self.limit - len(self._inflight)
            if free > 0:
                for message in await self.store.take_due(self.name, free):
                    task = asyncio.create_task(self._handle(message))
                    self._inflight.add(task)
                    task.add_done_callback(self._finished)
            wait = await self.store.next_due_in(self.name)
            timeout = 1.0 if wait is None else min(max(wait, 0.01), 1.0)
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for may swallow the cancellation
            # that stops this loop when the wake-up comes at the same moment
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def _handle(self, message: LocalMessage) -> None:
        try:
            envelope = Envelope.from_json(message.body)
        except (ValueError, KeyError, TypeError) as exc:
            await self.store.bury(message.id, f"unreadable message: {exc}")
            return
        envelope = replace(envelope, headers={**envelope.headers, ATTEMPT_HEADER: message.attempt})
        try:
            await self.subscription.handler(envelope)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._settle(message, envelope, outcome_of(self.policy, message.attempt, exc))
        else:
            await self.store.done(message.id)

    async def _settle(self, message: LocalMessage, envelope: Envelope, outcome: Outcome) -> None:
        if outcome.retry:
            log.info(
                "%s: message %s (try %d) back in %s: %s",
                self.name,
                envelope.id,
                message.attempt,
                delay_label(outcome.delay),
                outcome.reason,
            )
            await self.store.retry(message.id, attempt=outcome.attempt, delay=outcome.delay, error=outcome.reason)
            return
        if self.subscription.on_dead is not None:
            try:
                await self.subscription.on_dead(envelope, outcome.reason)
            except Exception:
                log.exception(
                    "%s: recording the failure of message %s failed; tried again later", self.name, envelope.id
                )
                await self.store.retry(
                    message.id, attempt=message.attempt, delay=self.policy.defer_seconds, error=outcome.reason
                )
                return
        log.warning("%s: message %s dead-lettered: %s", self.name, envelope.id, outcome.reason)
        await self.store.bury(message.id, outcome.reason)
