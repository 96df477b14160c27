"""Pass/fail criteria in the spirit of k6: `p99<50ms`, `fail_rate<0.01`, `rps>500`,
optionally for one task: `get:p99<20ms`.

Metrics: `pN` (any percentile, e.g. p50, p99.9), `avg`, `min`, `max`, `med` (latencies; unit
`us`, `ms` (default) or `s`), `fail_rate` (0–1), `rps`, `fail_rps`, `requests`, `failures`.
A failed threshold makes `mrapsim load` exit with code 99 (k6's ThresholdsHaveFailed).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from mrapsim.load.stats import RunStats, TaskStats

EXIT_THRESHOLDS_FAILED = 99

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}
_GRAMMAR = re.compile(
    r"^\s*(?:(?P<task>[^:\s]+):)?(?P<metric>p\d+(?:\.\d+)?|avg|min|max|med|fail_rate|rps|fail_rps"
    r"|requests|failures)\s*(?P<op><=|>=|==|<|>)\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>us|µs|ms|s)?\s*$"
)
_UNIT_US = {"us": 1.0, "µs": 1.0, "ms": 1000.0, "s": 1_000_000.0}
LATENCY_METRICS = ("avg", "min", "max", "med")


@dataclass(frozen=True)
class Threshold:
    text: str
    metric: str
    op: str
    value: float  # in µs for latencies, as given otherwise
    task: str | None = None

    @property
    def is_latency(self) -> bool:
        return self.metric.startswith("p") or self.metric in LATENCY_METRICS


@dataclass(frozen=True)
class Verdict:
    threshold: Threshold
    observed: float
    passed: bool

    def render(self) -> str:
        mark = "✓" if self.passed else "✗"
        return f"  {mark} '{self.threshold.text}' {self.threshold.metric}={format_observed(self)}"


def parse_threshold(text: str) -> Threshold:
    match = _GRAMMAR.match(text)
    if match is None:
        raise ValueError(
            f"threshold {text!r}: write METRIC OP VALUE, like p99<50ms, fail_rate<0.01, rps>500 or get:p99<20ms"
        )
    metric, unit = match["metric"], match["unit"]
    value = float(match["value"])
    latency = metric.startswith("p") or metric in LATENCY_METRICS
    if latency:
        value *= _UNIT_US[unit or "ms"]
    elif unit:
        raise ValueError(f"threshold {text!r}: {metric} takes no unit")
    if metric.startswith("p") and not 0 < float(metric[1:]) <= 100:
        raise ValueError(f"threshold {text!r}: a percentile is between 0 and 100")
    return Threshold(text.strip(), metric, match["op"], value, match["task"])


def observe(threshold: Threshold, stats: RunStats) -> float:
    if threshold.task is None:
        task = stats.total()
    elif threshold.task in stats.tasks:
        task = stats.tasks[threshold.task]
    else:
        raise ValueError(f"threshold {threshold.text!r}: no task named {threshold.task!r}")
    return _metric(threshold.metric, task, stats.duration)


def _metric(metric: str, task: TaskStats, duration: float) -> float:
    h = task.histogram
    if metric.startswith("p"):
        return float(h.percentile(float(metric[1:])))
    values: dict[str, float] = {
        "avg": h.mean,
        "min": float(h.min),
        "max": float(h.max),
        "med": float(h.percentile(50)),
        "fail_rate": task.failures / task.requests if task.requests else 0.0,
        "rps": task.requests / duration,
        "fail_rps": task.failures / duration,
        "requests": float(task.requests),
        "failures": float(task.failures),
    }
    return values[metric]


def evaluate(thresholds: list[Threshold], stats: RunStats) -> list[Verdict]:
    verdicts = []
    for threshold in thresholds:
        observed = observe(threshold, stats)
        verdicts.append(Verdict(threshold, observed, _OPERATORS[threshold.op](observed, threshold.value)))
    return verdicts


def format_observed(verdict: Verdict) -> str:
    if verdict.threshold.is_latency:
        return f"{verdict.observed / 1000:.3f}ms"
    if verdict.threshold.metric == "fail_rate":
        return f"{verdict.observed:.4f}"
    return f"{verdict.observed:.1f}" if verdict.threshold.metric.endswith("rps") else f"{verdict.observed:.0f}"


def render_verdicts(verdicts: list[Verdict]) -> str:
    if not verdicts:
        return ""
    return "█ THRESHOLDS\n" + "".join(v.render() + "\n" for v in verdicts)
