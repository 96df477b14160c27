"""mrapsim against its peers and against its own HTTP stack, in one run on this machine.

    python benchmarks/compare_peers.py [--seconds 5] [--repeat 3] [--users 10]

Installs moto (`moto[server]`) and ministack from PyPI into their own virtual environments under
`~/.cache/mrapsim-benchmarks/` (once; `--venvs DIR` to move them), starts:

- `mrapsim serve` (one worker, memory store): TLS through its `s3` edge listener, SigV4 verified;
  a synthetic bucket of 10,000 keys for list pages and the seeded `mraps3sample/hello.txt`;
- moto's server and ministack (S3 only), plain HTTP, each seeded with 2,000 keys and hello.txt;
- a bare hypercorn (trio) + Starlette TLS server answering a constant body
  (`benchmarks/bare_server.py`): the same HTTP stack as mrapsim without the edge,

and drives each with `mrapsim load` (signed requests, `--users` users) for `--seconds`, the
targets of one row interleaved, the whole table repeated `--repeat` times; prints medians and the
mrapsim/peer ratios of requests per second and of server CPU time per request (read from
/proc). The machine's load average is printed with the table: other processes move absolute
rates, ratios within one run less, CPU per request least.

Rows: ListObjectsV2 1,000-key pages; 10-key prefix pages; small GETs (19 bytes) and PUTs (1 KiB);
against the bare server: a new TLS connection + one small GET, kept-alive small GETs and
kept-alive ListObjectsV2 with max-keys=1.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ACCESS_KEY, SECRET_KEY, cpu_seconds, free_port, run_load, scenario_toml
from tests.mrapsim_process import start_mrapsim

PEER_KEYS = 2000
MRAPSIM_CONFIG = """
[[buckets]]
name = "synthetic"
synthetic = { keys = 10000, key_format = "obj/{i:07d}", size = 1024, seed = 1 }
"""
PREFIX_10 = "obj/000012"  # obj/0000120 … obj/0000129 in every bucket here
SCENARIOS = {
    "list1000": scenario_toml("list", max_keys=1000, prefix="obj/"),
    "prefix10": scenario_toml("list", max_keys=1000, prefix=PREFIX_10),
    "get": scenario_toml("get", key="hello.txt"),
    "put": scenario_toml("put", sizes=[1024]),
    "get_new": scenario_toml("get", connection="new", key="hello.txt"),
    "list1": scenario_toml("list", max_keys=1, prefix="obj/"),
}


@dataclass(frozen=True)
class Row:
    label: str
    scenario: str
    targets: tuple[str, ...]


ROWS = (
    Row("ListObjectsV2 1000-key page/s", "list1000", ("mrapsim", "ministack", "moto")),
    Row("ListObjectsV2 10-key prefix page/s", "prefix10", ("mrapsim", "ministack", "moto")),
    Row("small GET/s (keep-alive)", "get", ("mrapsim", "ministack", "moto")),
    Row("1 KiB PUT/s (keep-alive)", "put", ("mrapsim", "ministack", "moto")),
    Row("new TLS connection + GET/s", "get_new", ("mrapsim", "bare")),
    Row("keep-alive small GET/s", "get", ("mrapsim", "bare")),
    Row("keep-alive ListObjectsV2 max-keys=1/s", "list1", ("mrapsim", "bare")),
)


@dataclass(frozen=True)
class Target:
    name: str
    url: str  # bucket in the path for lists and PUTs
    get_url: str  # where hello.txt is
    pid: int  # whose CPU time is counted
    ca: Path | None = None


def venv(root: Path, name: str, requirement: str) -> Path:
    """The virtual environment `root/name` with `requirement` installed (created once)."""
    python = root / name / "bin" / "python"
    marker = root / name / ".installed"
    if not marker.exists():
        print(f"installing {requirement} into {root / name} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(root / name)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", requirement], check=True, timeout=900)
        marker.write_text(requirement + "\n")
    return python


def wait_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {port}")


@contextmanager
def process(command: list[str], port: int, what: str, env: dict[str, str] | None = None) -> Iterator[int]:
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_port(port, child, what)
        yield child.pid
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def seed_peer(port: int) -> None:
    """Bucket `bench` with hello.txt and PEER_KEYS 1 KiB objects obj/0000000 …, over plain HTTP."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=8),
    )
    s3.create_bucket(Bucket="bench")
    s3.put_object(Bucket="bench", Key="hello.txt", Body=b"hello from mrapsim\n")
    body = b"x" * 1024
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket="bench", Key=f"obj/{i:07d}", Body=body), range(PEER_KEYS)))
    assert s3.list_objects_v2(Bucket="bench", Prefix=PREFIX_10)["KeyCount"] == 10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--venvs", type=Path, default=Path.home() / ".cache" / "mrapsim-benchmarks")
    parser.add_argument("--workers", default="1", help="mrapsim serve --workers (default 1)")
    parser.add_argument("--rows", nargs="*", default=None, help="only these scenarios: " + " ".join(SCENARIOS))
    args = parser.parse_args()
    moto = venv(args.venvs, "moto", "moto[server]")
    ministack = venv(args.venvs, "ministack", "ministack")
    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        (tmp / "mrapsim").mkdir()
        server = start_mrapsim(tmp / "mrapsim", MRAPSIM_CONFIG, ("--workers", args.workers))
        moto_port, ministack_port, bare_port = free_port(), free_port(), free_port()
        ministack_env = {
            **os.environ,
            "GATEWAY_PORT": str(ministack_port),
            "BIND_HOST": "127.0.0.1",
            "SERVICES": "s3",
            "LOG_LEVEL": "ERROR",
            "TMPDIR": str(tmp),
        }
        bare = [
            sys.executable,
            str(here / "bare_server.py"),
            "--port",
            str(bare_port),
            "--certs",
            str(server.certs_dir),
        ]
        try:
            with (
                process(
                    [str(moto.parent / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)], moto_port, "moto"
                ) as moto_pid,
                process([str(ministack.parent / "ministack")], ministack_port, "ministack", ministack_env) as ms_pid,
                process(bare, bare_port, "bare server") as bare_pid,
            ):
                for port in (moto_port, ministack_port):
                    seed_peer(port)
                s3 = server.port("s3")
                ministack_url = f"http://127.0.0.1:{ministack_port}/bench"
                moto_url = f"http://127.0.0.1:{moto_port}/bench"
                bare_url = f"https://localhost:{bare_port}/bench"
                targets = {
                    "mrapsim": Target(
                        "mrapsim",
                        f"https://localhost:{s3}/synthetic",
                        f"https://localhost:{s3}/mraps3sample",
                        server.process.pid,
                        server.ca,
                    ),
                    "ministack": Target("ministack", ministack_url, ministack_url, ms_pid),
                    "moto": Target("moto", moto_url, moto_url, moto_pid),
                    "bare": Target("bare", bare_url, bare_url, bare_pid, server.ca),
                }
                results = measure(targets, tmp, args)
        finally:
            server.stop()
    report(results, args)
    return 0


