"""`mrapsim serve --workers 2`: one set of sockets, two processes, one store, one admin API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
