"""The live view while a run goes (`mrapsim load --web 127.0.0.1:8089`): a page with charts of
users, requests and failures per second and latency percentiles, the per-task table and the
failure table, refreshed every second; `/stats` (the same data as JSON) and `/metrics`
(Prometheus text, for a Prometheus that scrapes the harness during long runs).

The server runs in a thread with the standard library's HTTP server, apart from the load: the
run publishes a snapshot once a second (`publish`, from whatever drives the run — the trio loop,
or the parent of several worker processes), and requests only read the latest one, so a slow
browser never holds up the load, and the page works the same for one process or several.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from mrapsim.load.html import chart_data, vendor
from mrapsim.load.report import summary_json
from mrapsim.load.stats import RunStats
from mrapsim.names import split_host_port

QUANTILES = (50.0, 90.0, 95.0, 99.0)


def snapshot(stats: RunStats, run: dict[str, Any], state: str) -> dict[str, Any]:
    """What the page draws: the charts' series, the tables, the state of the run."""
    chart = chart_data(stats)
    chart.pop("dist", None)
    return {
        "state": state,
        "run": run,
        "started": stats.started,
        "elapsed": round(time.time() - stats.started, 1) if stats.started else 0.0,
        "users": stats.running,
        "chart": chart,
        "summary": summary_json(stats),
        "failures": [
            {"task": task, "class": failure, "occurrences": c.occurrences}
            for (task, failure), c in sorted(stats.failures.items(), key=lambda kv: -kv[1].occurrences)
        ],
        "checks": [
            {"task": t, "check": c, "passes": n[0], "fails": n[1]} for (t, c), n in sorted(stats.checks.items())
        ],
    }


class _StatsCollector(Collector):
    """The latest stats as Prometheus metrics (mrapsim_load_*)."""

    def __init__(self) -> None:
        self.stats: RunStats | None = None

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        if stats is None:
            return
        requests = CounterMetricFamily("mrapsim_load_requests", "Requests finished", labels=["task", "method"])
        failures = CounterMetricFamily("mrapsim_load_failures", "Failed requests by class", labels=["task", "class"])
        stalled = CounterMetricFamily("mrapsim_load_stalled", "Stalled handshakes", labels=["task"])
        latency = GaugeMetricFamily(
            "mrapsim_load_response_time_seconds",
            "Response time percentiles since the start",
            labels=["task", "quantile"],
        )
        for task in stats.tasks.values():
            requests.add_metric([task.name, task.method], task.requests)
            stalled.add_metric([task.name], task.stalled)
            if task.histogram.total:
                values = task.histogram.percentiles(QUANTILES)
                for q in QUANTILES:
                    latency.add_metric([task.name, f"{q / 100:g}"], values[q] / 1e6)
        for (task_name, failure), count in stats.failures.items():
            failures.add_metric([task_name, failure], count.occurrences)
        handshakes = CounterMetricFamily("mrapsim_load_handshakes", "New connections by outcome", labels=["outcome"])
        for outcome, n in stats.handshakes.items():
            handshakes.add_metric([outcome], n)
        checks = CounterMetricFamily("mrapsim_load_checks", "Checks by result", labels=["task", "check", "result"])
        for (task_name, check), (good, bad) in stats.checks.items():
            checks.add_metric([task_name, check, "pass"], good)
            checks.add_metric([task_name, check, "fail"], bad)
        users = GaugeMetricFamily("mrapsim_load_users", "Users running now")
        users.add_metric([], stats.running)
        yield from (requests, failures, stalled, latency, handshakes, checks, users)


class _Server6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


