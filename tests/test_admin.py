"""The admin API: its query parsing and merging, then one route table served by one process and by
the supervisor of two workers — every live test below runs against both."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mrapsim.admin.query import (
    BadQuery,
    parse_record_query,
    parse_request_query,
    record_query_params,
    request_query_params,
)
from mrapsim.admin.workers import merge_connections, merge_metrics, merge_requests
from mrapsim.edge.records import ConnectionState, RecordQuery
from mrapsim.logs import ExplanationLimiter
from mrapsim.outcomes import Outcome
from mrapsim.s3.records import REQUESTS_KEPT, RequestQuery, RequestRecord, RequestRing
from tests.mrapsim_process import MrapsimProcess, start_mrapsim
from tests.tlsclient import client_hello_bytes, tls_handshake


def test_record_query_parsing() -> None:
    query = parse_record_query(
        {"limit": "5", "outcome": "no_sni", "sni": "X", "listener": "mrap", "since": "2026-11-26T12:00:00Z"}
    )
    assert query.limit == 5 and query.outcome is Outcome.NO_SNI and query.listener == "mrap"
    assert query.since == 1795694400.0
    assert parse_record_query({"since": "1700000000.5"}).since == 1700000000.5
    assert parse_record_query({"state": "open"}).state is ConnectionState.OPEN
    assert parse_record_query({"state": "closed"}).state is ConnectionState.CLOSED
    assert parse_record_query({"state": "all"}).state is None and parse_record_query({}).state is None


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "x"},
        {"limit": "100001"},
        {"outcome": "bad"},
        {"since": "yesterday"},
        {"colour": "red"},
        {"state": "half-open"},
    ],
)
def test_bad_record_queries(params: dict[str, str]) -> None:
    with pytest.raises(BadQuery):
        parse_record_query(params)


@pytest.mark.parametrize(
    "query",
    [
        RecordQuery(),
        RecordQuery(limit=7, outcome=Outcome.NO_SNI, sni="a.example.com", listener="mrap", since=1795694400.123456),
        RecordQuery(state=ConnectionState.OPEN),
        RecordQuery(state=ConnectionState.CLOSED),
    ],
)
def test_a_query_passed_on_to_workers_reads_back_the_same(query: RecordQuery) -> None:
    assert parse_record_query(record_query_params(query)) == query


def worker_metrics(connections: int, active: int) -> str:
    registry = CollectorRegistry()
    Counter("mrapsim_connections", "c", ["listener"], registry=registry).labels("s3").inc(connections)
    Gauge("mrapsim_connections_open", "a", ["listener"], registry=registry).labels("s3").set(active)
    Gauge("mrapsim_build_info", "b", ["version"], registry=registry).labels("0.1.0").set(1)
    return generate_latest(registry).decode()


def test_metrics_are_summed_across_workers() -> None:
    merged = merge_metrics([worker_metrics(3, 1), worker_metrics(4, 2)])
    samples = {
        (s.name, tuple(s.labels.items())): s.value for f in text_string_to_metric_families(merged) for s in f.samples
    }
    assert samples[("mrapsim_connections_total", (("listener", "s3"),))] == 7
    assert samples[("mrapsim_connections_open", (("listener", "s3"),))] == 3
    assert samples[("mrapsim_build_info", (("version", "0.1.0"),))] == 1


def test_connections_are_merged_newest_first() -> None:
    a = [{"id": "a2", "start": "2026-11-26T10:00:02.000Z"}, {"id": "a1", "start": "2026-11-26T10:00:00.000Z"}]
    b = [{"id": "b1", "start": "2026-11-26T10:00:01.000Z"}]
    assert [r["id"] for r in merge_connections([a, b], limit=2)] == ["a2", "b1"]


def request(connection_id: str | None, n: int) -> RequestRecord:
    return RequestRecord(
        connection_id=connection_id, listener="s3", request_id=f"r{n}", method="GET", operation="GetObject",
        addressing="path", bucket="b", key=f"k{n}", access_key=None, status=200, error_code=None,
        duration=0.001, bytes_in=0, bytes_out=n,
    )  # fmt: skip


def kept_ids(ring: RequestRing, connection_id: str | None = None, limit: int = 1000) -> list[str]:
    return [record.request_id for _, record in ring.find(RequestQuery(limit, connection_id))]


def test_the_request_ring_keeps_the_newest_per_connection_and_in_all() -> None:
    ring = RequestRing(capacity=6, per_connection=3)
    for n in range(5):
        ring.add(request("busy", n), float(n))
    # a connection's own bound: its newest three, newest first
    assert kept_ids(ring, "busy") == ["r4", "r3", "r2"]
    assert kept_ids(ring, "busy", limit=2) == ["r4", "r3"]
    for n in range(5, 8):
        ring.add(request("quiet", n), float(n))
    ring.add(request(None, 8), 8.0)  # a request not behind the edge
    # the bound of all: six, the oldest gone from their connections' lists as well
    assert len(ring) == 6 and kept_ids(ring) == ["r8", "r7", "r6", "r5", "r4", "r3"]
    assert kept_ids(ring, "busy") == ["r4", "r3"]
    assert kept_ids(ring, "quiet") == ["r7", "r6", "r5"] and kept_ids(ring, None) == [
        "r8",
        "r7",
        "r6",
        "r5",
        "r4",
        "r3",
    ]
    for n in range(9, 15):
        ring.add(request("quiet", n), float(n))
    # a connection whose every request is gone is forgotten
    assert kept_ids(ring, "busy") == [] and ring.connections() == 1
    assert kept_ids(ring, "quiet") == ["r14", "r13", "r12"] and len(ring) == 6
    assert kept_ids(ring, "nope") == []


def test_the_request_ring_is_bounded_with_many_connections() -> None:
    ring = RequestRing()
    for n in range(3 * REQUESTS_KEPT):
        ring.add(request(f"c{n % (2 * REQUESTS_KEPT)}", n), float(n))
    assert len(ring) == REQUESTS_KEPT and ring.connections() <= REQUESTS_KEPT
    assert kept_ids(ring, limit=1) == [f"r{3 * REQUESTS_KEPT - 1}"]


def test_request_queries_and_their_merge() -> None:
    assert parse_request_query({}) == RequestQuery()
    query = parse_request_query({"connection": "abc", "limit": "7"})
    assert query == RequestQuery(limit=7, connection_id="abc")
    assert parse_request_query(request_query_params(query)) == query
    for bad in ({"limit": "0"}, {"limit": str(REQUESTS_KEPT + 1)}, {"colour": "red"}):
        with pytest.raises(BadQuery):
            parse_request_query(bad)
    a = [
        {"request_id": "a2", "time": "2026-11-26T10:00:02.000Z"},
        {"request_id": "a1", "time": "2026-11-26T10:00:00.000Z"},
    ]
    b = [{"request_id": "b1", "time": "2026-11-26T10:00:01.000Z"}]
    assert [r["request_id"] for r in merge_requests([a, b], limit=2)] == ["a2", "b1"]


def test_limiter_admits_once_per_interval_and_forgets_old_keys() -> None:
    limiter = ExplanationLimiter(interval=60, memory=2)
    assert limiter.admit(("a",), 0) and not limiter.admit(("a",), 59) and limiter.admit(("a",), 60)
    assert limiter.admit(("b",), 61) and limiter.admit(("c",), 62)
    assert limiter.admit(("a",), 63)  # forgotten: memory holds two keys


# -- one process and the supervisor of two workers, through the same tests -------------------------

ONE_PROCESS, TWO_WORKERS = "one process", "two workers"


@pytest.fixture(scope="module", params=[ONE_PROCESS, TWO_WORKERS])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MrapsimProcess]:
    where = tmp_path_factory.mktemp("admin")
    config = ""
    if request.param == TWO_WORKERS:
        pytest.importorskip("mrapsim.store.sqlite")
        config = f'workers = 2\n[store]\nkind = "sqlite"\npath = "{where / "data"}"\n'
    started = start_mrapsim(where, config)
    yield started
    started.stop()
    assert started.process.returncode == 0


def workers_of(server: MrapsimProcess) -> int:
    ready: dict[str, Any] = server.admin_get("/readyz")
    return int(ready.get("workers", 1))


def samples(server: MrapsimProcess, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(server.admin_get("/metrics"))
        for s in family.samples
        if s.name == name
    }


def admin_call(server: MrapsimProcess, method: str, path: str, document: object = None) -> tuple[int, Any]:
    body = None if document is None else (document if isinstance(document, bytes) else json.dumps(document).encode())
    headers = {"content-type": "application/json"} if body is not None else {}
    return server.admin_call(method, path, body, headers)


def test_health_and_readiness(server: MrapsimProcess) -> None:
    assert server.admin_get("/healthz").strip() == "ok"
    ready = server.admin_get("/readyz")
    assert ready["ready"] is True and ready["draining"] is False and set(ready["listeners"]) == {"mrap", "s3"}
    assert workers_of(server) == (2 if "workers" in ready else 1)


def test_connections_filters(server: MrapsimProcess) -> None:
    before = time.time()
    for name in ("filter-a.example.com", "filter-b.example.com"):
        with socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=5) as sock:
            sock.sendall(client_hello_bytes(name))
    server.wait_for_connection(sni="filter-b.example.com")
    server.wait_for_connection(sni="filter-a.example.com")
    assert [r["sni"] for r in server.connections(sni="FILTER-A.example.com")] == ["filter-a.example.com"]
    recent = server.connections(since=before, listener="mrap", outcome="unknown_sni")
    assert {r["sni"] for r in recent} == {"filter-a.example.com", "filter-b.example.com"}
    assert len(server.connections(limit=1)) == 1
    assert server.connections(listener="s3", since=before) == []
    with pytest.raises(urllib.error.HTTPError) as caught:
        server.admin_get("/connections?outcome=nope")
    assert caught.value.code == 400 and "outcome" in json.loads(caught.value.read())["error"]


def test_records_and_metrics_count_every_connection(server: MrapsimProcess) -> None:
    """Twenty connections, spread by the kernel over the workers: twenty records, and the metrics
    (summed over the workers) agree."""
    key = (("listener", "s3"), ("outcome", "forwarded"))
    counted = samples(server, "mrapsim_connections_total").get(key, 0.0)
    before = time.time()
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port("s3")), timeout=5) as sock:
            tls_handshake(sock, "localhost", server.ca)
    deadline = time.monotonic() + 10
    closed = {"limit": 1000, "listener": "s3", "since": before, "state": "closed"}
    while len(server.connections(**closed)) < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(server.connections(**closed)) == 20
    assert samples(server, "mrapsim_connections_total")[key] == counted + 20
    assert samples(server, "mrapsim_build_info")


def test_config_endpoint_redacts_secrets(server: MrapsimProcess) -> None:
    with urllib.request.urlopen(f"http://{server.admin}/config", timeout=5) as response:
        document: dict[str, Any] = json.loads(response.read())
    assert document["auth"]["credentials"][0]["secret_key"] == "<redacted>"
    assert document["listeners"]["mrap"]["sni"] == "required"


def test_faults_reach_every_connection(server: MrapsimProcess) -> None:
    latency = {"type": "latency", "listener": "s3", "attributes": {"latency": 300}}
    assert admin_call(server, "POST", "/faults", latency) == (201, {"id": "f1"})
    for _ in range(6):  # through either worker
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port("s3")), timeout=5) as sock:
            tls_handshake(sock, "localhost", server.ca)
        assert time.monotonic() - started >= 0.3
    assert [f["id"] for f in server.admin_get("/faults")] == ["f1"]

    status, error = admin_call(server, "POST", "/faults", {"type": "nope"})
    assert status == 400 and "nope" in error["error"]
    status, error = admin_call(server, "PUT", "/faults", b"not json")
    assert status == 400 and "JSON" in error["error"]
    status, error = admin_call(server, "PUT", "/faults", [latency, {"type": "latency", "direction": "sideways"}])
    assert status == 400 and "faults[1]" in error["error"]
    assert [f["id"] for f in server.admin_get("/faults")] == ["f1"]  # a refused PUT changes nothing

    status, error = admin_call(server, "PUT", "/faults", [latency, latency])
    assert status == 409 and "latency_downstream" in error["error"]  # names are unique per proxy
    status, replaced = admin_call(server, "PUT", "/faults", [latency, {**latency, "name": "more"}])
    assert status == 200 and [f["id"] for f in replaced] == ["f2", "f3"]
    assert admin_call(server, "DELETE", "/faults/f2") == (204, None)
    assert admin_call(server, "DELETE", "/faults/f2") == (404, {"error": "no such fault"})
    assert admin_call(server, "PUT", "/faults", []) == (200, [])


MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"


def keep_alive_connection(server: MrapsimProcess) -> http.client.HTTPConnection:
    """HTTP/1.1 over TLS to the `mrap` listener with the MRAP name as SNI and Host."""
    context = ssl.create_default_context(cafile=str(server.ca))
    context.set_alpn_protocols(["http/1.1"])
    connection = http.client.HTTPConnection(MRAP_HOST, timeout=10)
    raw = socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=10)
    connection.sock = context.wrap_socket(raw, server_hostname=MRAP_HOST)
    return connection


def get(connection: http.client.HTTPConnection, path: str) -> int:
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    assert not response.will_close  # the connection stays open for the next request
    return response.status


def open_records(server: MrapsimProcess, **query: Any) -> list[dict[str, Any]]:
    return server.connections(state="open", limit=1000, **query)


def test_an_open_connection_is_listed_with_its_figures_so_far(server: MrapsimProcess) -> None:
    """A keep-alive client (a proxy's pooled upstream connection) is in view while it lives."""
    connection = keep_alive_connection(server)
    get(connection, "/first")
    answered = time.monotonic()
    [record] = open_records(server, sni=MRAP_HOST)  # no waiting: it is known as the request starts
    assert time.monotonic() - answered < 1.0
    assert record["state"] == "open" and record["sni"] == MRAP_HOST and record["requests"] >= 1
    assert record["outcome"] == "forwarded" and record["alpn"] == "http/1.1"
    assert record["bytes_in"] > 0 and record["bytes_out"] > 0

    get(connection, "/second")
    [grown] = open_records(server, sni=MRAP_HOST)
    assert grown["id"] == record["id"] and grown["requests"] == record["requests"] + 1
    assert grown["bytes_in"] > record["bytes_in"] and grown["bytes_out"] > record["bytes_out"]
    assert grown["duration"] > record["duration"]
    assert [r["id"] for r in server.connections(sni=MRAP_HOST, state="all")] == [record["id"]]
    assert server.connections(sni=MRAP_HOST, state="closed") == []

    # The gauge of open connections agrees with the open records (once the module's other
    # connections have finished closing).
    deadline = time.monotonic() + 10
    while len(open_records(server, listener="mrap")) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert samples(server, "mrapsim_connections_open")[(("listener", "mrap"),)] == 1

    connection.close()
    closed = server.wait_for_connection(sni=MRAP_HOST, state="closed")
    assert closed["id"] == record["id"] and closed["requests"] == grown["requests"]
    assert open_records(server, sni=MRAP_HOST) == []


def test_open_connections_before_and_after_the_decision(server: MrapsimProcess) -> None:
    """A client that has sent nothing yet is open with no outcome; a stalled one is open, stalled."""
    with (
        socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=5) as silent,
        socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=5) as stalled,
    ):
        stalled.sendall(client_hello_bytes(None))
        port = str(silent.getsockname()[1])
        undecided = wait_for(lambda: [r for r in open_records(server) if r["peer"].endswith(f":{port}")])
        assert undecided["outcome"] is None and undecided["action"] is None and undecided["sni"] is None
        record = wait_for(lambda: open_records(server, outcome="no_sni"))
        assert record["action"] == "stall" and record["bytes_out"] == 0 and record["client_hello_bytes"] > 0
    assert server.wait_for_connection(state="closed", outcome="no_sni")["id"] == record["id"]
    assert server.wait_for_connection(state="closed", outcome="client_closed")["id"] == undecided["id"]


