"""`mrapsim load` and `mrapsim load merge`: options, processes, live output, reports, exit code.

Exit codes: 0 the run completed (failures are reported, not fatal; use thresholds to gate),
1 setup failed (the objects to read could not be written) or a worker process died,
2 usage, 99 a threshold failed (k6's code).
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.connection
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO

import trio

from mrapsim.config import parse_duration
from mrapsim.load import report, server_metrics
from mrapsim.load.client import parse_endpoint
from mrapsim.load.html import write_html
from mrapsim.load.runner import Run, RunOptions, SetupError, seed_objects
from mrapsim.load.runner import run_load as run_scenario
from mrapsim.load.scenario import BUILTIN_SCENARIOS, load_scenario
from mrapsim.load.sigv4 import Credentials
from mrapsim.load.stats import RunStats
from mrapsim.load.thresholds import (
    EXIT_THRESHOLDS_FAILED,
    Threshold,
    evaluate,
    parse_threshold,
    render_verdicts,
)

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--csv", metavar="PREFIX", help="write PREFIX_stats.csv, _stats_history.csv, _failures.csv (Locust's columns)"
    )
    parser.add_argument("--html", metavar="FILE", help="write a self-contained HTML report with charts")
    parser.add_argument("--json", metavar="FILE", help="write the full report (mergeable histograms) as JSON")
    parser.add_argument(
        "--threshold",
        metavar="EXPR",
        action="append",
        default=[],
        help="pass/fail criterion, repeatable: 'p99<50ms', 'fail_rate<0.01', 'rps>500', "
        "'get:p99<20ms'; exit 99 if any fails",
    )


def add_load_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `load` (and `load merge`) to a subparsers object."""
    load: argparse.ArgumentParser = commands.add_parser(
        "load",
        help="generate S3 and TLS handshake load (Locust-style, on trio)",
        description="Run weighted S3 / TLS-handshake tasks against an endpoint and report "
        "latency percentiles, failures by class and handshake outcomes.",
    )
    env = os.environ.get
    load.add_argument(
        "--target",
        metavar="URL",
        help="https://HOST[:PORT][/BUCKET] (virtual-host or MRAP host: no bucket in the path)",
    )
    load.add_argument(
        "--connect",
        metavar="HOST:PORT",
        help="connect here instead of resolving the URL's host (SNI and Host stay the URL's)",
    )
    load.add_argument("--users", type=int, default=10, help="concurrent users (default 10)")
    load.add_argument("--spawn-rate", type=float, default=0.0, help="users started per second (default: all at once)")
    stop = load.add_mutually_exclusive_group()
    stop.add_argument("--duration", default=None, help="how long to run: 30s, 2m (default 10s)")
    stop.add_argument("--requests", type=int, default=None, help="stop after N tasks in total")
    load.add_argument(
        "--scenario", default="mixed", help=f"built-in ({', '.join(BUILTIN_SCENARIOS)}) or a TOML file (default mixed)"
    )
    load.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open model: N task arrivals per second in total, latency measured from the "
        "scheduled start (coordinated omission corrected); --users caps concurrency",
    )
    load.add_argument(
        "--proxy", metavar="http://HOST:PORT", help="tunnel every connection through an HTTP CONNECT proxy"
    )
    load.add_argument("--ca-bundle", metavar="FILE", help="PEM file of trusted CAs (mrapsim: certs/ca.pem)")
    load.add_argument("--insecure", action="store_true", help="do not verify certificates")
    load.add_argument(
        "--access-key",
        default=env("AWS_ACCESS_KEY_ID"),
        help="SigV4 access key [AWS_ACCESS_KEY_ID]; without keys requests go unsigned",
    )
    load.add_argument("--secret-key", default=env("AWS_SECRET_ACCESS_KEY"), help="[AWS_SECRET_ACCESS_KEY]")
    load.add_argument(
        "--region",
        default=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "us-east-1",
        help="SigV4 region (default us-east-1) [AWS_REGION]",
    )
    load.add_argument(
        "--handshake-timeout",
        default="5s",
        help="deadline for TCP connect + CONNECT + TLS handshake (default 5s); no byte back by then is 'stalled'",
    )
    load.add_argument("--timeout", default="10s", help="deadline for one request/response (default 10s)")
    load.add_argument("--processes", type=int, default=1, help="worker processes, histograms merged (default 1)")
    load.add_argument(
        "--key-prefix", default="mrapsim-load/", help="object keys used by the run (default mrapsim-load/)"
    )
    load.add_argument("--seed", type=int, default=None, help="random seed for task choice (reproducible mixes)")
    load.add_argument("--interval", type=float, default=2.0, help="live output every N seconds (default 2)")
    load.add_argument("--quiet", action="store_true", help="no live output, only the summary")
    load.add_argument(
        "--server-metrics",
        metavar="ADMIN_URL",
        help="mrapsim's admin address (http://127.0.0.1:9911): read /metrics before and "
        "after and print the server's counts beside the harness's",
    )
    _add_report_options(load)
    sub = load.add_subparsers(dest="load_command", metavar="{merge}")
    merge = sub.add_parser(
        "merge",
        help="combine JSON reports of several runs or machines",
        description="Merge `--json` reports (histograms exactly) and report on the whole.",
    )
    merge.add_argument("files", nargs="+", metavar="FILE")
    _add_report_options(merge)


