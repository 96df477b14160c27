"""`mrapsim load` and `mrapsim load merge`: options, processes, live output, reports, exit code.

Exit codes: 0 the run completed (failures are reported, not fatal; use thresholds to gate),
1 setup failed (the bucket check before the run, or the objects to read could not be written)
or a worker process died, 2 usage, 99 a threshold failed (k6's code), 130 interrupted (Ctrl-C:
the first one stops the run gracefully and the reports are still written).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mrapsim.config import default_document, parse_config, parse_duration
from mrapsim.load.catalog import BUILTIN_SCENARIOS, load_scenario
from mrapsim.load.settings import resolve
from mrapsim.load.shapes import parse_stages
from mrapsim.load.thresholds import (
    EXIT_THRESHOLDS_FAILED,
    Threshold,
    evaluate,
    parse_threshold,
    render_verdicts,
    validate,
)
from mrapsim.names import is_ip_literal

# The rest is imported where it is used: a usage error is reported before trio, the clients and
# the reports load (a threshold naming a missing task costs well under a second).
if TYPE_CHECKING:
    from mrapsim.load.runner import RunOptions
    from mrapsim.load.scenario import Scenario
    from mrapsim.load.sigv4 import Credentials
    from mrapsim.load.stats import RunStats

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--csv",
        metavar="PREFIX",
        default=None,
        help="write PREFIX_stats.csv, _stats_history.csv, _failures.csv (Locust's columns)",
    )
    parser.add_argument(
        "--csv-full-history",
        action="store_true",
        default=None,
        help="per-task rows in _stats_history.csv too, not only Aggregated (Locust's flag)",
    )
    parser.add_argument("--html", metavar="FILE", default=None, help="write a self-contained HTML report with charts")
    parser.add_argument(
        "--json", metavar="FILE", default=None, help="write the full report (mergeable histograms) as JSON"
    )
    parser.add_argument(
        "--threshold",
        metavar="EXPR",
        action="append",
        default=None,
        help="pass/fail criterion, repeatable: 'p99<50ms', k6's 'p(95)<500', 'rate<0.01', "
        "'checks>0.99', per task 'get:p99<20ms'; append ' abortOnFail' to stop the run "
        "when it fails; exit 99 if any fails",
    )


def add_load_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `load` (and `load merge`) to a subparsers object. Defaults are None here and filled
    in by settings.resolve (command line > MRAPSIM_LOAD_* > config file > default)."""
    load: argparse.ArgumentParser = commands.add_parser(
        "load",
        help="generate S3 and TLS handshake load (Locust-style, on trio)",
        description="Run weighted S3 / TLS-handshake tasks against an endpoint and report "
        "latency percentiles, failures by class and handshake outcomes. Every option "
        "can also come from MRAPSIM_LOAD_<OPTION> or a config file (--config).",
    )
    load.add_argument(
        "--config",
        metavar="FILE",
        help="settings file (Locust's 'option = value' lines, or TOML) "
        "[MRAPSIM_LOAD_CONFIG; default ./mrapsim-load.conf if present]",
    )
    load.add_argument(
        "-H",
        "--host",
        "--target",
        dest="target",
        metavar="URL",
        help="https://HOST[:PORT][/BUCKET] (virtual-host or MRAP host: no bucket in the path)",
    )
    load.add_argument(
        "--connect",
        metavar="HOST:PORT",
        help="connect here instead of resolving the URL's host (SNI and Host stay the URL's)",
    )
    load.add_argument("-u", "--users", type=int, help="concurrent users (default 10)")
    load.add_argument("-r", "--spawn-rate", type=float, help="users started per second (default: all at once)")
    stop = load.add_mutually_exclusive_group()
    stop.add_argument(
        "-t", "--run-time", "--duration", dest="duration", metavar="TIME", help="how long to run: 30s, 2m (default 10s)"
    )
    stop.add_argument("--requests", type=int, help="stop after N tasks in total")
    load.add_argument(
        "--stages",
        "--stage",
        action="append",
        metavar="DUR:TARGET[,DUR:TARGET...]",
        help="k6 stages: ramp linearly to TARGET users over DUR ('10s:20,10s:20,10s:0'); "
        "TARGET/s ramps the arrival rate instead ('30s:100/s'); repeatable",
    )
    load.add_argument(
        "-f",
        "--scenario",
        "--locustfile",
        dest="scenario",
        help=f"built-in ({', '.join(BUILTIN_SCENARIOS)}), a Python scenario file or a TOML file (default mixed)",
    )
    load.add_argument(
        "--user-class",
        metavar="NAME",
        help="a Python scenario file's user class to run (default: every User class in it, by weight)",
    )
    load.add_argument(
        "--rate",
        type=float,
        help="open model: N task arrivals per second in total, latency measured from the "
        "scheduled start (coordinated omission corrected); --users caps concurrency",
    )
    load.add_argument(
        "--proxy", metavar="http://HOST:PORT", help="tunnel every connection through an HTTP CONNECT proxy"
    )
    load.add_argument(
        "--ca-bundle",
        metavar="FILE",
        help="PEM file of trusted CAs (default: the system store plus --certs-dir's ca.pem)",
    )
    load.add_argument(
        "--certs-dir",
        metavar="DIR",
        help="where mrapsim's ca.pem is, as for serve (default ./certs) [MRAPSIM_CERTS_DIR]",
    )
    load.add_argument("--insecure", action="store_true", default=None, help="do not verify certificates")
    load.add_argument("--access-key", help="SigV4 access key [AWS_ACCESS_KEY_ID]; against a mrapsim, its default pair")
    load.add_argument("--secret-key", help="[AWS_SECRET_ACCESS_KEY]")
    load.add_argument("--region", help="SigV4 region (default us-east-1) [AWS_REGION]")
    load.add_argument(
        "--sigv4a",
        action="store_true",
        default=None,
        help="sign with SigV4A (ECDSA P-256, region set '*'), as SDKs do for MRAPs",
    )
    load.add_argument(
        "--handshake-timeout",
        help="deadline for TCP connect + CONNECT + TLS handshake (default 5s); no byte back by then is 'stalled'",
    )
    load.add_argument("--timeout", help="deadline for one request/response (default 10s)")
    load.add_argument(
        "--stop-timeout",
        help="at the end, how long users may finish the task in hand (default: handshake timeout + timeout + 1s)",
    )
    load.add_argument("--processes", type=int, help="worker processes, histograms merged (default 1)")
    load.add_argument("--key-prefix", help="object keys used by the run (default mrapsim-load/)")
    load.add_argument("--seed", type=int, help="random seed for task choice (reproducible mixes)")
    load.add_argument("--interval", type=float, help="live output every N seconds (default 2)")
    load.add_argument("--quiet", action="store_true", default=None, help="no live output, only the summary")
    load.add_argument(
        "--only-summary", action="store_true", default=None, help="Locust's name for --quiet: only the final summary"
    )
    load.add_argument(
        "--headless",
        action="store_true",
        default=None,
        help="accepted for Locust habits: the harness has no web UI unless --web is given",
    )
    load.add_argument(
        "--web",
        metavar="HOST:PORT",
        help="serve a live view (charts, failures) and /metrics (Prometheus) while running",
    )
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


