"""The self-contained HTML report: what was run (target, scenario, command line, time range, the
server cross-check), tables (per task, Locust's percentiles, thresholds, checks) and five uPlot
charts (users, requests and failures per second, latency percentiles over time, the latency
distribution, failures by class).

uPlot 1.6.32 (MIT, 51 KB) is vendored in `vendor/` and inlined, so the file opens anywhere,
offline, with nothing else beside it. The data go in as one JSON document; the page's script
only draws.
"""

from __future__ import annotations

import datetime
import html
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from mrapsim.load.histogram import Histogram
from mrapsim.load.report import LOCUST_PERCENTILES, ms, readable_percentiles, summary_json
from mrapsim.load.stats import RunStats
from mrapsim.load.thresholds import Verdict, format_observed

BINS_PER_DECADE = 20


def vendor(name: str) -> str:
    try:
        return resources.files("mrapsim.load").joinpath("vendor", name).read_text(encoding="utf-8")
    except OSError as exc:
        raise RuntimeError(
            f"mrapsim/load/vendor/{name} is missing from this installation: the package data was not installed"
        ) from exc


def distribution_bins(h: Histogram) -> tuple[list[float], list[int]]:
    """Counts re-binned on a log scale (ms bin lower edges), for a readable bar chart."""
    bins: dict[int, int] = {}
    for low_us, count in h.distribution():
        b = math.floor(math.log10(max(low_us, 1)) * BINS_PER_DECADE)
        bins[b] = bins.get(b, 0) + count
    if not bins:
        return [], []
    keys = range(min(bins), max(bins) + 1)
    return [round(10 ** (k / BINS_PER_DECADE) / 1000, 4) for k in keys], [bins.get(k, 0) for k in keys]


def chart_data(stats: RunStats) -> dict[str, Any]:
    seconds = sorted(stats.timeline)
    if seconds:
        seconds = list(range(seconds[0], seconds[-1] + 1))
    empty = Histogram()
    timeline = [stats.timeline.get(s) for s in seconds]
    percentiles: dict[str, list[float | None]] = {"p50": [], "p90": [], "p99": []}
    for interval in timeline:
        h = interval.histogram if interval is not None else empty
        p = h.percentiles((50.0, 90.0, 99.0))
        for key, value in (("p50", p[50.0]), ("p90", p[90.0]), ("p99", p[99.0])):
            percentiles[key].append(round(value / 1000, 3) if h.total else None)
    edges, counts = distribution_bins(stats.total().histogram)
    by_class = {k: sum(v.values()) for k, v in stats.failures_by_class().items()}
    return {
        "t": seconds,
        "users": _users(seconds, stats),
        "rps": [i.requests if i else 0 for i in timeline],
        "fps": [i.failures if i else 0 for i in timeline],
        "by_task": {name: [(i.by_task.get(name, 0) if i else 0) for i in timeline] for name in stats.tasks},
        "percentiles": percentiles,
        "dist": {"ms": edges, "count": counts},
        "failures": {"classes": list(by_class), "count": list(by_class.values())},
    }


def _users(seconds: list[int], stats: RunStats) -> list[int]:
    """Users running each second; a second without a sample keeps the previous value."""
    users, last = [], 0
    for second in seconds:
        interval = stats.timeline.get(second)
        last = interval.users if interval is not None else last
        users.append(last)
    return users


def _cell(value: object) -> str:
    return f"<td>{html.escape(str(value))}</td>"


def _percentile_rows(stats: RunStats) -> str:
    """Locust's percentile columns, per task and aggregated (ms)."""
    tasks = [*stats.tasks.values(), stats.total()]
    rows = []
    for task in tasks:
        h = task.histogram
        values = h.percentiles(p * 100 for p in LOCUST_PERCENTILES) if h.total else {}
        cells = [ms(values[p * 100]) if h.total else "-" for p in LOCUST_PERCENTILES]
        rows.append(
            "<tr>"
            + _cell(task.method)
            + _cell(task.name)
            + _cell(task.requests)
            + _cell(ms(h.mean) if h.total else "-")
            + "".join(_cell(c) for c in cells)
            + _cell(task.stalled)
            + "</tr>"
        )
    return "\n".join(rows)


