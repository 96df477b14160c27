"""The admin page (`GET /`, mrapsim/admin/page.py) in headless Chromium, driven over the DevTools
protocol (tests/cdp.py): it loads with no console error and asks nothing of any other origin,
shows a no-SNI handshake and a forwarded boto3 request as they happen, adds and removes a fault
from its own controls, and shows the connections of both workers of `--workers 2`.
Screenshots go to $MRAPSIM_TEST_ARTIFACTS (the test's tmp dir without it)."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mrapsim.admin.guard import AdminPolicy, check
from mrapsim.admin.page import quantile, summarize_metrics
from mrapsim.logs import explain_document
from tests.load.test_html_browser import CHROMIUM
from tests.mrapsim_process import MrapsimProcess
from tests.test_mrap_failover import CONFIG as MRAP_CONFIG
from tests.test_mrap_failover import by_arn, mrap_backlog, replication_control
from tests.tlsclient import client_hello_bytes

pytest.importorskip("websocket")
from tests.cdp import Browser

browser_needed = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")

FAULT_LATENCY_MS = 800


def artifacts(tmp_path: Path) -> Path:
    where = Path(os.environ.get("MRAPSIM_TEST_ARTIFACTS", tmp_path))
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    opened = Browser(tmp_path / "chromium")
    yield opened
    opened.close()


def no_sni_handshake(server: MrapsimProcess) -> socket.socket:
    """A ClientHello without server_name on the mrap listener; the edge stalls it (kept open)."""
    sock = socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=5)
    sock.sendall(client_hello_bytes(None))
    return sock


def row_field(browser: Browser, selector: str, field: str) -> Any:
    return browser.evaluate(
        f"(() => {{ const r = document.querySelector({json.dumps(selector)}); return r && r.{field}; }})()"
    )


def detail_requests(browser: Browser, connection_id: str, count: int = 3) -> list[tuple[str, str]]:
    """The open detail's requests, once `count` of that connection's are drawn: (operation,
    status cell), newest first."""
    rows = f'#detail-requests[data-connection="{connection_id}"] tbody tr[data-operation]'
    assert browser.wait_for(f"document.querySelectorAll({json.dumps(rows)}).length >= {count}", timeout=5)
    found = browser.evaluate(
        f"[...document.querySelectorAll({json.dumps(rows)})].map(r => [r.dataset.operation, r.cells[5].textContent])"
    )
    return [(operation, status) for operation, status in found]


def faults(server: MrapsimProcess) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = server.admin_get("/faults")
    return documents


def timed_list(server: MrapsimProcess) -> float:
    """Seconds for one ListObjectsV2 on a new connection through the s3 listener."""
    client = server.s3_client()
    started = time.monotonic()
    client.list_objects_v2(Bucket="mraps3sample", MaxKeys=1)
    return time.monotonic() - started


def test_the_page_is_self_contained(start_server: Any) -> None:
    """uPlot is inlined, no element loads anything, and the CSP allows only this origin."""
    server: MrapsimProcess = start_server()
    with urllib.request.urlopen(f"http://{server.admin}/", timeout=5) as response:
        page = response.read().decode()
        policy = response.headers["content-security-policy"]
    assert "uPlot" in page and "/*UPLOT_JS*/" not in page and "/*UPLOT_CSS*/" not in page
    assert " src=" not in page and 'href="http' not in page
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy


def test_summaries_and_explanations_are_the_log_lines_own() -> None:
    text = (
        'mrapsim_connections_total{listener="mrap",outcome="no_sni"} 2.0\n'
        'mrapsim_connections_open{listener="mrap"} 1.0\n'
        'mrapsim_s3_requests_total{operation="ListObjectsV2",status="200"} 3.0\n'
        'mrapsim_tls_handshake_duration_seconds_bucket{listener="s3",le="0.01"} 1.0\n'
        'mrapsim_tls_handshake_duration_seconds_bucket{listener="s3",le="+Inf"} 2.0\n'
        'mrapsim_tls_handshake_duration_seconds_count{listener="s3"} 2.0\n'
        'mrapsim_tls_handshake_duration_seconds_sum{listener="s3"} 0.5\n'
    )
    summary = summarize_metrics(text)
    assert summary["connections"] == {"mrap": {"no_sni": 2.0}}
    assert summary["open"] == {"mrap": 1.0}
    assert summary["requests"] == {"ListObjectsV2": {"200": 3.0}}
    assert summary["handshakes"]["s3"] == {"count": 2.0, "sum": 0.5, "p50": 0.01, "p95": 0.01}
    assert quantile([], 0.5) is None
    record = {
        "id": "c1",
        "listener": "mrap",
        "peer": "127.0.0.1:5",
        "sni": None,
        "outcome": "no_sni",
        "action": "stall",
    }
    words = explain_document(record, 300)
    assert words is not None and "without server_name (SNI)" in words and "HAProxy" in words and "squid" in words
    assert explain_document({**record, "outcome": "forwarded", "action": "forward:s3"}, 300) is None
    assert explain_document({**record, "outcome": None, "action": None}, 300) is None


@browser_needed
def test_live_page_connections_explanations_and_faults(start_server: Any, browser: Browser, tmp_path: Path) -> None:
    server: MrapsimProcess = start_server()
    origin = f"http://{server.admin}"
    browser.navigate(origin + "/")
    assert browser.wait_for("Number(document.body?.dataset.snapshots || 0) >= 2", timeout=15)

    # (2) a no-SNI handshake shows within 2 s, stalled, with the log line's explanation
    stalled = no_sni_handshake(server)
    try:
        started = time.monotonic()
        shown = browser.wait_for("!!document.querySelector('#recent tr[data-outcome=\"no_sni\"]')", timeout=2.0)
        assert shown and time.monotonic() - started <= 2.0
        selector = '#recent tr[data-outcome="no_sni"]'
        assert row_field(browser, selector + " td:nth-child(5)", "textContent") == "— none —"
        assert row_field(browser, selector + " td:nth-child(10)", "textContent") == "stall"
        browser.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        explanation = browser.wait_for("document.getElementById('explanation').textContent", timeout=5)
        logged = server.wait_for_logs(lambda e: e.get("event") == "explanation" and e.get("outcome") == "no_sni")
        assert logged and explanation == logged[0]["message"]
        for proxy in ("Envoy", "Cilium", "Istio", "nginx", "HAProxy", "squid"):
            assert proxy in explanation
        browser.evaluate("document.getElementById('detail-close').click()")

        # requests forwarded through the s3 listener, with their SNI and request count; a click
        # opens the connection with its requests, newest first
        client = server.s3_client()
        client.list_objects_v2(Bucket="mraps3sample", MaxKeys=1)
        client.put_object(Bucket="mraps3sample", Key="page/report.csv", Body=b"a,b\n1,2\n")
        with pytest.raises(client.exceptions.NoSuchKey):
            client.get_object(Bucket="mraps3sample", Key="page/missing.csv")
        forwarded = '#recent tr[data-outcome="forwarded"][data-sni="localhost"]'
        requests = f"Number(document.querySelector({json.dumps(forwarded)})?.dataset.requests || 0) >= 3"
        assert browser.wait_for(requests, timeout=5)
        assert browser.wait_for("document.querySelector('#requests tbody').textContent.includes('ListObjectsV2')")
        connection_id = row_field(browser, forwarded, "dataset.id")
        browser.evaluate(f"document.querySelector({json.dumps(forwarded)}).click()")
        assert detail_requests(browser, connection_id) == [
            ("GetObject", "404 NoSuchKey"),
            ("PutObject", "200"),
            ("ListObjectsV2", "200"),
        ]
        browser.screenshot(artifacts(tmp_path) / "admin-page.png")
        browser.evaluate("document.getElementById('detail-close').click()")
        browser.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        assert browser.wait_for("document.getElementById('detail').className === 'open'")
        note = "document.getElementById('detail-requests-note').textContent"
        assert browser.wait_for(f"{note} === '(none on this connection)'", timeout=5), browser.evaluate(note)
        browser.screenshot(artifacts(tmp_path) / "admin-page-explanation.png")
        # the README's picture (docs/admin-page.png is a copy): smaller, down to the faults
        browser.screenshot(artifacts(tmp_path) / "admin-page-small.png", scale=0.7, height=700)
        browser.evaluate("document.getElementById('detail-close').click()")

        # (3) a latency fault added from the page, then removed from it
        document = {
            "type": "latency",
            "listener": "s3",
            "stream": "downstream",
            "attributes": {"latency": FAULT_LATENCY_MS},
        }
        browser.evaluate(f"document.getElementById('fault-doc').value = {json.dumps(json.dumps(document))}")
        browser.evaluate("document.getElementById('fault-add').click()")
        assert browser.wait_for("document.body.dataset.faultChanges === '1'", timeout=5), browser.evaluate(
            "document.getElementById('fault-error').textContent"
        )
        added = faults(server)
        assert [(f["type"], f["attributes"]["latency"]) for f in added] == [("latency", FAULT_LATENCY_MS)]
        assert timed_list(server) >= FAULT_LATENCY_MS / 1000
        edit_button = f'#faults button.fault-edit[data-fault="{added[0]["id"]}"]'
        assert browser.wait_for(f"!!document.querySelector({json.dumps(edit_button)})", timeout=5)
        browser.evaluate(f"document.querySelector({json.dumps(edit_button)}).click()")
        edited = json.loads(browser.evaluate("document.getElementById('fault-doc').value"))
        edited["attributes"]["latency"] = FAULT_LATENCY_MS + 100
        browser.evaluate(f"document.getElementById('fault-doc').value = {json.dumps(json.dumps(edited))}")
        browser.evaluate("document.getElementById('fault-save').click()")
        assert browser.wait_for("document.body.dataset.faultChanges === '2'", timeout=5), browser.evaluate(
            "document.getElementById('fault-error').textContent"
        )
        added = faults(server)
        assert [(f["type"], f["attributes"]["latency"]) for f in added] == [("latency", FAULT_LATENCY_MS + 100)]
        fault_row = f'#faults button.fault-remove[data-fault="{added[0]["id"]}"]'
        assert browser.wait_for(f"!!document.querySelector({json.dumps(fault_row)})", timeout=5)
        browser.screenshot(artifacts(tmp_path) / "admin-page-fault.png")
        browser.evaluate(f"document.querySelector({json.dumps(fault_row)}).click()")
        assert browser.wait_for("document.body.dataset.faultChanges === '3'", timeout=5)
        assert faults(server) == []
        assert browser.wait_for("document.querySelectorAll('#faults tbody tr').length === 0", timeout=5)
    finally:
        stalled.close()

    # (1) no console error, no request beyond the admin origin
    assert browser.errors() == []
    requested = browser.requested()
    assert requested and all(url.startswith(origin + "/") for url in requested), requested


def worker_admins(server: MrapsimProcess) -> list[str]:
    """Each worker's own admin address: the loopback TCP sockets only that worker listens on
    (the edge listeners' sockets are shared by every worker)."""
    by_inode = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":  # LISTEN
            by_inode[fields[9]] = int(fields[1].split(":")[1], 16)
    shared = {server.port(name) for name in server.listeners}
    admins = []
    for pid in children(server.process.pid):
        ports = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                port = by_inode.get(target[8:-1])
                if port is not None and port not in shared:
                    ports.add(port)
        admins += [f"127.0.0.1:{port}" for port in ports]
    return admins


def children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def ids_of(admin: str) -> set[str]:
    with urllib.request.urlopen(f"http://{admin}/connections?limit=1000", timeout=5) as response:
        return {record["id"] for record in json.loads(response.read())}


@browser_needed
def test_the_page_shows_the_connections_of_both_workers(start_server: Any, browser: Browser, tmp_path: Path) -> None:
    pytest.importorskip("mrapsim.store.sqlite")
    server: MrapsimProcess = start_server(f'workers = 2\n[store]\nkind = "sqlite"\npath = "{tmp_path / "data"}"\n')
    browser.navigate(f"http://{server.admin}/")
    assert browser.wait_for("Number(document.body?.dataset.snapshots || 0) >= 1", timeout=15)
    admins = worker_admins(server)
    assert len(admins) == 2, admins
    sockets: list[socket.socket] = []
    try:
        # the kernel spreads new connections over the workers: until each has served one
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(ids_of(admin) for admin in admins):
            sockets.append(no_sni_handshake(server))
            time.sleep(0.05)
        served = [ids_of(admin) for admin in admins]
        assert all(served), served
        wanted = json.dumps([sorted(ids)[0] for ids in served])
        assert browser.wait_for(
            f"{wanted}.every(id => !!document.querySelector('#recent tr[data-id=\"' + id + '\"]'))", timeout=5
        )

        # a worker's connection opens with its requests, which only that worker keeps
        client = server.s3_client()
        client.list_objects_v2(Bucket="mraps3sample", MaxKeys=1)
        client.put_object(Bucket="mraps3sample", Key="workers/one.txt", Body=b"1")
        deadline = time.monotonic() + 10
        while not (used := [r for r in server.connections(sni="localhost") if r["requests"] >= 2]):
            assert time.monotonic() < deadline, "no connection with the requests"
            time.sleep(0.1)
        row = f'#recent tr[data-id="{used[0]["id"]}"]'
        assert browser.wait_for(f"!!document.querySelector({json.dumps(row)})", timeout=5)
        browser.evaluate(f"document.querySelector({json.dumps(row)}).click()")
        assert detail_requests(browser, used[0]["id"], 2) == [("PutObject", "200"), ("ListObjectsV2", "200")]
        browser.screenshot(artifacts(tmp_path) / "admin-page-workers.png")
    finally:
        for sock in sockets:
            sock.close()
    assert browser.errors() == []


@browser_needed
def test_the_page_shows_the_replication_backlog(start_server: Any, browser: Browser, tmp_path: Path) -> None:
    """A write through the MRAP while its other Region is paused waits in the queue: the page shows
    it next to the routes, and 0 once the Region is back and the copy has landed."""
    server: MrapsimProcess = start_server(MRAP_CONFIG)
    s3 = server.s3_client()
    for bucket in ("mrap-east", "mrap-west"):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    browser.navigate(f"http://{server.admin}/")
    mrap_row = json.dumps('#mraps tr[data-mrap="failoverdemo"]')
    backlog = f"document.querySelector({mrap_row})?.dataset.mrapBacklog"
    west = json.dumps('#mraps tr[data-route="failoverdemo/mrap-west"]')
    assert browser.wait_for(f"{backlog} === '0'", timeout=15)

    assert replication_control(server, "mrap-west/pause") == 204
    by_arn(server, "put", "while-down.txt", "x")
    assert mrap_backlog(server) == (1, {"mrap-east": 0, "mrap-west": 1})
    assert browser.wait_for(f"{backlog} === '1'", timeout=5)
    assert browser.evaluate(f"document.querySelector({west}).dataset.backlog") == "1"
    assert browser.evaluate(f"document.querySelector({west}).lastChild.textContent") == "1 waiting"
    assert "backlog 1" in browser.evaluate(f"document.querySelector({mrap_row}).cells[0].textContent")
    browser.screenshot(artifacts(tmp_path) / "admin-page-replication.png")

    assert replication_control(server, "mrap-west/resume") == 204
    assert browser.wait_for(f"{backlog} === '0'", timeout=15)
    assert mrap_backlog(server) == (0, {"mrap-east": 0, "mrap-west": 0})
    assert browser.errors() == []


def test_the_page_is_open_but_its_stream_is_guarded_beyond_loopback() -> None:
    """`/` carries no data (as `/healthz`); `/events` needs the token the page sends in a header."""
    policy = AdminPolicy(token="s3cret", loopback=False, bind_host="10.0.0.5")
    host = {"host": "10.0.0.5:9911"}
    assert check(policy, "GET", "/", host) is None
    refusal = check(policy, "GET", "/events", host)
    assert refusal is not None and refusal.status == 401
    assert check(policy, "GET", "/events", {**host, "authorization": "Bearer s3cret"}) is None
    on_loopback = AdminPolicy(token="s3cret", loopback=True, bind_host="127.0.0.1")
    assert check(on_loopback, "GET", "/events", {"host": "127.0.0.1:9911"}) is None
    foreign = check(on_loopback, "GET", "/", {"host": "attacker.example:9911"})
    assert foreign is not None and foreign.status == 421
