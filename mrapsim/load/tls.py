"""A lean client-side TLS stream for strictly sequential use: send, then receive, never both
at once.

Why not `trio.SSLStream`: it supports concurrent send and receive, renegotiation and
half-closes, and pays for that on every call (locks, a retry loop, several checkpoints); against
a trivial HTTPS server it took about 40% of a harness process's CPU. A harness user only ever
writes a request and then reads the response, so this stream drives the `ssl.SSLObject` over
memory BIOs directly. Errors keep `SSLStream`'s shape (`trio.BrokenResourceError` caused by the
`ssl.SSLError` or `OSError`), so failure classification is the same for both.
"""

from __future__ import annotations

import ssl

import trio

RECEIVE_SIZE = 65536


class ClientTlsStream(trio.abc.Stream):
    def __init__(self, transport: trio.abc.Stream, context: ssl.SSLContext, server_hostname: str | None) -> None:
        self.transport = transport
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=False, server_hostname=server_hostname)
        self._closed = False

    def selected_alpn_protocol(self) -> str | None:
        return self._tls.selected_alpn_protocol()

    async def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            await self.transport.send_all(pending)

    async def _fill(self) -> None:
        data = await self.transport.receive_some(RECEIVE_SIZE)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    async def do_handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
                continue
            except ssl.SSLError as exc:
                await self._flush_quietly()
                raise trio.BrokenResourceError from exc
            await self._flush()
            return

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            raise trio.BrokenResourceError from exc
        await self._flush()

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError
        size = max_bytes or RECEIVE_SIZE
        while True:
            try:
                return self._tls.read(size)
            except ssl.SSLWantReadError:
                await self._flush()  # TLS 1.3 key updates may need an answer
                await self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""  # close_notify or a ragged EOF: both end the stream (HTTPS style)
            except ssl.SSLError as exc:
                raise trio.BrokenResourceError from exc

    async def _flush_quietly(self) -> None:
        """Send what OpenSSL queued (e.g. our own alert) if the transport still takes it."""
        try:
            await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def aclose(self) -> None:
        self._closed = True
        await self.transport.aclose()
