"""The edge's server-side TLS stream (`mrapsim/edge/tls.py`) against trio's own client, over
real loopback sockets: data both ways at once, the ways a connection ends, and the errors.

The client is `trio.SSLStream`, an independent implementation.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from mrapsim.edge.tls import ServerTlsStream
from mrapsim.tls.certs import CertificateSet, ensure_certificates

TIMEOUT = 10
Handler = Callable[[ServerTlsStream], Awaitable[None]]


@pytest.fixture
def certs(tmp_path: Path) -> CertificateSet:
    return ensure_certificates(tmp_path / "certs", ("s3.localhost",))


def client_context(certs: CertificateSet, *, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.paths.ca_certificate))
    if maximum is not None:
        context.maximum_version = maximum
    return context


async def serve_one(certs: CertificateSet, handler: Handler, task_status: trio.TaskStatus[int]) -> None:
    """Accept one connection on 127.0.0.1, run `handler` on its TLS stream."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    transport = await listeners[0].accept()
    await listeners[0].aclose()
    context = certs.server_context(["http/1.1"], lambda _name: False)
    await handler(ServerTlsStream(transport, context))


async def connect(
    port: int, context: ssl.SSLContext, *, https_compatible: bool = False
) -> trio.SSLStream[trio.SocketStream]:
    transport = await trio.open_tcp_stream("127.0.0.1", port)
    return trio.SSLStream(transport, context, server_hostname="s3.localhost", https_compatible=https_compatible)


async def receive_exactly(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        data = await stream.receive_some(65536)
        assert data, f"the stream ended after {len(received)} of {size} bytes"
        received += data
    return bytes(received)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_both_directions_at_once_keep_their_bytes_and_close_notify_ends_the_stream(
    certs: CertificateSet, version: ssl.TLSVersion
) -> None:
    """The server sends 4 MiB in many writes from two tasks while it receives 4 MiB: every byte
    arrives in order (each task's writes are whole and in order); its aclose ends the stream
    without a close_notify (as trio's https_compatible mode, which the edge used before)."""
    upload = bytes(range(256)) * 16384
    seen: dict[str, object] = {}

    async def handler(tls: ServerTlsStream) -> None:
        await tls.do_handshake()
        await tls.do_handshake()  # a second call returns at once, as hypercorn relies on
        seen["version"], seen["alpn"] = tls.version(), tls.selected_alpn_protocol()

        async def send(tag: bytes) -> None:
            for index in range(512):
                await tls.send_all(tag + index.to_bytes(4, "big") * 1023)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, b"AAAA")
            nursery.start_soon(send, b"BBBB")
            seen["upload"] = await receive_exactly(tls, len(upload))
        await tls.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await tls.receive_some(1)

    async def main() -> None:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(serve_one, certs, handler)
                client = await connect(port, client_context(certs, maximum=version))
                await client.send_all(upload)
                download = await receive_exactly(client, 2 * 512 * 4096)
                with pytest.raises(trio.BrokenResourceError):  # a ragged EOF: no close_notify
                    await client.receive_some(1)
                await client.transport_stream.aclose()
        writes = [download[i : i + 4096] for i in range(0, len(download), 4096)]
        for tag in (b"AAAA", b"BBBB"):
            mine = [write for write in writes if write.startswith(tag)]
            assert [int.from_bytes(write[4:8], "big") for write in mine] == list(range(512))

    trio.run(main)
    assert seen["upload"] == upload
    assert seen["version"] == ("TLSv1.2" if version is ssl.TLSVersion.TLSv1_2 else "TLSv1.3")
    assert seen["alpn"] is None  # the client offered none


@pytest.mark.parametrize("ending", ["close_notify", "ragged"])
def test_the_client_leaving_ends_the_stream_with_empty_bytes(certs: CertificateSet, ending: str) -> None:
    received: list[bytes] = []

    async def handler(tls: ServerTlsStream) -> None:
        received.append(await receive_exactly(tls, 5))
        await tls.send_all(b"ok")
        received.append(await tls.receive_some(100))
        await tls.aclose()

    async def main() -> None:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(serve_one, certs, handler)
                client = await connect(port, client_context(certs), https_compatible=True)
                await client.send_all(b"hello")
                # Read before leaving: a socket closed with unread bytes (TLS 1.3 tickets) sends
                # an RST, which would discard the close_notify before the server reads it.
                assert await receive_exactly(client, 2) == b"ok"
                if ending == "close_notify":
                    await client.aclose()
                else:
                    await client.transport_stream.aclose()

    trio.run(main)
    assert received == [b"hello", b""]


def test_a_client_that_is_not_tls_breaks_the_handshake_with_the_ssl_error_as_cause(certs: CertificateSet) -> None:
    errors: list[BaseException] = []

    async def handler(tls: ServerTlsStream) -> None:
        with pytest.raises(trio.BrokenResourceError) as caught:
            await tls.do_handshake()
        errors.append(caught.value)
        with pytest.raises(trio.BrokenResourceError):
            await tls.send_all(b"x")  # broken stays broken
        await tls.aclose()

    async def main() -> None:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(serve_one, certs, handler)
                plain = await trio.open_tcp_stream("127.0.0.1", port)
                await plain.send_all(b"GET / HTTP/1.1\r\nHost: s3.localhost\r\n\r\n")
                await plain.receive_some(100)  # the alert, or the close
                await plain.aclose()

    trio.run(main)
    assert isinstance(errors[0].__cause__, ssl.SSLError)


def test_a_client_that_does_not_trust_the_certificate_breaks_the_handshake(certs: CertificateSet) -> None:
    errors: list[BaseException] = []

    async def handler(tls: ServerTlsStream) -> None:
        try:
            await tls.do_handshake()
            await tls.receive_some(1)  # TLS 1.3: the client's alert arrives after our Finished
        except trio.BrokenResourceError as exc:
            errors.append(exc)
        await tls.aclose()

    async def main() -> None:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(serve_one, certs, handler)
                client = await connect(port, ssl.create_default_context())  # the system's CAs only
                with pytest.raises(trio.BrokenResourceError):
                    await client.do_handshake()
                await client.transport_stream.aclose()

    trio.run(main)
    # The client's "unknown CA" alert, or its leaving without one: either way a broken stream.
    assert len(errors) == 1 and isinstance(errors[0].__cause__, ssl.SSLError)
