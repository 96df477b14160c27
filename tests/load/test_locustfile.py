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

from tests.load.test_sigv4 import ACCESS, CASES, HOST, NOW, SECRET, botocore_authorization
from tests.mrapsim_process import MrapsimProcess

LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtest" / "locustfile.py"
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
    with (tmp_path / "locust_stats.csv").open() as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    with (tmp_path / "locust_failures.csv").open() as f:
        for failure in csv.DictReader(f):
            rows[failure["Name"]]["Error"] = failure["Error"]
    return rows


def test_s3_and_handshake_users_against_the_s3_listener(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    rows = locust(
        f"https://localhost:{mrapsim.port('s3')}/mraps3sample",
        tmp_path,
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
