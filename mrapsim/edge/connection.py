"""One connection on an edge listener, from accept to its record.

read the ClientHello (deadline, size cap) → decide → drop or forward → record. This is the one
place where a connection's error must not reach the listener: it is caught here, logged with its
traceback and kept in the record, and the listener goes on.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

import trio

from mrapsim.config import ListenerConfig, Route
from mrapsim.edge.decide import Decision, PeekResult, PeekTimedOut, PeerClosed, decide
from mrapsim.edge.drop import StalledConnections, carry_out_drop
from mrapsim.edge.forward import BackendError, BuiltinBackend, BuiltinSession, socket_address, splice
from mrapsim.edge.records import ConnectionRecord, ConnectionState, OpenConnection, Refusal, tls_version_name
from mrapsim.edge.routing import route_label
from mrapsim.edge.streams import EdgeStream
from mrapsim.edge.tlsfaults import FaultyCertificates, apply_tls_faults
from mrapsim.edge.toxics import ConnectionToxics, ToxicStream
from mrapsim.faults import FaultSet
from mrapsim.names import format_host_port
from mrapsim.outcomes import DropAction, DropKind, Outcome
from mrapsim.tls.clienthello import ClientHello, ClientHelloReader
from mrapsim.tls.fingerprint import FingerprintCache

log = logging.getLogger("mrapsim.edge")

PEEK_CHUNK = 16384


class EdgeObserver(Protocol):
    """Who hears about connections: metrics, logs, the record ring."""

    def connection_opened(self, connection: OpenConnection) -> None: ...

    def hello_read(
        self, listener: str, hello_bytes: int, first_byte_seconds: float | None, hello_seconds: float
    ) -> None: ...

    def handshake_done(self, listener: str, tls_version: str, alpn: str, seconds: float) -> None: ...

    def connection_refused(self, refusal: Refusal) -> None: ...

    def connection_closed(self, record: ConnectionRecord) -> None: ...


@dataclass(frozen=True)
class Peek:
    result: PeekResult
    first_byte_seconds: float | None
    seconds: float


async def read_client_hello(stream: EdgeStream, listener: ListenerConfig) -> tuple[Peek, bytes]:
    """Read until the reader has a verdict, the client leaves, or the deadline passes.

    Returns the verdict and the exact bytes read, to be replayed to a backend.
    """
    reader = ClientHelloReader(max_size=listener.max_client_hello)
    received = bytearray()
    started = time.perf_counter()
    first_byte: float | None = None
    result: PeekResult | None = None
    with trio.move_on_after(listener.client_hello_timeout):
        while result is None:
            try:
                data = await stream.receive_some(PEEK_CHUNK)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                result = PeerClosed(len(received))
                break
            if first_byte is None:
                first_byte = time.perf_counter() - started
            received += data
            result = reader.feed(data)
    if result is None:
        result = PeekTimedOut(listener.client_hello_timeout)
    return Peek(result, first_byte, time.perf_counter() - started), bytes(received)


@dataclass(frozen=True)
class ListenerRuntime:
    """A listener's configuration with what it needs at run time."""

    config: ListenerConfig
    builtin: BuiltinBackend
    observer: EdgeObserver
    faults: FaultSet
    stalls: StalledConnections  # this listener's stalled connections, bounded by max_stalled
    faulty_certificates: FaultyCertificates | None = None  # for `certificate` TLS faults
    fingerprints: FingerprintCache = field(default_factory=FingerprintCache)


def new_connection_id() -> str:
    return secrets.token_hex(6)


async def handle_connection(transport: trio.SocketStream, runtime: ListenerRuntime) -> None:
    listener = runtime.config
    stream = EdgeStream(transport)
    connection_id = new_connection_id()
    started_wall, started = time.time(), time.perf_counter()
    address = socket_address(transport.socket, "getpeername")
    peer = format_host_port(*address) if address else "unknown"
    session = BuiltinSession(
        # `reset` lets an S3 fault (truncate_body) end the connection with a TCP RST.
        extensions={"connection_id": connection_id, "listener": listener.name, "peer": peer, "reset": stream.reset},
        client=address,
    )
    hello: ClientHello | None = None
    decision: Decision | None = None
    error: str | None = None
    faults_applied: list[str] = []

    def record(state: ConnectionState = ConnectionState.OPEN) -> ConnectionRecord:
        # Reads the variables above when called: an open connection's record is what it did so far.
        return _record(
            connection_id,
            state,
            started_wall,
            peer,
            listener.name,
            hello,
            decision,
            session,
            stream,
            time.perf_counter() - started,
            error,
            tuple(faults_applied),
            runtime.fingerprints,
        )

    runtime.observer.connection_opened(OpenConnection(connection_id, listener.name, started_wall, record))
    try:
        if not runtime.faults.enabled(listener.name):
            decision = _taken_down(f"listener {listener.name}")
            runtime.observer.connection_refused(_refusal(connection_id, listener.name, peer, hello, decision))
            await stream.reset()
            return
        peek, peeked = await read_client_hello(stream, listener)
        if isinstance(peek.result, ClientHello):
            hello = peek.result
            runtime.observer.hello_read(listener.name, hello.size, peek.first_byte_seconds, peek.seconds)
        decision = decide(listener, peek.result)
        if decision.route is not None and not runtime.faults.enabled(listener.name, decision.route.match):
            decision = _taken_down(f"route {decision.route.match} of {listener.name}")
        if decision.route is not None:
            try:
                sni = hello.server_name if hello else None
                await _forward(stream, peeked, decision.route, runtime, session, faults_applied, sni)
            except BackendError as exc:
                decision = Decision(Outcome.BACKEND_ERROR, route=decision.route, reason=str(exc))
                runtime.observer.connection_refused(_refusal(connection_id, listener.name, peer, hello, decision))
                await stream.aclose()
        else:
            assert decision.drop is not None
            runtime.observer.connection_refused(_refusal(connection_id, listener.name, peer, hello, decision))
            if await carry_out_drop(stream, decision.drop, runtime.stalls):
                decision = replace(decision, reason=f"{decision.reason}; {runtime.stalls.eviction_note()}")
    except Exception as exc:
        error = f"internal error: {exc!r}"
        log.exception("connection %s on listener %s failed", connection_id, listener.name)
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()
        runtime.observer.connection_closed(record(ConnectionState.CLOSED))


