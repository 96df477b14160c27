"""A mergeable log-linear latency histogram in microseconds, in the manner of HdrHistogram.

Values below 2048 µs get a bucket each; above, every power of two is split into 1024 equal
buckets, so a value is known to within 1/1024 of itself (three significant digits, as
`HdrHistogram(1, N, 3)`). Buckets are kept sparse in a dict: recording is one `bit_length`, a
shift and a dict update (well under a microsecond), and merging two histograms adds counts
bucket by bucket, so a merge is exact: merging the histograms of two processes gives the
histogram of one process that recorded both streams. Exact min, max and sum are kept beside
the buckets. No dependency: the `hdrhistogram` package needs `pbr` at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SUB_BUCKET_BITS = 11
LINEAR_LIMIT = 1 << SUB_BUCKET_BITS  # 2048: every value below it has its own bucket
HALF = LINEAR_LIMIT >> 1


def bucket_index(value: int) -> int:
    """The bucket of a non-negative integer value; order-preserving and contiguous."""
    if value < LINEAR_LIMIT:
        return value
    shift = value.bit_length() - SUB_BUCKET_BITS
    return shift * HALF + (value >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The lowest and highest value that land in bucket `index`."""
    if index < LINEAR_LIMIT:
        return index, index
    shift = (index >> (SUB_BUCKET_BITS - 1)) - 1
    top = index - shift * HALF
    return top << shift, ((top + 1) << shift) - 1


@dataclass
class Histogram:
    """Counts of microsecond values; `record` is the hot path, everything else is reporting."""

    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0
    sum: int = 0
    min: int = 0
    max: int = 0

    def record(self, value: int) -> None:
        if value < 0:
            value = 0
        index = value if value < LINEAR_LIMIT else bucket_index(value)
        counts = self.counts
        counts[index] = counts.get(index, 0) + 1
        if self.total == 0 or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.total += 1
        self.sum += value

    def merge(self, other: Histogram) -> None:
        """Add `other` into this histogram (exact)."""
        if other.total == 0:
            return
        counts = self.counts
        for index, count in other.counts.items():
            counts[index] = counts.get(index, 0) + count
        self.min = other.min if self.total == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.total += other.total
        self.sum += other.sum

    def copy(self) -> Histogram:
        return Histogram(dict(self.counts), self.total, self.sum, self.min, self.max)

    @property
    def mean(self) -> float:
        return self.sum / self.total if self.total else 0.0

    def percentile(self, percent: float) -> int:
        """The value at `percent` (0–100): the highest value of the bucket that holds that rank,
        clipped to the recorded max, as HdrHistogram's `get_value_at_percentile`."""
        if self.total == 0:
            return 0
        if percent >= 100:
            return self.max
        rank = max(1, int(percent / 100 * self.total + 0.5))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return max(self.min, min(self.max, bucket_bounds(index)[1]))
        return self.max

    def percentiles(self, percents: Iterable[float]) -> dict[float, int]:
        """Several percentiles in one pass over the sorted buckets."""
        wanted = sorted(set(percents))
        found: dict[float, int] = {}
        if self.total == 0:
            return dict.fromkeys(wanted, 0)
        ranks = [(p, max(1, int(p / 100 * self.total + 0.5))) for p in wanted if p < 100]
        seen = 0
        position = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            while position < len(ranks) and seen >= ranks[position][1]:
                value = bucket_bounds(index)[1]
                found[ranks[position][0]] = max(self.min, min(self.max, value))
                position += 1
        for p in wanted:
            found.setdefault(p, self.max)
        return found

    def distribution(self) -> list[tuple[int, int]]:
        """(bucket lowest value, count) pairs in value order, for charts."""
        return [(bucket_bounds(i)[0], self.counts[i]) for i in sorted(self.counts)]

    def to_json(self) -> dict[str, object]:
        return {
            "unit": "us",
            "total": self.total,
            "sum": self.sum,
            "min": self.min,
            "max": self.max,
            "buckets": [[i, self.counts[i]] for i in sorted(self.counts)],
        }

    @classmethod
    def from_json(cls, document: Mapping[str, object]) -> Histogram:
        buckets = document.get("buckets", [])
        if not isinstance(buckets, list):
            raise ValueError("histogram buckets must be a list of [index, count]")
        counts = {int(i): int(c) for i, c in buckets}
        histogram = cls(
            counts, _int(document, "total"), _int(document, "sum"), _int(document, "min"), _int(document, "max")
        )
        if sum(counts.values()) != histogram.total:
            raise ValueError("histogram total does not match its buckets")
        return histogram


def _int(document: Mapping[str, object], key: str) -> int:
    value = document.get(key, 0)
    if not isinstance(value, int):
        raise ValueError(f"histogram field {key!r} must be an integer")
    return value
