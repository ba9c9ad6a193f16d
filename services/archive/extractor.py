"""Text extraction in bounded workers: a pool of processes (started once, each handling many files,
replaced after ``MAX_TASKS_PER_WORKER``), each with an address-space limit; a file that overruns
the time limit has the pool's processes killed (a stuck parser cannot be interrupted otherwise),
and the files beside it are extracted again on a fresh pool. What fails is recorded, never
retried forever.

A process per file (a fresh interpreter importing the parsers) cost far more than the extraction of
a typical attachment: docs/performance.md, "Send path"."""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from services.archive.extraction import run, run_blob, run_blobs
from shared.pools import discard_pool, forkserver_context, kill_pool, preload
from shared.text import nfc

log = logging.getLogger("lienthong.archive.extraction")
MODULE = "services.archive.extraction"
# files of the blob store a worker's task reads at most: the longer a batch, the longer a file beside
# a hung one waits (up to BATCH times the time limit) and the longer the task holds a worker's slot
BATCH = 8
# a worker is replaced after this many tasks, of up to BATCH files each (what a parser leaked goes with it)
MAX_TASKS_PER_WORKER = 250
# imported once in the forkserver, before it forks each worker: a worker (a new one after every
# MAX_TASKS_PER_WORKER tasks too) starts with the parsers loaded instead of importing them itself
PRELOAD = [MODULE, "pypdfium2", "pypdf", "PIL.Image"]
preload(*PRELOAD)


@dataclass(frozen=True)
class Extracted:
    text: str
    error: str | None = None


def _being_cancelled() -> bool:
    """Whether the running task itself is being cancelled (not a future it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _result(answer: dict[str, str]) -> Extracted | None:
    """A worker's answer: the text, why there is none, or None when the blob it was to read is missing."""
    if "missing" in answer:
        return None
    if "error" in answer:
        return Extracted("", str(answer["error"])[:500])
    return Extracted(nfc(str(answer.get("text", ""))))


