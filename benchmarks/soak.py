"""A soak: mixed hostile and ordinary load against one `mrapsim serve` for a configurable time,
reporting the server's file descriptors, trio tasks, threads and RSS at the start, after the
warm-up and at the end (after the load stopped and open connections drained).

    python benchmarks/soak.py [--minutes 5] [--warmup 30] [--workers 1]

The load, each kind in its own threads: no-SNI handshakes held open for a while (the MRAP edge
stalls them), connections reset mid-ClientHello, fault changes through the admin API (a latency
toxic and a SlowDown S3 error at a low rate, added and removed), and boto3 PutObject / GetObject
/ ListObjectsV2 on the `s3` listener (SlowDown answers are expected while that fault is on). The
admin API is guarded by a token, as in a cluster.

Exit status 1 when an unexpected failure happened, or when at the end the fds or tasks are above
their post-warm-up figures by more than a small slack (something leaked) or the RSS grew by more
than 64 MiB.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import struct
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.mrapsim_process import MrapsimProcess, start_mrapsim
from tests.tlsclient import client_hello_bytes

TOKEN = "soak-token-0123456789abcdef"
FD_SLACK, TASK_SLACK, RSS_SLACK_KIB = 16, 16, 64 * 1024


def sample(server: MrapsimProcess) -> dict[str, int]:
    pid = server.process.pid
    status = Path(f"/proc/{pid}/status").read_text()
    metrics = admin(server, "GET", "/metrics")[1]
    tasks = re.search(r"^mrapsim_tasks (\S+)$", metrics, re.M)
    open_now = sum(float(v) for v in re.findall(r"^mrapsim_connections_open\{[^}]*\} (\S+)$", metrics, re.M))
    return {
        "fds": len(list(Path(f"/proc/{pid}/fd").iterdir())),
        "tasks": int(float(tasks.group(1))) if tasks else -1,
        "threads": len(list(Path(f"/proc/{pid}/task").iterdir())),
        "rss_kib": int(re.search(r"VmRSS:\s+(\d+)", status).group(1)),  # type: ignore[union-attr]
        "connections_open": int(open_now),
    }


def admin(server: MrapsimProcess, method: str, path: str, document: object = None) -> tuple[int, Any]:
    body = None if document is None else json.dumps(document).encode()
    headers = {"authorization": f"Bearer {TOKEN}"}
    if body is not None:
        headers["content-type"] = "application/json"
    request = urllib.request.Request(f"http://{server.admin}{path}", method=method, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        data = response.read()
        if response.headers.get_content_type() == "application/json":
            return response.status, json.loads(data) if data else None
        return response.status, data.decode()


class Load:
    def __init__(self, server: MrapsimProcess) -> None:
        self.server = server
        self.stop = threading.Event()
        self.counts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.lock = threading.Lock()

    def count(self, what: str, failure: str | None = None) -> None:
        with self.lock:
            if failure is None:
                self.counts[what] += 1
            else:
                self.failures[f"{what}: {failure}"] += 1

    def no_sni(self) -> None:
        hello = client_hello_bytes(None)
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.server.port("mrap")), timeout=5) as sock:
                    sock.sendall(hello)
                    self.stop.wait(random.uniform(0.2, 3.0))
                self.count("no_sni")
            except OSError as error:
                self.count("no_sni", type(error).__name__)

    def resets(self) -> None:
        hello = client_hello_bytes("localhost")
        while not self.stop.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", self.server.port("s3")), timeout=5)
                sock.sendall(hello[: random.randint(1, len(hello) - 1)])
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()  # an RST, mid-ClientHello
                self.count("reset")
            except OSError as error:
                self.count("reset", type(error).__name__)
            self.stop.wait(0.02)

    def faults(self) -> None:
        latency = {
            "type": "latency",
            "listener": "s3",
            "direction": "downstream",
            "toxicity": 0.2,
            "attributes": {"latency_ms": 20, "jitter_ms": 10},
        }
        slow_down = {"type": "s3_error", "operation": "GetObject", "rate": 0.05, "attributes": {"code": "SlowDown"}}
        while not self.stop.is_set():
            try:
                ids = [admin(self.server, "POST", "/faults", fault)[1]["id"] for fault in (latency, slow_down)]
                self.stop.wait(random.uniform(1, 4))
                for fault_id in ids:
                    admin(self.server, "DELETE", f"/faults/{fault_id}")
                self.count("fault_cycle")
            except Exception as error:
                self.count("fault_cycle", f"{type(error).__name__}: {error}")
            self.stop.wait(random.uniform(1, 4))

    def s3(self, worker: int) -> None:
        from botocore.exceptions import ClientError

        client = self.server.s3_client()
        i = 0
        while not self.stop.is_set():
            key = f"soak/{worker}/{i % 50}"
            try:
                client.put_object(Bucket="mraps3sample", Key=key, Body=random.randbytes(random.randint(0, 65536)))
                client.get_object(Bucket="mraps3sample", Key=key)["Body"].read()
                client.list_objects_v2(Bucket="mraps3sample", Prefix=f"soak/{worker}/", MaxKeys=10)
                self.count("s3_round")
            except ClientError as error:
                code = error.response["Error"]["Code"]
                self.count("s3_slow_down" if code == "SlowDown" else "s3_round", None if code == "SlowDown" else code)
            except Exception as error:
                self.count("s3_round", type(error).__name__)
            i += 1

    def start(self) -> list[threading.Thread]:
        targets: list[tuple[Any, tuple[Any, ...]]] = [(self.no_sni, ()) for _ in range(20)]
        targets += [(self.resets, ()) for _ in range(2)] + [(self.faults, ())]
        targets += [(self.s3, (w,)) for w in range(4)]
        threads = [threading.Thread(target=t, args=a, daemon=True) for t, a in targets]
        for thread in threads:
            thread.start()
        return threads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="soak duration after the warm-up (default 5)")
    parser.add_argument("--warmup", type=float, default=30.0, help="warm-up seconds (default 30)")
    parser.add_argument("--workers", type=int, default=1, help="mrapsim --workers (more than 1 uses sqlite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mrapsim-soak-") as scratch:
        config = f'[admin]\ntoken = "{TOKEN}"\n[listeners.mrap]\nstall_timeout = "2s"\n'
        if args.workers > 1:
            config = f'workers = {args.workers}\n[store]\nkind = "sqlite"\npath = "{scratch}/data"\n' + config
        server = start_mrapsim(Path(scratch), config)
        try:
            figures = {"start": sample(server)}
            load = Load(server)
            threads = load.start()
            time.sleep(args.warmup)
            figures["after warm-up"] = sample(server)
            time.sleep(args.minutes * 60)
            load.stop.set()
            for thread in threads:
                thread.join(30)
            time.sleep(5)  # stalled connections end with the clients; their tasks with them
            figures["end"] = sample(server)
        finally:
            server.stop()
    print(f"{'':14} {'fds':>6} {'tasks':>6} {'threads':>8} {'RSS MiB':>8} {'conns':>6}")
    for label, figure in figures.items():
        print(
            f"{label:14} {figure['fds']:>6} {figure['tasks']:>6} {figure['threads']:>8} "
            f"{figure['rss_kib'] / 1024:>8.1f} {figure['connections_open']:>6}"
        )
    print("done:", dict(load.counts))
    print("unexpected failures:", dict(load.failures) or 0)
    warm, end = figures["after warm-up"], figures["end"]
    leaked = (
        end["fds"] > warm["fds"] + FD_SLACK
        or end["tasks"] > warm["tasks"] + TASK_SLACK
        or end["rss_kib"] > warm["rss_kib"] + RSS_SLACK_KIB
    )
    if leaked:
        print("growth past the slack: something leaked")
    return 1 if leaked or load.failures else 0


if __name__ == "__main__":
    sys.exit(main())
