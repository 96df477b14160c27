"""Forwarding: the backend receives exactly the bytes the client sent, then the rest of the stream.

Two kinds of backend. `builtin`: TLS is terminated here (`edge/tls.py`, certificate chosen by
SNI) and the stream goes straight into hypercorn's HTTP/1.1 and h2 protocol stack in this process;
no loopback hop. `tcp://host:port`: a byte splice to an external server, both directions in one
nursery, half-closes passed along.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Event, RawData, Updated
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.utils import wrap_app

from mrapsim.config import Address
from mrapsim.edge.tls import ServerTlsStream

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

SPLICE_CHUNK = 65536
HTTP11 = b"HTTP/1.1 "
CONTINUE_PREFIX = b"HTTP/1.1 100 "
# The key, in the scope's "mrapsim" extension, of the coroutine function that lets a parked
# `100 Continue` go out: the S3 app awaits it when it first reads a request body.
SEND_CONTINUE = "send_continue"
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


class EdgeTCPServer(TCPServer):
    """hypercorn's connection driver, ending as soon as the client has gone.

    Upstream keeps the connection's task group open until its idle timer (keep_alive_timeout)
    fires even after the peer closed; the edge records a connection when it ends, so stop the
    timer once reading is over.
    """

    async def _read_data(self) -> None:
        await super()._read_data()
        await self.idle_task.stop()


class ContinueAfterAuthServer(EdgeTCPServer):
    """An EdgeTCPServer that answers `Expect: 100-continue` only once the app asks for the body,
    and sends status lines with their reason phrase.

    hypercorn's HTTP/1.1 protocol sends `100 Continue` as soon as it has read the request's
    headers, before the app has looked at them; S3 authenticates first and answers a refused
    request with its error instead of a 100 (so the client never sends the body). Here the 100
    is parked when hypercorn emits it and released when the app first reads the body (after auth
    and routing), through the `send_continue` callable the app finds in its scope; a final
    response that comes first drops it. (h2: hypercorn never sends a 100; clients send the body
    after their own wait.)

    Reason phrases: h11 writes `HTTP/1.1 403 \r\n` (an empty phrase, which RFC 9112 allows); S3
    writes `HTTP/1.1 403 Forbidden`, and botocore's Expect handling only recognises a final
    response whose status line has three parts — with an empty phrase it goes on to send the
    body and then misreads the response (BadStatusLine).

    Status lines are recognised without reading hypercorn's state: hypercorn announces each
    request with `Updated(idle=False)` before anything of its response, and the response's
    first bytes are its status line (a 1xx may come before the final one); no body byte can come
    before a final status line.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_due = False  # a request arrived and its final status line has not gone out
        self._parked: bytes | None = None
        self._released = False

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated) and not event.idle:
            self._head_due, self._parked, self._released = True, None, False
        elif isinstance(event, RawData) and self._head_due and event.data.startswith(HTTP11):
            data = with_reason_phrase(bytes(event.data))
            if data.startswith(CONTINUE_PREFIX):
                if not self._released:
                    self._parked = data
                    return
                self._released = False
            else:
                self._head_due, self._parked = False, None  # a final response: the 100 never goes out
            event = RawData(data=data)
        await super().protocol_send(event)

    async def send_continue(self) -> None:
        parked, self._parked = self._parked, None
        if parked is None:
            self._released = True  # the 100, if any, is still to come: let it through
            return
        await super().protocol_send(RawData(data=parked))


def with_reason_phrase(head: bytes) -> bytes:
    """`head` with its status line's empty reason phrase filled in (`HTTP/1.1 404 Not Found`)."""
    line, sep, rest = head.partition(b"\r\n")
    version, _, status_and_reason = line.partition(b" ")
    status, _, reason = status_and_reason.partition(b" ")
    if reason or not status.isdigit():
        return head
    try:
        phrase = HTTPStatus(int(status)).phrase.encode("ascii")
    except ValueError:
        return head
    return b"%s %s %s%s%s" % (version, status, phrase, sep, rest)


@dataclass(frozen=True)
class BuiltinBackend:
    ssl_context: Callable[[], ssl.SSLContext]  # the current one: certificates can be reloaded
    app: ASGIApp
    http: HypercornConfig
    worker: WorkerContext
    handshake_timeout: float

    async def serve(
        self, stream: trio.abc.Stream, session: BuiltinSession, on_handshake: Callable[[BuiltinSession], None]
    ) -> None:
        """Terminate TLS, tell `on_handshake` what was negotiated, then serve HTTP until done."""
        tls = ServerTlsStream(stream, self.ssl_context())
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
        app = _traced_app(self.app, session)
        # TCPServer calls do_handshake() again; on a finished handshake that returns at once.
        wrapped = wrap_app(app, self.http.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
        server = ContinueAfterAuthServer(wrapped, self.http, self.worker, {}, tls)
        session.extensions[SEND_CONTINUE] = server.send_continue
        await server.run()


def _traced_app(app: ASGIApp, session: BuiltinSession) -> ASGIApp:
    """The ASGI app with this connection's identity in every scope, counting requests."""

    async def traced(
        scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        if scope["type"] in ("http", "websocket"):
            session.requests += 1
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), "mrapsim": session.extensions}}
        await app(scope, receive, send)

    return traced


def hypercorn_config() -> HypercornConfig:
    config = HypercornConfig()
    # hypercorn closes a connection after 1000 requests by default; soak tests and proxies with
    # long-lived pools would see that as errors that a real S3 endpoint does not produce.
    config.keep_alive_max_requests = 10_000_000
    config.keep_alive_timeout = 20
    config.include_server_header = False  # the S3 app says `Server: AmazonS3`
    config.read_timeout = 120  # a client that stops sending mid-request costs one connection, for a while
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
