"""Text output: the live table, the final summary, Locust-compatible CSV, the JSON report.

Rendering only: every function takes `RunStats` (and, for the live table, the previous
snapshot's totals) and returns text or writes files. Latencies are shown in milliseconds with
microsecond resolution (Locust rounds below 100 ms to whole milliseconds; we do not).
"""

from __future__ import annotations

import csv
import datetime
import json
from dataclasses import dataclass
from pathlib import Path

from mrapsim.load.histogram import Histogram
from mrapsim.load.stats import RunStats, TaskStats

# Locust's own percentiles and column names (locust/stats.py: PERCENTILES_TO_REPORT, StatsCSV).
LOCUST_PERCENTILES = (0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0)


def readable_percentiles(percentiles: tuple[float, ...]) -> list[str]:
    """Locust's `get_readable_percentiles`: 0.5 → '50%', 0.999 → '99.9%'."""
    return [f"{int(p * 100) if (p * 100).is_integer() else round(100 * p, 6)}%" for p in percentiles]


STATS_COLUMNS = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    *readable_percentiles(LOCUST_PERCENTILES),
]
HISTORY_COLUMNS = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    *readable_percentiles(LOCUST_PERCENTILES),
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
]
FAILURES_COLUMNS = ["Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen"]
EXCEPTIONS_COLUMNS = ["Count", "Message", "Traceback", "Nodes"]

TABLE_PERCENTILES = (50.0, 90.0, 99.0)


def ms(us: float) -> float:
    return round(us / 1000, 3)


def _fmt_ms(us: float) -> str:
    return f"{us / 1000:.2f}" if us < 100_000 else f"{us / 1000:.0f}"


@dataclass(frozen=True)
class Totals:
    """Counts at one moment, for the live table's current req/s."""

    at: float
    requests: dict[str, int]
    failures: dict[str, int]


def totals_of(stats: RunStats, at: float) -> Totals:
    return Totals(at, {n: t.requests for n, t in stats.tasks.items()}, {n: t.failures for n, t in stats.tasks.items()})


def _row(task: TaskStats, rps: float, fps: float) -> str:
    h = task.histogram
    p = h.percentiles(TABLE_PERCENTILES)
    fail_pct = 100 * task.failures / task.requests if task.requests else 0.0
    return (
        f"{task.method:<5} {task.name[:22]:<22} {task.requests:>9} "
        f"{task.failures:>8}({fail_pct:5.2f}%) {rps:>9.1f} {fps:>8.1f} "
        f"{_fmt_ms(p[50.0]):>8} {_fmt_ms(p[90.0]):>8} {_fmt_ms(p[99.0]):>8} {_fmt_ms(h.max):>8}"
    )


HEADER = (
    f"{'Type':<5} {'Name':<22} {'# reqs':>9} {'# fails':>16} {'req/s':>9} {'fails/s':>8} "
    f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
)


def live_table(stats: RunStats, previous: Totals, now: Totals) -> str:
    """Locust's console table, per task, req/s over the last interval."""
    elapsed = max(1e-9, now.at - previous.at)
    running = now.at - stats.started if stats.started else 0.0
    lines = [f"{running:.0f} s, {stats.users} users", HEADER, "-" * len(HEADER)]
    total_r = total_f = 0
    for name, task in stats.tasks.items():
        r = now.requests.get(name, 0) - previous.requests.get(name, 0)
        f = now.failures.get(name, 0) - previous.failures.get(name, 0)
        total_r += r
        total_f += f
        lines.append(_row(task, r / elapsed, f / elapsed))
    lines.append("-" * len(HEADER))
    lines.append(_row(stats.total(), total_r / elapsed, total_f / elapsed))
    return "\n".join(lines) + "\n"


def live_line(stats: RunStats, previous: Totals, now: Totals) -> str:
    """One plain line per interval, for logs (not a TTY)."""
    elapsed = max(1e-9, now.at - previous.at)
    total = stats.total()
    r = sum(now.requests.values()) - sum(previous.requests.values())
    f = sum(now.failures.values()) - sum(previous.failures.values())
    p = total.histogram.percentiles(TABLE_PERCENTILES)
    return (
        f"t={now.at - stats.started:.0f}s users={stats.users} reqs={total.requests} "
        f"fails={total.failures} req/s={r / elapsed:.1f} fails/s={f / elapsed:.1f} "
        f"p50={_fmt_ms(p[50.0])}ms p90={_fmt_ms(p[90.0])}ms p99={_fmt_ms(p[99.0])}ms\n"
    )


def _bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000
    return f"{n:.1f} GB"


