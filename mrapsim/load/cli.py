"""`mrapsim load` and `mrapsim load merge`: options, processes, live output, reports, exit code.

Exit codes: 0 the run completed (failures are reported, not fatal; use thresholds to gate),
1 setup failed (the bucket check before the run, or the objects to read could not be written)
or a worker process died, 2 usage, 99 a threshold failed (k6's code), 130 interrupted (Ctrl-C:
the first one stops the run gracefully and the reports are still written).
"""

from __future__ import annotations

import argparse
import ipaddress
import multiprocessing
import multiprocessing.connection
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import trio
from cryptography import x509
from cryptography.x509.oid import NameOID

from mrapsim.config import default_document, parse_config, parse_duration
from mrapsim.load import report
from mrapsim.load.client import parse_endpoint
from mrapsim.load.runner import Run, RunOptions, SetupError, seed_objects
from mrapsim.load.runner import run_load as run_scenario
from mrapsim.load.scenario import BUILTIN_SCENARIOS, load_scenario
from mrapsim.load.settings import resolve
from mrapsim.load.shapes import parse_stages
from mrapsim.load.sigv4 import Credentials
from mrapsim.load.stats import RunStats
from mrapsim.load.thresholds import (
    EXIT_THRESHOLDS_FAILED,
    Threshold,
    evaluate,
    parse_threshold,
    render_verdicts,
    validate,
)
from mrapsim.names import is_ip_literal
from mrapsim.tls.certs import CA_COMMON_NAME

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it
LIVE_TICK = 1.0  # seconds between updates of the live page and the harness's /metrics
def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", metavar="PREFIX", default=None,
                        help="write PREFIX_stats.csv, _stats_history.csv, _failures.csv (Locust's columns)")
    parser.add_argument("--csv-full-history", action="store_true", default=None,
                        help="per-task rows in _stats_history.csv too, not only Aggregated (Locust's flag)")
    parser.add_argument("--html", metavar="FILE", default=None, help="write a self-contained HTML report with charts")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="write the full report (mergeable histograms) as JSON")
    parser.add_argument("--threshold", metavar="EXPR", action="append", default=None,
                        help="pass/fail criterion, repeatable: 'p99<50ms', k6's 'p(95)<500', 'rate<0.01', "
                             "'checks>0.99', per task 'get:p99<20ms'; append ' abortOnFail' to stop the run "
                             "when it fails; exit 99 if any fails")


