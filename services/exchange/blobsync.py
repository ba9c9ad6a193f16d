"""The blob store's syncer: a process of its own that writes an upload held in memory to a file of
``tmp/``, makes it durable (synced, renamed under its hash, its directories synced), and answers the
exchange process that sent it.

Why a process. What touches the file system has to leave the event loop's thread. Waiting for the
disk, plainly; and creating and writing a file, which look quick (into the page cache) but wait on
the file system's journal while other uploads are being synced: on the exchange's thread they held
its event loop for about 1.2 ms a document, the most of it in ``open`` and ``write`` (cProfile of the
running exchange, docs/performance.md, "The sixteenth session"). In a worker thread each system call
gives the GIL up and, the busy event loop holding it, waits up to the switch interval (5 ms) to get
it back: under load the commit of a 100 KB file took 30 – 35 ms (median) for 2 ms of disk, and the
hand-overs cost the exchange about 0.3 ms of CPU a document. A process has its own interpreter: the
loop writes one request to its pipe (the bytes after a line of JSON) and reads one line back
(docs/performance.md, "The tenth session's changes").

The protocol: ``{"id": 7, "tmp": …, "size": 102400, "final": …, "directories": […]}`` and ``size``
bytes after the line, answered ``{"id": 7}`` or ``{"id": 7, "errno": 28, "error": "No space left on
device"}``. The syncer creates ``tmp`` (it must not exist), locks it, writes the bytes, syncs it,
makes the final directory if need be, renames it, then syncs the directories. A few threads handle
the requests at once, each answered when done; a file of ``tmp/`` is locked by whoever is writing or
syncing it (a starting replica deletes only the unlocked files of ``tmp/``). The exchange runs this
file by its path, isolated (``python -I …/blobsync.py``): it imports the standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger("lienthong.exchange.blobsync")
WORKERS = 4  # commits synced at once
PIPE_BYTES = 1024 * 1024  # the syncer's input buffer (a pipe's: Linux's upper limit for a user)


def store_durably(tmp: str, data: bytes | memoryview, final: str, directories: list[str]) -> None:
    """``data`` written to a new file ``tmp`` (locked while it is written and synced), synced,
    renamed to ``final`` (its directory and that one's parent made if need be), then each directory
    synced. On an error ``tmp`` is deleted and nothing is at ``final`` that was not there before."""
    descriptor = locked_new_file(tmp)
    try:
        try:
            view = memoryview(data)
            while view:  # a write may take part of what it is given
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
            make_directory(os.path.dirname(final))
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    finally:
        os.close(descriptor)  # the lock with it: the file is at its place, or gone
    _sync_directories(directories)


def locked_new_file(tmp: str | os.PathLike[str]) -> int:
    """``tmp`` created (refused if it exists; write-only, mode 0600) and locked, and still there once
    locked: a replica starting up deletes the unlocked files of ``tmp/``, and may have taken it
    between its creation and its lock (then it is made again). The blob store's streamed uploads
    make their files with it too."""
    while True:
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            if os.stat(tmp).st_ino == os.fstat(descriptor).st_ino:
                return descriptor
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(descriptor)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        os.close(descriptor)


def make_directory(directory: str | os.PathLike[str]) -> None:
    """A blob's directory made if need be: in a store in use it exists (one system call to learn so)."""
    try:
        os.mkdir(directory)
    except FileExistsError:
        pass
    except FileNotFoundError:  # its parent is new too
        with contextlib.suppress(FileExistsError):
            os.mkdir(os.path.dirname(directory))
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory)


def _sync_directories(directories: list[str]) -> None:
    for directory in directories:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def serve(requests: BinaryIO | None = None, answers: BinaryIO | None = None, workers: int = WORKERS) -> None:
    """The syncer's loop: a request at a time read (its line, then its bytes), handled by one of
    ``workers`` threads (the fsyncs of concurrent commits overlap; nothing else in this process
    wants the GIL), an answer a line as each is done, until its input closes and every request is
    answered. A request cut short by the end of the input is not handled (its sender is gone)."""
    source = requests if requests is not None else sys.stdin.buffer
    sink = answers if answers is not None else sys.stdout.buffer
    writing = threading.Lock()

    def handle(request: dict[str, Any], data: bytes | None) -> None:
        answer: dict[str, object] = {"id": request.get("id")}
        try:
            if data is None:
                raise KeyError("size")  # no bytes: nothing to store
            store_durably(request["tmp"], data, request["final"], request["directories"])
        except OSError as exc:
            answer.update(errno=exc.errno or 0, error=exc.strerror or str(exc))
        except Exception as exc:  # a request this syncer cannot read: said, never left unanswered
            answer.update(errno=0, error=f"{type(exc).__name__}: {exc}")
        with writing:
            sink.write(json.dumps(answer).encode() + b"\n")
            sink.flush()

    with ThreadPoolExecutor(workers, thread_name_prefix="blobsync") as pool:
        while line := source.readline():
            request = json.loads(line)
            data: bytes | None = None
            if "size" in request:
                data = source.read(request["size"])
                if len(data) < request["size"]:
                    break
            pool.submit(handle, request, data)