def build_options(args: argparse.Namespace) -> RunOptions:
    """RunOptions from parsed arguments; ValueError names the bad option."""
    if not args.target:
        raise ValueError("--target: required (https://HOST[:PORT][/BUCKET])")
    endpoint = parse_endpoint(args.target, args.connect, args.proxy)
    if bool(args.access_key) != bool(args.secret_key):
        raise ValueError("--access-key and --secret-key go together")
    credentials = Credentials(args.access_key, args.secret_key) if args.access_key else None
    duration = parse_duration(args.duration, "--duration") if args.duration else None
    if duration is None and args.requests is None:
        duration = 10.0
    if args.ca_bundle and not os.path.isfile(args.ca_bundle):
        raise ValueError(f"--ca-bundle: no file {args.ca_bundle!r}")
    if args.processes < 1:
        raise ValueError("--processes must be at least 1")
    if args.users < args.processes:
        raise ValueError("--users must be at least --processes")
    return RunOptions(
        endpoint=endpoint,
        scenario=load_scenario(args.scenario),
        users=args.users,
        spawn_rate=args.spawn_rate,
        duration=duration,
        requests=args.requests,
        rate=args.rate,
        handshake_timeout=parse_duration(args.handshake_timeout, "--handshake-timeout"),
        timeout=parse_duration(args.timeout, "--timeout"),
        credentials=credentials,
        region=args.region,
        ca_bundle=args.ca_bundle,
        insecure=args.insecure,
        key_prefix=args.key_prefix,
        seed=args.seed,
    )


def _error(message: str) -> None:
    print(f"mrapsim: error: {message}", file=sys.stderr)


def run_load(args: argparse.Namespace) -> int:
    if getattr(args, "load_command", None) == "merge":
        return run_merge(args)
    try:
        thresholds = [parse_threshold(t) for t in args.threshold]
        options = build_options(args)
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    view = None if args.quiet else LiveView(sys.stderr, args.interval)
    try:
        before = server_metrics.fetch(args.server_metrics) if args.server_metrics else None
    except OSError as exc:
        _error(f"--server-metrics: cannot read {args.server_metrics}/metrics: {exc}")
        return EXIT_USAGE
    try:
        if args.processes == 1:
            stats = trio.run(_single_process, options, view)
        else:
            stats = run_processes(options, args.processes, view)
    except SetupError as exc:
        _error(f"setup: {exc}")
        return EXIT_RUN_FAILED
    except WorkerError as exc:
        _error(str(exc))
        return EXIT_RUN_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    if before is not None:
        rows = settled_comparison(args.server_metrics, before, stats)
        stats.meta["server_metrics"] = [{"what": r.what, "harness": r.harness, "server": r.server} for r in rows]
    return finish(stats, thresholds, args)


def settled_comparison(
    admin: str, before: server_metrics.Samples, stats: RunStats, patience: float = 3.0
) -> list[server_metrics.Comparison]:
    """The server counts a connection when it ends, a moment after the client has let go:
    read /metrics until the connection rows agree, or `patience` runs out."""
    deadline = time.monotonic() + patience
    while True:
        rows = server_metrics.compare(before, server_metrics.fetch(admin), stats)
        if all(r.harness == r.server for r in rows[:2]) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def run_merge(args: argparse.Namespace) -> int:
    try:
        thresholds = [parse_threshold(t) for t in args.threshold]
        merged = RunStats()
        for path in args.files:
            merged.merge(report.load_json(path))
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    return finish(merged, thresholds, args)


def finish(stats: RunStats, thresholds: list[Threshold], args: argparse.Namespace) -> int:
    """Summary, files, thresholds; the exit code."""
    try:
        verdicts = evaluate(thresholds, stats)
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    sys.stdout.write(report.summary(stats))
    if "server_metrics" in stats.meta:
        rows = [server_metrics.Comparison(r["what"], r["harness"], r["server"]) for r in stats.meta["server_metrics"]]
        sys.stdout.write("\n" + server_metrics.render(rows))
    if verdicts:
        sys.stdout.write("\n" + render_verdicts(verdicts))
    if args.csv:
        report.write_csv(stats, args.csv)
    if args.json:
        report.write_json(stats, args.json)
    if args.html:
        write_html(stats, verdicts, args.html)
    sys.stdout.flush()
    return EXIT_THRESHOLDS_FAILED if any(not v.passed for v in verdicts) else EXIT_OK


