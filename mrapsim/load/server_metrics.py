"""The server's view of the same run: mrapsim's `/metrics` read before and after, set beside the
harness's counts (`mrapsim load --server-metrics http://127.0.0.1:9911`).

Rows compared: connections whose handshake completed (harness) vs `forwarded` connections
(server); handshakes classed `stalled` vs connections that ended `no_sni` or `unknown_sni`; and
for each S3 operation the harness's requests vs `mrapsim_s3_requests_total`. The objects the
harness writes before the run (setup) are added to the harness side, since the server saw them.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from mrapsim.load import failures
from mrapsim.load.stats import RunStats
from mrapsim.outcomes import Outcome

# Metric names as registered in mrapsim/metrics.py.
CONNECTIONS = "mrapsim_connections_total"
S3_REQUESTS = "mrapsim_s3_requests_total"
OPERATIONS = {"list": "ListObjectsV2", "get": "GetObject", "put": "PutObject", "head": "HeadObject"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_prometheus(text: str) -> Samples:
    """Raises ValueError for text that is not the Prometheus exposition format."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def fetch(admin_url: str, timeout: float = 5.0) -> Samples:
    url = admin_url.rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    with urllib.request.urlopen(f"{url}/metrics", timeout=timeout) as response:
        text = response.read().decode()
    try:
        return parse_prometheus(text)
    except ValueError as exc:
        raise OSError(f"{url}/metrics is not Prometheus text: {exc}") from exc


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@dataclass(frozen=True)
class Comparison:
    what: str
    harness: int  # the run's and the setup's requests
    server: int
    setup: int = 0  # of which the harness's setup (bucket check, objects written before the run)

    @property
    def difference(self) -> float:
        """Relative difference, as a fraction of the larger count."""
        larger = max(self.harness, self.server)
        return abs(self.harness - self.server) / larger if larger else 0.0


def compare(before: Samples, after: Samples, stats: RunStats) -> list[Comparison]:
    """Both sides count the setup: the server cannot tell it apart, so the harness adds it."""

    def delta(name: str, **labels: str) -> int:
        return round(total(after, name, **labels) - total(before, name, **labels))

    setup = stats.meta.get("setup", {})
    setup_requests: Mapping[str, int] = setup.get("requests", {"put": setup.get("puts", 0)})
    setup_connections = int(setup.get("connections", 0))
    rows = [
        Comparison(
            "connections: handshake ok / forwarded",
            stats.handshakes.get(failures.OK, 0) + setup_connections,
            delta(CONNECTIONS, outcome=Outcome.FORWARDED.value),
            setup_connections,
        ),
        Comparison(
            "connections: stalled / no_sni+unknown_sni",
            stats.handshakes.get(failures.STALLED, 0),
            delta(CONNECTIONS, outcome=Outcome.NO_SNI.value) + delta(CONNECTIONS, outcome=Outcome.UNKNOWN_SNI.value),
        ),
    ]
    for kind, operation in OPERATIONS.items():
        in_setup = int(setup_requests.get(kind, 0))
        requests = stats.operations.get(kind, 0) + in_setup
        server = delta(S3_REQUESTS, operation=operation)
        if requests or server:
            rows.append(Comparison(f"requests: {operation}", requests, server, in_setup))
    return rows


def render(rows: list[Comparison]) -> str:
    lines = [
        "mrapsim /metrics over the same interval (both sides include the setup)",
        f"  {'':<44} {'harness':>9} {'server':>9}  diff   setup",
    ]
    for row in rows:
        lines.append(f"  {row.what:<44} {row.harness:>9} {row.server:>9}  {100 * row.difference:.2f}%  {row.setup:>6}")
    return "\n".join(lines) + "\n"
