"""The edge's HTTP/1.1 driver (`mrapsim/edge/http1.py`) over real loopback TCP, with a small ASGI
app and raw bytes from the client: keep-alive and pipelining, HEAD, 100-continue only when the
app asks, h11's refusals, app errors, clients that leave, timeouts and shutdown.

The S3 app behind the real edge is covered by tests/s3/ and the interop suite; these pin the
driver's own contract.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from mrapsim.edge.http1 import SEND_CONTINUE, Http1Connection, Http1Settings, IdleConnections

TIMEOUT = 10
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Served:
    """What the server side saw: scopes, bodies, the app's end, the connection's end."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []
        self.bodies: list[bytes] = []
        self.cancelled = 0
        self.requests = 0
        self.closed = trio.Event()


async def echo_app(scope: Scope, receive: Receive, send: Send, served: Served) -> None:
    """Reads the whole body and answers `<method> <path> <body length>`."""
    served.scopes.append(scope)
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message["body"]
        if not message["more_body"]:
            break
    served.bodies.append(body)
    text = f"{scope['method']} {scope['path']} {len(body)}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(text))]})
    await send({"type": "http.response.body", "body": text})


App = Callable[[Scope, Receive, Send, Served], Awaitable[None]]


async def serve(
    app: App,
    served: Served,
    task_status: trio.TaskStatus[int],
    settings: Http1Settings | None = None,
    idle: IdleConnections | None = None,
) -> None:
    """Accept one connection on 127.0.0.1 and drive it with Http1Connection."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    stream = await listeners[0].accept()
    await listeners[0].aclose()
    extensions: dict[str, Any] = {}

    async def bound(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send, served)
        except trio.Cancelled:
            served.cancelled += 1
            raise

    def counted() -> None:
        served.requests += 1

    connection = Http1Connection(
        stream,
        bound,
        settings or Http1Settings(),
        idle or IdleConnections(),
        client=("127.0.0.1", 1),
        server=("127.0.0.1", 2),
        extensions=extensions,
        on_request=counted,
    )
    try:
        await connection.run()
    finally:
        await stream.aclose()
        served.closed.set()


async def read_until_closed(stream: trio.SocketStream) -> bytes:
    received = bytearray()
    while data := await stream.receive_some(65536):
        received += data
    return bytes(received)


async def read_response(stream: trio.SocketStream, buffer: bytearray) -> tuple[bytes, bytes]:
    """One response with a Content-Length: (head, body); leftover bytes stay in `buffer`."""
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(65536)
        assert data, f"closed before a response head: {bytes(buffer)!r}"
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(rest) < length:
        data = await stream.receive_some(65536)
        assert data, "closed inside a response body"
        rest += data
    buffer[:] = rest[length:]
    return head, rest[:length]


def run(client: Callable[[int], Awaitable[None]], app: App = echo_app, **options: Any) -> Served:
    served = Served()

    async def main() -> None:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(lambda task_status: serve(app, served, task_status, **options))
                await client(port)

    trio.run(main)
    return served


def test_kept_alive_and_pipelined_requests_are_answered_in_order_with_date_and_reason() -> None:
    heads: list[bytes] = []
    bodies: list[bytes] = []

    async def client(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        buffer = bytearray()
        await stream.send_all(b"GET /one?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        head, body = await read_response(stream, buffer)
        heads.append(head)
        bodies.append(body)
        # Two more in one write, the second with a chunked body.
        await stream.send_all(
            b"PUT /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
            b"POST /three%20x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        for _ in range(2):
            head, body = await read_response(stream, buffer)
            heads.append(head)
            bodies.append(body)
        await stream.aclose()

    served = run(client)
    assert bodies == [b"GET /one 0", b"PUT /two 5", b"POST /three x 5"]
    assert all(head.startswith(b"HTTP/1.1 200 OK\r\n") for head in heads)
    assert all(re.search(rb"(?i)\r\ndate: \w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT", head) for head in heads)
    assert served.bodies == [b"", b"hello", b"abcde"] and served.requests == 3
    scope = served.scopes[0]
    assert scope["raw_path"] == b"/one" and scope["query_string"] == b"x=1" and scope["http_version"] == "1.1"
    assert (b"host", b"a") in scope["headers"] and scope["extensions"]["mrapsim"] is not None
    assert served.scopes[2]["raw_path"] == b"/three%20x" and served.scopes[2]["path"] == "/three x"


def test_head_gets_the_headers_without_the_body() -> None:
    received: list[bytes] = []

    async def client(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"HEAD /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        received.append(await read_until_closed(stream))

    run(client)
    head, _, body = received[0].partition(b"\r\n\r\n")
    assert b"content-length: 9" in head.lower() and body == b""  # the length of "HEAD /x 0"


async def expecting_app(scope: Scope, receive: Receive, send: Send, served: Served) -> None:
    """Refuses `/refuse` before reading the body (and closes); otherwise lets the 100 go out."""
    served.scopes.append(scope)
    if scope["path"] == "/refuse":
        headers = [(b"content-length", b"0"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    await scope["extensions"]["mrapsim"][SEND_CONTINUE]()
    await echo_app(scope, receive, send, served)


def test_100_continue_goes_out_only_when_the_app_asks_for_the_body() -> None:
    received: dict[str, bytes] = {}

    async def client(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"PUT /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            buffer += await stream.receive_some(65536)
        received["interim"] = bytes(buffer)
        await stream.send_all(b"abc")
        received["final"] = (await read_response(stream, bytearray()))[1]
        await stream.aclose()

    run(client, expecting_app)
    assert received["interim"] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert received["final"] == b"PUT /ok 3"


def test_an_app_that_answers_first_never_sends_the_100() -> None:
    received: list[bytes] = []

    async def client(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"PUT /refuse HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        received.append(await read_until_closed(stream))

    run(client, expecting_app)
    assert received[0].startswith(b"HTTP/1.1 403 Forbidden\r\n") and b" 100 " not in received[0]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", b"400 Bad Request"),
        (b"GET / HTTP/1.1\r\nHost a\r\n\r\n", b"400 Bad Request"),
        # Over h11's limit while still incomplete (a head that arrives whole is judged whole).
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 100000, b"431 Request Header Fields Too Large"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"505 HTTP Version Not Supported"),  # no h2 without ALPN
    ],
    ids=["two-lengths", "no-colon", "huge-head", "h2-preface"],
)
def test_what_h11_refuses_gets_its_status_and_a_close(request_bytes: bytes, status: bytes) -> None:
    received: list[bytes] = []

    async def client(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(request_bytes)
        received.append(await read_until_closed(stream))

    served = run(client)
    assert received[0].startswith(b"HTTP/1.1 " + status + b"\r\n")
    assert b"connection: close" in received[0].lower() and served.scopes == []


async def failing_app(scope: Scope, receive: Receive, send: Send, served: Served) -> None:
    served.scopes.append(scope)
    if scope["path"] == "/late":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"half", "more_body": True})
    raise ValueError("the app broke")


@pytest.mark.parametrize("path", ["/early", "/late"])
def test_an_app_error_is_a_500_before_the_response_and_a_close_during_it(path: str) -> None:
    received: list[bytes] = []

    async def client(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path.encode())
        received.append(await read_until_closed(stream))

    run(client, failing_app)
    if path == "/early":
        assert received[0].startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    else:
        assert received[0].startswith(b"HTTP/1.1 200 OK\r\n") and received[0].endswith(b"\r\n\r\nhalf")


async def sleeping_app(scope: Scope, receive: Receive, send: Send, served: Served) -> None:
    served.scopes.append(scope)
    await trio.sleep_forever()  # a blackhole: it never answers


def test_a_client_that_leaves_cancels_the_app_and_ends_the_connection() -> None:
    async def client(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /hole HTTP/1.1\r\nHost: a\r\n\r\n")
        await trio.sleep(0.2)
        await stream.aclose()

    served = run(client, sleeping_app)
    assert served.cancelled == 1 and served.closed.is_set()


def test_the_body_an_app_did_not_read_is_dropped_and_the_next_request_is_served() -> None:
    async def ignoring_app(scope: Scope, receive: Receive, send: Send, served: Served) -> None:
        served.scopes.append(scope)
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    heads: list[bytes] = []

    async def client(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        buffer = bytearray()
        await stream.send_all(b"PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 300000\r\n\r\n")
        await stream.send_all(b"x" * 300000)
        heads.append((await read_response(stream, buffer))[0])
        await stream.send_all(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        heads.append((await read_response(stream, buffer))[0])
        await stream.aclose()

    served = run(client, ignoring_app)
    assert [head.split(b"\r\n")[0] for head in heads] == [b"HTTP/1.1 404 Not Found"] * 2
    assert [scope["path"] for scope in served.scopes] == ["/a", "/b"]


def test_a_body_that_stops_coming_ends_after_the_read_timeout() -> None:
    messages: list[str] = []

    async def waiting_app(scope: Scope, receive: Receive, send: Send, served: Served) -> None:
        messages.append((await receive())["type"])

    async def client(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
        assert await read_until_closed(stream) == b""  # nothing was answered; the server closed

    run(client, waiting_app, settings=Http1Settings(read_timeout=0.3))
    assert messages == ["http.disconnect"]


def test_an_idle_connection_closes_after_the_keep_alive_timeout_or_at_shutdown() -> None:
    async def client(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        await read_response(stream, bytearray())
        assert await stream.receive_some(10) == b""  # the server closed the idle connection

    served = run(client, settings=Http1Settings(keep_alive_timeout=0.3))
    assert served.requests == 1

    idle = IdleConnections()

    async def shutdown_client(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        await read_response(stream, bytearray())
        idle.close_all()  # as the server does when it shuts down
        assert await stream.receive_some(10) == b""

    run(shutdown_client, idle=idle)


def test_a_request_in_progress_at_shutdown_is_answered_then_the_connection_closes() -> None:
    idle = IdleConnections()
    received: list[bytes] = []

    async def slow_app(scope: Scope, receive: Receive, send: Send, served: Served) -> None:
        idle.close_all()
        await trio.sleep(0.1)
        await echo_app(scope, receive, send, served)

    async def client(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        received.append(await read_until_closed(stream))

    run(client, slow_app, idle=idle)
    assert received[0].endswith(b"\r\n\r\nGET /a 0")
