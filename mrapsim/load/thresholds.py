"""Pass/fail criteria, in mrapsim's own syntax or k6's.

mrapsim: `p99<50ms`, `fail_rate<0.01`, `rps>500`, per task `get:p99<20ms`.
k6: `p(95)<500` (milliseconds, as k6's `http_req_duration`), `rate<0.01` (the failed-request
rate, k6's `http_req_failed`), `checks>0.99` (the share of passed checks), `count>1000`; a k6
metric name may lead (`http_req_duration:p(95)<500`, `http_req_failed:rate<0.01`,
`checks:rate>0.99`) and a task may be picked with k6's tag filter
(`http_req_duration{name:get}:p(95)<20`) or mrapsim's prefix (`get:p(95)<20`).

Metrics: `pN` / `p(N)` (any percentile), `avg`, `min`, `max`, `med` (latencies; unit `us`, `ms`
(default) or `s`; stalled handshakes are not latencies and are never in them), `fail_rate` /
`rate`, `rps`, `fail_rps`, `requests` / `count`, `failures`, `stalled`, `stalled_rate`, `checks`.

k6's `abortOnFail` is a word after the expression: `'rate<0.01 abortOnFail'`, optionally with
`delayAbortEval=10s`; such a threshold is evaluated every second during the run, and the run stops
(reports still written, exit 99) the first time it fails.

Thresholds are parsed and their task names checked against the scenario before the run starts
(`validate`), so a typo costs a second, not the run. A failed threshold makes `mrapsim load` exit
with code 99 (k6's ThresholdsHaveFailed).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mrapsim.config import parse_duration
from mrapsim.load.stats import RunStats, TaskStats

EXIT_THRESHOLDS_FAILED = 99

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_GRAMMAR = re.compile(
    r"^\s*(?:(?P<k6>http_req_duration|http_req_failed|http_reqs|iterations|checks)"
    r"(?:\{\s*name\s*:\s*(?P<tag>[^}\s]+)\s*\})?\s*:\s*)?"
    r"(?:(?P<task>[^:\s(){}]+)\s*:\s*)?"
    r"(?P<metric>p\d+(?:\.\d+)?|p\(\s*\d+(?:\.\d+)?\s*\)|avg|min|max|med|fail_rate|rate|rps|fail_rps"
    r"|requests|count|failures|stalled_rate|stalled|checks)"
    r"\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>us|µs|ms|s)?\s*$"
)
_UNIT_US = {"us": 1.0, "µs": 1.0, "ms": 1000.0, "s": 1_000_000.0}
LATENCY_METRICS = ("avg", "min", "max", "med")
RATE_METRICS = ("fail_rate", "stalled_rate", "checks")
_ALIASES = {"count": "requests"}


@dataclass(frozen=True)
class Threshold:
    text: str
    metric: str
    op: str
    value: float  # in µs for latencies, as given otherwise
    task: str | None = None
    abort_on_fail: bool = False
    delay_abort_eval: float = 0.0  # seconds into the run before an abortOnFail may stop it

    @property
    def is_latency(self) -> bool:
        return self.metric.startswith("p") or self.metric in LATENCY_METRICS


@dataclass(frozen=True)
class Verdict:
    threshold: Threshold
    observed: float
    passed: bool
    note: str = ""

    def render(self) -> str:
        mark = "✓" if self.passed else "✗"
        note = f" ({self.note})" if self.note else ""
        return f"  {mark} '{self.threshold.text}' {self.threshold.metric}={format_observed(self)}{note}"


def parse_threshold(text: str) -> Threshold:
    """One threshold; ValueError says what is wrong with it."""
    words = text.split()
    abort = False
    delay = 0.0
    while words and (words[-1] == "abortOnFail" or words[-1].startswith("delayAbortEval=")):
        word = words.pop()
        if word == "abortOnFail":
            abort = True
        else:
            delay = parse_duration(word.split("=", 1)[1], f"threshold {text!r}: delayAbortEval")
    expression = " ".join(words)
    match = _GRAMMAR.match(expression)
    if match is None:
        raise ValueError(
            f"threshold {text!r}: write METRIC OP VALUE, like p99<50ms, p(95)<500, rate<0.01, "
            "checks>0.99, rps>500 or get:p99<20ms (optionally followed by abortOnFail)"
        )
    metric = match["metric"].replace(" ", "")
    if metric.startswith("p("):
        metric = "p" + metric[2:-1]
    metric = _k6_metric(match["k6"], metric, text)
    if match["tag"] and match["task"]:
        raise ValueError(f"threshold {text!r}: name the task once ({{name:…}} or a prefix)")
    task = match["tag"] or match["task"]
    unit = match["unit"]
    value = float(match["value"])
    latency = metric.startswith("p") or metric in LATENCY_METRICS
    if latency:
        value *= _UNIT_US[unit or "ms"]
    elif unit:
        raise ValueError(f"threshold {text!r}: {metric} takes no unit")
    if metric.startswith("p") and not 0 < float(metric[1:]) <= 100:
        raise ValueError(f"threshold {text!r}: a percentile is between 0 and 100")
    if metric in RATE_METRICS and value > 1:
        raise ValueError(f"threshold {text!r}: {metric} is a fraction between 0 and 1")
    return Threshold(text.strip(), metric, match["op"], value, task, abort, delay)


def _k6_metric(k6: str | None, metric: str, text: str) -> str:
    """The metric meant, given k6's metric name (if any) and the aggregation written."""
    if k6 is None:
        return "fail_rate" if metric == "rate" else _ALIASES.get(metric, metric)
    if k6 == "http_req_duration":
        if metric.startswith("p") or metric in LATENCY_METRICS:
            return metric
    elif k6 == "http_req_failed":
        if metric in ("rate", "fail_rate"):
            return "fail_rate"
        if metric in ("count", "failures"):
            return "failures"
    elif k6 == "checks":
        if metric in ("rate", "checks"):
            return "checks"
    elif metric in ("count", "requests"):
        return "requests"
    elif metric == "rate":
        return "rps"
    raise ValueError(f"threshold {text!r}: {k6} has no {metric!r}")


