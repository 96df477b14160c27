"""Connection toxics on a forwarded connection, in the spirit of toxiproxy.

`ToxicStream` wraps the client side of a forwarded connection: `upstream` toxics act on what the
client sends (`receive_some`), `downstream` toxics on what it receives (`send_all`). For a
builtin route they act on the TLS bytes, for a tcp:// route on the spliced bytes — the same
place a flaky network would.
"""

from __future__ import annotations

import random
import time

import trio

from mrapsim.edge.streams import EdgeStream
from mrapsim.faults import Toxic


class ToxicClosed(trio.BrokenResourceError):
    """A toxic ended the connection (reset_peer, limit_data)."""


class ToxicStream(trio.abc.HalfCloseableStream):
    def __init__(self, inner: EdgeStream, toxics: list[Toxic], rng: random.Random) -> None:
        self.inner = inner
        self.socket = inner.socket  # hypercorn reads the socket's addresses
        self.upstream = [t for t in toxics if t.direction == "upstream"]
        self.downstream = [t for t in toxics if t.direction == "downstream"]
        self.rng = rng
        self.started = time.monotonic()
        self.sent = {"upstream": 0, "downstream": 0}

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        for toxic in self.upstream:
            if toxic.type == "slicer" and toxic.attributes["average_size"] > 0:
                max_bytes = min(max_bytes or 65536, self._slice_size(toxic))
        data = await self.inner.receive_some(max_bytes)
        if data:
            data = await self._apply(self.upstream, data, "upstream")
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        payload = await self._apply(self.downstream, bytes(data), "downstream")
        slicer = next((t for t in self.downstream if t.type == "slicer" and t.attributes["average_size"] > 0), None)
        if slicer is None:
            await self.inner.send_all(payload)
            return
        while payload:
            size = self._slice_size(slicer)
            await self.inner.send_all(payload[:size])
            payload = payload[size:]
            await trio.sleep(slicer.attributes["delay"] / 1_000_000)

    async def _apply(self, toxics: list[Toxic], data: bytes, direction: str) -> bytes:
        for toxic in toxics:
            a = toxic.attributes
            if toxic.type == "latency":
                jitter = self.rng.uniform(-a["jitter_ms"], a["jitter_ms"])
                await trio.sleep(max(0.0, a["latency_ms"] + jitter) / 1000)
            elif toxic.type == "bandwidth" and a["rate"] > 0:
                await trio.sleep(len(data) / (a["rate"] * 1024))
            elif toxic.type == "reset_peer":
                remaining = a["timeout"] / 1000 - (time.monotonic() - self.started)
                if remaining > 0:
                    await trio.sleep(remaining)
                await self.inner.reset()
                raise ToxicClosed("reset_peer toxic")
            elif toxic.type == "timeout":
                if a["timeout"] > 0:
                    await trio.sleep(a["timeout"] / 1000)
                    await self.inner.aclose()
                    raise ToxicClosed("timeout toxic")
                await trio.sleep_forever()
            elif toxic.type == "limit_data":
                allowed = int(a["bytes"]) - self.sent[direction]
                if allowed <= 0:
                    await self.inner.aclose()
                    raise ToxicClosed("limit_data toxic")
                data = data[:allowed]
        self.sent[direction] += len(data)
        return data

    def _slice_size(self, slicer: Toxic) -> int:
        average, variation = slicer.attributes["average_size"], slicer.attributes["size_variation"]
        return max(1, int(average + self.rng.uniform(-variation, variation)))

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()
