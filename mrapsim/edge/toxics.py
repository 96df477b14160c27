"""Connection toxics on a forwarded connection, as Toxiproxy applies them (docs/faults.md).

`ToxicStream` wraps the client side of every forwarded connection: `upstream` toxics act on what
the client sends, `downstream` toxics on what it receives. For a builtin route they act on the
TLS bytes, for a tcp:// route on the spliced bytes — the same place a flaky network would.

The toxics are read from the fault set for every chunk, so adding, updating or removing one
reaches connections already open (a proxy's pooled upstream connection) on their next bytes.
Whether a connection gets a toxic is drawn once per connection and toxic revision and
remembered: removing the toxic heals exactly the connections it touched.

Each direction is a `Link`, Toxiproxy's pipeline: chunks are stamped with the time they arrived
and `plan_chunk` — pure, no clock — says when each piece of a chunk leaves. Latency is relative
to arrival, so a 20 ms toxic adds 20 ms to a 4 MiB body, not 20 ms per write. A connection
without toxics takes the direct path: no task, no copy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import trio

from mrapsim.edge.streams import EdgeStream
from mrapsim.faults import Direction, FaultSet, Toxic

# Chunks a link holds between arrival and release (Toxiproxy's latency toxic buffers 1024).
LINK_BUFFER = 1024
READ_SIZE = 32 * 1024  # Toxiproxy reads 32 KiB chunks
# How long closing a connection waits for data a toxic still holds (a latency toxic's chunks).
DRAIN_SECONDS = 30.0

End = Literal["close", "reset"]


class ToxicClosed(trio.BrokenResourceError):
    """A toxic ended the connection (reset_peer, limit_data, timeout) or its proxy was taken down."""


# -- the plan: pure ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    at: float  # when it may leave (the monotonic clock's seconds)
    data: bytes


@dataclass(frozen=True)
class Plan:
    pieces: tuple[Piece, ...]
    end: End | None = None
    end_at: float = 0.0


@dataclass
class LinkState:
    """What a direction's toxics remember on one connection, by toxic id."""

    free_at: dict[str, float] = field(default_factory=dict)  # bandwidth: when the pipe is free again
    transmitted: dict[str, int] = field(default_factory=dict)  # limit_data


def plan_chunk(
    toxics: Sequence[Toxic], arrived: float, data: bytes, state: LinkState, rng: Callable[[Toxic], random.Random]
) -> Plan:
    """When each piece of a chunk that arrived at `arrived` leaves, through `toxics` in order,
    and whether the connection ends after it. Toxiproxy's toxics (toxics/*.go), one for one."""
    pieces = [Piece(arrived, data)]
    for toxic in toxics:
        a = toxic.attributes
        match toxic.type:
            case "latency":
                # latency.go: sleep = delay() - time.Since(chunk.Timestamp), a delay per chunk
                jitter = int(a["jitter"])
                delay = a["latency"] + (rng(toxic).randrange(-jitter, jitter) if jitter > 0 else 0)
                pieces = [Piece(p.at + delay / 1000, p.data) for p in pieces]
            case "bandwidth" if a["rate"] > 0:
                pieces = _bandwidth(pieces, a["rate"], toxic.id, state)
            case "slicer" if a["average_size"] > 0:
                pieces = _slices(pieces, int(a["average_size"]), int(a["size_variation"]), a["delay"], rng(toxic))
            case "limit_data":
                sent = state.transmitted.get(toxic.id, 0)
                kept: list[Piece] = []
                for piece in pieces:
                    piece = Piece(piece.at, piece.data[: max(0, int(a["bytes"]) - sent)])
                    sent += len(piece.data)
                    if piece.data:
                        kept.append(piece)
                state.transmitted[toxic.id] = sent
                if sent >= a["bytes"]:  # limit_data.go: close once the limit is reached
                    return Plan(tuple(kept), "close", kept[-1].at if kept else arrived)
                pieces = kept
            case "timeout":
                return Plan(())  # timeout.go: the data is dropped; the link closes on its timer
            case "reset_peer":
                return Plan((), "reset", arrived + a["timeout"] / 1000)  # reset_peer.go
    return Plan(tuple(pieces))


def _bandwidth(pieces: list[Piece], rate: float, toxic_id: str, state: LinkState) -> list[Piece]:
    """bandwidth.go: rate KB/s (1 KB = 1000 bytes: len * 1ms / rate), in slices of 100 ms."""
    out: list[Piece] = []
    step = max(1, int(rate * 100))
    clock = state.free_at.get(toxic_id, -math.inf)
    for piece in pieces:
        clock = max(clock, piece.at)
        for start in range(0, len(piece.data), step):
            part = piece.data[start : start + step]
            clock += len(part) / (rate * 1000)
            out.append(Piece(clock, part))
    state.free_at[toxic_id] = clock
    return out


