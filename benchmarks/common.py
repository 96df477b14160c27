"""Pieces the benchmark scripts share: a loopback port, a `mrapsim load` run, its rate."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEYS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scenario_toml(kind: str, *, connection: str = "keep-alive", **fields: object) -> str:
    """One `[[task]]` scenario: `kind`, `connection`, and any other task keys given."""
    lines = ["[[task]]", f'kind = "{kind}"', f'connection = "{connection}"']
    for name, value in fields.items():
        lines.append(f"{name} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def run_load(
    target: str,
    scenario: Path,
    *,
    seconds: float,
    users: int,
    out: Path,
    connect: str | None = None,
    ca: Path | None = None,
    signed: bool = True,
) -> tuple[float, int]:
    """Drive `target` with `mrapsim load` for `seconds`; return (tasks/s, failures)."""
    command = [sys.executable, "-m", "mrapsim.load", "--target", target, "--scenario", str(scenario)]
    command += ["--users", str(users), "--duration", f"{seconds}s", "--json", str(out), "--quiet"]
    if connect:
        command += ["--connect", connect]
    if ca:
        command += ["--ca-bundle", str(ca)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    if signed:
        env.update(KEYS)
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, timeout=seconds + 120)
    total = json.loads(out.read_text())["summary"]["total"]
    return float(total["rps"]), int(total["failures"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid`, all its threads, and its live descendants (the
    workers of `mrapsim serve --workers N`). On a shared machine CPU per request moves less than
    requests per second, which other processes' load takes away."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    total = sum(int(value) for value in fields[11:13]) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        total += sum(cpu_seconds(int(child)) for child in children)
    return total