def add_load_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `load` (and `load merge`) to a subparsers object. Defaults are None here and filled
    in by settings.resolve (command line > MRAPSIM_LOAD_* > config file > default)."""
    load: argparse.ArgumentParser = commands.add_parser(
        "load", help="generate S3 and TLS handshake load (Locust-style, on trio)",
        description="Run weighted S3 / TLS-handshake tasks against an endpoint and report "
                    "latency percentiles, failures by class and handshake outcomes. Every option "
                    "can also come from MRAPSIM_LOAD_<OPTION> or a config file (--config).",
    )
    load.add_argument("--config", metavar="FILE",
                      help="settings file (Locust's 'option = value' lines, or TOML) "
                           "[MRAPSIM_LOAD_CONFIG; default ./mrapsim-load.conf if present]")
    load.add_argument("-H", "--host", "--target", dest="target", metavar="URL",
                      help="https://HOST[:PORT][/BUCKET] (virtual-host or MRAP host: no bucket in the path)")
    load.add_argument("--connect", metavar="HOST:PORT",
                      help="connect here instead of resolving the URL's host (SNI and Host stay the URL's)")
    load.add_argument("-u", "--users", type=int, help="concurrent users (default 10)")
    load.add_argument("-r", "--spawn-rate", type=float, help="users started per second (default: all at once)")
    stop = load.add_mutually_exclusive_group()
    stop.add_argument("-t", "--run-time", "--duration", dest="duration", metavar="TIME",
                      help="how long to run: 30s, 2m (default 10s)")
    stop.add_argument("--requests", type=int, help="stop after N tasks in total")
    load.add_argument("--stages", "--stage", action="append", metavar="DUR:TARGET[,DUR:TARGET...]",
                      help="k6 stages: ramp linearly to TARGET users over DUR ('10s:20,10s:20,10s:0'); "
                           "TARGET/s ramps the arrival rate instead ('30s:100/s'); repeatable")
    load.add_argument("-f", "--scenario", "--locustfile", dest="scenario",
                      help=f"built-in ({', '.join(BUILTIN_SCENARIOS)}), a Python scenario file or a "
                           "TOML file (default mixed)")
    load.add_argument("--user-class", metavar="NAME", help="a Python scenario file's user class to run "
                      "(default: every User class in it, by weight)")
    load.add_argument("--rate", type=float,
                      help="open model: N task arrivals per second in total, latency measured from the "
                           "scheduled start (coordinated omission corrected); --users caps concurrency")
    load.add_argument("--proxy", metavar="http://HOST:PORT",
                      help="tunnel every connection through an HTTP CONNECT proxy")
    load.add_argument("--ca-bundle", metavar="FILE",
                      help="PEM file of trusted CAs (default: the system store plus --certs-dir's ca.pem)")
    load.add_argument("--certs-dir", metavar="DIR",
                      help="where mrapsim's ca.pem is, as for serve (default ./certs) [MRAPSIM_CERTS_DIR]")
    load.add_argument("--insecure", action="store_true", default=None, help="do not verify certificates")
    load.add_argument("--access-key",
                      help="SigV4 access key [AWS_ACCESS_KEY_ID]; against a mrapsim, its default pair")
    load.add_argument("--secret-key", help="[AWS_SECRET_ACCESS_KEY]")
    load.add_argument("--region", help="SigV4 region (default us-east-1) [AWS_REGION]")
    load.add_argument("--sigv4a", action="store_true", default=None,
                      help="sign with SigV4A (ECDSA P-256, region set '*'), as SDKs do for MRAPs")
    load.add_argument("--handshake-timeout",
                      help="deadline for TCP connect + CONNECT + TLS handshake (default 5s); "
                           "no byte back by then is 'stalled'")
    load.add_argument("--timeout", help="deadline for one request/response (default 10s)")
    load.add_argument("--stop-timeout", help="at the end, how long users may finish the task in hand "
                      "(default: handshake timeout + timeout + 1s)")
    load.add_argument("--processes", type=int, help="worker processes, histograms merged (default 1)")
    load.add_argument("--key-prefix", help="object keys used by the run (default mrapsim-load/)")
    load.add_argument("--seed", type=int, help="random seed for task choice (reproducible mixes)")
    load.add_argument("--interval", type=float, help="live output every N seconds (default 2)")
    load.add_argument("--quiet", action="store_true", default=None, help="no live output, only the summary")
    load.add_argument("--only-summary", action="store_true", default=None,
                      help="Locust's name for --quiet: only the final summary")
    load.add_argument("--headless", action="store_true", default=None,
                      help="accepted for Locust habits: the harness has no web UI unless --web is given")
    load.add_argument("--web", metavar="HOST:PORT",
                      help="serve a live view (charts, failures) and /metrics (Prometheus) while running")
    load.add_argument("--server-metrics", metavar="ADMIN_URL",
                      help="mrapsim's admin address (http://127.0.0.1:9911): read /metrics before and "
                           "after and print the server's counts beside the harness's")
    _add_report_options(load)
    sub = load.add_subparsers(dest="load_command", metavar="{merge}")
    merge = sub.add_parser("merge", help="combine JSON reports of several runs or machines",
                           description="Merge `--json` reports (histograms exactly) and report on the whole.")
    merge.add_argument("files", nargs="+", metavar="FILE")
    _add_report_options(merge)


def _certs_dir(args: argparse.Namespace) -> Path:
    chosen = args.certs_dir or os.environ.get("MRAPSIM_CERTS_DIR")
    return Path(chosen) if chosen else parse_config(default_document()).certs_dir


def default_credentials() -> Credentials:
    """The key pair of mrapsim's embedded configuration (documented in the README)."""
    pair = default_document()["auth"]["credentials"][0]
    return Credentials(pair["access_key"], pair["secret_key"])


def is_mrapsim_ca(path: str | None) -> bool:
    """Does this PEM bundle hold mrapsim's own CA (its fixed common name)?"""
    if not path:
        return False
    try:
        chain = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError):
        return False
    return any(
        a.value == CA_COMMON_NAME for c in chain for a in c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    )


