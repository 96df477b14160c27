"""`mrapsim load` against a real `mrapsim serve` (subprocess, loopback, OS-chosen ports).

Must-show 1, shortened to 8 s (benchmarks/load_mrap_nosni.py runs the full 20 s): a mixed run
on listener `mrap` where 10% of the handshakes carry no SNI. With a 1 s handshake timeout every
one of those is classed `stalled`, everything else succeeds, and the harness's counts agree with
mrapsim's own /metrics for the same interval within 1%.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.mrapsim_process import MrapsimProcess

MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"
SCENARIOS = Path(__file__).resolve().parents[2] / "loadtest" / "scenarios"
KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


def load(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mrapsim.load", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **KEYS},
    )


def test_mixed_run_with_one_in_ten_handshakes_without_sni(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    port = mrapsim.port("mrap")
    done = load(
        "--target",
        f"https://{MRAP_HOST}:{port}",
        "--connect",
        f"127.0.0.1:{port}",
        "--ca-bundle",
        str(mrapsim.ca),
        "--scenario",
        "mixed",
        "--users",
        "8",
        "--duration",
        "8s",
        "--handshake-timeout",
        "1s",
        "--server-metrics",
        f"http://{mrapsim.admin}",
        "--json",
        str(tmp_path / "run.json"),
        "--csv",
        str(tmp_path / "run"),
        "--html",
        str(tmp_path / "run.html"),
        "--threshold",
        "fail_rate<0.5",
        "--seed",
        "1",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads((tmp_path / "run.json").read_text())
    summary = document["summary"]
    tasks = summary["tasks"]
    nosni = tasks["handshake_nosni"]
    assert nosni["requests"] > 5 and nosni["failures"] == nosni["requests"]
    assert summary["failures_by_class"] == {"stalled": {"handshake_nosni": nosni["requests"]}}
    assert 1000 <= nosni["p50_ms"] < 1500  # the handshake deadline, then classed
    for name in ("list", "get", "put", "handshake"):
        assert tasks[name]["requests"] > 20 and tasks[name]["failures"] == 0, name
    handshakes = document["handshakes"]
    assert handshakes["stalled"] == nosni["requests"] and set(handshakes) == {"ok", "stalled"}
    rows = document["meta"]["server_metrics"]
    assert {r["what"].split(":")[0] for r in rows} == {"connections", "requests"} and len(rows) == 5
    for row in rows:
        assert abs(row["harness"] - row["server"]) <= 0.01 * max(row["harness"], row["server"]), row
    assert "stalled" in done.stdout and "✓ 'fail_rate<0.5'" in done.stdout
    assert "mrapsim /metrics over the same interval" in done.stdout
    assert (tmp_path / "run_stats.csv").read_text().startswith("Type,Name,Request Count")
    assert "uPlot" in (tmp_path / "run.html").read_text()


def test_processes_path_style_and_a_threshold_that_cannot_hold(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    port = mrapsim.port("s3")
    scenario = tmp_path / "s3.toml"
    scenario.write_text(
        '[[task]]\nkind = "list"\nmax_keys = 5\n[[task]]\nkind = "head"\nsizes = ["2KiB"]\n'
        '[[task]]\nkind = "get"\nsizes = ["2KiB"]\nranges = ["0-99"]\n'
    )
    done = load(
        "--target",
        f"https://localhost:{port}/mraps3sample",
        "--ca-bundle",
        str(mrapsim.ca),
        "--scenario",
        str(scenario),
        "--users",
        "4",
        "--processes",
        "2",
        "--duration",
        "3s",
        "--json",
        str(tmp_path / "run.json"),
        "--threshold",
        "rps>1000000",
        "--threshold",
        "fail_rate==0",
    )
    assert done.returncode == 99, done.stdout + done.stderr
    assert "✗ 'rps>1000000'" in done.stdout and "✓ 'fail_rate==0'" in done.stdout
    document = json.loads((tmp_path / "run.json").read_text())
    assert document["users"] == 4 and document["meta"]["processes"] == 2
    tasks = document["summary"]["tasks"]
    assert all(t["requests"] > 10 and t["failures"] == 0 for t in tasks.values()), tasks
    get = next(t for t in document["tasks"] if t["name"] == "get")
    assert get["content_bytes"] == 100 * get["requests"]  # Range: bytes=0-99


def test_wrong_secret_is_classed_by_s3_code(mrapsim: MrapsimProcess) -> None:
    port = mrapsim.port("s3")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mrapsim.load",
            "--target",
            f"https://localhost:{port}/mraps3sample",
            "--ca-bundle",
            str(mrapsim.ca),
            "--scenario",
            "list",
            "--requests",
            "5",
            "--users",
            "1",
            "--access-key",
            "AKIAIOSFODNN7EXAMPLE",
            "--secret-key",
            "wrong",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "s3:SignatureDoesNotMatch" in done.stdout


def test_bad_options_exit_2() -> None:
    for args in (
        ["--target", "ftp://x"],
        ["--target", "https://x", "--threshold", "p99<soon"],
        ["--target", "https://x", "--scenario", "nope"],
    ):
        done = load(*args)
        assert done.returncode == 2 and done.stderr.startswith("mrapsim: error:"), args


def test_http2_on_the_mrap_listener_agrees_with_metrics(start_server: Any, tmp_path: Path) -> None:
    # h2 is a configuration choice: by default the MRAP listener selects http/1.1, as AWS S3 does.
    mrapsim = start_server('[listeners.mrap]\nalpn = ["h2", "http/1.1"]\n')
    port = mrapsim.port("mrap")
    h2_before = h2_handshakes(mrapsim)
    done = load(
        "--target",
        f"https://{MRAP_HOST}:{port}",
        "--connect",
        f"127.0.0.1:{port}",
        "--ca-bundle",
        str(mrapsim.ca),
        "--scenario",
        str(SCENARIOS / "h2.toml"),
        "--users",
        "4",
        "--duration",
        "2s",
        "--server-metrics",
        f"http://{mrapsim.admin}",
        "--json",
        str(tmp_path / "run.json"),
        "--quiet",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads((tmp_path / "run.json").read_text())
    tasks = document["summary"]["tasks"]
    assert all(t["requests"] > 5 and t["failures"] == 0 for t in tasks.values()), tasks
    for row in document["meta"]["server_metrics"]:
        assert abs(row["harness"] - row["server"]) <= 0.01 * max(row["harness"], row["server"]), row
    assert h2_handshakes(mrapsim) - h2_before == document["handshakes"]["ok"] + document["meta"]["setup"]["connections"]


def test_http2_where_it_is_not_offered_is_named(mrapsim: MrapsimProcess) -> None:
    done = load(
        "--target",
        f"https://localhost:{mrapsim.port('s3')}/mraps3sample",
        "--ca-bundle",
        str(mrapsim.ca),
        "--scenario",
        str(SCENARIOS / "h2.toml"),
        "--requests",
        "6",
        "--users",
        "1",
        "--quiet",
    )
    assert done.returncode == 1 and "setup: PUT" in done.stderr and "no_h2" in done.stderr


def h2_handshakes(mrapsim: MrapsimProcess) -> float:
    text = mrapsim.admin_get("/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mrapsim_tls_handshakes_total{") and 'alpn="h2"' in line
    )
