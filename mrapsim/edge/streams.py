"""The stream a connection lives on: counts bytes each way and can replay what the edge peeked.

The edge reads the whole ClientHello before it decides anything; forwarding must then hand the
backend exactly those bytes followed by the rest of the stream. `unread` puts the peeked bytes
back so that the TLS stream (and through it hypercorn) sees an untouched connection. hypercorn
looks for `.socket` on a plain stream and `.transport_stream.socket` under TLS, so `socket` is
exposed as an attribute.
"""

from __future__ import annotations

import socket as stdlib_socket
import struct

import trio


class EdgeStream(trio.abc.HalfCloseableStream):
    def __init__(self, transport: trio.SocketStream) -> None:
        self.transport = transport
        self.socket = transport.socket
        self.bytes_in = 0
        self.bytes_out = 0
        self._replay = b""

    def unread(self, data: bytes) -> None:
        """Make `data` the next bytes `receive_some` returns."""
        self._replay = bytes(data) + self._replay

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._replay:
            size = len(self._replay) if max_bytes is None else max_bytes
            chunk, self._replay = self._replay[:size], self._replay[size:]
            await trio.lowlevel.checkpoint()
            return chunk
        data = await self.transport.receive_some(max_bytes)
        self.bytes_in += len(data)
        return bytes(data)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.transport.send_all(data)
        self.bytes_out += len(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.transport.send_eof()

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def reset(self) -> None:
        """Close with a TCP RST instead of a FIN (SO_LINGER with a zero timeout)."""
        try:
            self.socket.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # the peer is gone already; closing is all that is left
        await self.transport.aclose()