def _certs_dir(args: argparse.Namespace) -> Path:
    chosen = args.certs_dir or os.environ.get("MRAPSIM_CERTS_DIR")
    return Path(chosen) if chosen else parse_config(default_document()).certs_dir


def default_credentials() -> Credentials:
    """The key pair of mrapsim's embedded configuration (documented in the README)."""
    from mrapsim.load.sigv4 import Credentials

    pair = default_document()["auth"]["credentials"][0]
    return Credentials(pair["access_key"], pair["secret_key"])


def is_mrapsim_ca(path: str | None) -> bool:
    """Does this PEM bundle hold mrapsim's own CA (its fixed common name)?"""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from mrapsim.tls.certs import CA_COMMON_NAME

    if not path:
        return False
    try:
        chain = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError):
        return False
    return any(a.value == CA_COMMON_NAME for c in chain for a in c.subject.get_attributes_for_oid(NameOID.COMMON_NAME))


def _is_loopback(host: str) -> bool:
    return host == "localhost" or (is_ip_literal(host) and ipaddress.ip_address(host.strip("[]")).is_loopback)


def build_options(args: argparse.Namespace, scenario: Scenario | None = None) -> RunOptions:
    """RunOptions from parsed arguments (settings resolved) and the scenario if already loaded;
    ValueError names the bad option."""
    from mrapsim.load.client import parse_endpoint
    from mrapsim.load.runner import RunOptions
    from mrapsim.load.sigv4 import Credentials

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
    if scenario is None:
        scenario = load_scenario(args.scenario, args.user_class)
    return RunOptions(
        endpoint=endpoint,
        scenario=scenario,
        users=users,
        spawn_rate=args.spawn_rate,
        duration=duration,
        requests=args.requests,
        rate=args.rate,
        handshake_timeout=parse_duration(args.handshake_timeout, "--handshake-timeout"),
        timeout=parse_duration(args.timeout, "--timeout"),
        credentials=credentials,
        region=args.region,
        ca_bundle=ca_bundle,
        system_ca=system_ca,
        insecure=args.insecure,
        key_prefix=args.key_prefix,
        seed=args.seed,
        stages=stages,
        sigv4a=args.sigv4a,
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
        scenario = load_scenario(args.scenario, args.user_class)
        validate(thresholds, scenario.task_names)  # before the clients are even imported
        options = build_options(args, scenario)
        _check_bucket_named(options)
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    from mrapsim.load import execution, server_metrics
    from mrapsim.load.runner import SetupError

    options = replace(options, abort_thresholds=tuple(t for t in thresholds if t.abort_on_fail))
    if args.settings_sources.get("access_key") == "mrapsim's default key pair" and not args.quiet:
        print(
            f"mrapsim load: no AWS credentials set; the target trusts mrapsim's CA, so using mrapsim's "
            f"default key pair ({options.credentials.access_key if options.credentials else ''})",
            file=sys.stderr,
        )
    quiet = args.quiet or args.only_summary
    view = None if quiet else execution.LiveView(sys.stderr, args.interval)
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
            stats = execution.run_single(options, view, live)
        else:
            stats = execution.run_processes(options, args.processes, view, live)
    except SetupError as exc:
        _error(f"setup: {exc}")
        return EXIT_RUN_FAILED
    except execution.WorkerError as exc:
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
        rows = execution.settled_comparison(args.server_metrics, before, stats)
        stats.meta["server_metrics"] = [
            {"what": r.what, "harness": r.harness, "server": r.server, "setup": r.setup} for r in rows
        ]
    code = finish(stats, thresholds, args)
    if stats.meta.get("interrupted"):
        _error("interrupted (the reports cover the run until then)")
        return EXIT_INTERRUPTED
    return code


def _describe(args: argparse.Namespace, options: RunOptions) -> dict[str, Any]:
    """What was run, for the reports: target, scenario, the command line, the load model."""
    o = options
    unit = "/s" if o.stages is not None and o.stages.kind == "rate" else ""
    model = (
        f"stages {','.join(f'{s.duration:g}s:{s.target:g}{unit}' for s in o.stages.stages)}"
        if o.stages is not None
        else f"{o.rate:g} arrivals/s, up to {o.users} users"
        if o.rate is not None
        else f"{o.users} users" + (f" at {o.spawn_rate:g}/s" if o.spawn_rate else "")
    )
    return {
        "target": args.target,
        "connect": args.connect,
        "scenario": o.scenario.name,
        "scenario_source": o.scenario.source,
        "model": model,
        "tasks": [n for n in o.scenario.task_names if n not in ("on_start", "on_stop")],
        "command": shlex.join(
            ["mrapsim", "load", *sys.argv[1:]] if sys.argv[1:2] != ["load"] else ["mrapsim", *sys.argv[1:]]
        ),
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


def run_merge(args: argparse.Namespace) -> int:
    from mrapsim.load import report
    from mrapsim.load.stats import RunStats

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
    from mrapsim.load import report

    verdicts = evaluate(thresholds, stats)
    sys.stdout.write(report.summary(stats))
    if "server_metrics" in stats.meta:
        from mrapsim.load import server_metrics

        rows = [
            server_metrics.Comparison(r["what"], r["harness"], r["server"], r.get("setup", 0))
            for r in stats.meta["server_metrics"]
        ]
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