def _is_loopback(host: str) -> bool:
    return host == "localhost" or (is_ip_literal(host) and ipaddress.ip_address(host.strip("[]")).is_loopback)


def build_options(args: argparse.Namespace) -> RunOptions:
    """RunOptions from parsed arguments (settings resolved); ValueError names the bad option."""
    resolve(args)
    if not args.target:
        raise ValueError("--host/--target: required (https://HOST[:PORT][/BUCKET])")
    endpoint = parse_endpoint(args.target, args.connect, args.proxy)
    if bool(args.access_key) != bool(args.secret_key):
        raise ValueError("--access-key and --secret-key go together")
    duration = parse_duration(args.duration, "--run-time") if args.duration else None
    if args.ca_bundle and not os.path.isfile(args.ca_bundle):
        raise ValueError(f"--ca-bundle: no file {args.ca_bundle!r}")
    ca_bundle, system_ca = args.ca_bundle, False
    if not ca_bundle and not args.insecure and endpoint.tls:
        candidate = _certs_dir(args) / "ca.pem"
        if candidate.is_file():
            ca_bundle, system_ca = str(candidate), True
    credentials = Credentials(args.access_key, args.secret_key) if args.access_key else None
    if credentials is None and (is_mrapsim_ca(ca_bundle) or (not endpoint.tls and _is_loopback(endpoint.connect_host))):
        credentials = default_credentials()
        args.settings_sources["access_key"] = "mrapsim's default key pair"
    if args.processes < 1:
        raise ValueError("--processes must be at least 1")
    stages = parse_stages(args.stages)
    # User stages set the users themselves (-u is for arrival-rate stages: the cap).
    users = stages.peak if stages is not None and stages.kind == "users" else args.users
    if duration is None and args.requests is None and not stages:
        duration = 10.0
    if users < args.processes:
        raise ValueError("--users must be at least --processes")
    scenario = load_scenario(args.scenario, args.user_class)
    return RunOptions(
        endpoint=endpoint, scenario=scenario, users=users,
        spawn_rate=args.spawn_rate, duration=duration, requests=args.requests, rate=args.rate,
        handshake_timeout=parse_duration(args.handshake_timeout, "--handshake-timeout"),
        timeout=parse_duration(args.timeout, "--timeout"), credentials=credentials, region=args.region,
        ca_bundle=ca_bundle, system_ca=system_ca, insecure=args.insecure, key_prefix=args.key_prefix,
        seed=args.seed, stages=stages, sigv4a=args.sigv4a,
        stop_timeout=parse_duration(args.stop_timeout, "--stop-timeout") if args.stop_timeout else None,
    )


def _error(message: str) -> None:
    print(f"mrapsim: error: {message}", file=sys.stderr)


def run_load(args: argparse.Namespace) -> int:
    if getattr(args, "load_command", None) == "merge":
        return run_merge(args)
    try:
        resolve(args)
        thresholds = [parse_threshold(t) for t in args.threshold]
        options = build_options(args)
        validate(thresholds, options.scenario.task_names)
        _check_bucket_named(options)
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    options = replace(options, abort_thresholds=tuple(t for t in thresholds if t.abort_on_fail))
    if args.settings_sources.get("access_key") == "mrapsim's default key pair" and not args.quiet:
        print(f"mrapsim load: no AWS credentials set; the target trusts mrapsim's CA, so using mrapsim's "
              f"default key pair ({options.credentials.access_key if options.credentials else ''})",
              file=sys.stderr)
    quiet = args.quiet or args.only_summary
    view = None if quiet else LiveView(sys.stderr, args.interval)
    from mrapsim.load import server_metrics  # here: prometheus_client is slow to import

    try:
        before = server_metrics.fetch(args.server_metrics) if args.server_metrics else None
    except OSError as exc:
        _error(f"--server-metrics: cannot read {args.server_metrics}/metrics: {exc}")
        return EXIT_USAGE
    live = None
    if args.web:
        from mrapsim.load.live import LiveServer

        try:
            live = LiveServer.start(args.web, _describe(args, options))
        except (OSError, ValueError) as exc:
            _error(f"--web {args.web}: {exc}")
            return EXIT_USAGE
        print(f"mrapsim load: live view on {live.url} (Prometheus: {live.url}metrics)", file=sys.stderr)
    try:
        if args.processes == 1:
            stats = trio.run(_single_process, options, view, live)
        else:
            stats = run_processes(options, args.processes, view, live)
    except SetupError as exc:
        _error(f"setup: {exc}")
        return EXIT_RUN_FAILED
    except WorkerError as exc:
        _error(str(exc))
        return EXIT_RUN_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except BaseExceptionGroup as group:  # a second Ctrl-C arrives wrapped, from inside a nursery
        if group.subgroup(KeyboardInterrupt) is None:
            raise
        _error("interrupted")
        return EXIT_INTERRUPTED
    finally:
        if live is not None:
            live.stop()
    stats.meta["run"] = _describe(args, options)
    if before is not None:
        rows = settled_comparison(args.server_metrics, before, stats)
        stats.meta["server_metrics"] = [
            {"what": r.what, "harness": r.harness, "server": r.server, "setup": r.setup} for r in rows]
    code = finish(stats, thresholds, args)
    if stats.meta.get("interrupted"):
        _error("interrupted (the reports cover the run until then)")
        return EXIT_INTERRUPTED
    return code


