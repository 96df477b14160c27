"""Issue 15, must-show 5: Locust master + 2 worker processes run `loadtest/locustfile.py`'s
`MixedUser` (mrapsim load's built-in `mixed` scenario as a Locust user class) against `mrapsim
serve`; the master's aggregated S3 request count is compared with mrapsim's own /metrics.

    python benchmarks/load_locust_distributed.py [--seconds 20] [--users 20]

Starts `mrapsim serve` on loopback (OS-chosen ports), a Locust master on a free port and two
workers, all as processes; prints Locust's counts per task beside the server's, and exits 1 unless
they agree within 1% (needs `pip install locust`).
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrapsim.load.server_metrics import parse_prometheus
from tests.mrapsim_process import ACCESS_KEY, SECRET_KEY, MrapsimProcess, start_mrapsim

LOCUSTFILE = Path(__file__).resolve().parents[1] / "loadtest" / "locustfile.py"
OPERATIONS = {"list": "ListObjectsV2", "get": "GetObject", "put": "PutObject", "setup": "PutObject"}


def counts(server: MrapsimProcess) -> dict[str, float]:
    found: dict[str, float] = {}
    for (name, labels), value in parse_prometheus(server.admin_get("/metrics")).items():
        if name == "mrapsim_s3_requests_total":
            operation = dict(labels)["operation"]
            found[operation] = found.get(operation, 0) + value
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--users", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        server = start_mrapsim(Path(tmp))
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "MRAPSIM_CA_BUNDLE": str(server.ca),
        }
        locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
        try:
            before = counts(server)
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
                    "2",
                    "-u",
                    str(args.users),
                    "-r",
                    str(args.users),
                    "-t",
                    f"{args.seconds}s",
                    "--stop-timeout",
                    "5",
                    "--only-summary",
                    "--csv",
                    f"{tmp}/dist",
                    "--host",
                    f"https://localhost:{server.port('s3')}/mraps3sample",
                    "MixedUser",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            workers = [
                subprocess.Popen(
                    [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port), "MixedUser"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
                for _ in range(2)
            ]
            _, err = master.communicate(timeout=args.seconds + 120)
            for worker in workers:
                worker.wait(timeout=30)
            after = counts(server)
        finally:
            server.stop()
        with Path(f"{tmp}/dist_stats.csv").open() as f:
            rows = {r["Name"]: r for r in csv.DictReader(f)}
    if "Aggregated" not in rows:
        sys.stderr.write(err[-3000:])
        return 1
    locust_s3: dict[str, int] = {}
    for name, operation in OPERATIONS.items():
        locust_s3[operation] = locust_s3.get(operation, 0) + int(rows.get(name, {}).get("Request Count", 0))
    print(f"{'':<16} {'locust':>8} {'mrapsim':>8}")
    for operation, n in locust_s3.items():
        print(f"{operation:<16} {n:>8} {round(after.get(operation, 0) - before.get(operation, 0)):>8}")
    ours = sum(locust_s3.values())
    theirs = round(sum(after.get(o, 0) - before.get(o, 0) for o in locust_s3))
    diff = abs(ours - theirs) / max(1, theirs)
    handshakes = sum(int(rows[n]["Request Count"]) for n in ("handshake", "handshake_nosni") if n in rows)
    print(
        f"{'S3 requests':<16} {ours:>8} {theirs:>8}  {100 * diff:.2f}% apart; plus {handshakes} handshakes; "
        f"Locust's aggregated count {rows['Aggregated']['Request Count']}, "
        f"failures {rows['Aggregated']['Failure Count']}"
    )
    print("✓ within 1%" if diff <= 0.01 else "✗ more than 1% apart")
    return 0 if diff <= 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