# -- live output ---------------------------------------------------------------------------


class LiveView:
    """Redraws the table in place on a TTY; prints one line per interval otherwise."""

    def __init__(self, out: TextIO, interval: float) -> None:
        self.out = out
        self.interval = max(0.2, interval)
        self.tty = out.isatty()
        self.previous: report.Totals | None = None
        self.drawn = 0

    def update(self, stats: RunStats) -> None:
        now = report.totals_of(stats, time.time())
        previous = self.previous or report.Totals(stats.started or now.at, {}, {})
        self.previous = now
        if self.tty:
            text = report.live_table(stats, previous, now)
            if self.drawn:
                self.out.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = text.count("\n")
        else:
            text = report.live_line(stats, previous, now)
        self.out.write(text)
        self.out.flush()


async def _single_process(options: RunOptions, view: LiveView | None) -> RunStats:
    async def live(stats: RunStats) -> None:
        assert view is not None
        while True:
            await trio.sleep(view.interval)
            view.update(stats)

    return await run_scenario(options, live if view is not None else None)


# -- several processes ---------------------------------------------------------------------


class WorkerError(Exception):
    pass


if TYPE_CHECKING:
    Pipe = multiprocessing.connection.Connection[Any, Any]


def split_options(options: RunOptions, processes: int) -> list[RunOptions]:
    """Users, spawn rate, arrival rate and request budget shared out between processes."""
    parts = []
    first = 0
    for i in range(processes):
        users = options.users // processes + (1 if i < options.users % processes else 0)
        requests = None
        if options.requests is not None:
            requests = options.requests // processes + (1 if i < options.requests % processes else 0)
        parts.append(
            replace(
                options,
                users=users,
                first_user=first,
                requests=requests,
                spawn_rate=options.spawn_rate / processes,
                rate=options.rate / processes if options.rate is not None else None,
            )
        )
        first += users
    return parts


def _worker(options: RunOptions, interval: float, conn: Pipe) -> None:
    async def snapshots(stats: RunStats) -> None:
        while True:
            await trio.sleep(interval)
            conn.send(("snapshot", stats.to_json()))

    try:
        stats = trio.run(run_scenario, options, snapshots, False)
        conn.send(("final", stats.to_json()))
    except BaseException as exc:  # report any death to the parent, which exits 1
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _merged(snapshots: list[dict[str, Any] | None]) -> RunStats:
    merged = RunStats()
    for snapshot in snapshots:
        if snapshot is not None:
            merged.merge(RunStats.from_json(snapshot))
    return merged


def run_processes(options: RunOptions, processes: int, view: LiveView | None) -> RunStats:
    """Seed once here, then run the split options in `processes` spawned workers."""
    setup = trio.run(seed_objects, Run(options))
    context = multiprocessing.get_context("spawn")
    interval = view.interval if view is not None else 3600.0
    pipes = []
    workers = []
    for part in split_options(options, processes):
        receiver, sender = context.Pipe(duplex=False)
        worker = context.Process(target=_worker, args=(part, interval, sender), daemon=True)
        worker.start()
        sender.close()
        pipes.append(receiver)
        workers.append(worker)
    latest: list[dict[str, Any] | None] = [None] * processes
    final: list[dict[str, Any] | None] = [None] * processes
    try:
        _collect(pipes, latest, final, view, lambda: _merged(latest))
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
    stats = _merged(final)
    stats.meta["setup"] = setup
    stats.meta["processes"] = processes
    return stats


def _collect(
    pipes: list[Pipe],
    latest: list[dict[str, Any] | None],
    final: list[dict[str, Any] | None],
    view: LiveView | None,
    merged: Callable[[], RunStats],
) -> None:
    open_pipes = dict(enumerate(pipes))
    next_draw = time.monotonic() + (view.interval if view else 0)
    while open_pipes:
        wait = max(0.05, next_draw - time.monotonic()) if view else None
        for pipe in multiprocessing.connection.wait(list(open_pipes.values()), timeout=wait):
            index = next(i for i, p in open_pipes.items() if p is pipe)
            try:
                kind, payload = pipes[index].recv()
            except EOFError:
                del open_pipes[index]
                if final[index] is None:
                    raise WorkerError(f"worker {index} exited without a report") from None
                continue
            if kind == "error":
                raise WorkerError(f"worker {index} failed: {payload}")
            if kind == "final":
                final[index] = payload
            latest[index] = payload
        if view is not None and time.monotonic() >= next_draw:
            view.update(merged())
            next_draw += view.interval