def _limit_memory(memory_bytes: int) -> None:
    """A pool worker's initializer: its address space bounded (a hostile file fails with MemoryError)."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


class TextExtractor:
    """Extracts one file at a time per worker, ``concurrency`` workers; :meth:`shutdown` stops them."""

    def __init__(
        self, *, timeout_seconds: float, memory_mb: int, languages: str, max_chars: int, concurrency: int = 2
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.memory_bytes = memory_mb * 1024 * 1024
        self.languages = languages
        self.max_chars = max_chars
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._executor: ProcessPoolExecutor | None = None
        self._queued: list[tuple[tuple[str, str, str, int], asyncio.Future[Extracted | None]]] = []
        self._batches: set[asyncio.Task[None]] = set()
        self._closed = False

    async def check(self, data: bytes, content_type: str) -> str | None:
        """Why a scan cannot be read (None: it can), checked in the same bounded workers."""
        checked = await self._run(run, data, content_type, "--check", self.max_chars)
        assert checked is not None  # only a blob can be missing
        return checked.error

    async def extract(self, data: bytes, content_type: str) -> Extracted:
        """The file's text, or why there is none (a malformed file, a time or memory overrun)."""
        extracted = await self._run(run, data, content_type, self.languages, self.max_chars)
        assert extracted is not None  # only a blob can be missing
        return extracted

    async def extract_blob(self, root: Path, sha256: str, content_type: str, max_bytes: int) -> Extracted | None:
        """The text of a file of the blob store, read by the worker itself (its hash checked there:
        the bytes do not travel through the pool's pipe); None when the store has no whole file of
        that hash within ``max_bytes`` (the caller gets the bytes elsewhere).

        The calls made in the same turn of the event loop (the text enricher's batch) go to the
        workers together: a task a worker, not a task a file (each task is a hand-over to the pool's
        threads and back, which cost the busy archive more than a small PDF's extraction:
        docs/performance.md, "The tenth session's changes"). A batch whose worker dies or overruns
        ``timeout_seconds`` a file is done again file by file, each with its own time limit."""
        answered: asyncio.Future[Extracted | None] = asyncio.get_running_loop().create_future()
        self._queued.append(((str(root), sha256, content_type, max_bytes), answered))
        if len(self._queued) == 1:
            asyncio.get_running_loop().call_soon(self._dispatch)
        return await answered

    def _dispatch(self) -> None:
        """The queued calls, split into a batch per worker (at most ``BATCH`` files each)."""
        queued, self._queued = self._queued, []
        size = min(BATCH, -(-len(queued) // self.concurrency))
        for start in range(0, len(queued), size):
            task = asyncio.create_task(self._run_batch(queued[start : start + size]))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _run_batch(self, batch: list[tuple[tuple[str, str, str, int], asyncio.Future[Extracted | None]]]) -> None:
        """A batch's files in one task; each answered as alone. A batch that failed as a whole is
        read again file by file (each with its own time limit, retry and error), its callers that
        gave up meanwhile skipped; the service's shutdown cancels what is left."""
        pending = [(request, answered) for request, answered in batch if not answered.done()]
        try:
            answers = await self._run_many([request for request, _answered in pending]) if len(pending) > 1 else None
            for number, (request, answered) in enumerate(pending):
                if answered.done():  # its caller gave up
                    continue
                if answers is not None:
                    answered.set_result(_result(answers[number]))
                    continue
                root, sha256, content_type, max_bytes = request
                try:
                    result = await self._run(
                        run_blob, root, sha256, content_type, self.languages, self.max_chars, max_bytes
                    )
                except Exception as exc:  # this file's, not its neighbours'
                    if not answered.done():
                        answered.set_exception(exc)
                    continue
                if not answered.done():
                    answered.set_result(result)
        except asyncio.CancelledError:  # the service stops: its callers with it
            for _request, answered in pending:
                answered.cancel()
            raise
        except Exception as exc:  # the extractor shut down meanwhile
            for _request, answered in pending:
                if not answered.done():
                    answered.set_exception(exc)

    async def _run_many(self, requests: list[tuple[str, str, str, int]]) -> list[dict[str, str]] | None:
        """One worker's task for several files; None when it died or overran, or the pool dropped it
        (the caller then reads each file alone)."""
        async with self._slots:
            executor = self._pool()
            future = asyncio.get_running_loop().run_in_executor(
                executor, run_blobs, requests, self.languages, self.max_chars, self.timeout_seconds
            )
            try:
                return await asyncio.wait_for(future, self.timeout_seconds * len(requests))
            except TimeoutError:
                log.warning("a batch of %d extractions overran: the extraction pool is killed", len(requests))
                self._kill(executor)
            except BrokenProcessPool:
                self._discard(executor)
            except asyncio.CancelledError:
                if _being_cancelled():
                    raise
                # the pool dropped the queued task (discarded for another file's dead worker)
            return None

    async def shutdown(self) -> None:
        """Stop the workers (the service's shutdown hook): the batches under way are cancelled (with
        their callers), none is started after."""
        self._closed = True
        batches = list(self._batches)
        for task in batches:
            task.cancel()
        for queued in self._queued:
            queued[1].cancel()
        self._queued = []
        await asyncio.gather(*batches, return_exceptions=True)
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, True, cancel_futures=True)

    def _pool(self) -> ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("the text extractor is shut down")
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.concurrency,
                mp_context=forkserver_context(),
                initializer=_limit_memory,
                initargs=(self.memory_bytes,),
                max_tasks_per_child=MAX_TASKS_PER_WORKER,
            )
        return self._executor

    async def _run(self, function: Callable[..., dict[str, str]], *args: object) -> Extracted | None:
        """``function(*args)`` in a worker: its text, why there is none, or None when the blob it
        was to read is missing. Tried again once on a fresh pool when its worker dies (killed for
        another file, or PDFium aborting on this one's memory limit), then with pypdf for a PDF."""
        async with self._slots:
            for attempt in (1, 2):
                executor = self._pool()
                call = function if attempt == 1 else functools.partial(function, pdf_engine="pypdf")
                future = asyncio.get_running_loop().run_in_executor(executor, call, *args)
                try:
                    answer = await asyncio.wait_for(future, self.timeout_seconds)
                except TimeoutError:
                    log.warning("an extraction overran %g s: the extraction pool is killed", self.timeout_seconds)
                    self._kill(executor)
                    return Extracted("", f"extraction took longer than {self.timeout_seconds:g} s")
                except (BrokenProcessPool, asyncio.CancelledError) as exc:
                    if isinstance(exc, asyncio.CancelledError) and _being_cancelled():
                        raise
                    # killed for another file's overrun, this one's worker died, or the pool dropped
                    # it (discarded for another file's dead worker): once more, on a fresh pool
                    self._discard(executor)
                    if attempt == 2:
                        return Extracted("", "extraction failed (its worker died)")
                    continue
                return _result(answer)
        raise AssertionError("unreachable")

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        if self._executor is executor:
            self._executor = None
        discard_pool(executor)

    def _kill(self, executor: ProcessPoolExecutor) -> None:
        # the executor has no way to stop a running task: its processes are killed
        if self._executor is executor:
            self._executor = None
        kill_pool(executor)
