"""Drop actions: ways to refuse a connection without ever sending a ServerHello.

`stall` is the MRAP edge's own behaviour: the ClientHello is never answered and the connection
stays open until the client's connect timeout fires (or `stall_timeout` passes). The others are
what other servers do: a TCP RST, a FIN, or one fatal TLS alert.
"""

from __future__ import annotations

import trio

from mrapsim.edge.streams import EdgeStream
from mrapsim.outcomes import DropAction, DropKind
from mrapsim.tls.alerts import fatal_alert_record

# Before closing, wait this long for the client to close first: closing with unread data in the
# receive buffer makes the kernel send RST instead of FIN, which could also overtake an alert.
LINGER_SECONDS = 1.0


async def carry_out_drop(stream: EdgeStream, action: DropAction, stall_timeout: float) -> None:
    try:
        match action.kind:
            case DropKind.STALL:
                await _discard_until_eof(stream, stall_timeout)
                await stream.aclose()
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


async def _close_with_fin(stream: EdgeStream) -> None:
    await stream.send_eof()
    await _discard_until_eof(stream, LINGER_SECONDS)
    await stream.aclose()


async def _discard_until_eof(stream: EdgeStream, seconds: float) -> None:
    with trio.move_on_after(seconds):
        while await stream.receive_some(16384):
            pass