def _utc(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _run_rows(stats: RunStats) -> list[tuple[str, str]]:
    """What was run: target, scenario, load model, command line, time range, credentials."""
    run: dict[str, Any] = stats.meta.get("run", {})
    connect = f" (connecting to {run['connect']})" if run.get("connect") else ""
    source = f" — {run['scenario_source']}" if run.get("scenario_source") else ""
    pairs = [
        ("target", str(run.get("target", "?")) + connect),
        ("scenario", str(run.get("scenario", "?")) + source),
        ("tasks", ", ".join(run.get("tasks", stats.tasks))),
        ("load", str(run.get("model", f"{stats.users} users"))),
        ("command", str(run.get("command", "?"))),
        ("keys", str(run.get("credentials", "?"))),
        ("started", _utc(stats.started) if stats.started else "?"),
        ("ended", (_utc(stats.ended) if stats.ended else "?") + f" ({stats.duration:.1f} s)"),
    ]
    if stats.meta.get("processes"):
        pairs.append(("processes", str(stats.meta["processes"])))
    if stats.meta.get("aborted"):
        pairs.append(("stopped early", str(stats.meta["aborted"])))
    return pairs


def _server_rows(stats: RunStats) -> str:
    rows = stats.meta.get("server_metrics")
    if not rows:
        return "<tr><td>not read (give --server-metrics with mrapsim's admin address)</td></tr>"
    head = "<tr><th>what</th><th>harness</th><th>server</th><th>diff</th><th>of which setup</th></tr>"
    body = []
    for r in rows:
        larger = max(r["harness"], r["server"])
        diff = abs(r["harness"] - r["server"]) / larger if larger else 0.0
        body.append(
            "<tr>"
            + _cell(r["what"])
            + _cell(r["harness"])
            + _cell(r["server"])
            + _cell(f"{100 * diff:.2f}%")
            + _cell(r.get("setup", 0))
            + "</tr>"
        )
    return head + "\n".join(body)


def _check_rows(stats: RunStats) -> list[tuple[str, str]]:
    return [
        (f"{'✓' if bad == 0 else '✗'} {task}: {check}", f"{good} passed, {bad} failed")
        for (task, check), (good, bad) in sorted(stats.checks.items())
    ]


def _summary_rows(stats: RunStats) -> str:
    s = summary_json(stats)
    rows = []
    tasks: dict[str, dict[str, Any]] = dict(s["tasks"])  # type: ignore[call-overload]
    tasks["Aggregated"] = s["total"]  # type: ignore[assignment]
    for name, t in tasks.items():
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    t["type"],
                    name,
                    t["requests"],
                    t["failures"],
                    t["rps"],
                    t["p50_ms"],
                    t["p90_ms"],
                    t["p99_ms"],
                    t["max_ms"],
                )
            )
            + "</tr>"
        )
    return "\n".join(rows)


