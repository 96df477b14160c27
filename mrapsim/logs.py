"""Logs a person reads first: one line per connection, one per request, and for a dropped
connection an explanation in words of what happened and what usually causes it.

Text by default, one JSON object per line with `--log-format json`. Explanations are limited to
one per (peer address, listener, outcome) per minute, so that a flood of identical connections
does not flood the log.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import trio

from mrapsim.edge.records import ConnectionRecord, Refusal
from mrapsim.outcomes import Outcome
from mrapsim.s3.records import RequestRecord

EXPLAIN_INTERVAL_SECONDS = 60.0
EXPLAIN_MEMORY = 4096  # distinct (peer, listener, outcome) keys remembered for the rate limit


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if callable(fields):  # deferred by log_connection/log_request: made only when formatted
            fields = fields()
        if isinstance(fields, dict):
            document.update(fields)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.converter = time.gmtime


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    handler = BatchingStreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger("mrapsim")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


BATCH_BYTES = 65536


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that, while `batch_log_writes` runs (a serving process), gathers the lines
    below WARNING that trio's tasks log in one pass of its scheduler and writes them together
    at the start of the next pass.

    Why: the write (a system call and a flush per line) was the largest part of a line's cost on
    the request path, more than formatting it (benchmarks/profiles/). Under load many
    connections end in one pass and share one write; an idle server writes a line one pass
    after it was logged, so a line still follows its response within microseconds (tests and
    people read the log right after the response). Lines are formatted when logged (a writer
    thread was measured slower: it competes for the GIL, benchmarks/RESULTS.md). A warning, an
    error, or a line from another thread is written at once, after what is pending, so order
    is kept; what is pending is written when batching stops and at exit (logging.shutdown
    flushes handlers).
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._wake: Callable[[], None] | None = None  # set while batching: wakes the writer task
        self._trio_thread: int | None = None

    def emit(self, record: logging.LogRecord) -> None:  # called with the handler's lock held
        if self._wake is None or record.levelno >= logging.WARNING or threading.get_ident() != self._trio_thread:
            self._write_pending()
            super().emit(record)
            return
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        if not self._pending:
            self._wake()
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= BATCH_BYTES:
            self._write_pending()

    def batch(self, wake: Callable[[], None] | None) -> None:
        """Gather lines logged in this thread and call `wake` when the first is pending; None:
        write each line at once again (what is pending is written now)."""
        self._wake, self._trio_thread = wake, threading.get_ident()
        if wake is None:
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_pending()
            super().flush()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # stderr is gone (a closed pipe): there is nowhere left to say so


async def batch_log_writes(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Batch the writes of mrapsim's log handlers until cancelled, then write what is pending."""
    handlers = [h for h in logging.getLogger("mrapsim").handlers if isinstance(h, BatchingStreamHandler)]
    wake = trio.Event()

    def wake_writer() -> None:
        wake.set()

    for handler in handlers:
        handler.batch(wake_writer)
    task_status.started()
    try:
        while True:
            await wake.wait()
            wake = trio.Event()
            for handler in handlers:
                handler.flush()
    finally:
        for handler in handlers:
            handler.batch(None)


