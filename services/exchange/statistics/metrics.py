"""The exchange's business metrics on /metrics, read from the statistics' rollups at each scrape:
documents and deliveries by administrative level and status, the status latency histograms, the
overdue gauges, failed transfers (webhooks and bus queues), and how far the rollups lag.

Labels are the level and the status, never the agency: their number stays that of the levels
times the statuses, whatever the number of agencies."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from services.exchange.models import STAT_COUNTERS
from services.exchange.statistics.histogram import BOUNDS, BUCKETS, MEASURES, column

if TYPE_CHECKING:
    from services.exchange.dependencies import ExchangeRuntime

log = logging.getLogger("lienthong.exchange.statistics")

UNKNOWN = "unknown"  # an agency the directory does not list (or the registry did not answer)
STATUS_COUNTERS = {
    "01": "arrived",
    "02": "rejected",
    "03": "accepted",
    "04": "assigned",
    "05": "processing",
    "06": "completed",
}
CHANNELS = ("push", "amqp")


def current_statuses(totals: dict[str, int]) -> dict[str, int]:
    """Deliveries in each status now, from the counts of statuses reached (each reached once, in
    the national order; 04 and 05 may be skipped, so ``03`` stands for accepted and not completed
    yet: 03, 04 or 05)."""
    get = totals.get
    return {
        "pending": get("received", 0) - get("arrived", 0),
        "01": get("arrived", 0) - get("rejected", 0) - get("accepted", 0),
        "02": get("rejected", 0),
        "03": get("accepted", 0) - get("completed", 0),
        "06": get("completed", 0),
    }


class BusinessMetrics(Collector):
    """A collector that shows the last snapshot :meth:`refresh` took."""

    def __init__(self, registry: CollectorRegistry, runtime: ExchangeRuntime) -> None:
        self.runtime = runtime
        self.sent: dict[str, int] = {}
        self.recipient: dict[str, dict[str, int]] = {}
        self.overdue: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.watermark: float | None = None
        registry.register(self)

    async def refresh(self) -> None:
        """Read the rollups, the overdue snapshot and the failed transfers, grouped by level."""
        runtime = self.runtime
        try:
            directory = await runtime.statistics_directory.get()
            level_of = {code: node.level for code, node in directory.agencies.items()}
        except Exception:  # the registry away: the figures are still shown, under "unknown"
            level_of = {}
        async with runtime.db.session() as session:
            repository = runtime.statistics_repository(session)
            per_agency = await repository.totals("0000-01", "9999-12", None, "agency")
            overdue = await repository.overdue()
            failures = await repository.transfer_failures()
            state = await repository.refresh_state()
        sent: dict[str, int] = defaultdict(int)
        recipient: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for row in per_agency:
            level = level_of.get(row["key"], UNKNOWN)
            sent[level] += int(row["documents_sent"] or 0)
            for name in STAT_COUNTERS:
                recipient[level][name] += int(row[name] or 0)
        late: dict[str, int] = defaultdict(int)
        for code, overdue_count in overdue.items():
            late[level_of.get(code, UNKNOWN)] += overdue_count
        for level in set(level_of.values()):
            sent.setdefault(level, 0)
            late.setdefault(level, 0)
        self.sent, self.recipient, self.overdue, self.failures = dict(sent), dict(recipient), dict(late), failures
        self.watermark = state[0].timestamp() if state else None

    def collect(self) -> Iterator[Metric]:
        documents = CounterMetricFamily(
            "lienthong_documents_sent", "Documents sent, by the sender's administrative level", labels=["level"]
        )
        for level, count in sorted(self.sent.items()):
            documents.add_metric([level], count)
        yield documents

        deliveries = GaugeMetricFamily(
            "lienthong_deliveries",
            "Deliveries in each status now (03: accepted, not completed: 03, 04 or 05), by the recipient's level",
            labels=["level", "status"],
        )
        reached = CounterMetricFamily(
            "lienthong_delivery_statuses",
            "Statuses reported (pending: deliveries created), by the recipient's administrative level",
            labels=["level", "status"],
        )
        latency = HistogramMetricFamily(
            "lienthong_delivery_status_latency_seconds",
            "Time from sending to the recipient's first report of 01, 03 and 06",
            labels=["level", "status"],
        )
        for level, totals in sorted(self.recipient.items()):
            for status, count in current_statuses(totals).items():
                deliveries.add_metric([level, status], max(count, 0))
            reached.add_metric([level, "pending"], totals.get("received", 0))
            for status, counter in STATUS_COUNTERS.items():
                reached.add_metric([level, status], totals.get(counter, 0))
            for measure in MEASURES:
                cumulative, buckets = 0, []
                for index in range(BUCKETS):
                    cumulative += totals.get(column(measure, index), 0)
                    bound = "+Inf" if index >= len(BOUNDS) else str(float(BOUNDS[index]))
                    buckets.append((bound, cumulative))
                # the sum is not kept by the rollups: estimated at each bucket's middle
                estimate = sum(totals.get(column(measure, i), 0) * _middle(i) for i in range(BUCKETS))
                latency.add_metric([level, measure], buckets, sum_value=estimate)
        yield deliveries
        yield reached
        yield latency

        open_gauge = GaugeMetricFamily(
            "lienthong_deliveries_open",
            "Deliveries neither completed nor rejected (given back on a recall included), by recipient level",
            labels=["level"],
        )
        for level, totals in sorted(self.recipient.items()):
            now = current_statuses(totals)
            open_gauge.add_metric([level], max(0, now["pending"] + now["01"] + now["03"]))
        yield open_gauge
        overdue_gauge = GaugeMetricFamily(
            "lienthong_deliveries_overdue",
            "Deliveries past their arrival deadline or due date, by recipient level",
            labels=["level"],
        )
        for level, overdue_count in sorted(self.overdue.items()):
            overdue_gauge.add_metric([level], overdue_count)
        yield overdue_gauge

        failures = GaugeMetricFamily(
            "lienthong_transfer_failures",
            "Deliveries a webhook or bus queue refused after every try, not re-sent yet",
            labels=["channel"],
        )
        for channel in sorted(set(CHANNELS) | set(self.failures)):
            failures.add_metric([channel], self.failures.get(channel, 0))
        yield failures

        lag = GaugeMetricFamily(
            "lienthong_statistics_lag_seconds", "Age of the newest history the statistics have counted"
        )
        lag.add_metric([], 0.0 if self.watermark is None else max(0.0, time.time() - self.watermark))
        yield lag

    def describe(self) -> Iterator[Any]:
        return iter(())


def _middle(index: int) -> float:
    low = 0 if index == 0 else BOUNDS[index - 1]
    high = BOUNDS[index] if index < len(BOUNDS) else BOUNDS[-1]
    return (low + high) / 2
