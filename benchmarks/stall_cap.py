"""`max_stalled` at full size (issue 10, must-show 4): 5,000 connections without SNI against the
`mrap` listener's default cap of 4096, then a client with SNI.

    python benchmarks/stall_cap.py [--connections 5000]

Starts `mrapsim serve` on the embedded defaults (loopback, OS-chosen ports; stall_timeout 300 s,
max_stalled 4096), opens the connections one after another, each sending a ClientHello without
SNI and holding the socket, and waits until every one is either held or evicted. Prints what the
server holds (its gauge, its open file descriptors, its RSS), how many it evicted and what the
clients saw (EOF on exactly the oldest ones), then the time a client with SNI takes for a verified
handshake and an HTTP response while the cap is full. Exits 1 if more than max_stalled stay open
or the client with SNI is not served.

RLIMIT_NOFILE is raised to its hard limit first: the script holds every client socket, and the
server (a child) inherits the limit for its own.
"""

from __future__ import annotations

import argparse
import resource
import select
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client.parser import text_string_to_metric_families

from tests.mrapsim_process import MrapsimProcess, start_mrapsim
from tests.tlsclient import client_hello_bytes, tls_handshake

MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"
MAX_STALLED = 4096  # the embedded default
SETTLE_SECONDS = 60.0


def raise_file_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < needed:
        raise SystemExit(f"RLIMIT_NOFILE is {soft} (hard {hard}); this run needs about {needed}")
    return soft


def sample(server: MrapsimProcess, name: str) -> float:
    for family in text_string_to_metric_families(server.admin_get("/metrics")):
        for s in family.samples:
            if s.name == name and s.labels.get("listener") == "mrap":
                return float(s.value)
    return 0.0


def server_fds_and_rss(server: MrapsimProcess) -> tuple[int, float]:
    pid = server.process.pid
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    rss_kib = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:"))  # fmt: skip
    return fds, rss_kib / 1024


def closed_by_server(sockets: list[socket.socket]) -> list[int]:
    """Indexes of the sockets on which the server closed (EOF): readable, and recv gives b''."""
    poller = select.poll()
    for sock in sockets:
        poller.register(sock.fileno(), select.POLLIN)
    by_fd = {sock.fileno(): i for i, sock in enumerate(sockets)}
    closed = []
    for fd, _ in poller.poll(0):
        i = by_fd[fd]
        sockets[i].setblocking(False)
        try:
            if sockets[i].recv(1) == b"":
                closed.append(i)
        except (BlockingIOError, ConnectionResetError):
            pass
    return sorted(closed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=5000)
    args = parser.parse_args()
    limit = raise_file_limit(args.connections + MAX_STALLED + 512)
    hello = client_hello_bytes(None, ["h2", "http/1.1"])
    with tempfile.TemporaryDirectory() as tmp:
        server = start_mrapsim(Path(tmp))
        sockets: list[socket.socket] = []
        try:
            port = server.port("mrap")
            started = time.monotonic()
            for _ in range(args.connections):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(hello)
                sockets.append(sock)
            opened = time.monotonic() - started
            deadline = time.monotonic() + SETTLE_SECONDS
            while True:
                stalled = sample(server, "mrapsim_connections_stalled")
                evicted = sample(server, "mrapsim_stalled_evicted_total")
                if stalled + evicted >= args.connections or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            settled = time.monotonic() - started
            fds, rss = server_fds_and_rss(server)
            active = sample(server, "mrapsim_connections_active")
            closed = closed_by_server(sockets)
            oldest = sum(1 for i in closed if i < len(closed))

            served_started = time.monotonic()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                tls = tls_handshake(sock, MRAP_HOST, server.certs_dir / "ca.pem", ["h2", "http/1.1"])
                tls.send(f"GET / HTTP/1.1\r\nHost: {MRAP_HOST}\r\nConnection: close\r\n\r\n".encode())
                status_line = tls.receive(12)[:12].decode(errors="replace")
                alpn = tls.selected_alpn_protocol()
            served_ms = (time.monotonic() - served_started) * 1000
            stalled_after = sample(server, "mrapsim_connections_stalled")
            log_lines = [e for e in server.logs() if e.get("event") == "stall_evicted"]
        finally:
            for sock in sockets:
                sock.close()
            server.stop()

    print(f"RLIMIT_NOFILE (soft)                  {limit}")
    print(f"no-SNI connections opened             {args.connections:,} in {opened:.1f} s "
          f"(all held or evicted after {settled:.1f} s)")  # fmt: skip
    print(f"held by the server (stalled gauge)    {stalled:,.0f}   (max_stalled {MAX_STALLED:,})")
    print(f"evicted (mrapsim_stalled_evicted)     {evicted:,.0f}")
    print(f"edge connections open (active gauge)  {active:,.0f}")
    print(f"server open file descriptors          {fds:,}   RSS {rss:.0f} MiB")
    print(f"clients that saw EOF                  {len(closed):,}, of which the oldest {oldest:,}")
    print(f"stall_evicted log lines               {len(log_lines)}")
    print(f"client with SNI                       {status_line!r}, ALPN {alpn}, {served_ms:.0f} ms "
          f"(stalled still {stalled_after:,.0f})")  # fmt: skip
    problems = []
    if stalled > MAX_STALLED or stalled_after > MAX_STALLED:
        problems.append(f"more than max_stalled held: {stalled:.0f}")
    if stalled + evicted < args.connections:
        problems.append("not every connection was accounted for")
    if not status_line.startswith("HTTP/1.1 "):
        problems.append(f"the client with SNI was not served: {status_line!r}")
    for problem in problems:
        print(f"✗ {problem}")
    if not problems:
        print(f"✓ at most {MAX_STALLED:,} stalled connections held; the client with SNI was served")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
