"""Small trio servers that misbehave on purpose, for the failure classes (real sockets, loopback).

Each `serve_*` is a connection handler for `trio.serve_tcp`; `start` binds one on an OS-chosen
port inside the caller's nursery and returns the port.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import trio

from mrapsim.tls.alerts import fatal_alert_record
from mrapsim.tls.certs import ensure_certificates

Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def start(nursery: trio.Nursery, handler: Handler) -> int:
    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return int(listeners[0].socket.getsockname()[1])


async def serve_stall(stream: trio.SocketStream) -> None:
    await stream.receive_some(65536)
    await trio.sleep(30)


async def serve_reset(stream: trio.SocketStream) -> None:
    await stream.receive_some(65536)
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


async def serve_close(stream: trio.SocketStream) -> None:
    await stream.receive_some(65536)
    await stream.aclose()


async def serve_alert(stream: trio.SocketStream) -> None:
    await stream.receive_some(65536)
    await stream.send_all(fatal_alert_record("unrecognized_name"))
    await stream.aclose()


async def serve_trickle(stream: trio.SocketStream) -> None:
    """Answers with the first bytes of a handshake record, then nothing: slow, not stalled."""
    await stream.receive_some(65536)
    await stream.send_all(b"\x16\x03\x03")
    await trio.sleep(30)


def server_context(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A TLS server context for `localhost` from mrapsim's own CA; returns it and ca.pem."""
    ensure_certificates(directory, ["localhost"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "server.pem", directory / "server.key")
    context.set_alpn_protocols(["http/1.1"])
    return context, directory / "ca.pem"


def canned_http(
    context: ssl.SSLContext | None, responses: dict[str, bytes], delay: float = 0.0, close_after: int | None = None
) -> Handler:
    """HTTP/1.1 keep-alive server: the response for a request is chosen by its path's first
    segment (`responses["503"]`…), `responses["*"]` otherwise; each after `delay` seconds. With
    `close_after`, the connection is closed silently after that many responses (a stale
    keep-alive connection, as when a server's idle timeout fires)."""

    async def handle(stream: trio.SocketStream) -> None:
        conn: trio.abc.Stream = stream
        if context is not None:
            conn = trio.SSLStream(stream, context, server_side=True, https_compatible=True)
        buffer = b""
        served = 0
        try:
            while close_after is None or served < close_after:
                while b"\r\n\r\n" not in buffer:
                    data = await conn.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += await conn.receive_some(65536)
                buffer = buffer[length:]
                path = head.split(b" ")[1].decode()
                key = path.strip("/").split("/")[0].split("?")[0]
                await trio.sleep(delay)
                await conn.send_all(responses.get(key, responses["*"]))
                served += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    return handle


async def serve_connect_proxy(stream: trio.SocketStream, *, allow: bool) -> None:
    """A minimal HTTP CONNECT proxy to loopback ports (refuses with 403 unless `allow`)."""
    request = b""
    while b"\r\n\r\n" not in request:
        data = await stream.receive_some(4096)
        if not data:
            return
        request += data
    target = request.split(b" ")[1].decode()
    host, _, port = target.rpartition(":")
    if not allow or host not in ("127.0.0.1", "localhost"):
        await stream.send_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
        return
    upstream = await trio.open_tcp_stream("127.0.0.1", int(port))
    await stream.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")

    async def pump(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
        try:
            while data := await source.receive_some(65536):
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(sink)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump, stream, upstream)
        nursery.start_soon(pump, upstream, stream)
