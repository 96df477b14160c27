"""`--workers 2` against one worker on new connections, in one run on this machine.

    python benchmarks/workers_scaling.py [--seconds 8] [--repeat 3] [--users 20] [--workers 2]
                                         [--server-cpus 1,2] [--load-cpus 0]

Starts two `mrapsim serve` processes (sqlite store, which several workers need): one with one
worker, one with `--workers N`; drives each in turn with `mrapsim load` (a new TLS connection +
one small signed GET per task) and prints tasks/s, the ratio, and how the accepted load split
over the workers (each worker process's share of the CPU time the workers used), which says
whether the supervisor's shared listening socket balances accepts. The load generator shares the
machine's cores with the server: on 2 cores the ratio is bounded by that. Where more cores exist,
`--server-cpus` and `--load-cpus` pin the servers (and their workers) and the load generator to
cores of their own (sched_setaffinity).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import cpu_seconds, run_load, scenario_toml
from tests.mrapsim_process import start_mrapsim


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def cpu_list(text: str) -> set[int]:
    return {int(cpu) for cpu in text.split(",")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server-cpus", type=cpu_list, default=None, help="e.g. 1,2: the servers' cores")
    parser.add_argument("--load-cpus", type=cpu_list, default=None, help="e.g. 0: the load generator's cores")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        servers = {}
        for count in (1, args.workers):
            (tmp / str(count)).mkdir()
            config = f'workers = {count}\n[store]\nkind = "sqlite"\npath = "{tmp / str(count) / "data"}"\n'
            servers[count] = start_mrapsim(tmp / str(count), config)
            if args.server_cpus:
                for pid in [servers[count].process.pid, *children(servers[count].process.pid)]:
                    os.sched_setaffinity(pid, args.server_cpus)
        if args.load_cpus:
            os.sched_setaffinity(0, args.load_cpus)  # `mrapsim load` inherits it
        scenario = tmp / "get_new.toml"
        scenario.write_text(scenario_toml("get", connection="new", key="hello.txt"))
        rates: dict[int, list[float]] = {count: [] for count in servers}
        shares: list[list[float]] = []
        try:
            for round_ in range(args.repeat):
                order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
                for count in order:
                    server = servers[count]
                    workers = children(server.process.pid) or [server.process.pid]
                    before = [cpu_seconds(pid) for pid in workers]
                    rate, failures = run_load(
                        f"https://localhost:{server.port('s3')}/mraps3sample",
                        scenario,
                        seconds=args.seconds,
                        users=args.users,
                        out=tmp / "out.json",
                        ca=server.ca,
                    )
                    used = [cpu_seconds(pid) - b for pid, b in zip(workers, before, strict=True)]
                    if count > 1:
                        shares.append([u / sum(used) for u in used] if sum(used) else [])
                    rates[count].append(rate)
                    print(f"round {round_ + 1} workers={count}: {rate:.1f}/s, {failures} failures", flush=True)
        finally:
            for server in servers.values():
                server.stop()
    ratios = [many / one for one, many in zip(rates[1], rates[args.workers], strict=True)]
    load = os.getloadavg()
    print(f"{os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {args.users} users")
    print(
        f"1 worker: {statistics.median(rates[1]):.1f}/s; "
        f"{args.workers} workers: {statistics.median(rates[args.workers]):.1f}/s"
    )
    print(f"ratio {statistics.median(ratios):.2f} (rounds: {' '.join(f'{r:.2f}' for r in ratios)})")
    print("CPU share per worker, each round: " + "; ".join(" ".join(f"{s:.2f}" for s in round_) for round_ in shares))
    return 0


if __name__ == "__main__":
    sys.exit(main())
