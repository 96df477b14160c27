"""From what the peek saw to what the edge does: a pure function, exhaustively testable.

The MRAP edge's rule: a listener that requires SNI drops a hello without it, and a
hello whose SNI matches no route, with the configured action; a listener with optional SNI sends
both to its first route. Anything that is not a complete, well-formed ClientHello is closed.
"""

from __future__ import annotations

from dataclasses import dataclass

from mrapsim.config import ListenerConfig, Route
from mrapsim.edge.routing import default_route, match_route
from mrapsim.outcomes import DropAction, DropKind, Outcome
from mrapsim.tls.clienthello import ClientHello, Rejection

CLOSE = DropAction(DropKind.CLOSE)


@dataclass(frozen=True)
class PeekTimedOut:
    seconds: float


@dataclass(frozen=True)
class PeerClosed:
    bytes_received: int


PeekResult = ClientHello | Rejection | PeekTimedOut | PeerClosed


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    route: Route | None = None  # set exactly when the connection is forwarded
    drop: DropAction | None = None  # set exactly when it is not
    reason: str | None = None


def decide(listener: ListenerConfig, peek: PeekResult) -> Decision:
    match peek:
        case PeekTimedOut(seconds):
            return Decision(
                Outcome.PEEK_TIMEOUT,
                drop=CLOSE,
                reason=f"no complete ClientHello within {seconds:g} s",
            )
        case PeerClosed(received):
            return Decision(
                Outcome.CLIENT_CLOSED,
                drop=CLOSE,
                reason=f"the client closed after {received} bytes, before a complete ClientHello",
            )
        case Rejection(outcome, reason):
            return Decision(outcome, drop=CLOSE, reason=reason)
        case ClientHello() as hello:
            return _decide_hello(listener, hello)
    raise AssertionError(f"unexpected peek result {peek!r}")


def _decide_hello(listener: ListenerConfig, hello: ClientHello) -> Decision:
    if hello.server_name is None:
        return _fallback(
            listener,
            Outcome.NO_SNI,
            listener.on_missing_sni,
            "an SSLv2-compatible ClientHello (it cannot carry server_name)"
            if hello.sslv2
            else "the ClientHello carried no server_name (SNI)",
        )
    route = match_route(listener, hello.server_name)
    if route is not None:
        return Decision(Outcome.FORWARDED, route=route)
    return _fallback(
        listener,
        Outcome.UNKNOWN_SNI,
        listener.on_unknown_sni,
        f"server_name {hello.server_name!r} matches no route on listener {listener.name!r}",
    )


def _fallback(listener: ListenerConfig, outcome: Outcome, action: DropAction, reason: str) -> Decision:
    route = None if listener.sni_required else default_route(listener)
    if route is None:
        return Decision(outcome, drop=action, reason=reason)
    return Decision(Outcome.FORWARDED, route=route)
