"""What a run measured, kept so that runs merge exactly.

`RunStats` holds, per task, counts and a microsecond histogram; failures by (task, class);
handshake outcomes; bytes on the wire; and a per-second timeline (requests, failures, a
histogram) keyed by wall-clock second, so that the timelines of several processes or machines
line up when merged. Everything is integers and histograms: `merge` adds, and the JSON form
round-trips without loss (`mrapsim load merge` relies on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mrapsim.load.histogram import Histogram

JSON_VERSION = 1


@dataclass
class TaskStats:
    name: str
    method: str
    requests: int = 0
    failures: int = 0
    content_bytes: int = 0
    histogram: Histogram = field(default_factory=Histogram)

    def merge(self, other: TaskStats) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.content_bytes += other.content_bytes
        self.histogram.merge(other.histogram)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "requests": self.requests,
            "failures": self.failures,
            "content_bytes": self.content_bytes,
            "histogram": self.histogram.to_json(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TaskStats:
        return cls(
            str(d["name"]),
            str(d["method"]),
            int(d["requests"]),
            int(d["failures"]),
            int(d["content_bytes"]),
            Histogram.from_json(d["histogram"]),
        )


@dataclass
class FailureCount:
    occurrences: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0

    def add(self, count: int, first: float, last: float) -> None:
        self.first_seen = first if self.occurrences == 0 else min(self.first_seen, first)
        self.last_seen = max(self.last_seen, last)
        self.occurrences += count


@dataclass
class Interval:
    """One wall-clock second: what completed in it, and how many users were running."""

    requests: int = 0
    failures: int = 0
    users: int = 0
    histogram: Histogram = field(default_factory=Histogram)
    by_task: dict[str, int] = field(default_factory=dict)

    def merge(self, other: Interval) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.users += other.users
        self.histogram.merge(other.histogram)
        for name, count in other.by_task.items():
            self.by_task[name] = self.by_task.get(name, 0) + count


@dataclass
class RunStats:
    started: float = 0.0  # wall-clock seconds
    ended: float = 0.0
    users: int = 0
    tasks: dict[str, TaskStats] = field(default_factory=dict)
    failures: dict[tuple[str, str], FailureCount] = field(default_factory=dict)
    handshakes: dict[str, int] = field(default_factory=dict)
    bytes_sent: int = 0
    bytes_received: int = 0
    not_sent: int = 0  # open model: arrivals still queued when the run stopped
    timeline: dict[int, Interval] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def task(self, name: str, method: str) -> TaskStats:
        found = self.tasks.get(name)
        if found is None:
            found = self.tasks[name] = TaskStats(name, method)
        return found

    def record(self, task: TaskStats, latency_us: int, content_bytes: int, failure: str | None, now: float) -> None:
        """One finished task (the hot path)."""
        task.requests += 1
        task.content_bytes += content_bytes
        task.histogram.record(latency_us)
        second = int(now)
        interval = self.timeline.get(second)
        if interval is None:
            interval = self.timeline[second] = Interval(users=self.users)
        interval.requests += 1
        interval.histogram.record(latency_us)
        interval.by_task[task.name] = interval.by_task.get(task.name, 0) + 1
        if failure is not None:
            task.failures += 1
            interval.failures += 1
            self.failures.setdefault((task.name, failure), FailureCount()).add(1, now, now)

    def handshake(self, outcome: str) -> None:
        self.handshakes[outcome] = self.handshakes.get(outcome, 0) + 1

    # -- derived ---------------------------------------------------------------------------

    @property
    def duration(self) -> float:
        return max(1e-9, self.ended - self.started)

    def total(self) -> TaskStats:
        total = TaskStats("Aggregated", "")
        for task in self.tasks.values():
            total.merge(task)
        return total

    def failures_by_class(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for (task, failure), count in sorted(self.failures.items()):
            found.setdefault(failure, {})[task] = count.occurrences
        return found

    # -- merging and JSON ------------------------------------------------------------------

    def merge(self, other: RunStats) -> None:
        """Add another process's or run's stats (exact)."""
        if other.started and (not self.started or other.started < self.started):
            self.started = other.started
        self.ended = max(self.ended, other.ended)
        self.users += other.users
        for name, task in other.tasks.items():
            self.task(name, task.method).merge(task)
        for key, count in other.failures.items():
            self.failures.setdefault(key, FailureCount()).add(count.occurrences, count.first_seen, count.last_seen)
        for outcome, n in other.handshakes.items():
            self.handshakes[outcome] = self.handshakes.get(outcome, 0) + n
        self.bytes_sent += other.bytes_sent
        self.bytes_received += other.bytes_received
        self.not_sent += other.not_sent
        for second, interval in other.timeline.items():
            self.timeline.setdefault(second, Interval()).merge(interval)
        for name, value in other.meta.items():
            self.meta.setdefault(name, value)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "started": self.started,
            "ended": self.ended,
            "users": self.users,
            "tasks": [t.to_json() for t in self.tasks.values()],
            "failures": [
                {
                    "task": task,
                    "class": failure,
                    "occurrences": c.occurrences,
                    "first_seen": c.first_seen,
                    "last_seen": c.last_seen,
                }
                for (task, failure), c in sorted(self.failures.items())
            ],
            "handshakes": dict(sorted(self.handshakes.items())),
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "not_sent": self.not_sent,
            "timeline": [
                {
                    "second": s,
                    "requests": i.requests,
                    "failures": i.failures,
                    "users": i.users,
                    "by_task": i.by_task,
                    "histogram": i.histogram.to_json(),
                }
                for s, i in sorted(self.timeline.items())
            ],
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunStats:
        if d.get("version") != JSON_VERSION:
            raise ValueError(f"not an mrapsim load report (version {d.get('version')!r})")
        stats = cls(float(d["started"]), float(d["ended"]), int(d["users"]))
        for t in d["tasks"]:
            task = TaskStats.from_json(t)
            stats.tasks[task.name] = task
        for f in d["failures"]:
            stats.failures[(str(f["task"]), str(f["class"]))] = FailureCount(
                int(f["occurrences"]), float(f["first_seen"]), float(f["last_seen"])
            )
        stats.handshakes = {str(k): int(v) for k, v in d["handshakes"].items()}
        stats.bytes_sent = int(d["bytes_sent"])
        stats.bytes_received = int(d["bytes_received"])
        stats.not_sent = int(d.get("not_sent", 0))
        for i in d["timeline"]:
            stats.timeline[int(i["second"])] = Interval(
                int(i["requests"]),
                int(i["failures"]),
                int(i["users"]),
                Histogram.from_json(i["histogram"]),
                {str(k): int(v) for k, v in i["by_task"].items()},
            )
        stats.meta = dict(d.get("meta", {}))
        return stats
