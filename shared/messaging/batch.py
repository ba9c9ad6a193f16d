"""Batch consumption: messages gathered into batches, each batch handled in one transaction.

A :class:`Gatherer` collects what a broker delivers (RabbitMQ delivers up to the prefetch at once)
and hands it on ``size`` at a time, or when ``linger`` seconds have passed since the first message
of the batch arrived, one batch at a time. The broker settles the batch: the consumer's handler
takes the whole batch in one transaction, the broker acknowledges every message once it has
committed, and when the batch fails it handles the messages one by one on the single-message path
(its own transaction each, with its retries and dead letters), so one poison message does not stop
the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared.messaging.envelope import Envelope

log = logging.getLogger("lienthong.messaging")

T = TypeVar("T")

BatchFunction = Callable[[Sequence[Envelope]], Awaitable[None]]


@dataclass(frozen=True)
class Batching:
    """How a subscription takes its messages in batches.

    ``handler`` handles a list of envelopes in one transaction and raises when the batch failed
    (nothing of it committed): every message of the batch then goes to the subscription's own
    handler, one by one. Up to ``size`` messages at once, waiting at most ``linger`` seconds after
    the first one arrived for the others."""

    handler: BatchFunction
    size: int = 64
    linger: float = 0.02

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("a batch holds at least one message")
        if self.linger < 0:
            raise ValueError("the linger is a duration: zero or more seconds")


class Gatherer(Generic[T]):
    """Gathers items into batches and flushes them one batch at a time.

    A batch is flushed when ``size`` items are there, or ``linger`` seconds after its first item
    arrived. While a batch is being flushed the next one gathers; items left over when a batch is
    taken start the next one (with their own arrival time, so they do not wait a linger more).

    ``weight``: what an item counts for against ``size`` (a bundle of envelopes counts for its
    envelopes); a batch takes items while their weights fit, and at least one."""

    def __init__(
        self,
        size: int,
        linger: float,
        flush: Callable[[list[T]], Awaitable[None]],
        *,
        name: str,
        weight: Callable[[T], int] | None = None,
    ) -> None:
        self.size = size
        self.linger = linger
        self.flush = flush
        self.name = name
        self.weight = weight
        self._items: list[tuple[float, T]] = []
        self._weight = 0  # of the items gathered
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing = False
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"gatherer:{self.name}")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop: a batch being flushed gets up to ``grace`` seconds to finish (then it is cancelled,
        and its transaction rolls back); what was gathered and not flushed is dropped — the broker
        redelivers it, it was never acknowledged."""
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            if self._flushing and grace > 0:
                await asyncio.wait({task}, timeout=grace)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._items.clear()
        self._weight = 0

    def add(self, item: T) -> None:
        self._items.append((asyncio.get_running_loop().time(), item))
        self._weight += self._weigh(item)
        self._arrived.set()

    def _weigh(self, item: T) -> int:
        return 1 if self.weight is None else max(1, self.weight(item))

    def _take(self) -> list[T]:
        """The next batch: the first items whose weights fit the size (at least one)."""
        count, total = 0, 0
        for _, item in self._items:
            weight = self._weigh(item)
            if count and total + weight > self.size:
                break
            count, total = count + 1, total + weight
        batch = [item for _, item in self._items[:count]]
        del self._items[:count]
        self._weight -= total
        return batch

    @property
    def waiting(self) -> int:
        """Items gathered, not yet taken into a batch."""
        return len(self._items)

    async def _wait(self, seconds: float | None) -> None:
        self._arrived.clear()
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for may swallow the cancellation
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._arrived.wait()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._items:
                await self._wait(None)
                continue
            deadline = self._items[0][0] + self.linger
            while self._weight < self.size and (left := deadline - loop.time()) > 0:
                await self._wait(left)
            batch = self._take()
            self._flushing = True
            try:
                await self.flush(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # the flush settles its messages itself; this is a bug, not a message's fault
                log.exception("%s: handling a batch of %d messages failed", self.name, len(batch))
            finally:
                self._flushing = False
            if self._stopping:
                return
