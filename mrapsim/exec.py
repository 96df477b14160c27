"""`mrapsim exec`: run a Python client with every `*.amazonaws.com` name resolved to the local edge.

aws-cli and boto3 send a request for an MRAP ARN to
`https://<alias>.accesspoint.s3-global.amazonaws.com/`, signed with SigV4A, and ignore
`--endpoint-url` for it: they dial port 443 of the real name. To drive the local edge with the real
names (the URL, the Host header, the SNI and the signature), name resolution has to change inside
the client. This command puts `mrapsim/exec_site/` first on the child's PYTHONPATH: its
`sitecustomize` wraps `socket.getaddrinfo` in the child (see that file), sets `AWS_CA_BUNDLE` to
the edge's CA (names under `.localhost` resolve as `localhost`, for the `{account}.localhost` host
aws-cli's s3control builds from `--endpoint-url https://localhost:PORT`), and then the command
replaces this process, so signals and the exit code are the
client's own.

That works for Python programs only: aws-cli v1, boto3, any `python` script. Anything else (curl,
aws-cli v2, which is a frozen binary, SDKs in other languages) resolves names itself: mrapsim says
so, prints the recipe for those clients (`curl --connect-to`, `/etc/hosts` and a listener on 443),
and exits 2.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mrapsim.config import ConfigError, default_document, parse_address
from mrapsim.exec_site.sitecustomize import CONNECT_VARIABLE

SITE_DIR = Path(__file__).resolve().parent / "exec_site"
DEFAULT_CONNECT = "127.0.0.1:8443"
EXAMPLE_URL = "https://mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com/"
EXIT_NOT_PYTHON = 2
EXIT_NOT_FOUND = 127

PYTHON_NAME = re.compile(r"(python|pypy)(\d+(\.\d+)?)?")
# pyenv's shims are shell scripts that `exec ".../libexec/pyenv" exec "$program"`.
PYENV_SHIM = re.compile(rb'exec "([^"]+/pyenv)" exec')


class ExecError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_exec_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "exec",
        help="run a Python client (aws-cli, boto3) with *.amazonaws.com resolved to the local edge",
        description="Run COMMAND with every *.amazonaws.com name resolved to HOST and port 443 mapped to "
        "PORT, so that aws-cli or boto3 reach the local edge by MRAP ARN with the real names (Host, SNI, "
        "SigV4A). COMMAND must be a Python program; for others the recipe is printed.",
    )
    parser.add_argument(
        "--connect",
        metavar="HOST:PORT",
        default=DEFAULT_CONNECT,
        help=f"where *.amazonaws.com connections go (default {DEFAULT_CONNECT}, the mrap listener)",
    )
    parser.add_argument(
        "--ca-bundle",
        metavar="FILE",
        help="the CA the client must trust, given to it as AWS_CA_BUNDLE (default: ca.pem in "
        "MRAPSIM_CERTS_DIR or ./certs, mrapsim's CA, when it exists; else AWS_CA_BUNDLE as set)",
    )
    parser.add_argument(
        "program", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]", help="a Python program and its arguments"
    )


def run_exec(args: argparse.Namespace) -> int:
    command = list(args.program)
    if command and command[0] == "--":
        command = command[1:]
    try:
        if not command:
            raise ExecError("mrapsim exec: error: no command; usage: mrapsim exec [--connect HOST:PORT] -- COMMAND", 2)
        try:
            address = parse_address(args.connect, "--connect")
        except ConfigError as exc:
            raise ExecError(f"mrapsim: error: {exc}", 2) from exc
        argv = python_argv(command)
        if argv is None:
            raise ExecError(not_python_message(command[0], str(address)), EXIT_NOT_PYTHON)
        env = child_environment(os.environ, str(address), args.ca_bundle)
    except ExecError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    if not has_credentials(os.environ):
        print(credentials_hint(), file=sys.stderr)
    try:
        os.execve(argv[0], argv, env)
    except OSError as exc:
        print(f"mrapsim exec: cannot run {command[0]}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    raise AssertionError("unreachable: execve returned")


def child_environment(parent: Mapping[str, str], connect: str, ca_bundle: str | None) -> dict[str, str]:
    """The parent's environment with the resolver's directory first on PYTHONPATH, the address
    for it, and the edge's CA for aws-cli and boto3."""
    env = dict(parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE_DIR), parent.get("PYTHONPATH", "")) if p)
    env[CONNECT_VARIABLE] = connect
    if ca_bundle is not None:
        if not Path(ca_bundle).is_file():
            raise ExecError(f"mrapsim exec: error: --ca-bundle {ca_bundle}: no such file", 2)
        env["AWS_CA_BUNDLE"] = str(Path(ca_bundle).resolve())
        return env
    # Every *.amazonaws.com connection goes to the edge, so mrapsim's CA is the one that matters; an
    # AWS_CA_BUNDLE already set (often the system's store) cannot verify the edge's certificate.
    found = default_ca_bundle(parent)
    user = parent.get("AWS_CA_BUNDLE")
    if found is not None:
        env["AWS_CA_BUNDLE"] = str(Path(found).resolve())
        if user:
            print(f"mrapsim exec: AWS_CA_BUNDLE is {found} (mrapsim's CA) instead of {user}", file=sys.stderr)
    elif not user:
        print(
            "mrapsim exec: no CA bundle found (certs/ca.pem): pass --ca-bundle FILE with mrapsim's CA, or the "
            "client will not trust the edge's certificate",
            file=sys.stderr,
        )
    return env


