"""`mrapsim serve --workers 2`: one set of sockets, two processes, one store, one admin API."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.tlsclient import client_hello_bytes, tls_handshake

pytest.importorskip("mrapsim.store.sqlite")


@pytest.fixture
def workers_server(start_server: Any, tmp_path: Any) -> Any:
    return start_server(f'workers = 2\n[store]\nkind = "sqlite"\npath = "{tmp_path / "data"}"\n')


def s3_client(server: Any) -> Any:
    return server.s3_client(max_pool_connections=1, tcp_keepalive=False)


def test_workers_share_sockets_and_store(workers_server: Any) -> None:
    """(The admin API over two workers: tests/test_admin.py runs each of its tests against them.)"""
    assert workers_server.admin_get("/readyz")["workers"] == 2
    # Writes through one worker are read through the other: every request below is a new connection.
    for i in range(6):
        client = s3_client(workers_server)
        client.put_object(Bucket="mraps3sample", Key=f"shared/{i}.txt", Body=f"object {i}".encode())
        reader = s3_client(workers_server)
        assert reader.get_object(Bucket="mraps3sample", Key=f"shared/{i}.txt")["Body"].read() == f"object {i}".encode()
    keys = [
        o["Key"] for o in s3_client(workers_server).list_objects_v2(Bucket="mraps3sample", Prefix="shared/")["Contents"]
    ]
    assert keys == [f"shared/{i}.txt" for i in range(6)]
    workers_server.stop()
    assert workers_server.process.returncode == 0


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def test_a_dead_worker_stops_the_server(workers_server: Any) -> None:
    workers = _children(workers_server.process.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    assert workers_server.process.wait(timeout=30) == 1
    assert workers_server.wait_for_logs(lambda e: "stopping the server" in e.get("message", ""))


def test_a_bad_store_path_is_a_start_up_error(tmp_path: Path) -> None:
    (tmp_path / "file").touch()
    config = tmp_path / "c.toml"
    config.write_text(f'workers = 2\n[store]\nkind = "sqlite"\npath = "{tmp_path / "file" / "x"}"\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mrapsim.cli",
            "serve",
            "--config",
            str(config),
            "--admin",
            "127.0.0.1:0",
            "--listen",
            "mrap=127.0.0.1:0",
            "--listen",
            "s3=127.0.0.1:0",
            "--certs-dir",
            str(tmp_path / "certs"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "store.path" in result.stderr


# The sqlite store waits up to 30 s (BUSY_TIMEOUT) for another process's write lock. The test holds
# the lock for HOLD_SECONDS while writes wait on it in both workers; every bound below is far
# shorter, so a worker whose event loop waited on the lock (accepting nothing, running no timer
# until the lock came free) fails it, and a busy machine does not.
HOLD_SECONDS = 8.0
STALL_SECONDS = 1.0
MARGIN_SECONDS = 2.0


def test_a_write_waiting_for_the_lock_stalls_neither_accepts_nor_timers(start_server: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(
        f'workers = 2\n[store]\nkind = "sqlite"\npath = "{data}"\n'
        f'[listeners.mrap]\nstall_timeout = "{STALL_SECONDS:g}s"\n'
    )
    done: dict[int, float] = {}
    errors: list[BaseException] = []

    def put(i: int) -> None:
        try:
            s3_client(server).put_object(Bucket="mraps3sample", Key=f"held/{i}", Body=b"x" * 100)
            done[i] = time.monotonic()
        except BaseException as exc:  # reported by the assertions below
            errors.append(exc)

    lock = sqlite3.connect(data / "mrapsim.sqlite3", isolation_level=None, timeout=10)
    lock.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    held_since = time.monotonic()
    # Four writes on four connections: with an event loop that waited on the lock, the first
    # would block one worker and the next, accepted by the other, block that one too.
    writers = [threading.Thread(target=put, args=(i,), daemon=True) for i in range(4)]
    try:
        for writer in writers:
            writer.start()
        time.sleep(1.0)
        assert not done and not errors, "the writes should be waiting for the lock"

        handshakes = []
        for _ in range(8):  # new connections, accepted by either worker
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", server.port("s3")), timeout=10) as sock:
                tls_handshake(sock, "localhost", server.ca, timeout=10)
            handshakes.append(time.monotonic() - started)
        assert max(handshakes) < MARGIN_SECONDS, handshakes

        stalled = []
        for _ in range(4):  # stalls in either worker end on their timer
            sock = socket.create_connection(("127.0.0.1", server.port("mrap")), timeout=10)
            sock.sendall(client_hello_bytes(None))
            stalled.append((sock, time.monotonic()))
        closes = [_seconds_until_closed(sock, since) for sock, since in stalled]
        assert all(STALL_SECONDS - 0.1 <= c < STALL_SECONDS + MARGIN_SECONDS for c in closes), closes
        assert not done and not errors, "the lock was held throughout"
        assert time.monotonic() - held_since < HOLD_SECONDS
        time.sleep(max(0.0, held_since + HOLD_SECONDS - time.monotonic()))
    finally:
        lock.execute("ROLLBACK")
        released = time.monotonic()
        lock.close()
    for writer in writers:
        writer.join(timeout=30)
    assert not errors and len(done) == 4 and min(done.values()) >= released
    assert s3_client(server).get_object(Bucket="mraps3sample", Key="held/3")["Body"].read() == b"x" * 100


def _seconds_until_closed(sock: socket.socket, since: float) -> float:
    with sock:
        try:
            while sock.recv(4096):
                pass
        except ConnectionResetError:
            pass
        return time.monotonic() - since