def _slices(pieces: list[Piece], average: int, variation: int, delay_us: float, rng: random.Random) -> list[Piece]:
    """slicer.go: split about the middle until pieces are within `variation` of `average`;
    each piece after the first leaves `delay` µs after the one before."""
    out: list[Piece] = []
    for piece in pieces:
        offsets = _chunk_offsets(0, len(piece.data), average, variation, rng)
        for i in range(0, len(offsets), 2):
            out.append(Piece(piece.at + (i // 2) * delay_us / 1_000_000, piece.data[offsets[i] : offsets[i + 1]]))
    return out


def _chunk_offsets(start: int, end: int, average: int, variation: int, rng: random.Random) -> list[int]:
    if (end - start) - average <= variation:
        return [start, end]
    spread = rng.randrange(-variation, variation) if variation > 0 else 0
    middle = min(end - 1, max(start + 1, start + (end - start) // 2 + spread))
    return _chunk_offsets(start, middle, average, variation, rng) + _chunk_offsets(middle, end, average, variation, rng)


# -- one connection's toxics ------------------------------------------------------------------


class ConnectionToxics:
    """The toxics one connection has drawn, read afresh from the fault set."""

    def __init__(self, faults: FaultSet, listener: str, route: str | None, applied: list[str]) -> None:
        self.faults = faults
        self.listener = listener
        self.route = route
        self._draws: dict[tuple[str, int], bool] = {}
        self.first_seen: dict[tuple[str, int], float] = {}
        self.applied = applied  # names of the toxics this connection got, for its record

    def active(self, direction: Direction | None = None) -> list[Toxic]:
        found = []
        for toxic in self.faults.toxics_for(self.listener, self.route):
            key = (toxic.id, toxic.revision)
            if key not in self._draws:
                self._draws[key] = hit = self.faults.draw(toxic, toxic.toxicity)
                self.first_seen[key] = trio.current_time()
                if hit:
                    self.faults.applied(toxic)
                    if toxic.name not in self.applied:
                        self.applied.append(toxic.name)
            if self._draws[key] and (direction is None or toxic.direction == direction):
                found.append(toxic)
        return found

    def rng(self, toxic: Toxic) -> random.Random:
        return self.faults.random(toxic)

    def timeout_deadline(self, toxics: Sequence[Toxic], last_input: float) -> float:
        """timeout.go: close once `timeout` ms pass with no data (0: never)."""
        deadline = math.inf
        for toxic in toxics:
            if toxic.type == "timeout" and toxic.attributes["timeout"] > 0:
                since = max(last_input, self.first_seen[(toxic.id, toxic.revision)])
                deadline = min(deadline, since + toxic.attributes["timeout"] / 1000)
        return deadline


@dataclass(frozen=True)
class Chunk:
    arrived: float
    data: bytes


EOF = Chunk(0.0, b"")  # the sender half-closed (or closed): a marker, compared by identity


class Link:
    """One direction of a connection under toxics: chunks in, pieces out when their time comes."""

    def __init__(
        self,
        direction: Direction,
        toxics: ConnectionToxics,
        sink: Callable[[bytes], Awaitable[None]],
        sink_eof: Callable[[], Awaitable[None]],
        end: Callable[[End], Awaitable[None]],
    ) -> None:
        self.direction: Direction = direction
        self.toxics = toxics
        self.sink = sink
        self.sink_eof = sink_eof
        self.end = end
        self.running = False
        # Made by start(): most connections never meet a toxic, and these were a measurable
        # part of setting up every forwarded connection.
        self.input: trio.MemorySendChannel[Chunk]
        self._output: trio.MemoryReceiveChannel[Chunk]
        self.done: trio.Event
        self._waiting: trio.CancelScope | None = None

    def start(self, nursery: trio.Nursery) -> None:
        if not self.running:
            self.running = True
            self.input, self._output = trio.open_memory_channel[Chunk](LINK_BUFFER)
            self.done = trio.Event()
            nursery.start_soon(self._run)

    def wake(self) -> None:
        """The fault set changed: look again at the toxics and the timeout deadline."""
        if self._waiting is not None:
            self._waiting.cancel()

    async def _run(self) -> None:
        state = LinkState()
        last_input = trio.current_time()
        released = -math.inf
        try:
            while True:
                toxics = self.toxics.active(self.direction)
                deadline = self.toxics.timeout_deadline(toxics, last_input)
                chunk: Chunk | None = None
                with trio.move_on_at(deadline) as self._waiting:
                    chunk = await self._output.receive()
                self._waiting = None
                if chunk is None:
                    if trio.current_time() >= deadline:
                        await self.end("close")
                        return
                    continue  # woken by a change
                last_input = trio.current_time()
                if chunk is EOF:
                    await self._slow_close(toxics)
                    await self.sink_eof()
                    return
                plan = plan_chunk(toxics, chunk.arrived, chunk.data, state, self.toxics.rng)
                for piece in plan.pieces:
                    released = max(released, piece.at)
                    await trio.sleep_until(released)
                    await self.sink(piece.data)
                if plan.end is not None:
                    await trio.sleep_until(max(released, plan.end_at))
                    await self.end(plan.end)
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.EndOfChannel):
            await self.end("close")
        finally:
            self.done.set()

    async def _slow_close(self, toxics: Sequence[Toxic]) -> None:
        delay = sum(t.attributes["delay"] for t in toxics if t.type == "slow_close")
        await trio.sleep(delay / 1000)


class ToxicStream(trio.abc.HalfCloseableStream):
    """The client side of a forwarded connection, under the toxics in force."""

    def __init__(self, inner: EdgeStream, toxics: ConnectionToxics, nursery: trio.Nursery) -> None:
        self.inner = inner
        self.socket = inner.socket  # hypercorn reads the socket's addresses
        self.toxics = toxics
        self.nursery = nursery
        self.ended: End | None = None
        self._deliver, self._received = trio.open_memory_channel[bytes](0)
        self._leftover = b""
        self.upstream = Link("upstream", toxics, self._deliver.send, self._deliver_eof, self._end)
        self.downstream = Link("downstream", toxics, inner.send_all, inner.send_eof, self._end)
        self._reading = False
        self._unwatch = toxics.faults.watch(self._faults_changed)
        self._faults_changed()

    def _faults_changed(self) -> None:
        if not self.toxics.faults.enabled(self.toxics.listener, self.toxics.route):
            self.nursery.start_soon(self._end, "reset")
            return
        toxics = self.toxics.active()
        for link in (self.upstream, self.downstream):
            if any(t.direction == link.direction for t in toxics):
                link.start(self.nursery)
            link.wake()

    # -- upstream: what the client sends ------------------------------------------------------

    def upstream_is_direct(self) -> bool:
        """True while what the client sends reaches the reader untouched (no upstream toxic)."""
        return not self.upstream.running and not self.toxics.active("upstream")

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.upstream_is_direct():
            return await self._inner_receive(max_bytes)
        self.upstream.start(self.nursery)
        if not self._reading:
            self._reading = True
            self.nursery.start_soon(self._read_ahead)
        if not self._leftover:
            try:
                self._leftover = await self._received.receive()
            except trio.EndOfChannel:
                if self.ended == "reset":
                    raise ToxicClosed("the connection was reset by a toxic") from None
                return b""
        size = len(self._leftover) if max_bytes is None else max_bytes
        data, self._leftover = self._leftover[:size], self._leftover[size:]
        return data

    async def _inner_receive(self, max_bytes: int | None) -> bytes:
        if self.ended == "reset":
            raise ToxicClosed("the connection was reset by a toxic")
        return await self.inner.receive_some(max_bytes)

    async def _read_ahead(self) -> None:
        """Toxiproxy's reader: chunks are stamped as they arrive, while toxics hold earlier ones."""
        try:
            while data := await self.inner.receive_some(READ_SIZE):
                await self.upstream.input.send(Chunk(trio.current_time(), data))
            await self.upstream.input.send(EOF)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            with trio.move_on_after(0):
                await self.upstream.input.send(EOF)

    async def _deliver_eof(self) -> None:
        await self._deliver.aclose()

    # -- downstream: what the client receives -------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.ended is not None:
            raise ToxicClosed(f"the connection was ended by a toxic ({self.ended})")
        if not self.downstream.running and not self.toxics.active("downstream"):
            await self.inner.send_all(data)
            return
        self.downstream.start(self.nursery)
        await self.downstream.input.send(Chunk(trio.current_time(), bytes(data)))

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        if self.downstream.running:
            await self.downstream.input.send(EOF)
        elif self.ended is None:
            await self.inner.send_eof()

    def detach(self) -> None:
        """Stop hearing about fault changes (the connection is over)."""
        self._unwatch()

    async def aclose(self) -> None:
        """Deliver what toxics still hold (slow_close delays this), then close."""
        self._unwatch()
        if self.ended is None and (self.downstream.running or self.toxics.active("downstream")):
            self.downstream.start(self.nursery)
            with trio.move_on_after(DRAIN_SECONDS):
                await self.downstream.input.send(EOF)
                await self.downstream.done.wait()
        await self.inner.aclose()

    async def _end(self, how: End) -> None:
        """A toxic (or a proxy taken down) ends the connection: FIN or RST, both directions."""
        if self.ended is not None:
            return
        self.ended = how
        if how == "reset":
            await self.inner.reset()
        else:
            await self.inner.aclose()
        await self._deliver.aclose()
