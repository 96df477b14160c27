"""loadtest/locustfile.py: its SigV4 agrees with botocore, and real Locust runs it against
`mrapsim serve` (headless, a few seconds). Locust is imported only in subprocesses: importing it
monkey-patches the interpreter with gevent. Skipped when locust is not installed."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.load.locust_distributed import LOCUSTFILE, locust_env, read_stats, run_master_and_workers, server_counts
from tests.load.test_sigv4 import ACCESS, CASES, HOST, NOW, SECRET, botocore_authorization
from tests.mrapsim_process import MrapsimProcess

pytestmark = pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="locust is not installed")

SIGN = """
import json, sys
sys.path.insert(0, {directory!r})
from locustfile import sigv4_headers
cases = json.loads(sys.stdin.read())
print(json.dumps([sigv4_headers(m, {host!r}, p, q, bytes.fromhex(b), {access!r}, {secret!r}, r, now={now!r})
                  ["authorization"] for m, p, q, b, r in cases]))
"""


def test_locustfile_signer_matches_botocore() -> None:
    cases = [
        (m, p, q, b if isinstance(b, bytes) else b"", region)
        for (m, p, q, h, b) in CASES
        if not h
        for region in ("us-east-1", "ap-south-2")
    ]
    code = SIGN.format(directory=str(LOCUSTFILE.parent), host=HOST, access=ACCESS, secret=SECRET, now=NOW.timestamp())
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        input=json.dumps([(m, p, q, b.hex(), r) for m, p, q, b, r in cases]),
    )
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    assert theirs == [botocore_authorization(m, p, q, {}, b, r) for m, p, q, b, r in cases]


def locust(host: str, tmp_path: Path, *classes: str, env: dict[str, str]) -> dict[str, dict[str, str]]:
    prefix = tmp_path / "locust"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "3s",
            "--host",
            host,
            "--csv",
            str(prefix),
            "--only-summary",
            "--stop-timeout",
            "2",
            *classes,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert (tmp_path / "locust_stats.csv").exists(), done.stderr[-2000:]
    rows = read_stats(tmp_path / "locust_stats.csv")
    with (tmp_path / "locust_failures.csv").open() as f:
        for failure in csv.DictReader(f):
            rows[failure["Name"]]["Error"] = failure["Error"]
    return rows


def test_s3_and_handshake_users_against_the_s3_listener(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    rows = locust(
        f"https://localhost:{mrapsim.port('s3')}/mraps3sample",
        tmp_path,
        "S3User",  # named: the file's MixedUser is for the master-and-workers test below
        "HandshakeUser",
        env={
            "AWS_ACCESS_KEY_ID": ACCESS,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "MRAPSIM_CA_BUNDLE": str(mrapsim.ca),
            "MRAPSIM_NOSNI_FRACTION": "0.5",
        },
    )
    for name in ("list", "get", "put", "handshake", "handshake_nosni"):
        assert int(rows[name]["Request Count"]) > 0, (name, rows)
    assert rows["Aggregated"]["Failure Count"] == "0", rows


def test_handshakes_without_sni_stall_on_the_mrap_listener(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    port = mrapsim.port("mrap")
    rows = locust(
        f"https://mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com:{port}",
        tmp_path,
        "HandshakeUser",
        env={
            "MRAPSIM_CONNECT": f"127.0.0.1:{port}",
            "MRAPSIM_CA_BUNDLE": str(mrapsim.ca),
            "MRAPSIM_NOSNI_FRACTION": "0.3",
            "MRAPSIM_HANDSHAKE_TIMEOUT": "0.5",
        },
    )
    assert rows["handshake"]["Failure Count"] == "0" and int(rows["handshake"]["Request Count"]) > 10
    nosni = rows["handshake_nosni"]
    assert int(nosni["Failure Count"]) == int(nosni["Request Count"]) > 0
    assert "stalled" in nosni["Error"]


def test_master_and_two_workers_agree_with_mrapsims_metrics(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    """Must-show 5: `MixedUser` (the built-in mixed scenario) on a Locust master and two worker
    processes; the master's aggregated counts match what mrapsim counted within 1%."""
    host = f"https://localhost:{mrapsim.port('s3')}/mraps3sample"
    before = server_counts(mrapsim)
    run = run_master_and_workers(
        host=host,
        csv_prefix=tmp_path / "dist",
        env=locust_env(mrapsim, ACCESS, SECRET),
        users=6,
        seconds=6,
        stop_timeout=3,
        timeout=60,
        worker_timeout=20,
    )
    assert run.stats_csv.exists(), run.stderr[-3000:]
    rows = read_stats(run.stats_csv)
    for name in ("list", "get", "put", "handshake", "handshake_nosni"):
        assert int(rows[name]["Request Count"]) > 0, (name, rows[name])
    assert rows["Aggregated"]["Failure Count"] == "0", rows
    after = server_counts(mrapsim)
    server = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    harness = {
        "ListObjectsV2": int(rows["list"]["Request Count"]),
        "GetObject": int(rows["get"]["Request Count"]),
        "PutObject": int(rows["put"]["Request Count"]) + int(rows["setup"]["Request Count"]),
    }
    total_harness, total_server = sum(harness.values()), sum(server.get(k, 0) for k in harness)
    assert abs(total_harness - total_server) <= 0.01 * total_server, (harness, server)
    handshakes = int(rows["handshake"]["Request Count"]) + int(rows["handshake_nosni"]["Request Count"])
    # Each handshake is a connection; FastHttpUser adds one keep-alive connection per user (a few more
    # if one was dropped): the server's new connections are the handshakes plus that handful.
    assert handshakes <= server["connections"] <= handshakes + 3 * 6, (handshakes, server["connections"])
