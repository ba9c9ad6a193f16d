"""Run every benchmark: ``python -m bench [name ...]`` (``make bench``)."""

from __future__ import annotations

import asyncio
import sys

from bench import (
    archive,
    channels,
    edxml,
    exchange,
    feed_reads,
    gateway,
    index_commits,
    outbox_relay,
    registry,
    send,
    send_statements,
    signature,
    statistics,
    test_systems,
)

BENCHMARKS = {
    "outbox_relay": outbox_relay.main,
    "registry": registry.main,
    "exchange": exchange.main,
    "channels": channels.main,
    "send": send.main,
    "send_statements": send_statements.main,
    "feed_reads": feed_reads.main,
    "signature": signature.main,
    "gateway": gateway.main,
    "archive": archive.main,
    "index_commits": index_commits.main,
    "edxml": edxml.main,
    "statistics": statistics.main,
    "test_systems": test_systems.main,
}


def main() -> None:
    names = sys.argv[1:] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmarks {unknown}; choose from {list(BENCHMARKS)}")
    for name in names:
        print(f"== {name}", flush=True)
        asyncio.run(BENCHMARKS[name]())


if __name__ == "__main__":
    main()
