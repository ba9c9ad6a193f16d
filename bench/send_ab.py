"""Two trees' send paths measured at the same time: ``python -m bench.send_ab OTHER_TREE``.

This machine's speed drifts by a third within minutes (docs/performance.md), more than most changes
to the send path save, so runs of two trees one after the other compare the machine's moments as
much as the code. This runs ``bench.send_profile production`` in this tree and in ``OTHER_TREE``
(another checkout, e.g. ``git worktree add /tmp/before <rev>``, its ``.venv`` a link to this one's)
**at once**, ``--pairs`` times: both topologies share the two cores, the disk and PostgreSQL through
the same moments, and each process's CPU per document (from /proc, which counts no waiting) is
compared within a pair. Each run has its own ports (the hub connector's and its stand-in's too),
scratch database, RabbitMQ prefix and blob directory (under ``LIENTHONG_BENCH_DIR``). The
PostgreSQL and RabbitMQ columns count both runs' work together: left out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
from pathlib import Path

from bench.common import free_port

PROCESSES = ("gateway", "registry", "exchange", "archive")
_CPU = re.compile(r"CPU ms per document: (.*)")
_RATE = re.compile(r"([\d.,]+) documents/s; POST p50 (\d+) ms, p99 (\d+) ms")


async def _run(tree: Path, documents: int, bench_dir: Path) -> dict[str, float]:
    """One ``bench.send_profile production`` in ``tree``; its rate and each process's CPU per document."""
    env = {
        **os.environ,
        "LIENTHONG_BENCH_DIR": str(bench_dir),
        "LIENTHONG_HUB__URL": f"http://127.0.0.1:{free_port()}",
        "LIENTHONG_HUB_DOUBLE__URL": f"http://127.0.0.1:{free_port()}",
    }
    process = await asyncio.create_subprocess_exec(
        str(tree / ".venv" / "bin" / "python"),
        "-m",
        "bench.send_profile",
        "production",
        "--documents",
        str(documents),
        cwd=tree,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await process.communicate())[0].decode(errors="replace")
    cpu, rate = _CPU.search(output), _RATE.search(output)
    if process.returncode != 0 or cpu is None or rate is None:
        raise RuntimeError(f"bench.send_profile in {tree} failed (exit {process.returncode}):\n{output[-3000:]}")
    figures = {name: float(value) for name, value in (part.split() for part in cpu.group(1).split(", "))}
    figures["documents/s"] = float(rate.group(1).replace(",", ""))
    figures["p99"] = float(rate.group(3))
    return figures


def _row(label: str, figures: dict[str, float]) -> str:
    own = sum(figures[name] for name in PROCESSES)
    cells = " ".join(f"{figures[name]:>9.2f}" for name in PROCESSES)
    return f"{label:<8} {figures['documents/s']:>11.1f} {figures['p99']:>6.0f} {cells} {own:>9.2f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="the other tree (a checkout with its .venv)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--documents", type=int, default=2400)
    args = parser.parse_args()
    here, other = Path.cwd().resolve(), args.other.resolve()
    if not (other / ".venv" / "bin" / "python").exists():
        sys.exit(f"{other} has no .venv: `ln -s {here / '.venv'} {other / '.venv'}`")
    base = Path(os.environ.get("LIENTHONG_BENCH_DIR") or "/tmp")
    for name in ("ab-this", "ab-other"):
        (base / name).mkdir(parents=True, exist_ok=True)
    header = f"{'tree':<8} {'documents/s':>11} {'p99':>6} " + " ".join(f"{n:>9}" for n in PROCESSES) + f" {'these':>9}"
    print(f"this tree: {here}\nthe other: {other}\nCPU ms per document, both trees at once, {args.pairs} pairs:")
    print(header)
    ratios: list[float] = []
    for pair in range(1, args.pairs + 1):
        this, that = await asyncio.gather(
            _run(here, args.documents, base / "ab-this"), _run(other, args.documents, base / "ab-other")
        )
        print(_row("other", that))
        print(_row("this", this))
        ratios.append(this["exchange"] / that["exchange"])
        print(f"-- pair {pair}: exchange this / other {ratios[-1]:.3f}", flush=True)
    print(f"exchange this / other: median {statistics.median(ratios):.3f} (of {', '.join(f'{r:.3f}' for r in ratios)})")


if __name__ == "__main__":
    asyncio.run(main())