def wait_for(found: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not (records := found()):
        assert time.monotonic() < deadline, "no such record in time"
        time.sleep(0.05)
    record: dict[str, Any] = records[0]
    return record


def test_a_fault_naming_what_does_not_exist_is_refused_with_the_known_names(server: MrapsimProcess) -> None:
    """Must-show 4: an unknown listener, route, operation or attribute is a 400 that says what exists."""
    status, error = admin_call(server, "POST", "/faults", {"type": "latency", "listener": "s4"})
    assert status == 400 and "'s4'" in error["error"] and "mrap" in error["error"] and "s3" in error["error"]
    status, error = admin_call(server, "POST", "/faults", {"type": "timeout", "route": "nowhere.example.com"})
    assert status == 400 and "nowhere.example.com" in error["error"] and "mrap.accesspoint" in error["error"]
    status, error = admin_call(server, "POST", "/faults", {"type": "s3_error", "operation": "GetObjekt"})
    assert status == 400 and "GetObjekt" in error["error"] and "GetObject" in error["error"]
    status, error = admin_call(server, "POST", "/faults", {"type": "latency", "attributes": {"delay": 1}})
    assert status == 400 and "delay" in error["error"] and "jitter" in error["error"]
    assert server.admin_get("/faults") == []


def test_metrics_count_active_and_applied_faults(server: MrapsimProcess) -> None:
    """Must-show 4: /metrics counts faults in force by type and each application."""
    applied = samples(server, "mrapsim_faults_applied_total").get((("type", "slow_close"),), 0.0)
    fault = {"type": "slow_close", "name": "counted", "listener": "s3", "attributes": {"delay": 1}}
    status, created = admin_call(server, "POST", "/faults", fault)
    assert status == 201
    assert samples(server, "mrapsim_faults_active")[(("type", "slow_close"),)] == 1
    for _ in range(4):
        with socket.create_connection(("127.0.0.1", server.port("s3")), timeout=5) as sock:
            tls_handshake(sock, "localhost", server.ca)
    deadline = time.monotonic() + 10
    while samples(server, "mrapsim_faults_applied_total").get((("type", "slow_close"),), 0.0) < applied + 4:
        assert time.monotonic() < deadline, "the applied faults were not counted"
        time.sleep(0.05)
    record = server.wait_for_connection(listener="s3", state="closed")
    assert record["faults"] == ["counted"]  # marked on the connection record
    assert admin_call(server, "DELETE", f"/faults/{created['id']}") == (204, None)
    assert samples(server, "mrapsim_faults_active").get((("type", "slow_close"),), 0.0) == 0


def test_toxiproxy_api(server: MrapsimProcess) -> None:
    """Toxiproxy's REST API (its api.go) over the same fault set as /faults, in one process and
    through the supervisor alike."""
    status, proxies = admin_call(server, "GET", "/proxies")
    assert status == 200 and {"s3", "mrap"} <= set(proxies)
    assert proxies["s3"]["enabled"] is True and proxies["s3"]["toxics"] == []
    assert proxies["s3"]["listen"] == f"127.0.0.1:{server.port('s3')}"
    route = next(name for name in proxies if name.startswith("mrap:"))
    assert admin_call(server, "GET", "/version")[0] == 200

    latency = {"type": "latency", "attributes": {"latency": 300, "jitter": 0}}
    status, toxic = admin_call(server, "POST", "/proxies/s3/toxics", latency)
    assert status == 200 and toxic == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 300, "jitter": 0},
    }
    assert admin_call(server, "POST", "/proxies/s3/toxics", latency)[0] == 409
    [shared] = server.admin_get("/faults")  # one fault set
    assert shared["name"] == "latency_downstream" and shared["listener"] == "s3"

    change = {"attributes": {"latency": 5}}
    status, updated = admin_call(server, "PATCH", "/proxies/s3/toxics/latency_downstream", change)
    assert status == 200 and updated["attributes"] == {"latency": 5, "jitter": 0}
    assert [f["id"] for f in server.admin_get("/faults")] == [shared["id"]]  # updated in place
    assert admin_call(server, "GET", "/proxies/s3/toxics")[1] == [updated]

    status, error = admin_call(server, "POST", "/proxies/s3/toxics", {"type": "lag"})
    assert status == 400 and "latency" in error["error"] and error["status"] == 400
    status, error = admin_call(server, "GET", "/proxies/s4")
    assert status == 404 and "s3" in error["error"]
    route_path = f"/proxies/{urllib.parse.quote(route)}"
    status, on_route = admin_call(server, "POST", f"{route_path}/toxics", {"type": "timeout"})
    assert status == 200 and admin_call(server, "GET", route_path)[1]["toxics"] == [on_route]

    status, down = admin_call(server, "POST", "/proxies/s3", {"enabled": False})
    assert status == 200 and down["enabled"] is False
    # Reset at once, or as soon as the handshake starts.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port("s3")), timeout=5) as sock:
        tls_handshake(sock, "localhost", server.ca)
    assert admin_call(server, "POST", "/reset") == (204, None)
    assert server.admin_get("/faults") == [] and server.admin_get("/proxies/s3")["enabled"] is True
    with socket.create_connection(("127.0.0.1", server.port("s3")), timeout=5) as sock:
        tls_handshake(sock, "localhost", server.ca)
    status, populated = admin_call(server, "POST", "/populate", [{"name": "s3", "upstream": "x", "enabled": True}])
    assert status == 201 and [p["name"] for p in populated["proxies"]] == ["s3"]