def _list_rows(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>" for a, b in pairs)


def render_html(stats: RunStats, verdicts: list[Verdict], title: str = "mrapsim load") -> str:
    data = json.dumps(chart_data(stats)).replace("</", "<\\/")
    failures = [
        (f"{cls} ({', '.join(f'{t} {n}' for t, n in tasks.items())})", str(sum(tasks.values())))
        for cls, tasks in stats.failures_by_class().items()
    ]
    handshakes = [(k, str(v)) for k, v in sorted(stats.handshakes.items())]
    checks = [(("✓ " if v.passed else "✗ ") + v.threshold.text, format_observed(v)) for v in verdicts]
    duration = stats.duration
    meta = (
        f"{duration:.1f} s, {stats.users} users at most, sent {stats.bytes_sent / duration / 1000:.1f} kB/s, "
        f"received {stats.bytes_received / duration / 1000:.1f} kB/s"
    )
    return _PAGE.format(
        title=html.escape(title),
        css=vendor("uPlot.min.css"),
        js=vendor("uPlot.iife.min.js"),
        data=data,
        meta=html.escape(meta),
        summary=_summary_rows(stats),
        run=_list_rows(_run_rows(stats)),
        percentile_head="".join(f"<th>{p}</th>" for p in readable_percentiles(LOCUST_PERCENTILES)),
        percentiles=_percentile_rows(stats),
        server=_server_rows(stats),
        check_rows=_list_rows(_check_rows(stats)) or "<tr><td>none</td><td></td></tr>",
        failures=_list_rows(failures) or "<tr><td>none</td><td></td></tr>",
        handshakes=_list_rows(handshakes) or "<tr><td>none</td><td></td></tr>",
        checks=_list_rows(checks) or "<tr><td>none</td><td></td></tr>",
    )


def write_html(stats: RunStats, verdicts: list[Verdict], path: str) -> None:
    Path(path).write_text(render_html(stats, verdicts), encoding="utf-8")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{css}</style>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
td:first-child, th:first-child, td:nth-child(2) {{ text-align: left; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1em; }}
.chart {{ border: 1px solid #ddd; padding: .5em; }}
h2 {{ margin-top: 1.2em; }}
</style></head>
<body>
<h1>{title}</h1>
<p>{meta}</p>
<h2>What was run</h2><table id="run">{run}</table>
<h2>Requests</h2>
<table><tr><th>Type</th><th>Name</th><th># reqs</th><th># fails</th><th>req/s</th>
<th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>
{summary}
</table>
<h2>Response time percentiles (ms; stalled handshakes are not in them)</h2>
<table id="percentiles"><tr><th>Type</th><th>Name</th><th># reqs</th><th>avg</th>{percentile_head}<th>stalled</th></tr>
{percentiles}
</table>
<div class="charts">
<div class="chart" id="users"></div>
<div class="chart" id="rps"></div>
<div class="chart" id="latency"></div>
<div class="chart" id="dist"></div>
<div class="chart" id="failures"></div>
</div>
<h2>Thresholds</h2><table>{checks}</table>
<h2>Checks</h2><table>{check_rows}</table>
<h2>Server cross-check (mrapsim /metrics; both sides count the setup)</h2><table id="server">{server}</table>
<h2>Failures by class</h2><table>{failures}</table>
<h2>Handshakes</h2><table>{handshakes}</table>
<script>{js}</script>
<script type="application/json" id="data">{data}</script>
<script>
const D = JSON.parse(document.getElementById("data").textContent);
const W = 560, H = 280;
const palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"];
function line(label, color) {{ return {{label, stroke: color, width: 2}}; }}
const tasks = Object.keys(D.by_task);
new uPlot({{title: "Users", width: W, height: H,
  series: [{{}}, {{label: "users", stroke: palette[4], width: 2, fill: palette[4] + "33"}}],
  axes: [{{}}, {{label: "users"}}]}},
  [D.t, D.users], document.getElementById("users"));
new uPlot({{title: "Requests per second", width: W, height: H,
  series: [{{}}, line("total", palette[0]), line("failures", palette[1]),
           ...tasks.map((t, i) => ({{label: t, stroke: palette[(i + 2) % palette.length], width: 1, dash: [4, 3]}}))],
  axes: [{{}}, {{label: "req/s"}}]}},
  [D.t, D.rps, D.fps, ...tasks.map(t => D.by_task[t])], document.getElementById("rps"));
new uPlot({{title: "Latency percentiles per second (ms)", width: W, height: H,
  series: [{{}}, line("p50", palette[2]), line("p90", palette[3]), line("p99", palette[1])],
  axes: [{{}}, {{label: "ms"}}]}},
  [D.t, D.percentiles.p50, D.percentiles.p90, D.percentiles.p99], document.getElementById("latency"));
const bars = uPlot.paths.bars({{size: [0.9, 40]}});
new uPlot({{title: "Latency distribution (all requests)", width: W, height: H,
  scales: {{x: {{time: false, distr: 3}}}},
  series: [{{label: "ms"}}, {{label: "requests", stroke: palette[0], fill: palette[0] + "99", paths: bars}}],
  axes: [{{label: "ms (log)"}}, {{label: "requests"}}]}},
  [D.dist.ms, D.dist.count], document.getElementById("dist"));
const classes = D.failures.classes;
new uPlot({{title: "Failures by class", width: W, height: H,
  scales: {{x: {{time: false, range: [-0.5, Math.max(classes.length, 1) - 0.5]}}}},
  series: [{{label: "class", value: (u, v) => classes[v] ?? ""}},
           {{label: "failures", stroke: palette[1], fill: palette[1] + "99", paths: bars}}],
  axes: [{{values: (u, vals) => vals.map(v => Number.isInteger(v) ? (classes[v] ?? "") : ""),
           splits: () => classes.map((_, i) => i)}}, {{label: "failures"}}]}},
  [classes.map((_, i) => i), D.failures.count], document.getElementById("failures"));
</script>
</body></html>
"""
