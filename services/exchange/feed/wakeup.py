"""Waking the readers long-polling an agency's feed, without the broker.

- PostgreSQL: a trigger on ``feed_entry`` (migration 0010) NOTIFYs :data:`FEED_CHANNEL` with the
  entry's agency code; PostgreSQL delivers it when the transaction commits, once per transaction
  for an agency however many entries it added, to every listening session, whichever process or
  session wrote the entry. Each exchange process holds one dedicated connection that LISTENs
  (:class:`FeedListener`), reconnecting with a growing delay when PostgreSQL goes away; until it
  is back, readers find new entries by their recheck (``RECHECK_SECONDS``), as without wake-ups.
- SQLite (embedded mode, one process): :class:`FeedService` marks the session with the agencies it
  added entries for, and the session's commit wakes their readers (:func:`wake_after_commit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from shared.db import Database

log = logging.getLogger("lienthong.exchange.feed")

FEED_CHANNEL = "lienthong_feed"  # the trigger's channel (migration 0010 freezes the same name)
WOKEN_KEY = "feed_woken"  # session.info: the agency codes its commit wakes (SQLite)

# the driver's own keys SQLAlchemy's asyncpg dialect takes out of the URL's query before connecting
_SQLALCHEMY_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_creator_fn")


def mark_woken(info: dict[Any, Any], codes: set[str]) -> None:
    """Note in a session's ``info`` the agencies whose readers its commit wakes."""
    woken = info.get(WOKEN_KEY)
    if woken is None:
        info[WOKEN_KEY] = set(codes)
    else:
        woken.update(codes)


def wake_after_commit(database: Database, notify: Callable[[str], None]) -> Callable[[], None]:
    """Wake the readers of the agencies a session marked when it commits (one listener on the
    database's session class); return what removes the listeners."""

    def committed(session: Session) -> None:
        for code in session.info.pop(WOKEN_KEY, ()):
            notify(code)

    def rolled_back(session: Session) -> None:
        session.info.pop(WOKEN_KEY, None)  # nothing was added

    session_class = database.session_class
    sa_event.listen(session_class, "after_commit", committed)
    sa_event.listen(session_class, "after_rollback", rolled_back)

    def remove() -> None:
        for name, listener in (("after_commit", committed), ("after_rollback", rolled_back)):
            if sa_event.contains(session_class, name, listener):
                sa_event.remove(session_class, name, listener)

    return remove


def listen_parameters(database: Database) -> dict[str, Any]:
    """asyncpg's connection parameters for the database's URL (host, port, user, password, ssl …)."""
    engine = database.engine
    _args, params = engine.dialect.create_connect_args(engine.url)
    for key in _SQLALCHEMY_ONLY:
        params.pop(key, None)
    return dict(params)


class FeedListener:
    """One dedicated PostgreSQL connection per process, LISTENing on :data:`FEED_CHANNEL`: each
    notification wakes the readers of the agency it names.

    When the connection is lost (PostgreSQL restarted, the backend terminated, the network cut: a
    ``SELECT 1`` every ``check_seconds`` finds a silent loss), it connects again after
    ``retry_initial_seconds``, doubling up to ``retry_max_seconds``; once back it wakes every
    reader, who reads again what was committed meanwhile."""

    def __init__(
        self,
        connect: dict[str, Any],
        notify: Callable[[str], None],
        notify_all: Callable[[], None],
        *,
        retry_initial_seconds: float = 0.5,
        retry_max_seconds: float = 30.0,
        check_seconds: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.connect = connect
        self.notify = notify
        self.notify_all = notify_all
        self.retry_initial_seconds = retry_initial_seconds
        self.retry_max_seconds = retry_max_seconds
        self.check_seconds = check_seconds
        self.connect_timeout = connect_timeout
        self.server_pid: int | None = None  # the listening backend's, while connected
        self.connections = 0  # how many times it connected (a reconnection counts)
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        return self._connected.is_set()

    async def wait_listening(self, seconds: float) -> None:
        """Return once the connection listens (raise TimeoutError after ``seconds``)."""
        async with asyncio.timeout(seconds):
            await self._connected.wait()

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.notify(payload)

    async def run(self) -> None:
        """Listen until cancelled, connecting again whenever the connection is lost."""
        delay = self.retry_initial_seconds
        while True:
            try:
                conn = await asyncpg.connect(**self.connect, timeout=self.connect_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed wake-ups: PostgreSQL unreachable (%s); connecting again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_seconds)
                continue
            try:
                await self._listen(conn)
                delay = self.retry_initial_seconds  # it was up: the next loss starts a fresh series
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed wake-ups: the listening connection failed (%s)", exc)
            finally:
                self._connected.clear()
                self.server_pid = None
                await self._close(conn)
            log.warning(
                "feed wake-ups: connection lost; long polls recheck every second until it is back "
                "(connecting again in %.1f s)",
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max_seconds)

    async def _listen(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(FEED_CHANNEL, self._on_notification)
        self.server_pid = conn.get_server_pid()
        self.connections += 1
        self._connected.set()
        self.notify_all()  # what was committed while nobody listened
        while not lost.is_set() and not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.check_seconds):
                    await lost.wait()
            if not lost.is_set() and not conn.is_closed():
                await conn.fetchval("SELECT 1", timeout=self.connect_timeout)  # a silent loss raises

    @staticmethod
    async def _close(conn: asyncpg.Connection) -> None:
        if conn.is_closed():
            return
        try:
            async with asyncio.timeout(2):
                await conn.close()
        except Exception:
            conn.terminate()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="exchange-feed-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
