"""Loaded at start-up by every Python process that `mrapsim exec` runs (its directory is first on
PYTHONPATH): every `*.amazonaws.com` name resolves to `MRAPSIM_EXEC_CONNECT` (HOST:PORT), and port
443 becomes PORT. The client keeps the real name everywhere else — the URL, the Host header, the
SNI and the signature — exactly as it would talk to AWS; only the TCP connection goes to the edge.

Only `socket.getaddrinfo` is wrapped: `socket.create_connection`, urllib3 (botocore, requests),
http.client and asyncio all resolve through it. Standard library only, because the child may be
any Python interpreter, with or without mrapsim installed (aws-cli's own, a venv's). Python loads
one `sitecustomize`; the one this file shadows (a distribution's) runs after it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import socket
import sys
from typing import Any

SUFFIX = ".amazonaws.com"
HTTPS_SERVICES = (443, "443", "https", b"443", b"https")
CONNECT_VARIABLE = "MRAPSIM_EXEC_CONNECT"


def is_aws_name(name: object) -> bool:
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    if not isinstance(name, str):
        return False
    name = name.lower().rstrip(".")
    return name.endswith(SUFFIX) or name == SUFFIX[1:]


def is_localhost_subdomain(name: object) -> bool:
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return isinstance(name, str) and name.lower().rstrip(".").endswith(".localhost")


def redirect(host: str, port: int) -> None:
    """From now on, in this process, `*.amazonaws.com` resolves to `host` and port 443 is `port`,
    and `*.localhost` resolves as `localhost`."""
    original = socket.getaddrinfo

    def getaddrinfo(name: Any, service: Any, *args: Any, **kwargs: Any) -> Any:
        if is_aws_name(name):
            return original(host, port if service in HTTPS_SERVICES else service, *args, **kwargs)
        if is_localhost_subdomain(name):
            # `123456789012.localhost`: the host aws-cli's s3control builds from --endpoint-url
            # https://localhost:PORT. Names under .localhost are loopback (RFC 6761 §6.3), but
            # glibc without systemd-resolved does not know it.
            return original("localhost", service, *args, **kwargs)
        return original(name, service, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def split_connect(value: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPv6]:PORT`."""
    host, _, port = value.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


def run_shadowed_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


if __name__ == "sitecustomize":  # loaded by site.py, not imported from mrapsim
    if connect := os.environ.get(CONNECT_VARIABLE):
        redirect(*split_connect(connect))
    run_shadowed_sitecustomize()