def selected(args: argparse.Namespace) -> list[Row]:
    return [row for row in ROWS if not args.rows or row.scenario in args.rows]


Results = dict[tuple[str, str], list[tuple[float, float]]]  # (row, target) → [(rate, CPU s per task)]


def measure(targets: dict[str, Target], tmp: Path, args: argparse.Namespace) -> Results:
    files = {}
    for name, text in SCENARIOS.items():
        files[name] = tmp / f"{name}.toml"
        files[name].write_text(text)
    results: Results = {}
    for round_ in range(args.repeat):
        for row in selected(args):
            order = row.targets if round_ % 2 == 0 else tuple(reversed(row.targets))
            for name in order:
                target = targets[name]
                url = target.get_url if row.scenario in ("get", "get_new") else target.url
                cpu_before = cpu_seconds(target.pid)
                rate, failures = run_load(
                    url, files[row.scenario], seconds=args.seconds, users=args.users, out=tmp / "out.json", ca=target.ca
                )
                cpu = (cpu_seconds(target.pid) - cpu_before) / max(rate * args.seconds, 1)
                if failures:
                    print(f"  {row.label} {name}: {failures} failures", flush=True)
                results.setdefault((row.label, name), []).append((rate, cpu))
                print(f"round {round_ + 1} {row.label:40} {name:10} {rate:9.1f}/s {cpu * 1e6:9.0f} µs CPU", flush=True)
    return results


def report(results: Results, args: argparse.Namespace) -> None:
    """Two ratios per pair, medians over the rounds of each round's ratio: requests per second
    (what a client sees) and server CPU time per request, peer's over mrapsim's (what it costs;
    above 1 means mrapsim is cheaper)."""
    load = os.getloadavg()
    print()
    print(
        f"{os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end; "
        f"{args.users} users, {args.seconds:g} s per cell, median of {args.repeat} interleaved rounds"
    )
    print(
        f"{'':40} {'mrapsim/s':>9} {'peer':>10} {'peer/s':>9} {'ratio':>6}  {'CPU µs':>7} {'peer µs':>8} "
        f"{'ratio':>6}  (each round's rate ratio)"
    )
    for row in selected(args):
        mine = results[(row.label, "mrapsim")]
        for peer in row.targets[1:]:
            theirs = results[(row.label, peer)]
            rates = [m[0] / t[0] if t[0] else float("nan") for m, t in zip(mine, theirs, strict=True)]
            costs = [t[1] / m[1] if m[1] else float("nan") for m, t in zip(mine, theirs, strict=True)]
            each = " ".join(f"{r:.2f}" for r in rates)
            print(
                f"{row.label:40} {statistics.median(m[0] for m in mine):9.1f} {peer:>10} "
                f"{statistics.median(t[0] for t in theirs):9.1f} {statistics.median(rates):6.2f}  "
                f"{statistics.median(m[1] for m in mine) * 1e6:7.0f} "
                f"{statistics.median(t[1] for t in theirs) * 1e6:8.0f} "
                f"{statistics.median(costs):6.2f}  ({each})"
            )


if __name__ == "__main__":
    sys.exit(main())
