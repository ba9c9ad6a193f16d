"""The blob store's syncer: a process of its own that makes a written upload durable (its file
synced, renamed under its hash, its directories synced) for the exchange process that wrote it.

Why a process. An upload held in memory is written to ``tmp/`` by the event loop's thread (quick
calls, into the page cache); what waits for the disk has to leave that thread. In a worker thread
each system call gives the GIL up and, the busy event loop holding it, waits up to the switch
interval (5 ms) to get it back: under load the commit of a 100 KB file took 30 – 35 ms (median)
for 2 ms of disk, and the hand-overs cost the exchange about 0.3 ms of CPU a document. A process
has its own interpreter: the loop writes one line to its pipe and reads one back
(docs/performance.md, "The tenth session's changes").

The protocol, one JSON line each way: ``{"id": 7, "tmp": …, "final": …, "directories": […]}``,
answered ``{"id": 7}`` or ``{"id": 7, "errno": 28, "error": "No space left on device"}``. A few
threads handle the requests at once, each answered when done; the writer keeps the file open and
locked until the answer (a starting replica deletes only the unlocked files of ``tmp/``).
The exchange runs this file by its path, isolated (``python -I …/blobsync.py``): it imports the
standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger("lienthong.exchange.blobsync")
WORKERS = 4  # commits synced at once


def make_durable(tmp: str, final: str, directories: list[str]) -> None:
    """The file synced (through a descriptor of its own: fsync syncs the file, whatever descriptor
    names it), renamed to its place, then each directory synced (a rename lives in its directory)."""
    descriptor = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(tmp, final)
    for directory in directories:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def serve(requests: Iterable[bytes] | None = None, answers: BinaryIO | None = None, workers: int = WORKERS) -> None:
    """The syncer's loop: a request a line, handled by one of ``workers`` threads (the fsyncs of
    concurrent commits overlap; nothing else in this process wants the GIL), an answer a line as
    each is done, until its input closes and every request is answered."""
    source = requests if requests is not None else sys.stdin.buffer
    sink = answers if answers is not None else sys.stdout.buffer
    writing = threading.Lock()

    def handle(request: dict[str, Any]) -> None:
        answer: dict[str, object] = {"id": request["id"]}
        try:
            make_durable(request["tmp"], request["final"], request["directories"])
        except OSError as exc:
            answer.update(errno=exc.errno or 0, error=exc.strerror or str(exc))
        except Exception as exc:  # a request this syncer cannot read: said, never left unanswered
            answer.update(errno=0, error=f"{type(exc).__name__}: {exc}")
        with writing:
            sink.write(json.dumps(answer).encode() + b"\n")
            sink.flush()

    with ThreadPoolExecutor(workers, thread_name_prefix="blobsync") as pool:
        for line in source:
            pool.submit(handle, json.loads(line))


class SyncerStoppedError(OSError):
    """The syncer process ended before it answered (killed, or out of memory), or the service is
    stopping: the commits it had are not known to be durable, and fail; the next commit starts a new
    syncer."""


class SyncerUnavailableError(OSError):
    """The syncer process could not be started (no executable, a limit on processes)."""


@dataclass
class _Running:
    """One syncer process, the commits it was asked and not yet answered, the task reading its answers."""

    process: asyncio.subprocess.Process
    pending: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None

    def usable(self) -> bool:
        return self.process.returncode is None and self.reader is not None and not self.reader.done()


class BlobSyncer:
    """The exchange's side: a syncer process started at the first commit (again after it died),
    requests written to its pipe, each answer resolving its commit. :meth:`close` stops it."""

    def __init__(self) -> None:
        self._running: _Running | None = None
        self._ids = itertools.count(1)
        self._starting = asyncio.Lock()
        self._closed = False

    async def durable(self, tmp: Path, final: Path, directories: list[Path]) -> None:
        """``tmp`` synced, renamed to ``final``, ``directories`` synced, by the syncer; OSError with
        the system's error when a step failed (the file is where the step left it);
        :class:`SyncerUnavailableError` when no syncer could be started."""
        if self._closed:
            raise SyncerStoppedError("the blob syncer is stopped: the service is shutting down")
        running = await self._start()
        assert running.process.stdin is not None
        number = next(self._ids)
        answered = running.pending[number] = asyncio.get_running_loop().create_future()
        request = {"id": number, "tmp": str(tmp), "final": str(final), "directories": [str(d) for d in directories]}
        try:
            running.process.stdin.write(json.dumps(request).encode() + b"\n")
            await answered
        finally:
            running.pending.pop(number, None)

    @property
    def pid(self) -> int | None:
        """The syncer process's id (None: none is running)."""
        return self._running.process.pid if self._running is not None else None

    async def close(self) -> None:
        """End the syncer once it has answered what it was asked (its input closed); later commits
        are refused (the service is stopping)."""
        self._closed = True
        running, self._running = self._running, None
        if running is None:
            return
        assert running.process.stdin is not None
        running.process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            try:
                await asyncio.wait_for(running.process.wait(), 10)
            except TimeoutError:
                running.process.kill()
                await running.process.wait()
        if running.reader is not None:
            await running.reader

    async def _start(self) -> _Running:
        async with self._starting:
            if self._running is not None and self._running.usable():
                return self._running
            if self._running is not None:  # its answers could not be read: a new one
                with contextlib.suppress(ProcessLookupError):
                    self._running.process.kill()
            try:
                # by its file, isolated (-I): it needs the standard library only, wherever the
                # application's packages are; a session of its own: Ctrl-C in a terminal reaches the
                # exchange, which stops it once it has answered (its input closed)
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-I",
                    __file__,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
            except OSError as exc:
                raise SyncerUnavailableError(exc.errno or 0, f"the blob syncer could not start: {exc}") from exc
            running = self._running = _Running(process)
            running.reader = asyncio.create_task(self._read(running), name="exchange-blob-syncer")
            return running

    @staticmethod
    async def _read(running: _Running) -> None:
        assert running.process.stdout is not None
        try:
            while line := await running.process.stdout.readline():
                answer = json.loads(line)
                answered = running.pending.get(answer["id"])
                if answered is None or answered.done():  # its commit was cancelled meanwhile
                    continue
                if "errno" in answer:
                    answered.set_exception(OSError(answer["errno"], answer["error"]))
                else:
                    answered.set_result(None)
        except Exception:  # an answer it cannot read: that syncer is stopped, the next commit starts another
            log.exception("the blob syncer's answers cannot be read; it is stopped")
            with contextlib.suppress(ProcessLookupError):
                running.process.kill()
        code = await running.process.wait()
        if running.pending:
            log.error("the blob syncer stopped (exit code %s) with %d commit(s) unanswered", code, len(running.pending))
        for answered in running.pending.values():
            if not answered.done():
                answered.set_exception(SyncerStoppedError(f"the blob syncer stopped (exit code {code})"))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # it stops when the exchange closes its input
    serve()
