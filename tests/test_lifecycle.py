"""Lifecycles (issue 16, must-show 5 and item 9): a SIGTERM drains only while a request is in
flight, with `Connection: close` on what it finishes; workers die with their supervisor, even
when it is killed with SIGKILL, and a new server then binds the same addresses."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time
import urllib.error
from pathlib import Path
from typing import Any

import pytest

from tests.mrapsim_process import MrapsimProcess, start_mrapsim
from tests.tlsclient import client_hello_bytes

SLOW_GET = """
[auth]
mode = "none"
[[faults]]
type = "s3_latency"
operation = "GetObject"
attributes = { latency_ms = 1500 }
"""


def tls_to(server: MrapsimProcess, listener: str = "s3") -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(server.ca))
    context.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", server.port(listener)), timeout=15)
    return context.wrap_socket(raw, server_hostname="localhost")


def test_sigterm_with_only_stalled_connections_exits_at_once(start_server: Any) -> None:
    server = start_server()
    with socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=5) as stalled:
        stalled.sendall(client_hello_bytes(None))
        server.wait_for_connection(outcome="no_sni", state="open")
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
    assert time.monotonic() - started < 2  # not the 5 s drain: nothing was in flight


def test_sigterm_drains_a_request_in_flight_and_closes_its_connection(start_server: Any) -> None:
    server = start_server(SLOW_GET)
    with tls_to(server) as sock:
        sock.sendall(b"GET /mraps3sample/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.4)
        assert server.process.poll() is None  # draining: a request is in flight
        try:
            server.admin_get("/readyz")
            raise AssertionError("readyz answered 200 while draining")
        except urllib.error.HTTPError as error:
            assert error.code == 503
        answer = b""
        while b"hello from mrapsim" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        answered = time.monotonic()
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 200") and b"connection: close" in head
    assert server.process.wait(timeout=15) == 0
    assert time.monotonic() - answered < 2


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's wait is missing


def test_must_show_5_workers_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    pytest.importorskip("mrapsim.store.sqlite")
    config = f'workers = 2\n[store]\nkind = "sqlite"\npath = "{tmp_path / "data"}"\n'
    (tmp_path / "first").mkdir()
    first = start_mrapsim(tmp_path / "first", config)
    try:
        workers = children(first.process.pid)
        assert len(workers) == 2 and all(alive(w) for w in workers)
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=5)
        killed = time.monotonic()
        while any(alive(w) for w in workers) and time.monotonic() - killed < 10:
            time.sleep(0.02)
        gone_after = time.monotonic() - killed
        assert not any(alive(w) for w in workers), "workers outlived their supervisor"
        assert gone_after < 2, gone_after
    finally:
        for worker in children(first.process.pid) if alive(first.process.pid) else []:
            os.kill(worker, signal.SIGKILL)
    # The same addresses bind again at once.
    (tmp_path / "second").mkdir()
    fixed = "".join(
        f'[listeners.{name}]\naddress = "127.0.0.1:{port}"\n' for name, (_, port) in first.listeners.items()
    )
    second = start_mrapsim(tmp_path / "second", config + fixed)
    try:
        assert second.listeners == first.listeners
        assert second.admin_get("/readyz")["ready"] is True
    finally:
        second.stop()
    assert second.process.returncode == 0


def test_sighup_applies_credentials_mraps_and_faults_and_names_what_needs_a_restart(start_server: Any) -> None:
    server = start_server()
    config_file = server.certs_dir.parent / "mrapsim.toml"
    original = config_file.read_text()
    config_file.write_text(
        original
        + """
[[auth.credentials]]
access_key = "AKIAIOSFODNN7EXAMPLE"
secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

[[auth.credentials]]
access_key = "AKIARELOADEDEXAMPLE1"
secret_key = "reloaded-secret-key-0123456789"

[[faults]]
type = "s3_latency"
operation = "GetObject"
attributes = { latency_ms = 1 }

[[listeners.mrap.routes]]
match = "*.mrap.accesspoint.s3-global.amazonaws.com"
target = "builtin"

[[listeners.mrap.routes]]
match = "localhost"
target = "builtin"
"""
    )
    text = config_file.read_text().replace("[listeners.s3]\n", '[listeners.s3]\nstall_timeout = "5s"\n', 1)
    config_file.write_text(text)
    with socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=5) as before:
        before.sendall(client_hello_bytes("localhost"))
        assert server.wait_for_connection(outcome="unknown_sni", state="open")
    server.process.send_signal(signal.SIGHUP)
    [event] = server.wait_for_logs(lambda e: e.get("event") == "reloaded")
    assert event["applied"] == ["auth", "faults", "listeners.mrap.routes"]
    assert event["restart_needed"] == ["listeners.s3"]
    with tls_to(server, "mrap") as rerouted:  # a route added live: "localhost" is now served on mrap
        rerouted.sendall(b"GET /mraps3sample/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert rerouted.recv(65536).startswith(b"HTTP/1.1 403")  # unsigned: refused by S3 itself
    assert [f["type"] for f in server.admin_get("/faults")] == ["s3_latency"]
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=f"https://localhost:{server.port('s3')}",
        region_name="us-east-1",
        aws_access_key_id="AKIARELOADEDEXAMPLE1",
        aws_secret_access_key="reloaded-secret-key-0123456789",
        verify=str(server.ca),
        config=Config(retries={"max_attempts": 1}),
    )
    assert client.list_objects_v2(Bucket="mraps3sample")["KeyCount"] > 0

    config_file.write_text("[auth\n")  # broken: the running configuration stays
    server.process.send_signal(signal.SIGHUP)
    assert server.wait_for_logs(lambda e: "configuration not reloaded" in e.get("message", ""))
    assert client.list_objects_v2(Bucket="mraps3sample")["KeyCount"] > 0