class Deferred:
    """A log message made only when a handler formats it: `str()` calls `make`. The records it
    reads are frozen, so the line says what they said when it was logged."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], str]) -> None:
        self.make = make

    def __str__(self) -> str:
        return self.make()


def _peer_host(peer: str) -> str:
    return peer.rsplit(":", 1)[0]


LIKELY_CAUSES_NO_SNI = (
    "usually a TLS-originating proxy that does not send SNI: Envoy without `auto_sni` or an "
    "upstream `sni` (Cilium L7 TLS interception, Istio egress), nginx without "
    "`proxy_ssl_server_name on`, HAProxy `server ... ssl` without `sni`, squid bumping at step 1, "
    "or a client connecting to an IP literal"
)


def explain(record: Refusal, stall_timeout: float) -> str | None:
    """Why a connection is not forwarded and what usually causes it, in words."""
    done = _what_is_done(record.action, stall_timeout)
    match record.outcome:
        case Outcome.NO_SNI:
            return (
                f"a ClientHello arrived on listener {record.listener!r} from {record.peer} without "
                f"server_name (SNI); {done}. This is {LIKELY_CAUSES_NO_SNI}."
            )
        case Outcome.UNKNOWN_SNI:
            return (
                f"a ClientHello on listener {record.listener!r} from {record.peer} asked for "
                f"{record.sni!r}, which matches no route; {done}. Check the name the client or proxy "
                "sends (Envoy `sni`, nginx `proxy_ssl_name`, HAProxy `sni`) and the listener's routes."
            )
        case Outcome.NOT_TLS:
            return (
                f"listener {record.listener!r} got bytes from {record.peer} that are not TLS "
                f"({record.reason}); {done}. Is the client speaking plain HTTP to a TLS port?"
            )
        case Outcome.MALFORMED | Outcome.TOO_LARGE:
            return f"listener {record.listener!r}: {record.reason} from {record.peer}; {done}."
        case Outcome.PEEK_TIMEOUT:
            return (
                f"listener {record.listener!r}: {record.peer} connected but sent {record.reason}; {done}. "
                "A health check that only opens TCP, or a client waiting for the server to speak first?"
            )
        case Outcome.BACKEND_ERROR:
            return f"listener {record.listener!r}: {record.reason}."
    return None


def explain_document(document: Mapping[str, Any], stall_timeout: float) -> str | None:
    """`explain` for a `/connections` record (JSON, possibly from another worker): the same words
    as the log line, for the admin page. None for a connection that was forwarded or is still open
    and undecided."""
    try:
        outcome = Outcome(str(document.get("outcome")))
    except ValueError:
        return None
    if outcome in (Outcome.FORWARDED, Outcome.CLIENT_CLOSED) or not document.get("action"):
        return None
    refusal = Refusal(
        connection_id=str(document.get("id", "")),
        listener=str(document.get("listener", "")),
        peer=str(document.get("peer", "")),
        sni=document.get("sni"),
        outcome=outcome,
        action=str(document["action"]),
        reason=document.get("reason"),
    )
    return explain(refusal, stall_timeout)


def _what_is_done(action: str, stall_timeout: float) -> str:
    if action == "stall":
        return (
            f"mrapsim stalls it like the MRAP edge does: no ServerHello, the connection left open "
            f"until the client gives up (or {stall_timeout:g} s pass), so the client or proxy reports "
            "a connect timeout (Envoy: a 503, `upstream connect error or disconnect/reset before headers. "
            "reset reason: connection timeout`)"
        )
    if action == "reset":
        return "mrapsim resets the TCP connection (RST)"
    if action == "close":
        return "mrapsim closes the connection (FIN) without answering"
    if action.startswith("alert:"):
        return f"mrapsim answers with the fatal TLS alert {action.removeprefix('alert:')}"
    return f"action {action}"


class ExplanationLimiter:
    """Admits one explanation per key per interval; remembers a bounded number of keys."""

    def __init__(self, interval: float = EXPLAIN_INTERVAL_SECONDS, memory: int = EXPLAIN_MEMORY) -> None:
        self.interval = interval
        self.memory = memory
        self._last: OrderedDict[tuple[str, ...], float] = OrderedDict()

    def admit(self, key: tuple[str, ...], now: float) -> bool:
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self.memory:
            self._last.popitem(last=False)
        return True


def connection_line(record: ConnectionRecord) -> tuple[str, dict[str, Any]]:
    """The per-connection log line, as text and as JSON fields."""
    return connection_text(record), connection_fields(record)


def connection_text(record: ConnectionRecord) -> str:
    return (
        f"conn={record.id} listener={record.listener} peer={record.peer} "
        f"sni={record.sni or '-'} alpn={','.join(record.alpn_offered) or '-'} "
        f"outcome={record.outcome or '-'} action={record.action or '-'} "
        f"bytes_in={record.bytes_in} bytes_out={record.bytes_out} "
        f"duration={record.duration:.3f}s ja4={record.ja4 or '-'}"
    )


def connection_fields(record: ConnectionRecord) -> dict[str, Any]:
    return {"event": "connection", **record.to_json()}


def log_connection(logger: logging.Logger, record: ConnectionRecord) -> None:
    # The text and the JSON fields are made only by the formatter that needs them (one of the two).
    if logger.isEnabledFor(logging.INFO):
        logger.info(Deferred(lambda: connection_text(record)), extra={"fields": lambda: connection_fields(record)})


def log_request(logger: logging.Logger, record: RequestRecord) -> None:
    """The per-request line; `conn=` is the id of the connection line it belongs to."""
    if logger.isEnabledFor(logging.INFO):
        logger.info(Deferred(lambda: request_text(record)), extra={"fields": lambda: request_fields(record)})


def request_text(record: RequestRecord) -> str:
    text = (
        f"conn={record.connection_id or '-'} req={record.request_id} {record.method} "
        f"op={record.operation} bucket={record.bucket or '-'} key={record.key or '-'} "
        f"status={record.status} error={record.error_code or '-'} duration={record.duration:.4f}s"
    )
    if record.mrap is not None:
        text += f" mrap={record.mrap} region={record.region or '-'}"
    return text


def request_fields(record: RequestRecord) -> dict[str, Any]:
    # vars(), not asdict(): the record's fields are flat, and asdict's deep copy was most of the
    # line's cost; JSON renders the tuple field as asdict's list would be.
    return {"event": "request", **vars(record)}


def log_listening(logger: logging.Logger, listeners: Mapping[str, str], admin: str | None, **more: Any) -> None:
    """The start-up line that names every bound address (scripts and tests read its JSON form)."""
    addresses = " ".join(f"{name}={address}" for name, address in listeners.items())
    extra = "".join(f" {key}={value}" for key, value in more.items())
    logger.info(
        f"mrapsim listening: {addresses} admin={admin}{extra}",
        extra={"fields": {"event": "listening", "listeners": dict(listeners), "admin": admin, **more}},
    )


def log_stall_eviction(
    logger: logging.Logger, limiter: ExplanationLimiter, listener: str, max_stalled: int, evicted_total: int
) -> None:
    """Say that a listener is at its stall cap, once per listener per minute however many stalls
    it ends: under a flood every new connection evicts one, and a line each would be the flood."""
    if not limiter.admit(("stall-evicted", listener), time.monotonic()):
        return
    logger.warning(
        f"listener {listener!r} holds its maximum of {max_stalled} stalled connections (max_stalled): "
        f"each new stall closes the oldest one; {evicted_total} closed so far "
        "(mrapsim_stalled_evicted_total). A proxy retrying without SNI, or a connection flood?",
        extra={
            "fields": {
                "event": "stall_evicted",
                "listener": listener,
                "max_stalled": max_stalled,
                "evicted_total": evicted_total,
            }
        },
    )


def log_capacity(
    logger: logging.Logger, limiter: ExplanationLimiter, listener: str, limit: str, explanation: str
) -> None:
    """A limit reached at accept (limits.*, the fd limit): one line per listener and limit per
    minute however many connections it turns away; /metrics counts every one."""
    if limiter.admit(("capacity", listener, limit), time.monotonic()):
        logger.warning(
            "listener %s: %s (said once a minute; mrapsim_connections_refused and "
            "mrapsim_accept_errors count every one)",
            listener,
            explanation,
            extra={"fields": {"event": "capacity", "listener": listener, "limit": limit}},
        )


def log_refusal(logger: logging.Logger, limiter: ExplanationLimiter, refusal: Refusal, stall_timeout: float) -> None:
    """The explanation of a refused connection, once per (peer address, listener, outcome) per minute."""
    explanation = explain(refusal, stall_timeout)
    key = (_peer_host(refusal.peer), refusal.listener, refusal.outcome.value)
    if explanation and limiter.admit(key, time.monotonic()):
        logger.warning(
            explanation,
            extra={
                "fields": {
                    "event": "explanation",
                    "connection_id": refusal.connection_id,
                    "outcome": refusal.outcome.value,
                    "action": refusal.action,
                }
            },
        )
