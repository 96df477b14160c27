"""A Locust master and its workers, as processes, running loadtest/locustfile.py against `mrapsim
serve`: shared by tests/load/test_locustfile.py and benchmarks/load_locust_distributed.py, which
both compare the master's aggregated counts with mrapsim's own /metrics."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrapsim.load.server_metrics import parse_prometheus
from tests.mrapsim_process import MrapsimProcess

LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtest" / "locustfile.py"


@dataclass(frozen=True)
class DistributedRun:
    stats_csv: Path  # the master's `<prefix>_stats.csv`; absent when the run failed
    stderr: str  # the master's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def locust_env(server: MrapsimProcess, access_key: str, secret_key: str) -> dict[str, str]:
    """The environment the locustfile signs with and trusts the server's CA from."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "MRAPSIM_CA_BUNDLE": str(server.ca),
    }


def server_counts(server: MrapsimProcess) -> dict[str, float]:
    """mrapsim's S3 requests by operation, and its accepted connections under "connections"."""
    found: dict[str, float] = {}
    for (name, labels), value in parse_prometheus(server.admin_get("/metrics")).items():
        if name == "mrapsim_s3_requests_total":
            operation = dict(labels)["operation"]
            found[operation] = found.get(operation, 0) + value
        elif name == "mrapsim_connections_total":
            found["connections"] = found.get("connections", 0) + value
    return found


def run_master_and_workers(
    *,
    host: str,
    csv_prefix: Path,
    env: dict[str, str],
    users: int,
    seconds: int,
    stop_timeout: int,
    timeout: float,
    worker_timeout: float,
    user_class: str = "MixedUser",
    workers: int = 2,
) -> DistributedRun:
    """A headless master expecting `workers` workers on a free loopback port; waits for all of
    them, killing any still running when it gives up."""
    port = free_port()
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    master = subprocess.Popen(
        [
            *locust,
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--headless",
            "--expect-workers",
            str(workers),
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{seconds}s",
            "--stop-timeout",
            str(stop_timeout),
            "--host",
            host,
            "--csv",
            str(csv_prefix),
            "--only-summary",
            user_class,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    worker_processes = [
        subprocess.Popen(
            [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port), user_class],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        for _ in range(workers)
    ]
    try:
        _, err = master.communicate(timeout=timeout)
        for worker in worker_processes:
            worker.wait(timeout=worker_timeout)
    finally:
        processes: list[subprocess.Popen[Any]] = [master, *worker_processes]
        for process in processes:
            if process.poll() is None:
                process.kill()
    return DistributedRun(csv_prefix.with_name(csv_prefix.name + "_stats.csv"), err)


def read_stats(path: Path) -> dict[str, dict[str, str]]:
    """Locust's stats CSV as rows by name ("Aggregated" included)."""
    with path.open() as f:
        return {r["Name"]: r for r in csv.DictReader(f)}
