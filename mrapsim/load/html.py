"""The self-contained HTML report: tables plus four uPlot charts (requests and failures per
second, latency percentiles over time, the latency distribution, failures by class).

uPlot 1.6.32 (MIT, 51 KB) is vendored in `vendor/` and inlined, so the file opens anywhere,
offline, with nothing else beside it. The data go in as one JSON document; the page's script
only draws.
"""

from __future__ import annotations

import html
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from mrapsim.load.histogram import Histogram
from mrapsim.load.report import summary_json
from mrapsim.load.stats import RunStats
from mrapsim.load.thresholds import Verdict, format_observed

BINS_PER_DECADE = 20


def _vendor(name: str) -> str:
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
        "rps": [i.requests if i else 0 for i in timeline],
        "fps": [i.failures if i else 0 for i in timeline],
        "by_task": {name: [(i.by_task.get(name, 0) if i else 0) for i in timeline] for name in stats.tasks},
        "percentiles": percentiles,
        "dist": {"ms": edges, "count": counts},
        "failures": {"classes": list(by_class), "count": list(by_class.values())},
    }


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
        f"{duration:.1f} s, {stats.users} users, sent {stats.bytes_sent / duration / 1000:.1f} kB/s, "
        f"received {stats.bytes_received / duration / 1000:.1f} kB/s"
    )
    return _PAGE.format(
        title=html.escape(title),
        css=_vendor("uPlot.min.css"),
        js=_vendor("uPlot.iife.min.js"),
        data=data,
        meta=html.escape(meta),
        summary=_summary_rows(stats),
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
<h2>Requests</h2>
<table><tr><th>Type</th><th>Name</th><th># reqs</th><th># fails</th><th>req/s</th>
<th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>
{summary}
</table>
<div class="charts">
<div class="chart" id="rps"></div>
<div class="chart" id="latency"></div>
<div class="chart" id="dist"></div>
<div class="chart" id="failures"></div>
</div>
<h2>Thresholds</h2><table>{checks}</table>
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
