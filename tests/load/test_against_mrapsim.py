"""`mrapsim load` against a real `mrapsim serve` (subprocess, loopback, OS-chosen ports).

Must-show 1, shortened to 8 s (benchmarks/load_mrap_nosni.py runs the full 20 s): a mixed run
on listener `mrap` where 10% of the handshakes carry no SNI. With a 1 s handshake timeout every
one of those is classed `stalled`, everything else succeeds, and the harness's counts agree with
mrapsim's own /metrics for the same interval within 1%.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.load.commands import mrap_target, s3_load_command
from tests.mrapsim_process import MrapsimProcess

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
        *mrap_target(port, mrapsim.ca),
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
        "--threshold",
        "p(99)<1000",
        "--seed",
        "1",
        # the README's thresholds: they hold on a healthy server
        "--threshold",
        "p(95)<500",
        "--threshold",
        "list:rate<0.01",
        "--threshold",
        "handshake_nosni:stalled_rate>0.99",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads((tmp_path / "run.json").read_text())
    summary = document["summary"]
    tasks = summary["tasks"]
    nosni = tasks["handshake_nosni"]
    assert nosni["requests"] > 5 and nosni["failures"] == nosni["requests"]
    assert summary["failures_by_class"] == {"stalled": {"handshake_nosni": nosni["requests"]}}
    stalled = next(t for t in document["tasks"] if t["name"] == "handshake_nosni")["stalled"]
    assert stalled == nosni["requests"]  # counted apart: their time is the deadline, not a latency
    for name in ("list", "get", "put", "handshake"):
        assert tasks[name]["requests"] > 20 and tasks[name]["failures"] == 0, name
    handshakes = document["handshakes"]
    assert handshakes["stalled"] == nosni["requests"] and set(handshakes) == {"ok", "stalled"}
    rows = document["meta"]["server_metrics"]
    assert {r["what"].split(":")[0] for r in rows} == {"connections", "requests"} and len(rows) == 5
    for row in rows:  # both sides count the setup (the bucket check and the objects written)
        assert row["harness"] == row["server"], row
    assert {r["what"]: r["setup"] for r in rows}["requests: ListObjectsV2"] == 1
    assert "stalled" in done.stdout and "✓ 'fail_rate<0.5'" in done.stdout and "✓ 'p(99)<1000'" in done.stdout
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
    assert done.returncode == 1, done.stderr  # refused by the bucket check, before the run
    assert done.stderr.count("\n") == 1 and "s3:SignatureDoesNotMatch" in done.stderr
    assert "--secret-key" in done.stderr and done.stdout == ""


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
        *mrap_target(port, mrapsim.ca),
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


def bare(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`mrapsim load` without AWS keys in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MRAPSIM_LOAD_"))}
    return subprocess.run(
        [sys.executable, "-m", "mrapsim.load", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


def test_locust_flags_and_mrapsims_default_keys(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    """Must-show 3, against the fixture's port: no keys, no --ca-bundle (./certs is mrapsim's)."""
    (tmp_path / "certs").symlink_to(mrapsim.certs_dir)
    done = bare(
        "-u",
        "5",
        "-r",
        "5",
        "-t",
        "3s",
        "--headless",
        "-H",
        f"https://localhost:{mrapsim.port('s3')}/mraps3sample",
        "--only-summary",
        "--threshold",
        "rate<0.01",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mrapsim's default key pair" in done.stderr and "t=" not in done.stderr  # no live lines
    assert "✓ 'rate<0.01'" in done.stdout and "5 users" in done.stdout


def test_a_threshold_naming_a_missing_task_stops_before_the_run(mrapsim: MrapsimProcess) -> None:
    started = time.monotonic()
    done = load(
        "-H",
        f"https://localhost:{mrapsim.port('s3')}/mraps3sample",
        "--ca-bundle",
        str(mrapsim.ca),
        "-t",
        "30s",
        "--threshold",
        "lst:p(95)<500",
    )
    assert done.returncode == 2 and time.monotonic() - started < 10  # against a 30 s run
    assert done.stderr.count("\n") == 1 and "no task named 'lst'" in done.stderr and "list" in done.stderr


def test_a_missing_bucket_is_named_before_the_run(mrapsim: MrapsimProcess) -> None:
    port = mrapsim.port("s3")
    done = load("-H", f"https://localhost:{port}", "--ca-bundle", str(mrapsim.ca), "-t", "30s")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"https://localhost:{port}/mraps3sample" in done.stderr
    done = load("-H", f"https://localhost:{port}/nosuchbucket", "--ca-bundle", str(mrapsim.ca), "-t", "30s")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "bucket 'nosuchbucket' does not exist" in done.stderr and "s3:NoSuchBucket" in done.stderr


def test_abort_on_fail_stops_the_run_and_still_reports(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    started = time.monotonic()
    done = load(
        "-H",
        f"https://localhost:{mrapsim.port('s3')}/mraps3sample",
        "--ca-bundle",
        str(mrapsim.ca),
        "-u",
        "2",
        "-t",
        "30s",
        "--quiet",
        "--json",
        str(tmp_path / "run.json"),
        "--threshold",
        "rps>1000000 abortOnFail delayAbortEval=1s",
    )
    assert done.returncode == 99 and time.monotonic() - started < 20, done.stdout + done.stderr
    assert "Run stopped early: threshold 'rps>1000000 abortOnFail delayAbortEval=1s' failed" in done.stdout
    assert json.loads((tmp_path / "run.json").read_text())["summary"]["duration_s"] < 10


def test_sigv4a_signed_run_on_the_mrap_listener(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    port = mrapsim.port("mrap")
    done = load(
        *mrap_target(port, mrapsim.ca),
        "-f",
        "mixed",
        "--sigv4a",
        "-u",
        "3",
        "-t",
        "2s",
        "--only-summary",
        "--json",
        str(tmp_path / "run.json"),
        "--handshake-timeout",
        "0.5s",
        "--threshold",
        "list:rate==0",
        "--threshold",
        "put:rate==0",
        "--threshold",
        "get:rate==0",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tasks = json.loads((tmp_path / "run.json").read_text())["summary"]["tasks"]
    assert all(tasks[n]["requests"] > 0 for n in ("list", "get", "put")), tasks


def test_ctrl_c_stops_several_processes_and_still_reports(mrapsim: MrapsimProcess, tmp_path: Path) -> None:
    load = subprocess.Popen(
        s3_load_command(
            mrapsim,
            "-f",
            "list",
            "-u",
            "2",
            "--processes",
            "2",
            "-t",
            "60s",
            "--only-summary",
            "--json",
            str(tmp_path / "run.json"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **KEYS},
    )
    time.sleep(4)
    load.send_signal(signal.SIGINT)
    out, err = load.communicate(timeout=40)
    assert load.returncode == 130 and "interrupted" in err, out + err
    assert "Run stopped early: interrupted (Ctrl-C)" in out
    assert json.loads((tmp_path / "run.json").read_text())["meta"]["processes"] == 2
