"""HTTP/1.1 on a forwarded connection: h11's state machine, driven here, in front of the ASGI app.

Why not hypercorn's HTTP/1.1 protocol (it still serves h2, `edge/forward.py`): per request it
spawns a task, a memory channel, a stream object and an idle timer, and passes every byte
through four layers of events and locks; that was most of what a kept-alive request cost beyond
the S3 app itself (benchmarks/profiles/). Here one connection is two tasks for its whole life:
the requests run one after the other in the connection's task, and a reader task feeds h11 so
that a client leaving is noticed while the app is busy.

What S3 does and this driver therefore does (docs/wire.md §6):
- `Expect: 100-continue` is answered only when the app asks for the body (`send_continue` in the
  scope's "mrapsim" extension): after authentication and routing. An app that answers first
  never sends the 100.
- Status lines carry their reason phrase (`HTTP/1.1 403 Forbidden`): botocore's Expect handling
  misreads a status line without one.
- Every response has a `Date` (botocore corrects clock skew from it).
- A request h11 refuses (bad framing, headers over `max_header_bytes`) gets h11's status hint
  (400, 431) with `Connection: close`; an HTTP version other than 1.0 and 1.1 gets a 505 (h2
  comes only through ALPN, and only where a listener offers it); an app error before its
  response is a 500; an app error during its response closes the connection.
- The response head and the first body part go out in one write (one TLS record for a small
  response).

Timeouts: `keep_alive_timeout` between requests; `read_timeout` while the app waits for body
bytes. The app's own work has no deadline here (a long download is not cut), but a client that
leaves cancels it: its response could go nowhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import h11
import trio

log = logging.getLogger("mrapsim.edge")

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]
SEND_CONTINUE = "send_continue"  # the key of the 100-continue hook in the scope's "mrapsim" extension
RECEIVE_SIZE = 65536
DISCONNECT = {"type": "http.disconnect"}


@dataclass(frozen=True)
class Http1Settings:
    keep_alive_timeout: float = 20.0  # idle between requests
    read_timeout: float = 120.0  # a client that stops sending mid-body costs one connection, for a while
    max_header_bytes: int = 16384  # h11's default; more is 431
    read_ahead: int = 262144  # what the reader feeds h11 before the app has taken any of it


@dataclass
class IdleConnections:
    """Keep-alive connections waiting for their next request, closed at once when the server
    shuts down (a request in progress is left to finish)."""

    closing: bool = False
    _waiting: set[trio.CancelScope] = field(default_factory=set)

    def close_all(self) -> None:
        self.closing = True
        for scope in self._waiting:
            scope.cancel()

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """While inside, the connection is idle: close_all() cancels what it waits for."""
        with trio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                yield
            finally:
                self._waiting.discard(scope)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


@dataclass
class ResponseDate:
    """`Date` for responses, formatted once a second (one per server: shared by its connections)."""

    second: int = -1
    value: bytes = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self.second:
            self.second, self.value = second, formatdate(second, usegmt=True).encode("ascii")
        return self.value


class Http1Connection:
    def __init__(
        self,
        stream: trio.abc.Stream,
        app: ASGIApp,
        settings: Http1Settings,
        idle: IdleConnections,
        *,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        extensions: dict[str, Any],
        on_request: Callable[[], None],
        date: ResponseDate | None = None,
    ) -> None:
        self.stream = stream
        self.app = app
        self.settings = settings
        self.idle = idle
        self.client, self.server = client, server
        self.extensions = extensions
        self.on_request = on_request
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=settings.max_header_bytes)
        self._arrived = trio.Event()  # set (and replaced) whenever the reader fed h11
        self._room = trio.Event()  # set (and replaced) whenever the app asked h11 for more
        self._fed = 0  # bytes fed since the app last found h11 needing data
        self._peer_gone = False
        self._broken = False  # a send failed: what the app still sends goes nowhere
        self._app_scope: trio.CancelScope | None = None
        self._app_waiting = False  # the app is in receive(): it hears of a departure from there
        self._date = date or ResponseDate()

    async def run(self) -> None:
        """Serve requests until the client leaves, a timeout passes, or either side closes."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read)
            try:
                await self._serve_requests()
            finally:
                nursery.cancel_scope.cancel()

    # -- the reader: feeds h11, so that a departure is seen while the app works ------------------

    async def _read(self) -> None:
        while True:
            while self._fed >= self.settings.read_ahead:
                room = self._room
                await room.wait()
            try:
                data = await self.stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            self._fed += len(data)
            self._h11.receive_data(bytes(data))  # b"": the client closed (or reset) its side
            arrived, self._arrived = self._arrived, trio.Event()
            arrived.set()
            if not data:
                self._peer_gone = True
                if self._app_scope is not None and not self._app_waiting:
                    self._app_scope.cancel()  # its response can go nowhere
                return

    async def _next_event(self, timeout: float) -> Any:
        """h11's next event; None when the client is gone or `timeout` passed without bytes."""
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            if self._peer_gone:
                return None
            self._fed = 0
            room, self._room = self._room, trio.Event()
            room.set()
            arrived = self._arrived
            with trio.move_on_after(timeout):
                await arrived.wait()
            if not arrived.is_set():
                return None

    # -- requests, one after the other ---------------------------------------------------------

    async def _serve_requests(self) -> None:
        while True:
            try:
                request = await self._next_request()
            except h11.RemoteProtocolError as exc:
                await self._refuse(exc.error_status_hint)
                return
            if request is None:
                return
            if request.http_version not in (b"1.0", b"1.1"):
                await self._refuse(505)  # h11 parses `PRI * HTTP/2.0`; h2 is only offered by ALPN
                return
            await self._serve(request)
            if not await self._finish_cycle():
                return

    async def _next_request(self) -> h11.Request | None:
        if self.idle.closing:
            return None
        event = None
        with self.idle.waiting():
            event = await self._next_event(self.settings.keep_alive_timeout)
        return event if isinstance(event, h11.Request) else None

    async def _finish_cycle(self) -> bool:
        """Read what is left of the request's body (the app may not have wanted it), then make
        the connection ready for the next request; False when it must close instead."""
        if self._broken or self._h11.our_state is not h11.DONE:
            return False
        try:
            while self._h11.their_state is h11.SEND_BODY:
                if await self._next_event(self.settings.read_timeout) is None:
                    return False
            if self._h11.their_state is not h11.DONE:
                return False
            self._h11.start_next_cycle()
        except (h11.RemoteProtocolError, h11.LocalProtocolError):
            return False
        return True

    async def _serve(self, request: h11.Request) -> None:
        self.on_request()
        exchange = _Exchange(self, request)
        self.extensions[SEND_CONTINUE] = exchange.send_continue
        with trio.CancelScope() as scope:
            self._app_scope = scope
            try:
                await self.app(exchange.scope(), exchange.receive, exchange.send)
            except Exception:
                log.exception("the S3 app failed on %s %r", request.method.decode(), request.target.decode())
            finally:
                self._app_scope = None
        if self._broken or self._peer_gone:
            return  # the connection closes; nothing more can be said on it
        if not exchange.started:
            await self._respond_empty(500)  # the app ended without an answer
        elif not exchange.finished:
            self._broken = True  # half a response: only closing the connection ends it

    async def _refuse(self, status: int) -> None:
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            await self._respond_empty(status)

    async def _respond_empty(self, status: int) -> None:
        headers = [(b"content-length", b"0"), (b"connection", b"close"), (b"date", self._date.now())]
        try:
            data = self._h11.send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
            data += self._h11.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            return
        await self.write(data or b"")

    async def write(self, data: bytes) -> None:
        if self._broken or not data:
            return
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._broken = True


