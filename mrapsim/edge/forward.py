"""Forwarding: the backend receives exactly the bytes the client sent, then the rest of the stream.

Two kinds of backend. `builtin`: TLS is terminated here (`edge/tls.py`, certificate chosen by
SNI) and the stream goes straight into HTTP in this process, no loopback hop: HTTP/1.1 through
`edge/http1.py`, h2 (when a listener offers it) through hypercorn's protocol stack.
`tcp://host:port`: a byte splice to an external server, both directions in one nursery,
half-closes passed along.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.utils import wrap_app

from mrapsim.config import Address
from mrapsim.edge.http1 import ASGIApp, Http1Connection, Http1Settings, IdleConnections, ResponseDate
from mrapsim.edge.tls import ServerTlsStream

SPLICE_CHUNK = 65536
UPSTREAM_CONNECT_TIMEOUT = 10.0


class BackendError(Exception):
    """The backend could not be reached; the message says why in words."""


@dataclass
class BuiltinSession:
    """What a builtin connection learnt; filled in as it goes (it outlives cancellation)."""

    tls_version: str | None = None
    alpn: str | None = None
    handshake_seconds: float | None = None
    handshake_error: str | None = None
    requests: int = 0
    extensions: dict[str, Any] = field(default_factory=dict)
    client: tuple[str, int] | None = None  # the peer's address, read once at accept


class EdgeTCPServer(TCPServer):
    """hypercorn's connection driver, ending as soon as the client has gone.

    Upstream keeps the connection's task group open until its idle timer (keep_alive_timeout)
    fires even after the peer closed; the edge records a connection when it ends, so stop the
    timer once reading is over.
    """

    async def _read_data(self) -> None:
        await super()._read_data()
        await self.idle_task.stop()


@dataclass(frozen=True)
class BuiltinBackend:
    ssl_context: Callable[[], ssl.SSLContext]  # the current one: certificates can be reloaded
    app: ASGIApp
    http: HypercornConfig  # h2 (hypercorn's protocol)
    http1: Http1Settings
    worker: WorkerContext
    idle: IdleConnections  # HTTP/1.1 keep-alive connections, closed at shutdown
    handshake_timeout: float
    date: ResponseDate = field(default_factory=ResponseDate)  # every HTTP/1.1 response's `Date`

    async def serve(
        self,
        stream: trio.abc.Stream,
        session: BuiltinSession,
        on_handshake: Callable[[BuiltinSession], None],
        received: bytes = b"",
    ) -> None:
        """Terminate TLS, tell `on_handshake` what was negotiated, then serve HTTP until done.
        `received`: the bytes already read from `stream` (the ClientHello), for OpenSSL first."""
        tls = ServerTlsStream(stream, self.ssl_context(), received)
        started = time.perf_counter()
        try:
            with trio.fail_after(self.handshake_timeout):
                await tls.do_handshake()
        except trio.TooSlowError:
            session.handshake_error = f"TLS handshake not finished within {self.handshake_timeout:g} s"
            await stream.aclose()
            return
        except trio.BrokenResourceError as exc:
            session.handshake_error = f"TLS handshake failed: {exc.__cause__ or exc}"
            await stream.aclose()
            return
        session.handshake_seconds = time.perf_counter() - started
        session.tls_version = tls.version()
        session.alpn = tls.selected_alpn_protocol() or "http/1.1"
        on_handshake(session)
        try:
            if session.alpn == "h2":
                await self._serve_h2(tls, session)
            else:
                await self._serve_http1(tls, stream, session)
        finally:
            await tls.aclose()

    async def _serve_http1(self, tls: ServerTlsStream, stream: trio.abc.Stream, session: BuiltinSession) -> None:
        def counted() -> None:
            session.requests += 1

        connection = Http1Connection(
            tls,
            self.app,
            self.http1,
            self.idle,
            client=session.client,
            # The edge's streams expose their socket, as hypercorn expects.
            server=socket_address(getattr(stream, "socket", None), "getsockname"),
            extensions=session.extensions,
            on_request=counted,
            date=self.date,
        )
        await connection.run()

    async def _serve_h2(self, tls: ServerTlsStream, session: BuiltinSession) -> None:
        # hypercorn's TCPServer calls do_handshake() again; on a finished handshake that returns at once.
        wrapped = wrap_app(_traced_app(self.app, session), self.http.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
        # hypercorn asks of its stream only what ServerTlsStream has (the SSLStream subset).
        await EdgeTCPServer(wrapped, self.http, self.worker, {}, cast(Any, tls)).run()


def socket_address(socket: Any, which: str) -> tuple[str, int] | None:
    """`socket.getpeername()` or `getsockname()` as (host, port); None when it cannot say."""
    try:
        host, port, *_ = getattr(socket, which)()
    except (AttributeError, OSError, TypeError, ValueError):
        return None
    return str(host), int(port)


def _traced_app(app: ASGIApp, session: BuiltinSession) -> ASGIApp:
    """The ASGI app with this connection's identity in every scope, counting requests (h2)."""

    async def traced(
        scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        if scope["type"] in ("http", "websocket"):
            session.requests += 1
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), "mrapsim": session.extensions}}
        await app(scope, receive, send)

    return traced


def hypercorn_config(http1: Http1Settings) -> HypercornConfig:
    """hypercorn's settings for h2 connections, with HTTP/1.1's timeouts."""
    config = HypercornConfig()
    # hypercorn closes a connection after 1000 requests by default; soak tests and proxies with
    # long-lived pools would see that as errors that a real S3 endpoint does not produce.
    config.keep_alive_max_requests = 10_000_000
    config.keep_alive_timeout = http1.keep_alive_timeout
    config.include_server_header = False  # the S3 app says `Server: AmazonS3`
    config.read_timeout = int(http1.read_timeout)
    return config


async def splice(client: trio.abc.HalfCloseableStream, upstream_address: Address) -> None:
    """Connect to `upstream_address` and copy bytes both ways until both sides are done."""
    try:
        with trio.fail_after(UPSTREAM_CONNECT_TIMEOUT):
            upstream = await trio.open_tcp_stream(upstream_address.host, upstream_address.port)
    except trio.TooSlowError as exc:
        raise BackendError(f"connecting to {upstream_address} timed out after {UPSTREAM_CONNECT_TIMEOUT:g} s") from exc
    except OSError as exc:
        raise BackendError(f"cannot connect to {upstream_address}: {exc.strerror or exc}") from exc
    async with upstream, trio.open_nursery() as nursery:
        nursery.start_soon(_pump, client, upstream, nursery.cancel_scope)
        nursery.start_soon(_pump, upstream, client, nursery.cancel_scope)


async def _pump(
    source: trio.abc.Stream, sink: trio.abc.HalfCloseableStream | trio.abc.Stream, scope: trio.CancelScope
) -> None:
    try:
        while data := await source.receive_some(SPLICE_CHUNK):
            await sink.send_all(data)
        if isinstance(sink, trio.abc.HalfCloseableStream):
            await sink.send_eof()
        else:
            scope.cancel()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        scope.cancel()  # one side reset: the connection is over in both directions
