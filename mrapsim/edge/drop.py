"""Drop actions: ways to refuse a connection without ever sending a ServerHello.

`stall` is the MRAP edge's own behaviour: the ClientHello is never answered and the connection
stays open until the client's connect timeout fires (or `stall_timeout` passes). The others are
what other servers do: a TCP RST, a FIN, or one fatal TLS alert.

A stall holds a socket for up to `stall_timeout` (300 s by default), so each listener holds at
most `max_stalled` of them (`StalledConnections`): a proxy retrying without SNI, or a scan, cannot
exhaust the process's file descriptors and starve clients that do send SNI.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trio

from mrapsim.edge.streams import EdgeStream
from mrapsim.outcomes import DropAction, DropKind
from mrapsim.tls.alerts import fatal_alert_record

# Before closing, wait this long for the client to close first: closing with unread data in the
# receive buffer makes the kernel send RST instead of FIN, which could also overtake an alert.
LINGER_SECONDS = 1.0


class Stall:
    """One stalled connection's handle: cancelling its scope ends the stall early."""

    __slots__ = ("evicted", "scope")

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True
        self.scope.cancel()


class StalledConnections:
    """One listener's stalled connections, oldest first, at most `limit` of them.

    A new stall beyond the limit ends the oldest one: its client sees the connection close (EOF),
    and it is the one whose client has most likely given up already. Adding, removing and evicting
    are O(1) (an OrderedDict used as an ordered set). `on_evict` hears the running total of
    evictions, for the metric and the log.
    """

    def __init__(self, limit: int, timeout: float, on_evict: Callable[[int], None]) -> None:
        if limit < 1:
            raise ValueError("a listener holds at least one stalled connection")
        self.limit = limit
        self.timeout = timeout
        self.evicted_total = 0
        self._on_evict = on_evict
        self._open: OrderedDict[Stall, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    @contextmanager
    def hold(self) -> Iterator[Stall]:
        """Count a stall for the duration of the block; the block is cancelled if it is evicted."""
        stall = Stall()
        while len(self._open) >= self.limit:
            oldest, _ = self._open.popitem(last=False)
            oldest.evict()
            self.evicted_total += 1
            self._on_evict(self.evicted_total)
        self._open[stall] = None
        try:
            with stall.scope:
                yield stall
        finally:
            self._open.pop(stall, None)

    def eviction_note(self) -> str:
        return f"closed early: the listener already held max_stalled = {self.limit} stalled connections"


async def carry_out_drop(stream: EdgeStream, action: DropAction, stalls: StalledConnections) -> bool:
    """Refuse the connection as `action` says; True when a stall was ended early by `max_stalled`."""
    try:
        match action.kind:
            case DropKind.STALL:
                with stalls.hold() as stall:
                    await _discard_until_eof(stream, stalls.timeout)
                await stream.aclose()
                return stall.evicted
            case DropKind.RESET:
                await stream.reset()
            case DropKind.CLOSE:
                await _close_with_fin(stream)
            case DropKind.ALERT:
                assert action.alert is not None
                await stream.send_all(fatal_alert_record(action.alert))
                await _close_with_fin(stream)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.aclose()  # the client left first; nothing else to do
    return False


async def _close_with_fin(stream: EdgeStream) -> None:
    await stream.send_eof()
    await _discard_until_eof(stream, LINGER_SECONDS)
    await stream.aclose()


async def _discard_until_eof(stream: EdgeStream, seconds: float) -> None:
    with trio.move_on_after(seconds):
        while await stream.receive_some(16384):
            pass
