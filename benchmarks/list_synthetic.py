"""ListObjectsV2 page cost does not grow with the bucket: a 100-key page from a synthetic bucket
of 1,000,000 keys against the same page from 1,000-key buckets (synthetic and real), through
`mrapsim serve` (TLS edge → hypercorn → S3 app), one kept-alive boto3 connection, pages at random
positions, interleaved, medians. Also prints the server's RSS, which must stay under 400 MB.

Two views of the same requests: client-side wall time (what a user sees; TLS and botocore's XML
parsing are the same for every bucket) and the server's own per-request duration from its JSON
request log (the part that could depend on bucket size).

    python benchmarks/list_synthetic.py [--iterations 400] [--keys 1000000]

Exit status 1 when a ratio exceeds 1.5 or the RSS reaches 400 MB.
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

import boto3
from botocore.config import Config as BotoConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.mrapsim_process import MrapsimProcess, start_mrapsim

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PAGE = 100
MAX_RATIO = 1.5
MAX_RSS_MB = 400


def config(keys: int) -> str:
    return f"""
[[buckets]]
name = "synthetic-big"
synthetic = {{ keys = {keys}, key_format = "obj/{{i:07d}}", size = 1024, seed = 1 }}
[[buckets]]
name = "synthetic-small"
synthetic = {{ keys = 1000, key_format = "obj/{{i:07d}}", size = 1024, seed = 1 }}
[[buckets]]
name = "real-small"
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def client(server: MrapsimProcess) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"https://localhost:{server.port('s3')}",
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        verify=str(server.ca),
        config=BotoConfig(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=1),
    )


def server_durations(server: MrapsimProcess, operation: str) -> dict[str, list[float]]:
    """The durations mrapsim logged for `operation`, by bucket, in order."""
    found: dict[str, list[float]] = {}
    for entry in server.logs():
        if entry.get("event") == "request" and entry.get("operation") == operation:
            found.setdefault(str(entry["bucket"]), []).append(float(entry["duration"]))
    return found


def ratios_ok(series: dict[str, dict[str, list[float]]], smalls: tuple[str, ...], label_width: int) -> bool:
    """Prints the median of synthetic-big over each small bucket's, per series (label → bucket →
    durations); True when none is above MAX_RATIO."""
    ok = True
    for small in smalls:
        for label, values in series.items():
            ratio = statistics.median(values["synthetic-big"]) / statistics.median(values[small])
            verdict = "ok" if ratio <= MAX_RATIO else "TOO SLOW"
            ok = ok and ratio <= MAX_RATIO
            print(
                f"ratio {label:<{label_width}} synthetic-big / {small:<16} {ratio:5.2f}  "
                f"(must be <= {MAX_RATIO}) {verdict}"
            )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_mrapsim(Path(tmp), config(args.keys))
        try:
            return run(server, args.iterations, args.keys)
        finally:
            server.stop()


def run(server: MrapsimProcess, iterations: int, keys: int) -> int:
    s3 = client(server)
    for i in range(1000):
        s3.put_object(Bucket="real-small", Key=f"obj/{i:07d}", Body=b"x" * 1024)
    sizes = {"synthetic-big": keys, "synthetic-small": 1000, "real-small": 1000}
    rng = random.Random(1)
    wall: dict[str, list[float]] = {name: [] for name in sizes}
    for name in sizes:  # warm-up: connection, key derivation caches, code paths
        for _ in range(20):
            s3.list_objects_v2(Bucket=name, MaxKeys=PAGE)
    warm = {name: len(values) for name, values in server_durations(server, "ListObjectsV2").items()}
    for _ in range(iterations):
        for name, size in sizes.items():
            start_after = f"obj/{rng.randrange(0, size - PAGE):07d}"
            started = time.perf_counter()
            page = s3.list_objects_v2(Bucket=name, MaxKeys=PAGE, StartAfter=start_after)
            wall[name].append(time.perf_counter() - started)
            assert page["KeyCount"] == PAGE, page["KeyCount"]
    delimited: dict[str, list[float]] = {name: [] for name in sizes}
    for _ in range(iterations // 4):
        for name in sizes:
            started = time.perf_counter()
            page = s3.list_objects_v2(Bucket=name, MaxKeys=PAGE, Prefix="obj/", Delimiter="5")
            delimited[name].append(time.perf_counter() - started)
    time.sleep(0.5)  # the last request records reach the log
    logged = server_durations(server, "ListObjectsV2")
    server_side = {name: logged[name][warm[name] : warm[name] + iterations] for name in sizes}
    rss = rss_mb(server.process.pid)

    def median_ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    print(f"ListObjectsV2, {PAGE}-key pages at random positions, {iterations} iterations each, interleaved")
    print(f"{'bucket':<18}{'keys':>10}{'client p50 ms':>15}{'server p50 ms':>15}{'delimited p50 ms':>18}")
    for name, size in sizes.items():
        print(
            f"{name:<18}{size:>10,}{median_ms(wall[name]):>15.3f}{median_ms(server_side[name]):>15.3f}"
            f"{median_ms(delimited[name]):>18.3f}"
        )
    series = {"client": wall, "server": server_side, "delimited": delimited}
    ok = ratios_ok(series, ("synthetic-small", "real-small"), label_width=9)
    print(f"server RSS {rss:.0f} MB (must be < {MAX_RSS_MB} MB) {'ok' if rss < MAX_RSS_MB else 'TOO BIG'}")
    return 0 if ok and rss < MAX_RSS_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
