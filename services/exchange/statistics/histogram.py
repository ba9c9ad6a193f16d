"""The fixed duration buckets the rollups count handling times in, and percentiles read from them.

A duration is counted in the first bucket whose upper bound exceeds it; a percentile is the value
at its rank, interpolated linearly inside the bucket that holds that rank. The true value lies in
the same bucket, so the error is bounded by that bucket's width (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Sequence

MINUTE, HOUR, DAY = 60, 3600, 86400

# upper bounds in seconds, each at most 1.5 times the one before from 1 minute on; the last bucket
# (30 days and more) is open. Frozen by migration 0008 (its columns): change both together.
BOUNDS: tuple[int, ...] = (
    60,  # 1 min
    90,
    2 * MINUTE,
    3 * MINUTE,
    4 * MINUTE,
    5 * MINUTE,
    450,  # 7.5 min
    10 * MINUTE,
    15 * MINUTE,
    20 * MINUTE,
    30 * MINUTE,
    45 * MINUTE,
    1 * HOUR,
    90 * MINUTE,
    2 * HOUR,
    3 * HOUR,
    4 * HOUR,
    6 * HOUR,
    8 * HOUR,
    12 * HOUR,
    18 * HOUR,
    1 * DAY,
    36 * HOUR,
    2 * DAY,
    3 * DAY,
    4 * DAY,
    5 * DAY,
    7 * DAY,
    10 * DAY,
    14 * DAY,
    21 * DAY,
    30 * DAY,
)
BUCKETS = len(BOUNDS) + 1

# the statuses whose time since sending is counted: arrived, accepted, completed
MEASURES: tuple[str, ...] = ("01", "03", "06")


def column(measure: str, bucket: int) -> str:
    """The rollup column counting ``measure`` durations in ``bucket``."""
    return f"h{measure}_{bucket:02d}"


HISTOGRAM_COLUMNS: tuple[str, ...] = tuple(column(m, b) for m in MEASURES for b in range(BUCKETS))


def bucket_of(seconds: float) -> int:
    """The bucket a duration falls in (negative durations, a clock skew, count as the first)."""
    for index, bound in enumerate(BOUNDS):
        if seconds < bound:
            return index
    return len(BOUNDS)


def percentile(counts: Sequence[int], fraction: float) -> float | None:
    """The duration in seconds below which ``fraction`` of the counted ones lie (None when none
    were counted); in the open last bucket, its lower bound (30 days)."""
    total = sum(counts)
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = 0 if index == 0 else BOUNDS[index - 1]
            if index >= len(BOUNDS):
                return float(low)
            high = BOUNDS[index]
            return low + (high - low) * max(0.0, rank - seen) / count
        seen += count
    return float(BOUNDS[-1])
