"""The edge against nginx, in one run on this machine: new TLS handshakes per second and
keep-alive HTTPS GETs per second, same harness, same certificate, same client settings.

    python benchmarks/edge_vs_nginx.py [--seconds 10] [--users 10]

Starts `mrapsim serve` (listener `mrap`, OS-chosen loopback ports) and nginx (Debian's, `ssl`
and `http2` on a loopback port, serving the same object from disk with mrapsim's certificate),
drives each with `mrapsim load` for the same seconds and users, and prints the rates and the
mrapsim/nginx ratio. nginx is C with OpenSSL in one worker per core; mrapsim is Python peeking
at every ClientHello before OpenSSL sees it and serving S3 (with SigV4 verification) behind it,
so the ratio says how much of a proxy's load test the emulator can absorb, not who is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.load.commands import mrap_target
from tests.mrapsim_process import start_mrapsim

KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
GET_SCENARIO = '[[task]]\nkind = "get"\nkey = "hello.txt"\nconnection = "keep-alive"\n'

NGINX_CONF = """
worker_processes 2;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {certs}/server.pem;
        ssl_certificate_key {certs}/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        keepalive_requests 1000000;
        root {root};
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_nginx(tmp: Path, certs: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise SystemExit("nginx is not installed (apt-get install nginx)")
    root = tmp / "root"
    root.mkdir()
    (root / "hello.txt").write_text("hello from mrapsim\n")
    for directory in (*tmp.parents[:2], tmp, root):  # nginx's workers run as another user
        directory.chmod(directory.stat().st_mode | 0o755)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / sub).mkdir()
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, certs=certs, root=root))
    process = subprocess.Popen([binary, "-c", str(conf), "-e", str(tmp / "error.log")], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("nginx did not start: " + (tmp / "error.log").read_text()[-2000:])


def run_load(port: int, ca: Path, scenario: str, seconds: int, users: int, out: Path) -> dict[str, object]:
    command = [
        sys.executable,
        "-m",
        "mrapsim.load",
        *mrap_target(port, ca),
        "--scenario",
        scenario,
        "--users",
        str(users),
        "--spawn-rate",
        str(users * 10),
        "--duration",
        f"{seconds}s",
        "--json",
        str(out),
        "--quiet",
    ]
    subprocess.run(command, check=True, env={**os.environ, **KEYS}, stdout=subprocess.DEVNULL, timeout=seconds + 60)
    summary: dict[str, object] = json.loads(out.read_text())["summary"]
    return summary


def rate(summary: dict[str, object]) -> tuple[float, int]:
    total = summary["total"]
    assert isinstance(total, dict)
    return float(total["rps"]), int(total["failures"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        (tmp / "mrapsim").mkdir()
        server = start_mrapsim(tmp / "mrapsim", '[listeners.mrap]\nstall_timeout = "5s"\n')
        (tmp / "nginx").mkdir()
        nginx, nginx_port = start_nginx(tmp / "nginx", server.certs_dir)
        scenario_file = tmp / "get.toml"
        scenario_file.write_text(GET_SCENARIO)
        rows = []
        try:
            scenarios = (("new TLS handshakes/s", "handshake"), ("keep-alive HTTPS GETs/s", str(scenario_file)))
            for label, scenario in scenarios:
                results = {}
                for target, port in (("mrapsim", server.port("mrap")), ("nginx", nginx_port)):
                    summary = run_load(port, server.ca, scenario, args.seconds, args.users, tmp / f"{target}.json")
                    results[target] = rate(summary)
                rows.append((label, results))
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
            server.stop()
    print(f"mrapsim edge vs nginx, {args.users} users, {args.seconds} s each, {os.cpu_count()} cores, loopback")
    print(f"{'':26} {'mrapsim':>10} {'nginx':>10} {'ratio':>7}   failures (mrapsim/nginx)")
    for label, results in rows:
        (m_rate, m_fail), (n_rate, n_fail) = results["mrapsim"], results["nginx"]
        ratio = m_rate / n_rate if n_rate else float("nan")
        print(f"{label:26} {m_rate:10.1f} {n_rate:10.1f} {ratio:7.2f}   {m_fail}/{n_fail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
