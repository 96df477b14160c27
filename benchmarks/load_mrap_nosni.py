"""Must-show 1 of issue 6, full length: a 20 s mixed run against `mrapsim serve` (listener
`mrap`, 10% of the handshakes without SNI, handshake timeout 1 s), checked against mrapsim's own
/metrics for the same interval.

    python benchmarks/load_mrap_nosni.py [--seconds 20] [--users 10] [--out DIR]

Starts `mrapsim serve` on loopback (OS-chosen ports), runs `mrapsim load` (via `python -m
mrapsim.load`) with --server-metrics, prints the harness's summary, and exits 1 unless every
no-SNI handshake was classed `stalled`, nothing else failed, and every harness/server pair agrees
within 1%. With --out, the JSON, CSV and HTML reports are kept there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.load.commands import mrap_target
from tests.mrapsim_process import start_mrapsim

KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


def check(document: dict[str, object]) -> list[str]:
    problems = []
    summary = document["summary"]
    assert isinstance(summary, dict)
    for name, task in summary["tasks"].items():
        if name == "handshake_nosni":
            if task["failures"] != task["requests"] or not task["requests"]:
                problems.append(f"handshake_nosni: {task['failures']} of {task['requests']} failed")
        elif task["failures"]:
            problems.append(f"{name}: {task['failures']} failures")
    if set(summary["failures_by_class"]) - {"stalled"}:
        problems.append(f"failure classes other than stalled: {summary['failures_by_class']}")
    meta = document["meta"]
    assert isinstance(meta, dict)
    for row in meta["server_metrics"]:
        larger = max(row["harness"], row["server"])
        if larger and abs(row["harness"] - row["server"]) > 0.01 * larger:
            problems.append(f"{row['what']}: harness {row['harness']} vs server {row['server']}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--out", type=Path, help="keep run.json, run_*.csv and run.html here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        server = start_mrapsim(Path(tmp))
        try:
            port = server.port("mrap")
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mrapsim.load",
                    *mrap_target(port, server.ca),
                    "--scenario",
                    "mixed",
                    "--users",
                    str(args.users),
                    "--duration",
                    f"{args.seconds}s",
                    "--handshake-timeout",
                    "1s",
                    "--server-metrics",
                    f"http://{server.admin}",
                    "--json",
                    str(out / "run.json"),
                    "--csv",
                    str(out / "run"),
                    "--html",
                    str(out / "run.html"),
                    "--quiet",
                ],
                capture_output=True,
                text=True,
                timeout=args.seconds + 120,
                env={**os.environ, **KEYS},
            )
        finally:
            server.stop()
        sys.stdout.write(done.stdout)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            return 1
        problems = check(json.loads((out / "run.json").read_text()))
    for problem in problems:
        print(f"✗ {problem}")
    print(
        "✓ no-SNI handshakes all stalled, the rest succeeded, harness and /metrics agree within 1%"
        if not problems
        else "✗ must-show 1 does not hold"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
