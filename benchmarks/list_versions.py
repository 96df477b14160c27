"""ListObjectVersions page cost does not grow with the bucket (issue 11, must-show 5): a 100-entry
page from a synthetic bucket of 1,000,000 keys (each a "null" version) against the same page from
a 1,000-key synthetic bucket and from a 1,000-key real versioned bucket (two versions per key),
through `mrapsim serve` (TLS edge → hypercorn → S3 app), one kept-alive boto3 connection, pages
at random key markers, interleaved, medians; client wall time and the server's own per-request
duration from its JSON request log.

    python benchmarks/list_versions.py [--iterations 300] [--keys 1000000] [--store memory|sqlite]

Exit status 1 when a ratio exceeds 1.5.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.list_synthetic import client, ratios_ok, server_durations
from tests.mrapsim_process import MrapsimProcess, start_mrapsim

PAGE = 100


def config(keys: int, store: str, tmp: str) -> str:
    return f"""
[store]
kind = "{store}"
path = "{tmp}/store"
[[buckets]]
name = "synthetic-big"
synthetic = {{ keys = {keys}, key_format = "obj/{{i:07d}}", size = 1024, seed = 1 }}
[[buckets]]
name = "synthetic-small"
synthetic = {{ keys = 1000, key_format = "obj/{{i:07d}}", size = 1024, seed = 1 }}
[[buckets]]
name = "versioned-small"
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_mrapsim(Path(tmp), config(args.keys, args.store, tmp))
        try:
            return run(server, args.iterations, args.keys)
        finally:
            server.stop()


def run(server: MrapsimProcess, iterations: int, keys: int) -> int:
    s3: Any = client(server)
    s3.put_bucket_versioning(Bucket="versioned-small", VersioningConfiguration={"Status": "Enabled"})
    for i in range(500):
        for body in (b"one", b"two"):
            s3.put_object(Bucket="versioned-small", Key=f"obj/{i:07d}", Body=body)
    sizes = {"synthetic-big": keys, "synthetic-small": 1000, "versioned-small": 500}
    rng = random.Random(1)
    wall: dict[str, list[float]] = {name: [] for name in sizes}
    for name in sizes:  # warm-up
        for _ in range(20):
            s3.list_object_versions(Bucket=name, MaxKeys=PAGE)
    warm = {name: len(values) for name, values in server_durations(server, "ListObjectVersions").items()}
    for _ in range(iterations):
        for name, size in sizes.items():
            span = PAGE if name != "versioned-small" else PAGE // 2
            marker = f"obj/{rng.randrange(0, size - span):07d}"
            started = time.perf_counter()
            page = s3.list_object_versions(Bucket=name, MaxKeys=PAGE, KeyMarker=marker)
            wall[name].append(time.perf_counter() - started)
            assert len(page.get("Versions", [])) == PAGE, len(page.get("Versions", []))
    time.sleep(0.5)
    logged = server_durations(server, "ListObjectVersions")
    server_side = {name: logged[name][warm[name] : warm[name] + iterations] for name in sizes}

    def median_ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    print(f"ListObjectVersions, {PAGE}-entry pages at random key markers, {iterations} iterations each")
    print(f"{'bucket':<18}{'keys':>10}{'client p50 ms':>15}{'server p50 ms':>15}")
    for name, size in sizes.items():
        print(f"{name:<18}{size:>10,}{median_ms(wall[name]):>15.3f}{median_ms(server_side[name]):>15.3f}")
    ok = ratios_ok({"client": wall, "server": server_side}, ("synthetic-small", "versioned-small"), label_width=7)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