class _Exchange:
    """One request and its response, as the ASGI app sees them."""

    def __init__(self, connection: Http1Connection, request: h11.Request) -> None:
        self.connection = connection
        self.request = request
        self.head = request.method == b"HEAD"
        self.body_done = False
        self.started = False
        self.finished = False
        self._start: dict[str, Any] | None = None

    def scope(self) -> dict[str, Any]:
        connection, request = self.connection, self.request
        path, _, query = request.target.partition(b"?")
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version.decode("ascii"),
            "method": request.method.decode("ascii"),
            "scheme": "https",
            "path": unquote(path.decode("latin-1")),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": list(request.headers),
            "client": connection.client,
            "server": connection.server,
            "extensions": {"mrapsim": connection.extensions},
        }

    async def send_continue(self) -> None:
        h11_connection = self.connection._h11
        if not h11_connection.they_are_waiting_for_100_continue or self.started:
            return
        data = h11_connection.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
        await self.connection.write(data or b"")

    async def receive(self) -> dict[str, Any]:
        connection = self.connection
        if self.body_done:
            await self._wait_for_departure()
            return DISCONNECT
        connection._app_waiting = True
        try:
            event = await connection._next_event(connection.settings.read_timeout)
        except h11.RemoteProtocolError as exc:
            # A broken body (bad chunk framing): refused as hypercorn did, the app's answer dropped.
            if not self.started:
                self.started = self.finished = True
                await connection._respond_empty(exc.error_status_hint)
            event = None
        finally:
            connection._app_waiting = False
        if isinstance(event, h11.Data):
            return {"type": "http.request", "body": bytes(event.data), "more_body": True}
        if isinstance(event, h11.EndOfMessage):
            self.body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        connection._broken = True  # gone, silent too long, or unreadable: nothing more to say
        return DISCONNECT

    async def _wait_for_departure(self) -> None:
        """ASGI: after the body, receive() returns only when the client has gone."""
        connection = self.connection
        while not connection._peer_gone:
            arrived = connection._arrived
            await arrived.wait()

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if not self.started and self._start is None:
                self._start = message
            return
        if kind != "http.response.body" or self.finished or self.connection._broken:
            return  # after the end, or on a broken connection, a message goes nowhere (as in hypercorn)
        h11_connection = self.connection._h11
        data = b""
        try:
            if not self.started:
                self.started = True
                data = h11_connection.send(self._response()) or b""
            body = bytes(message.get("body", b""))
            if body and not self.head:
                data += h11_connection.send(h11.Data(data=body)) or b""
            if not message.get("more_body", False):
                self.finished = True
                data += h11_connection.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            raise RuntimeError(f"the app's response breaks HTTP/1.1: {exc}") from exc
        await self.connection.write(data)

    def _response(self) -> h11.Response:
        if self._start is None:
            raise RuntimeError("http.response.body before http.response.start")
        status = int(self._start["status"])
        headers = list(self._start.get("headers", ()))
        if not any(name.lower() == b"date" for name, _ in headers):
            headers.append((b"date", self.connection._date.now()))
        return h11.Response(status_code=status, headers=headers, reason=_reason(status))