def _describe(args: argparse.Namespace, options: RunOptions) -> dict[str, Any]:
    """What was run, for the reports: target, scenario, the command line, the load model."""
    o = options
    unit = "/s" if o.stages is not None and o.stages.kind == "rate" else ""
    model = (f"stages {','.join(f'{s.duration:g}s:{s.target:g}{unit}' for s in o.stages.stages)}"
             if o.stages is not None else
             f"{o.rate:g} arrivals/s, up to {o.users} users" if o.rate is not None else
             f"{o.users} users" + (f" at {o.spawn_rate:g}/s" if o.spawn_rate else ""))
    return {
        "target": args.target, "connect": args.connect, "scenario": o.scenario.name,
        "scenario_source": o.scenario.source, "model": model,
        "tasks": [n for n in o.scenario.task_names if n not in ("on_start", "on_stop")],
        "command": shlex.join(["mrapsim", "load", *sys.argv[1:]] if sys.argv[1:2] != ["load"]
                              else ["mrapsim", *sys.argv[1:]]),
        "credentials": args.settings_sources.get("access_key", "none (unsigned)"),
    }


def _check_bucket_named(options: RunOptions) -> None:
    """A path-style target (localhost, an IP) without a bucket cannot serve S3 tasks."""
    endpoint = options.endpoint
    if not options.scenario.uses_s3 or endpoint.base_path:
        return
    if _is_loopback(endpoint.host) or is_ip_literal(endpoint.host) or "." not in endpoint.host:
        raise ValueError(
            f"--host {endpoint.scheme}://{endpoint.host_header} names no bucket: a path-style target needs "
            f"one, e.g. {endpoint.scheme}://{endpoint.host_header}/mraps3sample (mrapsim's default bucket)"
        )


def settled_comparison(
    admin: str, before: server_metrics.Samples, stats: RunStats, patience: float = 3.0
) -> list[server_metrics.Comparison]:
    """The server counts a connection when it ends, a moment after the client has let go:
    read /metrics until the connection rows agree, or `patience` runs out."""
    from mrapsim.load import server_metrics

    deadline = time.monotonic() + patience
    while True:
        rows = server_metrics.compare(before, server_metrics.fetch(admin), stats)
        if all(r.harness == r.server for r in rows[:2]) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def run_merge(args: argparse.Namespace) -> int:
    try:
        thresholds = [parse_threshold(t) for t in args.threshold or []]
        merged = RunStats()
        for path in args.files:
            merged.merge(report.load_json(path))
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    return finish(merged, thresholds, args)