def _taken_down(what: str) -> Decision:
    return Decision(
        Outcome.PROXY_DISABLED, drop=DropAction(DropKind.RESET), reason=f"{what} is taken down (enabled: false)"
    )


async def _forward(
    stream: EdgeStream,
    peeked: bytes,
    route: Route,
    runtime: ListenerRuntime,
    session: BuiltinSession,
    faults_applied: list[str],
    sni: str | None,
) -> None:
    """Every forwarded connection goes through a ToxicStream, toxics or not: one added later must
    reach it (a pooled connection lives for minutes). Without toxics it is a direct path, and the
    peeked ClientHello goes straight to OpenSSL; with upstream toxics, or to a spliced backend,
    it is replayed through the stream so that it meets them like any other bytes."""
    toxics = ConnectionToxics(runtime.faults, runtime.config.name, route.match, faults_applied)
    unreachable: BackendError | None = None
    async with trio.open_nursery() as nursery:
        client = ToxicStream(stream, toxics, nursery)
        try:
            if route.upstream is not None or not client.upstream_is_direct():
                stream.unread(peeked)
                peeked = b""
            if route.upstream is not None:
                await splice(client, route.upstream)
                return

            def handshake_done(done: BuiltinSession) -> None:
                assert done.tls_version is not None and done.handshake_seconds is not None
                runtime.observer.handshake_done(
                    runtime.config.name, done.tls_version, done.alpn or "", done.handshake_seconds
                )

            backend = await apply_tls_faults(
                runtime.faults, runtime.config, sni, runtime.builtin, runtime.faulty_certificates, faults_applied
            )
            await backend.serve(client, session, handshake_done, peeked)
        except BackendError as exc:
            unreachable = exc  # raised past the nursery it would come wrapped in an ExceptionGroup
        finally:
            client.detach()
            nursery.cancel_scope.cancel()
    if unreachable is not None:
        raise unreachable


def _action(decision: Decision) -> str:
    if decision.route is not None:
        return route_label(decision.route)
    return str(decision.drop) if decision.drop is not None else "close"


def _refusal(connection_id: str, listener: str, peer: str, hello: ClientHello | None, decision: Decision) -> Refusal:
    return Refusal(
        connection_id=connection_id,
        listener=listener,
        peer=peer,
        sni=hello.server_name if hello else None,
        outcome=decision.outcome,
        action=_action(decision),
        reason=decision.reason,
    )


def _record(
    connection_id: str,
    state: ConnectionState,
    started_wall: float,
    peer: str,
    listener: str,
    hello: ClientHello | None,
    decision: Decision | None,
    session: BuiltinSession,
    stream: EdgeStream,
    duration: float,
    error: str | None,
    faults: tuple[str, ...],
    fingerprints: FingerprintCache,
) -> ConnectionRecord:
    if decision is None and state is ConnectionState.CLOSED:  # cancelled while peeking: shutting down
        decision = Decision(Outcome.CLIENT_CLOSED, reason="the server shut down during the peek")
    reason = error or (decision.reason if decision else None) or session.handshake_error
    ja3, ja4 = fingerprints.of(hello) if hello else (None, None)
    return ConnectionRecord(
        id=connection_id,
        state=state,
        start=started_wall,
        peer=peer,
        listener=listener,
        sni=hello.server_name if hello else None,
        alpn_offered=hello.alpn_names if hello else (),
        tls_versions_offered=tuple(tls_version_name(v) for v in hello.versions_offered) if hello else (),
        ech_offered=hello.ech_offered if hello else False,
        ja4=ja4,
        ja3=ja3,
        client_hello_bytes=hello.size if hello else 0,
        outcome=decision.outcome if decision else None,
        action=_action(decision) if decision else None,
        reason=reason,
        tls_version=session.tls_version,
        alpn=session.alpn,
        requests=session.requests,
        bytes_in=stream.bytes_in,
        bytes_out=stream.bytes_out,
        duration=duration,
        faults=faults,
        mrap_routed=session.extensions.get("routed"),
    )