def summary(stats: RunStats) -> str:
    duration = stats.duration
    lines = [f"█ SUMMARY  {duration:.1f} s, {stats.users} users"]
    lines.append(HEADER)
    lines.append("-" * len(HEADER))
    for task in stats.tasks.values():
        lines.append(_row(task, task.requests / duration, task.failures / duration))
    lines.append("-" * len(HEADER))
    total = stats.total()
    lines.append(_row(total, total.requests / duration, total.failures / duration))
    by_class = stats.failures_by_class()
    if by_class:
        lines.append("")
        lines.append("Failures by class")
        for failure, tasks in sorted(by_class.items(), key=lambda kv: -sum(kv[1].values())):
            detail = ", ".join(f"{t} {n}" for t, n in tasks.items())
            lines.append(f"  {failure:<32} {sum(tasks.values()):>9}   ({detail})")
    if stats.handshakes:
        lines.append("")
        outcomes = "  ".join(f"{k} {v}" for k, v in sorted(stats.handshakes.items(), key=lambda kv: -kv[1]))
        lines.append(f"Handshakes (new connections): {outcomes}")
    if stats.not_sent:
        lines.append(f"Arrivals not sent before the stop (open model): {stats.not_sent}")
    lines.append("")
    lines.append(
        f"Traffic: sent {_bytes(stats.bytes_sent)} ({_bytes(stats.bytes_sent / duration)}/s), "
        f"received {_bytes(stats.bytes_received)} ({_bytes(stats.bytes_received / duration)}/s)"
    )
    return "\n".join(lines) + "\n"


# -- CSV -----------------------------------------------------------------------------------


def _percentile_fields(h: Histogram) -> list[str | float]:
    if h.total == 0:
        return ["N/A"] * len(LOCUST_PERCENTILES)
    values = h.percentiles(p * 100 for p in LOCUST_PERCENTILES)
    return [ms(values[p * 100]) for p in LOCUST_PERCENTILES]


def _stats_fields(task: TaskStats, duration: float) -> list[str | float | int]:
    h = task.histogram
    return [
        task.method,
        task.name,
        task.requests,
        task.failures,
        ms(h.percentile(50)),
        ms(h.mean),
        ms(h.min),
        ms(h.max),
        round(task.content_bytes / task.requests, 2) if task.requests else 0,
        round(task.requests / duration, 3),
        round(task.failures / duration, 3),
    ]


def _utc(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(int(timestamp), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_csv(stats: RunStats, prefix: str) -> list[Path]:
    """PREFIX_stats.csv, _stats_history.csv, _failures.csv, _exceptions.csv with Locust's columns
    (times in ms, fractional)."""
    written = []
    duration = stats.duration
    path = Path(f"{prefix}_stats.csv")
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(STATS_COLUMNS)
        for task in sorted(stats.tasks.values(), key=lambda t: (t.name, t.method)):
            w.writerow([*_stats_fields(task, duration), *_percentile_fields(task.histogram)])
        total = stats.total()
        w.writerow(["", *_stats_fields(total, duration)[1:], *_percentile_fields(total.histogram)])
    written.append(path)

    path = Path(f"{prefix}_stats_history.csv")
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HISTORY_COLUMNS)
        cumulative = TaskStats("Aggregated", "")
        for second, interval in sorted(stats.timeline.items()):
            cumulative.requests += interval.requests
            cumulative.failures += interval.failures
            cumulative.histogram.merge(interval.histogram)
            h = cumulative.histogram
            w.writerow(
                [
                    second,
                    interval.users,
                    "",
                    "Aggregated",
                    f"{interval.requests:2f}",
                    f"{interval.failures:2f}",
                    *_percentile_fields(h),
                    cumulative.requests,
                    cumulative.failures,
                    ms(h.percentile(50)),
                    ms(h.mean),
                    ms(h.min),
                    ms(h.max),
                    0,
                ]
            )
    written.append(path)

    path = Path(f"{prefix}_failures.csv")
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FAILURES_COLUMNS)
        for (task_name, failure), count in sorted(stats.failures.items()):
            method = stats.tasks[task_name].method if task_name in stats.tasks else ""
            w.writerow([method, task_name, failure, count.occurrences, _utc(count.first_seen), _utc(count.last_seen)])
    written.append(path)

    path = Path(f"{prefix}_exceptions.csv")
    with path.open("w", newline="") as f:
        csv.writer(f).writerow(EXCEPTIONS_COLUMNS)
    written.append(path)
    return written


def write_json(stats: RunStats, path: str) -> None:
    document = stats.to_json()
    document["summary"] = summary_json(stats)
    Path(path).write_text(json.dumps(document, indent=1) + "\n")


def summary_json(stats: RunStats) -> dict[str, object]:
    """Derived numbers for readers that do not want to decode histograms."""
    duration = stats.duration

    def task_summary(task: TaskStats) -> dict[str, object]:
        p = task.histogram.percentiles((50.0, 90.0, 95.0, 99.0, 99.9))
        return {
            "type": task.method,
            "requests": task.requests,
            "failures": task.failures,
            "rps": round(task.requests / duration, 3),
            "fail_rate": task.failures / task.requests if task.requests else 0.0,
            "p50_ms": ms(p[50.0]),
            "p90_ms": ms(p[90.0]),
            "p95_ms": ms(p[95.0]),
            "p99_ms": ms(p[99.0]),
            "p99_9_ms": ms(p[99.9]),
            "max_ms": ms(task.histogram.max),
            "avg_ms": ms(task.histogram.mean),
        }

    return {
        "duration_s": round(duration, 3),
        "tasks": {name: task_summary(t) for name, t in stats.tasks.items()},
        "total": task_summary(stats.total()),
        "failures_by_class": stats.failures_by_class(),
        "handshakes": stats.handshakes,
        "bytes_sent_per_s": round(stats.bytes_sent / duration, 1),
        "bytes_received_per_s": round(stats.bytes_received / duration, 1),
    }


def load_json(path: str) -> RunStats:
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    try:
        return RunStats.from_json(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not an mrapsim load JSON report ({exc})") from exc
