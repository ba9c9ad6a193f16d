"""Process pools for CPU-bound or hostile-input work (signature verification, text extraction):
what to do with a pool whose task overran, since a running task cannot be stopped otherwise."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor


def discard_pool(executor: ProcessPoolExecutor) -> None:
    """Stop handing the pool work; its idle processes exit, queued tasks are cancelled."""
    executor.shutdown(wait=False, cancel_futures=True)


def kill_pool(executor: ProcessPoolExecutor) -> None:
    """Kill the pool's processes (a stuck task with them) and wait for them to be gone."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    discard_pool(executor)
    for process in processes:
        process.kill()
    for process in processes:
        process.join(timeout=5)