def default_ca_bundle(parent: Mapping[str, str]) -> str | None:
    certs_dir = Path(parent.get("MRAPSIM_CERTS_DIR") or default_document()["certs_dir"])
    candidate = certs_dir / "ca.pem"
    return str(candidate) if candidate.is_file() else None


def python_argv(command: Sequence[str]) -> list[str] | None:
    """The argv to exec for `command` when it is a Python program, else None."""
    first, rest = command[0], list(command[1:])
    if first.endswith(".py") and Path(first).is_file():
        return [sys.executable, first, *rest]
    path = shutil.which(first)
    if path is None:
        raise ExecError(f"mrapsim exec: {first}: command not found", EXIT_NOT_FOUND)
    resolved = _through_pyenv_shim(path, first) or path
    if PYTHON_NAME.fullmatch(Path(resolved).name) or _has_python_shebang(resolved):
        return [resolved, *rest]
    return None


def _head(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(1024)
    except OSError:
        return b""


def _has_python_shebang(path: str) -> bool:
    """`#!/…/python…`, or pip's `#!/bin/sh` trampoline for long paths (`'''exec' /…/python "$0"`)."""
    head = _head(path)
    if not head.startswith(b"#!"):
        return False
    first_lines = head.split(b"\n", 3)[:3]
    return b"python" in first_lines[0] or any(line.startswith(b"'''exec' ") for line in first_lines)


def _through_pyenv_shim(path: str, name: str) -> str | None:
    match = PYENV_SHIM.search(_head(path))
    if match is None:
        return None
    result = subprocess.run(
        [match.group(1).decode(), "which", name], capture_output=True, text=True, timeout=30, check=False
    )
    found = result.stdout.strip()
    return found if result.returncode == 0 and found else None


def not_python_message(program: str, connect: str) -> str:
    host = connect.rpartition(":")[0]
    return f"""\
mrapsim exec: {program} is not a Python program. mrapsim exec changes name resolution inside a Python
process (aws-cli v1, boto3, any `python` script); {program} resolves names itself (aws-cli v2 is a
frozen binary: `pip install awscli awscrt` gives aws-cli v1 with SigV4A). For other clients, keep the
real name and send the connection to the edge yourself:

  curl --connect-to ::{connect} --cacert certs/ca.pem {EXAMPLE_URL}
      (curl: every host:port of the URL goes to {connect}; Host and SNI stay the real name)

  /etc/hosts:  {host} mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com
      and the edge on port 443 (/etc/hosts maps names, not ports): mrapsim serve --listen mrap={host}:443
      (root or CAP_NET_BIND_SERVICE); then any client that trusts the CA, aws-cli v2 included:
      aws --ca-bundle certs/ca.pem s3 ls s3://arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap/"""


def has_credentials(env: Mapping[str, str]) -> bool:
    """Whether the AWS SDKs will find credentials without help (a rough check, for a hint only)."""
    if env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE") or env.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return True
    home = Path(env.get("HOME", "~")).expanduser()
    files = (
        env.get("AWS_SHARED_CREDENTIALS_FILE") or str(home / ".aws" / "credentials"),
        env.get("AWS_CONFIG_FILE") or str(home / ".aws" / "config"),
    )
    return any(Path(file).is_file() for file in files)


def credentials_hint() -> str:
    credential = default_document()["auth"]["credentials"][0]
    return (
        "mrapsim exec: no AWS credentials in the environment; mrapsim's embedded key pair is the one AWS "
        "documentation uses:\n"
        f"  export AWS_ACCESS_KEY_ID={credential['access_key']} AWS_SECRET_ACCESS_KEY={credential['secret_key']}"
    )