class LiveServer:
    """The page, /stats and /metrics on HOST:PORT (port 0: one the OS picks), in a thread."""

    def __init__(self, server: http.server.ThreadingHTTPServer, run: dict[str, Any]) -> None:
        self.server = server
        self.run = run
        self.collector = _StatsCollector()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self.page = _PAGE.replace("/*CSS*/", vendor("uPlot.min.css")).replace("/*JS*/", vendor("uPlot.iife.min.js"))
        self.latest = json.dumps(snapshot(RunStats(), run, "starting")).encode()
        self.thread = threading.Thread(target=server.serve_forever, name="mrapsim-load-live", daemon=True)

    @classmethod
    def start(cls, address: str, run: dict[str, Any]) -> LiveServer:
        host, port = split_host_port(address, 8089)
        live: LiveServer

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/":
                    self._send(200, "text/html; charset=utf-8", live.page.encode())
                elif path == "/stats":
                    self._send(200, "application/json", live.latest)
                elif path == "/metrics":
                    self._send(200, "text/plain; version=0.0.4; charset=utf-8", generate_latest(live.registry))
                else:
                    self._send(404, "text/plain", b"not found: try /, /stats or /metrics\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.send_header("cache-control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # the run's output stays the run's
                pass

        server_class = _Server6 if ":" in host else http.server.ThreadingHTTPServer
        server = server_class((host, port), Handler)
        server.daemon_threads = True
        live = cls(server, run)
        live.thread.start()
        return live

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/"

    def publish(self, stats: RunStats, state: str = "running") -> None:
        """A new snapshot (from the thread driving the run); readers see whole snapshots only."""
        ended = stats.ended
        stats.ended = time.time()
        try:
            self.latest = json.dumps(snapshot(stats, self.run, state)).encode()
            self.collector.stats = stats
        finally:
            stats.ended = ended

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mrapsim load — live</title>
<style>/*CSS*/</style>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td:first-child, th:first-child, td:nth-child(2), th:nth-child(2) { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
.chart { border: 1px solid #ddd; padding: .5em; }
#state { font-weight: bold; }
</style></head>
<body>
<h1>mrapsim load — live</h1>
<p><span id="state">starting</span> · <span id="elapsed">0</span> s · <span id="users">0</span> users ·
<span id="target"></span> · scenario <span id="scenario"></span></p>
<div class="charts">
<div class="chart" id="c-users"></div>
<div class="chart" id="c-rps"></div>
<div class="chart" id="c-latency"></div>
<div class="chart" id="c-failures"></div>
</div>
<h2>Requests</h2>
<table id="tasks"><thead><tr><th>Type</th><th>Name</th><th># reqs</th><th># fails</th><th>req/s</th>
<th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr></thead><tbody></tbody></table>
<h2>Failures</h2>
<table id="failures"><thead><tr><th>Task</th><th>Class</th><th>Occurrences</th></tr></thead><tbody></tbody></table>
<h2>Checks</h2>
<table id="checks"><thead><tr><th>Task</th><th>Check</th><th>passed</th><th>failed</th></tr></thead>
<tbody></tbody></table>
<script>/*JS*/</script>
<script>
const W = 560, H = 260;
const palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];
const line = (label, color) => ({label, stroke: color, width: 2});
const empty = [[], []];
const charts = {
  users: new uPlot({title: "Users", width: W, height: H,
    series: [{}, {label: "users", stroke: palette[4], width: 2, fill: palette[4] + "33"}]},
    empty, document.getElementById("c-users")),
  rps: new uPlot({title: "Requests per second", width: W, height: H,
    series: [{}, line("requests", palette[0])]}, empty, document.getElementById("c-rps")),
  latency: new uPlot({title: "Latency percentiles per second (ms)", width: W, height: H,
    series: [{}, line("p50", palette[2]), line("p90", palette[3]), line("p99", palette[1])]},
    [[], [], [], []], document.getElementById("c-latency")),
  failures: new uPlot({title: "Failures per second", width: W, height: H,
    series: [{}, line("failures", palette[1])]}, empty, document.getElementById("c-failures")),
};
function cell(v) { const td = document.createElement("td"); td.textContent = v; return td; }
function fill(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows.map(r => {
    const tr = document.createElement("tr"); tr.append(...r.map(cell)); return tr; }));
}
async function refresh() {
  let s;
  try { s = await (await fetch("stats", {cache: "no-store"})).json(); } catch (e) {
    document.getElementById("state").textContent = "finished (the harness has stopped)"; return; }
  document.getElementById("state").textContent = s.state;
  document.getElementById("elapsed").textContent = s.elapsed;
  document.getElementById("users").textContent = s.users;
  document.getElementById("target").textContent = (s.run && s.run.target) || "";
  document.getElementById("scenario").textContent = (s.run && s.run.scenario) || "";
  const c = s.chart;
  charts.users.setData([c.t, c.users]);
  charts.rps.setData([c.t, c.rps]);
  charts.latency.setData([c.t, c.percentiles.p50, c.percentiles.p90, c.percentiles.p99]);
  charts.failures.setData([c.t, c.fps]);
  const tasks = Object.entries(s.summary.tasks).concat([["Aggregated", s.summary.total]]);
  fill("tasks", tasks.map(([n, t]) =>
    [t.type, n, t.requests, t.failures, t.rps, t.p50_ms, t.p90_ms, t.p99_ms, t.max_ms]));
  fill("failures", s.failures.map(f => [f.task, f.class, f.occurrences]));
  fill("checks", s.checks.map(c => [c.task, c.check, c.passes, c.fails]));
  document.body.dataset.requests = s.summary.total.requests;
}
refresh();
setInterval(refresh, 1000);
</script>
</body></html>
"""