def _enlarge(transport: asyncio.BaseTransport) -> None:
    """The syncer's input buffer made :data:`PIPE_BYTES`: under uvloop a socket pair (its send
    buffer: 208 KB by default), under asyncio's own loop a pipe (64 KB). Where the system refuses,
    the default stays: an upload then waits in the loop's buffer for the syncer to read it."""
    with contextlib.suppress(OSError, AttributeError, ValueError):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, PIPE_BYTES)
            return
        pipe = transport.get_extra_info("pipe")
        if pipe is not None:
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


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
    requests: asyncio.StreamWriter  # the syncer's input
    pending: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None

    def usable(self) -> bool:
        return (
            self.process.returncode is None
            and not self.requests.is_closing()
            and self.reader is not None
            and not self.reader.done()
        )


class BlobSyncer:
    """The exchange's side: a syncer process started at the first commit (again after it died),
    requests written to its pipe, each answer resolving its commit. :meth:`close` stops it."""

    def __init__(self) -> None:
        self._running: _Running | None = None
        self._ids = itertools.count(1)
        self._starting = asyncio.Lock()
        self._closed = False

    async def durable(
        self,
        tmp: str | Path,
        final: str | Path,
        directories: Sequence[str | Path],
        pieces: Sequence[bytes] | None = None,
    ) -> None:
        """``pieces`` written to a new file ``tmp`` (without them: ``tmp`` as the caller wrote it),
        synced, renamed to ``final``, ``directories`` synced, by the syncer; OSError with the system's
        error when a step failed (the file is where the step left it; one the syncer created is
        deleted); :class:`SyncerUnavailableError` when no syncer could be started."""
        if self._closed:
            raise SyncerStoppedError("the blob syncer is stopped: the service is shutting down")
        running = await self._start()
        number = next(self._ids)
        answered = running.pending[number] = asyncio.get_running_loop().create_future()
        request: dict[str, object] = {
            "id": number,
            "tmp": os.fspath(tmp),
            "final": os.fspath(final),
            "directories": [os.fspath(d) for d in directories],
        }
        payload = b"".join(pieces) if pieces is not None else None
        if payload is not None:
            request["size"] = len(payload)  # of the bytes sent: the line and its bytes always agree
        try:
            # one write, which the input takes whole up to its megabyte (see _enlarge); what does not
            # fit waits in the loop's buffer until the syncer reads
            try:
                running.requests.write(b"".join((json.dumps(request).encode(), b"\n", payload or b"")))
            except (OSError, RuntimeError) as exc:  # its input closed: the syncer is gone
                raise SyncerStoppedError(f"the blob syncer's input is closed ({exc})") from exc
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
        async with self._starting:  # a syncer being started is started first, then stopped
            running, self._running = self._running, None
        if running is None:
            return
        running.requests.close()
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
            if self._closed:
                raise SyncerStoppedError("the blob syncer is stopped: the service is shutting down")
            if self._running is not None and self._running.usable():
                return self._running
            if self._running is not None:  # its answers could not be read: a new one
                with contextlib.suppress(ProcessLookupError):
                    self._running.process.kill()
            process, requests = await self._spawn()
            running = self._running = _Running(process, requests)
            running.reader = asyncio.create_task(self._read(running), name="exchange-blob-syncer")
            return running

    @staticmethod
    async def _spawn() -> tuple[asyncio.subprocess.Process, asyncio.StreamWriter]:
        """The syncer process and its input, whose buffer is made :data:`PIPE_BYTES` so that an
        upload goes into it in one write (:func:`_enlarge`)."""
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
        assert process.stdin is not None
        _enlarge(process.stdin.transport)
        return process, process.stdin

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
