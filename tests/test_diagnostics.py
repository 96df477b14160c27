"""Diagnostics: explanations in the log, metrics that agree with the records, probe outcomes (issue 4)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mrapsim.tls.clienthello import ClientHello, ClientHelloReader
from tests.mrapsim_process import MrapsimProcess
from tests.test_fingerprint import single_record
from tests.tlsclient import client_hello_bytes, tls_handshake

MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"


def counter_values(server: MrapsimProcess, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    values = {}
    for family in text_string_to_metric_families(server.admin_get("/metrics")):
        for sample in family.samples:
            if sample.name == name:
                values[tuple(sorted(sample.labels.items()))] = sample.value
    return values


def connections_total(server: MrapsimProcess, listener: str, outcome: str) -> float:
    values = counter_values(server, "mrapsim_connections_total")
    return values.get((("listener", listener), ("outcome", outcome)), 0.0)


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def explanations(server: MrapsimProcess) -> list[dict[str, Any]]:
    return [line for line in server.logs() if line.get("event") == "explanation"]


def test_missing_sni_is_explained_once_per_peer_per_minute(start_server: Any) -> None:
    server = start_server()
    s_client = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port('mrap')}", "-noservername"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    s_client.kill()
    s_client.wait(timeout=5)
    wait_until(lambda: connections_total(server, "mrap", "no_sni") == 1)
    wait_until(lambda: len(explanations(server)) == 1)
    explanation = explanations(server)[0]
    for words in ("server_name", "mrap", "stalls", "auto_sni", "proxy_ssl_server_name", "HAProxy", "IP literal"):
        assert words in explanation["message"], words

    connection_lines = server.wait_for_logs(lambda line: line.get("event") == "connection")
    assert connection_lines[-1]["outcome"] == "no_sni" and connection_lines[-1]["action"] == "stall"

    hello = client_hello_bytes(None)
    started = time.monotonic()
    sockets = []
    for _ in range(100):
        sock = socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=5)
        sock.sendall(hello)
        sockets.append(sock)
    for sock in sockets:
        sock.close()
    assert time.monotonic() - started < 10  # a burst, well inside the one-minute window
    wait_until(lambda: connections_total(server, "mrap", "no_sni") == 101)
    time.sleep(0.3)
    assert len(explanations(server)) == 1
    assert len(server.connections(outcome="no_sni", limit=1000)) == 101


def test_metrics_parse_and_agree_with_connections(start_server: Any) -> None:
    server = start_server('[listeners.mrap]\non_missing_sni = "close"\non_unknown_sni = "alert:unrecognized_name"\n')
    port = server.port("mrap")
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            tls_handshake(sock, MRAP_HOST, server.ca, ["h2", "http/1.1"])
    for name in (None, "nope.example.com"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(client_hello_bytes(name))
            sock.settimeout(5)
            while sock.recv(1024):
                pass
    with socket.create_connection(("127.0.0.1", server.port("s3")), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        sock.settimeout(5)
        sock.recv(10)
    # Counters count a connection when it closes: compare them with the closed records.
    wait_until(lambda: len(server.connections(limit=1000, state="closed")) == 6)
    records = Counter((r["listener"], r["outcome"]) for r in server.connections(limit=1000, state="closed"))
    assert records == {
        ("mrap", "forwarded"): 3,
        ("mrap", "no_sni"): 1,
        ("mrap", "unknown_sni"): 1,
        ("s3", "not_tls"): 1,
    }
    metrics = {
        (dict(labels)["listener"], dict(labels)["outcome"]): value
        for labels, value in counter_values(server, "mrapsim_connections_total").items()
    }
    assert metrics == records
    handshakes = counter_values(server, "mrapsim_tls_handshakes_total")
    assert handshakes[(("alpn", "http/1.1"), ("listener", "mrap"), ("version", "TLSv1.3"))] == 3
    assert counter_values(server, "mrapsim_build_info")
    assert counter_values(server, "mrapsim_connections_open")[(("listener", "mrap"),)] == 0


def probe(*args: str, timeout: float = 20) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mrapsim.cli", "probe", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result.returncode, json.loads(result.stdout), time.monotonic() - started


def test_probe_names_a_stall(mrapsim: MrapsimProcess) -> None:
    code, report, elapsed = probe(
        f"https://{MRAP_HOST}:8443", "--connect", f"127.0.0.1:{mrapsim.port('mrap')}", "--no-sni", "--timeout", "2"
    )
    assert code == 3 and report["outcome"] == "stalled" and report["bytes_received"] == 0
    assert 1.9 <= elapsed < 5


def test_probe_reports_a_verified_handshake(mrapsim: MrapsimProcess) -> None:
    code, report, _ = probe(
        f"https://{MRAP_HOST}:8443", "--connect", f"127.0.0.1:{mrapsim.port('mrap')}", "--ca-bundle", str(mrapsim.ca)
    )
    assert code == 0 and report["outcome"] == "ok" and report["verified"] is True
    assert report["tls_version"] == "TLSv1.3" and report["alpn"] == "http/1.1" and report["cipher"]
    assert "*.mrap.accesspoint.s3-global.amazonaws.com" in report["certificate"]["sans"]


def test_probe_says_when_the_certificate_is_not_trusted(mrapsim: MrapsimProcess) -> None:
    code, report, _ = probe(
        "https://localhost", "--connect", f"127.0.0.1:{mrapsim.port('s3')}", "--sni", "other.example"
    )
    assert code == 9 and report["outcome"] == "untrusted" and report["verify_error"]


def test_probe_names_an_alert_and_a_refusal(start_server: Any) -> None:
    server = start_server('[listeners.mrap]\non_missing_sni = "alert:unrecognized_name"\n')
    code, report, _ = probe(f"https://{MRAP_HOST}", "--connect", f"127.0.0.1:{server.port('mrap')}", "--no-sni")
    assert code == 6 and report["alert"] == {"name": "unrecognized_name", "code": 112, "level": "fatal"}
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        free_port = unused.getsockname()[1]
    code, report, _ = probe("https://localhost", "--connect", f"127.0.0.1:{free_port}")
    assert code == 7 and report["outcome"] == "refused"


def test_request_log_lines_share_the_connection_id(mrapsim: MrapsimProcess) -> None:
    with socket.create_connection(("127.0.0.1", mrapsim.port("s3")), timeout=5) as sock:
        tls = tls_handshake(sock, "localhost", mrapsim.ca, ["http/1.1"])
        tls.send(b"GET /mraps3sample HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert b"AccessDenied" in tls.receive(200) + tls.receive(2000)
    record = mrapsim.wait_for_connection(listener="s3", outcome="forwarded")
    requests = mrapsim.wait_for_logs(
        lambda line: line.get("event") == "request" and line["connection_id"] == record["id"]
    )
    assert requests


VECTORS = Path(__file__).parent / "vectors"


@pytest.mark.parametrize("vector", sorted(p.name for p in VECTORS.glob("*.hex") if "sslv2" not in p.name))
def test_ja4_in_connections_equals_an_independent_implementation(mrapsim: MrapsimProcess, vector: str) -> None:
    """Recorded hellos (curl, openssl, Python, Node.js, Java, Chromium-like with PQ + GREASE) sent
    to the edge: the JA4 it records is what ja4plus computes from the same bytes."""
    reference = pytest.importorskip("ja4plus.fingerprinters.ja4")
    tls_utils = pytest.importorskip("ja4plus.utils.tls_utils")
    stream = bytes.fromhex((VECTORS / vector).read_text())
    with socket.create_connection(("127.0.0.1", mrapsim.port("mrap")), timeout=5) as sock:
        sock.sendall(stream)
        time.sleep(0.05)
    record = next(r for r in _wait_for_records(mrapsim, len(stream)) if r["client_hello_bytes"] == len(stream))
    hello = ClientHelloReader().feed(stream)
    assert isinstance(hello, ClientHello)
    expected = reference.generate_ja4(tls_utils.parse_tls_handshake(single_record(hello, stream)))
    if hello.alpn and not (hello.alpn[0][:1].isalnum() and hello.alpn[0][-1:].isalnum()):
        expected = expected[:8] + record["ja4"][8:10] + expected[10:]  # ja4plus' documented ALPN deviation
    assert record["ja4"] == expected


def _wait_for_records(server: MrapsimProcess, size: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [r for r in server.connections(limit=50) if r["client_hello_bytes"] == size]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("no record for the vector")
