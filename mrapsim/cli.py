"""The `mrapsim` command line.

Every `serve` option also reads an environment variable (`--certs-dir` ↔ `MRAPSIM_CERTS_DIR`);
a flag beats the variable, the variable beats the configuration file. A bad flag, file or value
prints one line naming the setting and exits with code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from mrapsim import __version__
from mrapsim.config import Config, ConfigError, dump_toml, listen_override, load_config, merge

EXIT_USAGE = 2


class UsageError(Exception):
    pass


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _env(name: str) -> str | None:
    value = os.environ.get(f"MRAPSIM_{name}")
    return value if value else None


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", default=_env("CONFIG"), help="TOML file layered over the defaults [MRAPSIM_CONFIG]"
    )
    parser.add_argument(
        "--certs-dir",
        metavar="DIR",
        default=_env("CERTS_DIR"),
        help="where the CA and leaf certificates live (default ./certs) [MRAPSIM_CERTS_DIR]",
    )
    parser.add_argument(
        "--admin",
        metavar="HOST:PORT",
        default=_env("ADMIN"),
        help="admin API address (default 127.0.0.1:9911) [MRAPSIM_ADMIN]",
    )
    parser.add_argument(
        "--listen",
        metavar="NAME=HOST:PORT",
        action="append",
        default=[s for s in (_env("LISTEN") or "").split(",") if s],
        help="override one listener's address; repeatable [MRAPSIM_LISTEN, comma-separated]",
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        default=_env("WORKERS"),
        help="worker processes, or auto: the cores this process may use, with the sqlite store"
        " (default 1) [MRAPSIM_WORKERS]",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=_env("LOG_FORMAT"),
        help="log format (default text) [MRAPSIM_LOG_FORMAT]",
    )
    parser.add_argument(
        "--auth", choices=("sigv4", "none"), default=_env("AUTH"), help="S3 auth mode (default sigv4) [MRAPSIM_AUTH]"
    )


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="mrapsim", description="An AWS S3 Multi-Region Access Point edge emulator.")
    parser.add_argument("--version", action="version", version=f"mrapsim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    serve = commands.add_parser("serve", help="run the edge, the S3 app and the admin API")
    _add_config_options(serve)

    config = commands.add_parser("config", help="print the effective configuration as TOML")
    _add_config_options(config)
    config.add_argument("--show-secrets", action="store_true", help="print secret keys instead of redacting them")

    certs = commands.add_parser("certs", help="create or renew the CA and leaf certificates")
    _add_config_options(certs)
    certs.add_argument("--renew", action="store_true", help="re-issue the leaf certificate (the CA is kept)")
    certs.add_argument(
        "--key-type",
        choices=("ecdsa", "rsa"),
        default=_env("KEY_TYPE"),
        help="key type for new certificates [MRAPSIM_KEY_TYPE]",
    )

    from mrapsim.exec import add_exec_parser
    from mrapsim.load.cli import add_load_parser
    from mrapsim.probe import add_probe_parser

    add_probe_parser(commands)
    add_load_parser(commands)
    add_exec_parser(commands)
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    document: dict[str, Any] = {}
    if args.certs_dir:
        document["certs_dir"] = args.certs_dir
    if args.admin:
        document["admin"] = {"address": args.admin}
    if token := _env("ADMIN_TOKEN"):  # an environment variable only: it is a secret
        document = merge(document, {"admin": {"token": token}})
    if args.workers is not None:
        document["workers"] = args.workers
    if args.log_format:
        document["log_format"] = args.log_format
    if args.auth:
        document["auth"] = {"mode": args.auth}
    if getattr(args, "key_type", None):
        document = merge(document, {"tls": {"key_type": args.key_type}})
    if minted_dir := _env("MINTED_DIR"):
        document = merge(document, {"tls": {"minted_dir": minted_dir}})
    for spec in args.listen:
        document = merge(document, listen_override(spec))
    if credentials := _env("CREDENTIALS"):
        document = merge(document, credentials_override(credentials))
    return document


def credentials_override(text: str) -> dict[str, Any]:
    """`MRAPSIM_CREDENTIALS=ACCESS:SECRET[,ACCESS:SECRET]` (kept out of argv: it holds secrets)."""
    pairs: list[dict[str, str]] = []
    for item in text.split(","):
        access, sep, secret = item.strip().partition(":")
        if not sep or not access or not secret:
            raise ConfigError("MRAPSIM_CREDENTIALS", "must be ACCESS_KEY:SECRET_KEY pairs separated by commas")
        if any(pair["access_key"] == access for pair in pairs):
            raise ConfigError("MRAPSIM_CREDENTIALS", f"access key {access!r} appears twice")
        pairs.append({"access_key": access, "secret_key": secret})
    return {"auth": {"credentials": pairs}}


def config_from(args: argparse.Namespace) -> Config:
    file = Path(args.config) if args.config else None
    overrides = overrides_from(args)
    if args.listen:
        known = {listener.name for listener in load_config(file).listeners}
        for spec in args.listen:
            if (name := spec.partition("=")[0]) not in known:
                raise ConfigError("--listen", f"there is no listener named {name!r}")
    config = load_config(file, overrides)
    return config


def run_serve(args: argparse.Namespace) -> int:
    config = config_from(args)  # validate before importing the server: errors come fast

    import trio

    from mrapsim.logs import configure_logging
    from mrapsim.server import load_certificates, load_faults, serve

    load_faults(config)  # a bad fault is a usage error here, not a worker that fails to start
    configure_logging(config.log_format)
    certificates = load_certificates(config)
    for warning in certificates.warnings:
        logging.getLogger("mrapsim").warning("certificates: %s", warning)
    if config.workers > 1:
        from mrapsim.supervisor import supervise

        return trio.run(partial(supervise, config, reload=partial(config_from, args)))
    from mrapsim.supervisor import WorkerHandoff

    handoff = WorkerHandoff.from_environment(os.environ)
    trio.run(partial(serve, config, certificates, handoff=handoff, reload=partial(config_from, args)))
    return 0


def run_config(args: argparse.Namespace) -> int:
    sys.stdout.write(dump_toml(config_from(args), show_secrets=args.show_secrets))
    return 0


def run_certs(args: argparse.Namespace) -> int:
    from mrapsim.server import load_certificates

    certificates = load_certificates(config_from(args), renew=args.renew)
    sys.stdout.write(certificates.describe())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from mrapsim.store.errors import StoreOpenError
    from mrapsim.tls.certs import CertificateError

    try:
        args = build_parser().parse_args(argv)
        if args.command == "serve":
            return run_serve(args)
        if args.command == "config":
            return run_config(args)
        if args.command == "certs":
            return run_certs(args)
        if args.command == "probe":
            from mrapsim.probe import run_probe

            return run_probe(args)
        if args.command == "load":
            from mrapsim.load.cli import run_load

            return run_load(args)
        if args.command == "exec":
            from mrapsim.exec import run_exec

            return run_exec(args)
        raise UsageError(f"unknown command {args.command!r}")
    except UsageError as exc:
        print(f"mrapsim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, CertificateError, StoreOpenError) as exc:
        print(f"mrapsim: error: {_start_up_error(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BaseExceptionGroup as group:
        found = group.subgroup((ConfigError, CertificateError, StoreOpenError))
        if found is None:
            raise
        first = found.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        print(f"mrapsim: error: {_start_up_error(first)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _start_up_error(exc: BaseException) -> str:
    """The one line that reports `exc`, naming the setting at fault."""
    from mrapsim.store.errors import StoreOpenError  # loaded by main() already; deferred as there

    if isinstance(exc, StoreOpenError):
        return str(ConfigError("store.path", str(exc)))
    return str(exc)


def entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    entry()
