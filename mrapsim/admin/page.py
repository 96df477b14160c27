"""The admin page: `GET /` serves one self-contained HTML page (admin/page.html, uPlot inlined
from load/vendor/), and `GET /events` streams a snapshot of what the edge sees once a second as
server-sent events, which the page draws.

The snapshot is built over the `AdminBackend` protocol only (`/metrics`, `/connections`,
`/faults`, `/mraps` with its replication backlog), so the page works alike for one process and
for the supervisor of `--workers N`, which merges its workers' answers. One stream per open page,
one snapshot a second. The one other call the page repeats is for the connection whose detail is
open: `GET /requests?connection=<id>`, when a snapshot arrives and the last answer is in (the
stream does not know what the page has open, and the requests of one connection are small).

How the page authenticates (admin/guard.py): `/` is a static page that carries no data, so it is
open like `/healthz` (the Host check still applies); `/events` and every call the page makes go
through the guard as any other read or change. The page reads `/events` with `fetch()` streaming
rather than `EventSource`, because `fetch()` can send `Authorization: Bearer <token>`: on
loopback no token is needed; beyond loopback, or to change faults when `[admin] token` is set,
the user pastes the token into the page, which keeps it in `sessionStorage` (never in the URL,
never in a cookie, so no other site's request can carry it).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from functools import cache
from importlib import resources
from typing import Any

import trio
from prometheus_client.parser import text_string_to_metric_families

from mrapsim.admin.backend import AdminBackend, BackendError
from mrapsim.edge.records import RecordQuery
from mrapsim.logs import explain_document

SNAPSHOT_SECONDS = 1.0
RECENT_CONNECTIONS = 200  # the page filters among these


@cache
def page_html() -> str:
    """The page with uPlot's script and style inlined (read once: the package does not change)."""
    package = resources.files("mrapsim")
    page = package.joinpath("admin", "page.html").read_text(encoding="utf-8")
    vendor = package.joinpath("load", "vendor")
    return page.replace("/*UPLOT_CSS*/", vendor.joinpath("uPlot.min.css").read_text(encoding="utf-8")).replace(
        "/*UPLOT_JS*/", vendor.joinpath("uPlot.iife.min.js").read_text(encoding="utf-8")
    )


async def snapshot(backend: AdminBackend) -> dict[str, Any]:
    """What the page shows, now: counters (the page charts their differences), the recent
    connections with a refusal's explanation, the faults and the MRAPs."""
    metrics_text, records, faults, mraps = await _gather(backend)
    recent = []
    for record in records:
        recent.append({**record, "explanation": _explanation(backend, record)})
    return {"time": time.time(), **summarize_metrics(metrics_text), "recent": recent, "faults": faults, "mraps": mraps}


async def _gather(
    backend: AdminBackend,
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    results: dict[str, Any] = {}

    async def one(name: str, ask: Any) -> None:
        results[name] = await ask()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, "metrics", backend.metrics)
        nursery.start_soon(one, "records", lambda: backend.connections(RecordQuery(limit=RECENT_CONNECTIONS)))
        nursery.start_soon(one, "faults", backend.faults)
        nursery.start_soon(one, "mraps", backend.mraps)
    return results["metrics"].decode(), results["records"], results["faults"], results["mraps"]


def _explanation(backend: AdminBackend, record: dict[str, Any]) -> str | None:
    try:
        stall_timeout = backend.config.listener(record["listener"]).stall_timeout
    except (KeyError, LookupError, AttributeError):
        stall_timeout = 300.0
    return explain_document(record, stall_timeout)


def summarize_metrics(text: str) -> dict[str, Any]:
    """The few counters the page shows, from the Prometheus exposition (merged across workers
    by the supervisor's backend): connections by listener and outcome, open connections by
    listener, handshake latency by listener, S3 requests by operation and status."""
    connections: dict[str, dict[str, float]] = {}
    open_now: dict[str, float] = {}
    handshakes: dict[str, dict[str, Any]] = {}
    requests: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "mrapsim_connections_total":
                connections.setdefault(labels["listener"], {})[labels["outcome"]] = sample.value
            elif sample.name == "mrapsim_connections_open":
                open_now[labels["listener"]] = sample.value
            elif sample.name == "mrapsim_s3_requests_total":
                requests.setdefault(labels["operation"], {})[labels["status"]] = sample.value
            elif sample.name.startswith("mrapsim_tls_handshake_duration_seconds_"):
                entry = handshakes.setdefault(labels["listener"], {"count": 0.0, "sum": 0.0, "buckets": []})
                if sample.name.endswith("_count"):
                    entry["count"] = sample.value
                elif sample.name.endswith("_sum"):
                    entry["sum"] = sample.value
                elif sample.name.endswith("_bucket"):
                    entry["buckets"].append((float(labels["le"]), sample.value))
    return {
        "connections": connections,
        "open": open_now,
        "handshakes": {name: _latency(entry) for name, entry in handshakes.items()},
        "requests": requests,
    }


def _latency(entry: dict[str, Any]) -> dict[str, Any]:
    buckets = sorted(entry["buckets"])
    return {
        "count": entry["count"],
        "sum": entry["sum"],
        "p50": quantile(buckets, 0.5),
        "p95": quantile(buckets, 0.95),
    }


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the histogram bucket holding quantile `q` (None: no observation; a
    quantile beyond the last finite bound is that bound)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    finite = [bound for bound, _ in buckets if not math.isinf(bound)]
    for bound, count in buckets:
        if count >= rank:
            return bound if not math.isinf(bound) else (finite[-1] if finite else None)
    return None


async def event_stream(backend: AdminBackend) -> AsyncIterator[str]:
    """`snapshot` events once a second until the client goes; a backend that cannot answer (a
    worker restarting) is an `error` event, and the stream goes on."""
    while True:
        try:
            yield f"event: snapshot\ndata: {json.dumps(await snapshot(backend), default=str)}\n\n"
        except BackendError as exc:
            yield f"event: error\ndata: {json.dumps({'error': str(exc)})}\n\n"
        await trio.sleep(SNAPSHOT_SECONDS)
