"""The process pool signatures are verified in: CPU-bound work off the event loop.

Created on first use (a service that verifies nothing starts no process), shut down with the
service. Workers are forked from a forkserver that imported the verification engine once, so a new
pool is ready in milliseconds. At most two verifications per worker are handed to the pool at once
(one running, one queued so the worker never waits for the next; the others wait their turn, not
counted against the timeout), so the timeout measures a verification's own work and at most one
other's. One that
overruns it kills the pool's processes (a stuck parser cannot be interrupted otherwise); the
verifications running beside it are run again on a fresh pool.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from services.signature.errors import DocumentUnreadableError, VerificationTimeoutError
from services.signature.verification.engine import Job, Outcome, run_job
from shared.pools import discard_pool, forkserver_context, kill_pool, preload

log = logging.getLogger("lienthong.signature.pool")
ENGINE = "services.signature.verification.engine"
preload(ENGINE)


class VerifierPool:
    """A lazily created ProcessPoolExecutor of ``workers`` processes (default: the CPU count)."""

    def __init__(self, workers: int | None, timeout_seconds: float) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.timeout_seconds = timeout_seconds
        self._executor: ProcessPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=forkserver_context())
        return self._executor

    async def verify(self, job: Job) -> Outcome:
        """Run one verification in a worker when one is free; give it up after the timeout."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(2 * self.workers)
        async with self._slots:
            try:
                return await self._run(job)
            except BrokenProcessPool:
                # a pool killed for another verification's timeout: this one runs again, once
                try:
                    return await self._run(job)
                except BrokenProcessPool as exc:
                    raise DocumentUnreadableError("The verification of this file failed (its worker died)") from exc

    async def _run(self, job: Job) -> Outcome:
        executor = self._pool()
        future = asyncio.get_running_loop().run_in_executor(executor, run_job, job)
        try:
            return await asyncio.wait_for(future, self.timeout_seconds)
        except TimeoutError as exc:
            log.warning("a verification overran %.0f s: its pool is killed", self.timeout_seconds)
            self._kill(executor)
            raise VerificationTimeoutError(
                f"The verification did not finish within {self.timeout_seconds:g} s; the file is refused"
            ) from exc
        except BrokenProcessPool:
            self._discard(executor)
            raise

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        if self._executor is executor:
            self._executor = None
        discard_pool(executor)

    def _kill(self, executor: ProcessPoolExecutor) -> None:
        # the executor has no way to stop a running task: its processes are killed
        if self._executor is executor:
            self._executor = None
        kill_pool(executor)

    async def shutdown(self) -> None:
        """Stop the workers (the service's shutdown hook); waits for them in a thread."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, True, cancel_futures=True)
