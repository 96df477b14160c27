"""The reference for the edge's cost: the same HTTP stack mrapsim serves S3 with (hypercorn's
trio worker, Starlette, TLS by the stdlib `ssl` through `trio.SSLStream`) without the edge —
no ClientHello peek, no records, no log lines — answering every request with a constant body.

    python benchmarks/bare_server.py --port 8445 --certs ./certs

Serves until killed. `--certs` is a mrapsim certificate directory (`server.pem`, `server.key`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = b"hello from mrapsim\n"


async def constant(request: Request) -> Response:
    await request.body()
    return Response(BODY, media_type="text/plain")


def app() -> Starlette:
    methods = ["GET", "PUT", "HEAD", "POST", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", constant, methods=methods)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certs", type=Path, required=True)
    args = parser.parse_args()
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.certfile = str(args.certs / "server.pem")
    config.keyfile = str(args.certs / "server.key")
    config.alpn_protocols = ["http/1.1"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 30
    trio.run(serve, app(), config)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
