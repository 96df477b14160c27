"""Prometheus metrics. Names start with `mrapsim_`, values are in base units (seconds, bytes) and
every label has a bounded set of values (listener and route names come from configuration,
operations and outcomes from fixed vocabularies)."""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mrapsim import __version__
from mrapsim.edge.records import ConnectionRecord

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SIZE_BUCKETS = (256, 512, 1024, 1536, 2048, 4096, 8192, 16384, 65536)


class Metrics:
    """All of mrapsim's metrics in one registry of their own (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._replication_targets: set[str] = set()
        # prometheus_client's labels() validates and locks on every call (~1.3 µs); a connection
        # touches ~16 children, so the hot paths keep them here. Label values are bounded
        # (module docstring), so is this.
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        self.connections = Counter(
            "mrapsim_connections",
            "Connections on edge listeners, by how they ended.",
            ["listener", "outcome"],
            registry=r,
        )
        self.actions = Counter(
            "mrapsim_connection_actions",
            "What the edge did with each connection.",
            ["listener", "action"],
            registry=r,
        )
        self.active = Gauge(
            "mrapsim_connections_open",
            "Edge connections open now.",
            ["listener"],
            registry=r,
        )
        self.stalled = Gauge(
            "mrapsim_connections_stalled",
            "Stalled connections held now (at most the listener's max_stalled).",
            ["listener"],
            registry=r,
        )
        self.stalled_evicted = Counter(
            "mrapsim_stalled_evicted",
            "Stalled connections closed early because their listener held max_stalled of them.",
            ["listener"],
            registry=r,
        )
        self.hello_size = Histogram(
            "mrapsim_client_hello_size_bytes",
            "Size of complete ClientHellos, record headers included.",
            ["listener"],
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.hello_first_byte = Histogram(
            "mrapsim_client_hello_first_byte_seconds",
            "Time from accept to the first ClientHello byte.",
            ["listener"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.hello_duration = Histogram(
            "mrapsim_client_hello_duration_seconds",
            "Time from accept to a complete ClientHello.",
            ["listener"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.handshake_duration = Histogram(
            "mrapsim_tls_handshake_duration_seconds",
            "TLS handshake time on builtin routes.",
            ["listener"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.handshakes = Counter(
            "mrapsim_tls_handshakes",
            "Completed TLS handshakes by negotiated version and ALPN.",
            ["listener", "version", "alpn"],
            registry=r,
        )
        self.connection_bytes = Counter(
            "mrapsim_connection_bytes",
            "Bytes on edge connections, by direction.",
            ["listener", "direction"],
            registry=r,
        )
        self.connection_duration = Histogram(
            "mrapsim_connection_duration_seconds",
            "How long edge connections lasted.",
            ["listener", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "mrapsim_s3_requests",
            "S3 requests by operation and HTTP status.",
            ["operation", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "mrapsim_s3_request_duration_seconds",
            "S3 request duration, headers in to response sent.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.request_bytes = Counter(
            "mrapsim_s3_request_bytes",
            "S3 body bytes by direction.",
            ["direction"],
            registry=r,
        )
        self.faults_active = Gauge(
            "mrapsim_faults_active",
            "Faults in force now, by type.",
            ["type"],
            registry=r,
        )
        self.faults_applied = Counter(
            "mrapsim_faults_applied",
            "Faults applied: a toxic drawn for a connection, an S3 or TLS fault that fired.",
            ["type"],
            registry=r,
        )
        self.connections_refused = Counter(
            "mrapsim_connections_refused",
            "Connections closed at accept because a limit was reached (limits.*), by limit.",
            ["listener", "limit"],
            registry=r,
        )
        self.accept_errors = Counter(
            "mrapsim_accept_errors",
            "accept() failures that made the listener back off, by errno name (EMFILE: out of fds).",
            ["listener", "error"],
            registry=r,
        )
        self.tasks = Gauge(
            "mrapsim_tasks",
            "trio tasks alive in this process when /metrics was read (connections hold one or two).",
            registry=r,
        )
        self.fd_limit = Gauge(
            "mrapsim_open_files_limit",
            "The soft limit on open file descriptors (RLIMIT_NOFILE) after start-up raised it.",
            registry=r,
        )
        self.connection_budget = Gauge(
            "mrapsim_connection_budget",
            "Connections this process admits at once: the fd limit less limits.fd_reserve and fds in use at start.",
            registry=r,
        )
        self.replication_backlog = Gauge(
            "mrapsim_replication_backlog",
            "MRAP replication copies waiting, by target bucket (paused or not yet due); store-wide.",
            ["bucket"],
            registry=r,
        )
        self.replicated = Counter(
            "mrapsim_replication_copies",
            "MRAP replication copies made by this process, by source and target bucket.",
            ["source", "target"],
            registry=r,
        )
        Gauge(
            "mrapsim_build_info",
            "Build information; the value is always 1.",
            ["version", "python"],
            registry=r,
        ).labels(__version__, platform.python_version()).set(1)

    def replication_backlog_now(self, backlog: Mapping[str, int]) -> None:
        """Every target bucket seen keeps a series; one whose backlog drained reads 0."""
        for bucket in self._replication_targets - set(backlog):
            self.replication_backlog.labels(bucket).set(0)
        for bucket, count in backlog.items():
            self.replication_backlog.labels(bucket).set(count)
        self._replication_targets |= set(backlog)

    def watch_stalled(self, listener: str, count: Callable[[], int]) -> None:
        """The stalled gauge reads the listener's own count at scrape time; evictions start at 0."""
        self.stalled.labels(listener).set_function(count)
        self.stalled_evicted.labels(listener)

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once (for metrics whose children are never removed)."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def connection_closed(self, record: ConnectionRecord) -> None:
        assert record.outcome is not None and record.action is not None, "a closed connection was decided"
        child, listener, outcome = self.child, record.listener, record.outcome.value
        child(self.connections, listener, outcome).inc()
        child(self.actions, listener, record.action).inc()
        child(self.connection_bytes, listener, "received").inc(record.bytes_in)
        child(self.connection_bytes, listener, "sent").inc(record.bytes_out)
        child(self.connection_duration, listener, outcome).observe(record.duration)

    def render(self) -> bytes:
        return generate_latest(self.registry)