def finish(stats: RunStats, thresholds: list[Threshold], args: argparse.Namespace) -> int:
    """Summary, files, thresholds; the exit code."""
    verdicts = evaluate(thresholds, stats)
    sys.stdout.write(report.summary(stats))
    if "server_metrics" in stats.meta:
        from mrapsim.load import server_metrics

        rows = [server_metrics.Comparison(r["what"], r["harness"], r["server"], r.get("setup", 0))
                for r in stats.meta["server_metrics"]]
        sys.stdout.write("\n" + server_metrics.render(rows))
    if verdicts:
        sys.stdout.write("\n" + render_verdicts(verdicts))
    if "aborted" in stats.meta:
        sys.stdout.write(f"\nRun stopped early: {stats.meta['aborted']}\n")
    if args.csv:
        report.write_csv(stats, args.csv, full_history=bool(getattr(args, "csv_full_history", False)))
    if args.json:
        report.write_json(stats, args.json)
    if args.html:
        from mrapsim.load.html import write_html

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


async def _single_process(options: RunOptions, view: LiveView | None, live: Any = None) -> RunStats:
    async def report_live(stats: RunStats) -> None:
        next_view = trio.current_time() + (view.interval if view else 0)
        while True:
            await trio.sleep(LIVE_TICK)
            if live is not None:
                live.publish(stats)
            if view is not None and trio.current_time() >= next_view:
                view.update(stats)
                next_view += view.interval

    return await run_scenario(options, report_live if view is not None or live is not None else None)


# -- several processes ---------------------------------------------------------------------


class WorkerError(Exception):
    pass


if TYPE_CHECKING:
    from mrapsim.load import server_metrics

    Pipe = multiprocessing.connection.Connection[Any, Any]


def split_options(options: RunOptions, processes: int) -> list[RunOptions]:
    """Users, spawn rate, arrival rate and request budget shared out between processes."""
    parts = []
    for i in range(processes):
        users = options.users // processes + (1 if i < options.users % processes else 0)
        requests = None
        if options.requests is not None:
            requests = options.requests // processes + (1 if i < options.requests % processes else 0)
        parts.append(replace(
            options, users=users, first_user=i, id_stride=processes, requests=requests,
            spawn_rate=options.spawn_rate / processes, process_share=1 / processes,
            rate=options.rate / processes if options.rate is not None else None,
        ))
    return parts


def _worker(options: RunOptions, interval: float, conn: Pipe) -> None:
    async def snapshots(stats: RunStats) -> None:
        while True:
            await trio.sleep(interval)
            conn.send(("snapshot", stats.to_json()))

    # Ctrl-C on a terminal reaches every process of the group: workers leave it to the parent,
    # which stops them with one SIGTERM each (a second signal would cut their run short).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stats = trio.run(run_scenario, options, snapshots, False, (signal.SIGTERM,))
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


def run_processes(options: RunOptions, processes: int, view: LiveView | None, live: Any = None) -> RunStats:
    """Seed once here, then run the split options in `processes` spawned workers."""
    setup = trio.run(seed_objects, Run(options))
    context = multiprocessing.get_context("spawn")
    interval = LIVE_TICK if live is not None else view.interval if view is not None else 3600.0
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
    interrupted: list[bool] = []

    def on_interrupt(signum: int, frame: object) -> None:
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        _collect(pipes, latest, final, view, lambda: _merged(latest), live, lambda: bool(interrupted))
    finally:
        signal.signal(signal.SIGINT, previous)
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
    stats = _merged(final)
    if interrupted:
        stats.meta["interrupted"] = True
        stats.meta.setdefault("aborted", "interrupted (Ctrl-C)")
    stats.meta["setup"] = setup
    stats.meta["processes"] = processes
    return stats


def _collect(
    pipes: list[Pipe],
    latest: list[dict[str, Any] | None],
    final: list[dict[str, Any] | None],
    view: LiveView | None,
    merged: Callable[[], RunStats],
    live: Any = None,
    interrupted: Callable[[], bool] = lambda: False,
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
                # Interrupted while it was still starting, a worker dies of the SIGTERM it had
                # no handler for yet: it had nothing to report.
                if final[index] is None and not interrupted():
                    raise WorkerError(f"worker {index} exited without a report") from None
                continue
            if kind == "error":
                raise WorkerError(f"worker {index} failed: {payload}")
            if kind == "final":
                final[index] = payload
            latest[index] = payload
            if live is not None:
                live.publish(merged())
        if view is not None and time.monotonic() >= next_draw:
            current = merged()
            if current.started:  # nothing to show before the workers' first snapshot
                view.update(current)
            next_draw += view.interval