def test_a_connections_requests(server: MrapsimProcess) -> None:
    """`GET /connections/{id}` has the connection's requests, newest first, each as its log line
    has it; `GET /requests` lists them too, by connection or of all; through the supervisor the
    worker that served the connection answers."""
    before = time.time()
    client = server.s3_client()
    listed = client.list_objects_v2(Bucket="mraps3sample", MaxKeys=1)
    client.put_object(Bucket="mraps3sample", Key="requests/one.txt", Body=b"twelve bytes")
    with pytest.raises(client.exceptions.NoSuchKey):
        client.get_object(Bucket="mraps3sample", Key="requests/none.txt")
    record = wait_for(
        lambda: [r for r in server.connections(listener="s3", since=before, limit=1000) if r["requests"] >= 3]
    )
    status, detail = admin_call(server, "GET", f"/connections/{record['id']}")
    assert status == 200 and detail["id"] == record["id"] and detail["requests"] == 3
    kept = detail["recent_requests"]
    assert [(r["operation"], r["method"], r["status"], r["error_code"]) for r in kept] == [
        ("GetObject", "GET", 404, "NoSuchKey"),
        ("PutObject", "PUT", 200, None),
        ("ListObjectsV2", "GET", 200, None),
    ]
    assert kept[1]["bucket"] == "mraps3sample" and kept[1]["key"] == "requests/one.txt"
    # (>=: botocore may send the body aws-chunked, with a trailing checksum)
    assert kept[1]["bytes_in"] >= len(b"twelve bytes") and kept[2]["bytes_out"] > 0
    assert kept[2]["request_id"] == listed["ResponseMetadata"]["RequestId"]
    assert all(r["connection_id"] == record["id"] and r["duration"] > 0 for r in kept)
    assert kept[0]["time"] >= kept[1]["time"] >= kept[2]["time"] >= record["start"]

    assert admin_call(server, "GET", f"/requests?connection={record['id']}&limit=2") == (200, kept[:2])
    status, newest = admin_call(server, "GET", "/requests?limit=1")
    assert status == 200 and len(newest) == 1 and newest[0]["time"] >= kept[0]["time"]
    status, error = admin_call(server, "GET", "/connections/000000000000")
    assert status == 404 and "no such connection" in error["error"]
    assert admin_call(server, "GET", "/requests?connection=000000000000") == (200, [])
    assert admin_call(server, "GET", "/requests?limit=0")[0] == 400
