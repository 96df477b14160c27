"""Where connection and request events go: the open connections, the ring of closed ones, the
ring of recent requests, the metrics and the log."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import trio

from mrapsim.config import Config
from mrapsim.edge.records import (
    ConnectionRecord,
    OpenConnection,
    OpenConnections,
    RecordQuery,
    RecordRing,
    Refusal,
    find_records,
)
from mrapsim.faults import Fault
from mrapsim.logs import ExplanationLimiter, log_connection, log_refusal, log_request, log_stall_eviction
from mrapsim.metrics import Metrics
from mrapsim.outcomes import Outcome
from mrapsim.s3.records import KeptRequest, RequestQuery, RequestRecord, RequestRing

DRAIN_POLL_SECONDS = 0.05
edge_log = logging.getLogger("mrapsim.edge")
s3_log = logging.getLogger("mrapsim.s3")


@dataclass
class Telemetry:
    config: Config
    metrics: Metrics = field(default_factory=Metrics)
    ring: RecordRing = field(default_factory=RecordRing)
    limiter: ExplanationLimiter = field(default_factory=ExplanationLimiter)
    open: OpenConnections = field(default_factory=OpenConnections)
    # Its own limiter: a flood from many peers must not push the listener's key out of `limiter`.
    eviction_limiter: ExplanationLimiter = field(default_factory=ExplanationLimiter)
    requests: RequestRing = field(default_factory=RequestRing)

    def records(self, query: RecordQuery) -> list[ConnectionRecord]:
        return find_records(query, self.open, self.ring)

    def record(self, connection_id: str) -> ConnectionRecord | None:
        """That connection's record, open or closed, while it is remembered. A scan: the admin
        API asks for one connection now and then, and the edge keeps no index by id for it."""
        for closed in self.ring.newest_first():
            if closed.id == connection_id:
                return closed
        return next((r for r in self.open.newest_first() if r.id == connection_id), None)

    def recent_requests(self, query: RequestQuery) -> list[KeptRequest]:
        return self.requests.find(query)

    async def wait_until_idle(self) -> None:
        """Return once no forwarded connection is open (a draining server waits for this): a
        request may be in flight on one, and a spliced one carries a backend's. A stalled or
        undecided connection carries nothing worth waiting for, so an idle server stops at once."""
        while any(record.outcome is Outcome.FORWARDED for record in self.open.newest_first()):
            with trio.move_on_after(DRAIN_POLL_SECONDS):
                await self.open.wait_until_empty()

    # EdgeObserver

    def connection_opened(self, connection: OpenConnection) -> None:
        # The gauge and the open records change together: they agree by construction.
        self.open.add(connection)
        self.metrics.child(self.metrics.active, connection.listener).inc()

    def hello_read(
        self, listener: str, hello_bytes: int, first_byte_seconds: float | None, hello_seconds: float
    ) -> None:
        child = self.metrics.child
        child(self.metrics.hello_size, listener).observe(hello_bytes)
        if first_byte_seconds is not None:
            child(self.metrics.hello_first_byte, listener).observe(first_byte_seconds)
        child(self.metrics.hello_duration, listener).observe(hello_seconds)

    def handshake_done(self, listener: str, tls_version: str, alpn: str, seconds: float) -> None:
        self.metrics.child(self.metrics.handshake_duration, listener).observe(seconds)
        self.metrics.child(self.metrics.handshakes, listener, tls_version, alpn).inc()

    def connection_refused(self, refusal: Refusal) -> None:
        log_refusal(edge_log, self.limiter, refusal, self.config.listener(refusal.listener).stall_timeout)

    def connection_closed(self, record: ConnectionRecord) -> None:
        self.open.remove(record.id)
        self.metrics.child(self.metrics.active, record.listener).dec()
        self.ring.add(record)
        self.metrics.connection_closed(record)
        log_connection(edge_log, record)

    def stalled_connection_evicted(self, listener: str, evicted_total: int) -> None:
        self.metrics.stalled_evicted.labels(listener).inc()
        max_stalled = self.config.listener(listener).max_stalled
        log_stall_eviction(edge_log, self.eviction_limiter, listener, max_stalled, evicted_total)

    # Faults (FaultObserver)

    def fault_applied(self, fault: Fault) -> None:
        self.metrics.faults_applied.labels(fault.type).inc()

    def faults_changed(self, active: Mapping[str, int]) -> None:
        self.metrics.faults_active.clear()
        for kind, count in active.items():
            self.metrics.faults_active.labels(kind).set(count)

    # S3 requests

    def request_finished(self, record: RequestRecord) -> None:
        child = self.metrics.child
        child(self.metrics.requests, record.operation, str(record.status)).inc()
        child(self.metrics.request_duration, record.operation).observe(record.duration)
        child(self.metrics.request_bytes, "received").inc(record.bytes_in)
        child(self.metrics.request_bytes, "sent").inc(record.bytes_out)
        self.requests.add(record, time.time())
        log_request(s3_log, record)
