"""Is `mrapsim load` the bottleneck? One harness process against Locust's FastHttpUser (one
process), same trivial endpoint, same users, same seconds; prints each one's req/s and the ratio.

The endpoint is a minimal asyncio HTTP/1.1 server in its own process (keep-alive, a canned
`200 ok` for every request head), far faster than either client, so the client is what is
measured. Plain HTTP by default: both tools then measure their own HTTP machinery, not OpenSSL;
`--tls` puts TLS (keep-alive, certificates not verified by either tool) in the path.

    python benchmarks/load_vs_locust.py [--seconds 10] [--users 10] [--tls] [--json out.json]

Needs `locust` installed (pip install locust) for the comparison; without it only the harness
runs. Loopback only; each run is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"

LOCUSTFILE = """
from locust import FastHttpUser, task

class Trivial(FastHttpUser):
    @task
    def get(self):
        self.client.get("/x")
"""

SCENARIO = """
name = "trivial"
[[task]]
kind = "get"
name = "get"
key = "x"
"""


class _Canned(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")
        if count:
            self.buffer = self.buffer[self.buffer.rindex(b"\r\n\r\n") + 4 :]
            self.transport.write(RESPONSE * count)


def serve(port: int, certs: str | None = None) -> None:
    context = None
    if certs is not None:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(f"{certs}/server.pem", f"{certs}/server.key")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Canned, "127.0.0.1", port, backlog=1024, ssl=context)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_harness(port: int, seconds: int, users: int, workdir: Path, scheme: str) -> float:
    scenario = workdir / "trivial.toml"
    scenario.write_text(SCENARIO)
    report = workdir / "harness.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mrapsim.load",
            "--target",
            f"{scheme}://127.0.0.1:{port}",
            "--insecure",
            "--scenario",
            str(scenario),
            "--users",
            str(users),
            "--duration",
            f"{seconds}s",
            "--quiet",
            "--json",
            str(report),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=seconds + 60,
    )
    total = json.loads(report.read_text())["summary"]["total"]
    if total["failures"]:
        raise SystemExit(f"harness had {total['failures']} failures against the trivial server")
    return float(total["rps"])


def run_locust(port: int, seconds: int, users: int, workdir: Path, scheme: str) -> float | None:
    try:
        import importlib.util

        if importlib.util.find_spec("locust") is None:
            return None
    except ImportError:
        return None
    locustfile = workdir / "locustfile.py"
    locustfile.write_text(textwrap.dedent(LOCUSTFILE))
    prefix = workdir / "locust"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(locustfile),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{seconds}s",
            "--host",
            f"{scheme}://127.0.0.1:{port}",
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=seconds + 60,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    rows = (workdir / "locust_stats.csv").read_text().splitlines()
    header = rows[0].split(",")
    aggregated = next(r for r in rows[1:] if re.search(r",Aggregated,", r)).split(",")
    failures = int(aggregated[header.index("Failure Count")])
    if failures:
        raise SystemExit(f"locust had {failures} failures against the trivial server")
    return float(aggregated[header.index("Requests/s")])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    parser.add_argument("--tls", action="store_true", help="HTTPS keep-alive instead of plain HTTP")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="alternate the two tools N times and compare medians (a shared machine is noisy)",
    )
    args = parser.parse_args()
    port = free_port()
    scheme = "https" if args.tls else "http"
    certs_dir = tempfile.TemporaryDirectory()
    certs = None
    if args.tls:
        from mrapsim.tls.certs import ensure_certificates

        ensure_certificates(Path(certs_dir.name), ["localhost"])
        certs = certs_dir.name
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(port, certs), daemon=True)
    server.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        harness_runs: list[float] = []
        locust_runs: list[float] = []
        for _ in range(max(1, args.repeat)):
            with tempfile.TemporaryDirectory() as tmp:
                harness_runs.append(run_harness(port, args.seconds, args.users, Path(tmp), scheme))
                found = run_locust(port, args.seconds, args.users, Path(tmp), scheme)
                if found is not None:
                    locust_runs.append(found)
        harness = statistics.median(harness_runs)
        locust = statistics.median(locust_runs) if locust_runs else None
    finally:
        server.terminate()
        server.join(5)
        certs_dir.cleanup()
    print(
        f"trivial HTTP/1.1 endpoint ({scheme}, keep-alive), {args.users} users, {args.seconds} s, 1 process each, "
        f"{os.cpu_count()} cores"
    )
    if len(harness_runs) > 1:
        print(f"medians of {len(harness_runs)} alternating runs; harness {harness_runs}, locust {locust_runs}")
    print(f"mrapsim load          {harness:10.1f} req/s")
    result: dict[str, float | None] = {"harness_rps": harness, "locust_rps": locust, "ratio": None}
    if locust is None:
        print("locust (FastHttpUser)   not installed: pip install locust")
    else:
        result["ratio"] = harness / locust if locust else None
        print(f"locust (FastHttpUser) {locust:10.1f} req/s")
        print(f"ratio harness/locust  {harness / locust:10.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
