"""The admin API's queries and the log's rate limit, without and with a live server."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from mrapsim.admin.app import BadQuery, parse_record_query
from mrapsim.logs import ExplanationLimiter
from mrapsim.outcomes import Outcome
from tests.mrapsim_process import MrapsimProcess
from tests.tlsclient import client_hello_bytes


def test_record_query_parsing() -> None:
    query = parse_record_query(
        {"limit": "5", "outcome": "no_sni", "sni": "X", "listener": "mrap", "since": "2026-11-26T12:00:00Z"}
    )
    assert query.limit == 5 and query.outcome is Outcome.NO_SNI and query.listener == "mrap"
    assert query.since == 1795694400.0
    assert parse_record_query({"since": "1700000000.5"}).since == 1700000000.5


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "x"},
        {"limit": "100001"},
        {"outcome": "bad"},
        {"since": "yesterday"},
        {"colour": "red"},
    ],
)
def test_bad_record_queries(params: dict[str, str]) -> None:
    with pytest.raises(BadQuery):
        parse_record_query(params)


def test_limiter_admits_once_per_interval_and_forgets_old_keys() -> None:
    limiter = ExplanationLimiter(interval=60, memory=2)
    assert limiter.admit(("a",), 0) and not limiter.admit(("a",), 59) and limiter.admit(("a",), 60)
    assert limiter.admit(("b",), 61) and limiter.admit(("c",), 62)
    assert limiter.admit(("a",), 63)  # forgotten: memory holds two keys


def test_connections_filters(mrapsim: MrapsimProcess) -> None:
    before = time.time()
    for name in ("filter-a.example.com", "filter-b.example.com"):
        with socket.create_connection(("127.0.0.1", mrapsim.port("mrap")), timeout=5) as sock:
            sock.sendall(client_hello_bytes(name))
    mrapsim.wait_for_connection(sni="filter-b.example.com")
    mrapsim.wait_for_connection(sni="filter-a.example.com")
    assert [r["sni"] for r in mrapsim.connections(sni="FILTER-A.example.com")] == ["filter-a.example.com"]
    recent = mrapsim.connections(since=before, listener="mrap", outcome="unknown_sni")
    assert {r["sni"] for r in recent} == {"filter-a.example.com", "filter-b.example.com"}
    assert len(mrapsim.connections(limit=1)) == 1
    assert mrapsim.connections(listener="s3", since=before) == []
    with pytest.raises(urllib.error.HTTPError) as caught:
        mrapsim.admin_get("/connections?outcome=nope")
    assert caught.value.code == 400 and "outcome" in json.loads(caught.value.read())["error"]


def test_config_endpoint_redacts_secrets(mrapsim: MrapsimProcess) -> None:
    with urllib.request.urlopen(f"http://{mrapsim.admin}/config", timeout=5) as response:
        document: dict[str, Any] = json.loads(response.read())
    assert document["auth"]["credentials"][0]["secret_key"] == "<redacted>"
    assert document["listeners"]["mrap"]["sni"] == "required"


def test_health_and_readiness(mrapsim: MrapsimProcess) -> None:
    assert mrapsim.admin_get("/healthz").strip() == "ok"
    ready = mrapsim.admin_get("/readyz")
    assert ready["ready"] is True and set(ready["listeners"]) == {"mrap", "s3"}
