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
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.load.locust_distributed import locust_env, read_stats, run_master_and_workers, server_counts
from tests.mrapsim_process import ACCESS_KEY, SECRET_KEY, start_mrapsim

OPERATIONS = {"list": "ListObjectsV2", "get": "GetObject", "put": "PutObject", "setup": "PutObject"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--users", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_mrapsim(Path(tmp))
        try:
            before = server_counts(server)
            run = run_master_and_workers(
                host=f"https://localhost:{server.port('s3')}/mraps3sample",
                csv_prefix=Path(tmp) / "dist",
                env=locust_env(server, ACCESS_KEY, SECRET_KEY),
                users=args.users,
                seconds=args.seconds,
                stop_timeout=5,
                timeout=args.seconds + 120,
                worker_timeout=30,
            )
            after = server_counts(server)
        finally:
            server.stop()
        rows = read_stats(run.stats_csv)
    if "Aggregated" not in rows:
        sys.stderr.write(run.stderr[-3000:])
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
