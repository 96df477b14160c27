"""Bounded under a connection flood (issue 16, must-show 1): with the soft fd limit at 2,048
before start, 5,000 stalled no-SNI handshakes leave a client with SNI served within 1 s
throughout, /readyz answering, and the log holding a bounded number of lines about it."""

from __future__ import annotations

import dataclasses
import resource
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mrapsim.capacity import Admission, raise_fd_limit
from mrapsim.config import Limits
from mrapsim.metrics import Metrics
from tests.mrapsim_process import MrapsimProcess, start_mrapsim

MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"
FLOOD = 5000
SOFT_LIMIT = 2048
FLOOD_RATE = 500.0  # connections a second: 10 s of flood (the total is what the fd limit meets)


def test_admission_counts_per_listener_per_peer_and_the_budget() -> None:
    limits = dataclasses.replace(Limits(), connections_per_listener=3, connections_per_peer=2)
    admission = Admission(limits, budget=4, metrics=Metrics())
    assert admission.admit("mrap", "10.0.0.1") is None
    assert admission.admit("mrap", "10.0.0.1") is None
    assert admission.admit("mrap", "10.0.0.1") == "per_peer"
    assert admission.admit("mrap", "10.0.0.2") is None
    assert admission.admit("mrap", "10.0.0.3") == "per_listener"
    assert admission.admit("s3", "10.0.0.3") is None
    assert admission.admit("s3", "10.0.0.4") == "open_files"
    admission.release("mrap", "10.0.0.1")
    assert admission.admit("s3", "10.0.0.4") is None
    for listener, peer in [("mrap", "10.0.0.1"), ("mrap", "10.0.0.2"), ("s3", "10.0.0.3"), ("s3", "10.0.0.4")]:
        admission.release(listener, peer)
    assert admission.total == 0 and not admission.by_peer and not admission.by_listener
    refused = {
        tuple(sorted(s.labels.items())): s.value
        for family in admission.metrics.registry.collect()
        for s in family.samples
        if s.name == "mrapsim_connections_refused_total"
    }
    assert refused[(("limit", "per_peer"), ("listener", "mrap"))] == 1


def test_raise_fd_limit_goes_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = raise_fd_limit()
    assert raised.soft == resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= soft
    assert raised.hard == hard


def legit_round_trip(server: MrapsimProcess) -> float:
    """Connect, handshake with SNI, ListObjectsV2, read the whole answer: its duration."""
    started = time.monotonic()
    context = ssl.create_default_context(cafile=str(server.ca))
    context.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=10)
    with raw, context.wrap_socket(raw, server_hostname=MRAP_HOST) as tls:
        tls.sendall(f"GET /?list-type=2 HTTP/1.1\r\nHost: {MRAP_HOST}\r\n\r\n".encode())
        answer = b""
        while b"</ListBucketResult>" not in answer:
            chunk = tls.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    return time.monotonic() - started


FLOODER = """
import resource, socket, sys, time
from tests.tlsclient import client_hello_bytes
port, count, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
sources = sys.argv[4].split(",")
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
hello = client_hello_bytes(None)
held, started = [], time.monotonic()
for i in range(count):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.bind((sources[i % len(sources)], 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(hello)
    except OSError:
        sock.close()
        continue
    held.append(sock)
    if rate:
        time.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
print(len(held), flush=True)
sys.stdin.read()  # hold every connection until told to stop
"""


def flood_and_probe(server: MrapsimProcess, sources: list[str], rate: float = FLOOD_RATE) -> tuple[list[float], int]:
    """Open FLOOD stalled no-SNI connections from another process at `rate` per second (0: as
    fast as it can) while a client with SNI comes back every 0.1 s; the client's durations and
    how many flood connections were held."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < FLOOD + 500:
        pytest.skip(f"the flooding process needs {FLOOD + 500} file descriptors; the hard limit is {hard}")
    flooder = subprocess.Popen(
        [sys.executable, "-c", FLOODER, str(server.port("mrap")), str(FLOOD), str(rate), ",".join(sources)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    durations = []
    try:
        while flooder.poll() is None and not _ready(flooder):
            durations.append(legit_round_trip(server))
            assert server.admin_get("/readyz")["ready"] is True
            time.sleep(0.1)
        assert flooder.stdout is not None
        held = int(flooder.stdout.readline())
        for _ in range(5):  # with every stalled connection in place
            durations.append(legit_round_trip(server))
        return durations, held
    finally:
        flooder.kill()
        flooder.wait(timeout=10)


def _ready(process: subprocess.Popen[str]) -> bool:
    import select

    assert process.stdout is not None
    return bool(select.select([process.stdout], [], [], 0)[0])


def lines_about_the_flood(server: MrapsimProcess) -> list[str]:
    """Everything logged but the one line per connection and per request."""
    return [
        line for line in server.log_lines if '"event": "connection"' not in line and '"event": "request"' not in line
    ]


def test_must_show_1_the_soft_fd_limit_is_raised_and_a_flood_leaves_sni_clients_served(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= SOFT_LIMIT:
        pytest.skip("the hard fd limit leaves nothing to raise")
    server = start_mrapsim(tmp_path, '[auth]\nmode = "none"\n', fd_limit=(SOFT_LIMIT, hard))
    try:
        [event] = server.wait_for_logs(lambda e: e.get("event") == "fd_limit")
        assert event["soft"] == hard and f"raised from {SOFT_LIMIT}" in event["message"]
        before = len(lines_about_the_flood(server))
        durations, stalled = flood_and_probe(server, ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        assert stalled >= FLOOD * 0.95
        assert max(durations) < 1.0, f"slowest of {len(durations)}: {sorted(durations)[-5:]}"
        about = lines_about_the_flood(server)[before:]
        assert len(about) < 20, about
        assert not any("Traceback" in line or "EMFILE" in line for line in server.log_lines)
    finally:
        server.stop()


def test_must_show_1_at_a_hard_fd_limit_of_2048_the_stall_cap_and_the_reserve_keep_sni_clients_served(
    tmp_path: Path,
) -> None:
    config = '[auth]\nmode = "none"\n[listeners.mrap]\nmax_stalled = 1000\n'
    server = start_mrapsim(tmp_path, config, fd_limit=(SOFT_LIMIT, SOFT_LIMIT))
    try:
        before = len(lines_about_the_flood(server))
        sources = [f"127.0.0.{i}" for i in range(2, 12)]  # 500 each: under connections_per_peer
        durations, _ = flood_and_probe(server, sources)
        assert max(durations) < 1.0, f"slowest of {len(durations)}: {sorted(durations)[-5:]}"
        about = lines_about_the_flood(server)[before:]
        assert len(about) < 40, about
        assert not any("Traceback" in line for line in server.log_lines)
    finally:
        server.stop()