def validate(thresholds: Iterable[Threshold], task_names: Iterable[str]) -> None:
    """Before the run: every task a threshold names exists (ValueError otherwise)."""
    names = sorted(set(task_names))
    for threshold in thresholds:
        if threshold.task is not None and threshold.task not in names:
            raise ValueError(
                f"threshold {threshold.text!r}: no task named {threshold.task!r} in the scenario "
                f"(tasks: {', '.join(names)})"
            )


def observe(threshold: Threshold, stats: RunStats) -> float | None:
    """The observed value, or None when the task never ran."""
    if threshold.metric == "checks":
        passes, fails = stats.check_totals(threshold.task)
        return passes / (passes + fails) if passes + fails else None
    if threshold.task is None:
        task = stats.total()
    elif threshold.task in stats.tasks:
        task = stats.tasks[threshold.task]
    else:
        return None
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
        "stalled": float(task.stalled),
        "stalled_rate": task.stalled / task.requests if task.requests else 0.0,
    }
    return values[metric]


def evaluate(thresholds: list[Threshold], stats: RunStats) -> list[Verdict]:
    """Never raises: a task that never ran, or no checks at all, fails its threshold with a note."""
    verdicts = []
    for threshold in thresholds:
        observed = observe(threshold, stats)
        if observed is None:
            what = "no checks ran" if threshold.metric == "checks" else f"task {threshold.task!r} never ran"
            verdicts.append(Verdict(threshold, 0.0, False, what))
            continue
        verdicts.append(Verdict(threshold, observed, _OPERATORS[threshold.op](observed, threshold.value)))
    return verdicts


def abort_verdict(thresholds: list[Threshold], stats: RunStats, elapsed: float) -> Verdict | None:
    """During the run: the first abortOnFail threshold past its delay that fails now."""
    due = [t for t in thresholds if t.abort_on_fail and elapsed >= t.delay_abort_eval]
    return next((v for v in evaluate(due, stats) if not v.passed), None)


def format_observed(verdict: Verdict) -> str:
    if verdict.threshold.is_latency:
        return f"{verdict.observed / 1000:.3f}ms"
    if verdict.threshold.metric in RATE_METRICS:
        return f"{verdict.observed:.4f}"
    return f"{verdict.observed:.1f}" if verdict.threshold.metric.endswith("rps") else f"{verdict.observed:.0f}"


def render_verdicts(verdicts: list[Verdict]) -> str:
    if not verdicts:
        return ""
    return "█ THRESHOLDS\n" + "".join(v.render() + "\n" for v in verdicts)
