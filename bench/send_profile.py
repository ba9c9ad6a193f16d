"""One send case held long enough to profile: ``python -m bench.send_profile production|embedded``.

``bench send`` measures every case; this runs one, longer (production: ``--documents 1200`` by
default, embedded: ``600``), by 16 senders (``--senders``), after a warm-up, and prints the rate,
the POST's p50 and p99 and each process's CPU per document (utime + stime from /proc, as
``bench send``; production: the user and system parts apart too). docs/performance.md's
alternating runs (a change against the tree before it) are this command, run in turn on both trees.

``--spy DIR`` records each LienThong process with ``py-spy record --gil`` (raw folded stacks in
DIR/<process>.txt; ``pip install py-spy``; ``--on-cpu``: the threads the kernel runs, the
children too, instead of the GIL's holder). GIL samples are wall time while the thread holds the
GIL: a process descheduled inside a system call still counts, so read the CPU from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import aiohttp

from bench.channels import Arrivals, Meter, _read_feed
from bench.common import Running, analyze, production_topology
from bench.send import (
    RECIPIENT,
    SENDER,
    ProcessMeter,
    Sent,
    _agencies,
    _attachment,
    _send,
    _sender_client,
    embedded_server,
)

WARM_UP_PER_SENDER = 3  # the warm-up: as many senders as measured (every pool at its size), 3 documents each
SPIED = ("gateway", "registry", "exchange", "archive", "embedded")


class Spy(NamedTuple):
    """Where py-spy's profiles go, and whether it samples running threads (``--on-cpu``)."""

    directory: Path
    on_cpu: bool = False


def _user_system_ms(pid: int) -> tuple[float, float]:
    """User and system CPU ms of a process and its children (reaped and alive)."""
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    user = system = 0
    for each in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11]) + int(fields[13])
            system += int(fields[12]) + int(fields[14])
    tick = 1000 / os.sysconf("SC_CLK_TCK")  # ms per clock tick
    return user * tick, system * tick


@contextlib.contextmanager
def _spying(pids: dict[str, int], spy_on: Spy | None) -> Iterator[None]:
    if spy_on is None:
        yield
        return
    directory, on_cpu = spy_on
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    # --gil: samples while a thread holds the GIL (wall time); on_cpu: samples of threads the kernel
    # has running, children (the archive's extraction workers) included
    mode = ["--subprocesses"] if on_cpu else ["--gil"]
    record = [spy, "record", "-r", "200", "-f", "raw", *mode, "--nonblocking"]
    spies = [
        subprocess.Popen(
            [*record, "-p", str(pid), "-o", str(directory / f"{name}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
        if name in SPIED
    ]
    time.sleep(1)
    try:
        yield
    finally:
        for process in spies:
            process.send_signal(signal.SIGINT)
        for process in spies:
            process.wait()


def _report(what: str, count: int, seconds: float, sent: Sent, cpu: dict[str, float]) -> None:
    latencies = sorted(sent.latencies_ms())
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    figures = ", ".join(f"{name} {value:.2f}" for name, value in cpu.items())
    print(f"{what}: {count / seconds:.1f} documents/s; POST p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    print(f"CPU ms per document: {figures}")


async def _measured(
    what: str,
    http: aiohttp.ClientSession,
    meter: Meter,
    count: int,
    senders: int,
    spy: Spy | None,
    running: Running | None = None,
) -> None:
    """The warm-up, then ``count`` documents by ``senders``, until the processes are idle again:
    reported, with each process's user and system CPU apart."""
    attachment = _attachment()
    await _send(http, attachment, WARM_UP_PER_SENDER * senders, senders, Sent())
    if running is not None:
        await analyze(running)
    await asyncio.sleep(2)
    with _spying(meter.pids, spy):
        split_before = {name: _user_system_ms(pid) for name, pid in meter.pids.items()}
        before = meter.snapshot()
        started = time.perf_counter()
        sent = Sent()
        await _send(http, attachment, count, senders, sent)
        seconds = time.perf_counter() - started
        await meter.settle()
        after = meter.snapshot()
        split_after = {name: _user_system_ms(pid) for name, pid in meter.pids.items()}
    _report(f"{what}, {senders} senders, {count} documents", count, seconds, sent, meter.per_unit(before, after, count))
    split = ", ".join(
        f"{name} {(split_after[name][0] - split_before[name][0]) / count:.2f} / "
        f"{(split_after[name][1] - split_before[name][1]) / count:.2f}"
        for name in split_before
    )
    print(f"user / system CPU ms per document (each process and its children): {split}")


async def _production(count: int, senders: int, spy: Spy | None) -> None:
    async with production_topology() as running:
        gateway = running.topology.url("gateway")
        tokens = await _agencies(gateway)
        arrivals = Arrivals()
        reader = asyncio.create_task(_read_feed(gateway, tokens[RECIPIENT], arrivals))
        try:
            async with _sender_client(gateway, tokens[SENDER]) as http:
                await _measured("production", http, Meter(running), count, senders, spy, running)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _embedded(count: int, senders: int, spy: Spy | None) -> None:
    async with embedded_server() as (url, pid):
        tokens = await _agencies(url)
        async with _sender_client(url, tokens[SENDER]) as http:
            await _measured("embedded", http, ProcessMeter({"embedded": pid}), count, senders, spy)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.send_profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("production", "embedded"))
    parser.add_argument("--documents", type=int, help="how many (production 1,200, embedded 600)")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--spy", type=Path, help="a directory for py-spy's GIL profiles of each process")
    parser.add_argument(
        "--on-cpu", action="store_true", help="with --spy: sample running threads and children, not the GIL holder"
    )
    arguments = parser.parse_args()
    spy = Spy(arguments.spy, arguments.on_cpu) if arguments.spy is not None else None
    if arguments.mode == "production":
        asyncio.run(_production(arguments.documents or 1200, arguments.senders, spy))
    else:
        asyncio.run(_embedded(arguments.documents or 600, arguments.senders, spy))


if __name__ == "__main__":
    main()
