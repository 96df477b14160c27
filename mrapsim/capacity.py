"""How many connections one process takes on, and what it does when it cannot take more.

A hostile client's cheapest attack is connections that cost the server a file descriptor each
(a stalled handshake, an idle socket). mrapsim:

- raises its soft RLIMIT_NOFILE to the hard limit at start (`raise_fd_limit`);
- admits a connection only while it stays within a budget — the fd limit less `limits.fd_reserve`
  (kept for the admin API, the log, the store, certificates) and less what was open at start —
  and within `limits.connections_per_listener` and `limits.connections_per_peer`; anything over
  is closed at once (`Admission`). The per-listener stall cap (`max_stalled`, edge/) applies to
  the connections admitted here;
- backs off when accept() fails for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) instead of
  spinning on it, and says so once a minute rather than once per failure (`accept_loop`).

Every refusal and accept failure is counted in /metrics.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import resource
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from mrapsim.config import Limits
from mrapsim.logs import ExplanationLimiter, log_capacity
from mrapsim.metrics import Metrics

log = logging.getLogger("mrapsim.edge")

CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
BACKOFF_FIRST = 0.01
BACKOFF_MAX = 1.0


@dataclass(frozen=True)
class FdLimit:
    soft: int
    hard: int
    raised_from: int | None  # the soft limit before start-up raised it; None: unchanged


def raise_fd_limit() -> FdLimit:
    """Raise the soft RLIMIT_NOFILE to the hard limit (the most a process may ask for itself)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return FdLimit(soft, hard, None)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return FdLimit(soft, hard, None)
    return FdLimit(target, hard, soft)


# Collect young objects every 20,000 allocations rather than 700: with thousands of connections
# open, the default thresholds run a collection so often that its cost grew with every connection
# (measured: 35 % of the server's CPU and pauses past 1 s under a 5,000-connection flood).
GC_THRESHOLDS = (20_000, 50, 100)


def tune_gc() -> None:
    """Fewer, larger collections, and none over what start-up allocated (it lives as long as
    the process)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def fds_in_use() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 64  # no /proc: a guess on the safe side


@dataclass
class Admission:
    """Open connections by listener and by peer address, against the limits; one per process."""

    limits: Limits
    budget: int  # connections admitted at once, across listeners
    metrics: Metrics
    limiter: ExplanationLimiter = field(default_factory=ExplanationLimiter)
    total: int = 0
    by_listener: Counter[str] = field(default_factory=Counter)
    by_peer: Counter[str] = field(default_factory=Counter)

    @classmethod
    def for_process(cls, limits: Limits, metrics: Metrics, fd_limit: int | None = None) -> Admission:
        if fd_limit is None:
            fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if fd_limit == resource.RLIM_INFINITY:
            fd_limit = 1 << 20
        budget = max(1, fd_limit - limits.fd_reserve - fds_in_use())
        metrics.fd_limit.set(fd_limit)
        metrics.connection_budget.set(budget)
        return cls(limits, budget, metrics)

    def admit(self, listener: str, peer: str) -> str | None:
        """None when the connection may go on (then `release` it); otherwise the limit hit."""
        if self.total >= self.budget:
            return self._refuse(
                listener,
                "open_files",
                f"{self.total} connections are open, all this process's file descriptors allow "
                f"(the soft limit less limits.fd_reserve = {self.limits.fd_reserve}); new ones are closed "
                "at once. Raise the fd limit (ulimit -n) or lower max_stalled",
            )
        if self.by_listener[listener] >= self.limits.connections_per_listener:
            return self._refuse(
                listener,
                "per_listener",
                f"limits.connections_per_listener = {self.limits.connections_per_listener} connections are open; "
                "new ones are closed at once",
            )
        if self.by_peer[peer] >= self.limits.connections_per_peer:
            return self._refuse(
                listener,
                "per_peer",
                f"{peer} holds limits.connections_per_peer = {self.limits.connections_per_peer} connections; "
                "its new ones are closed at once",
            )
        self.total += 1
        self.by_listener[listener] += 1
        self.by_peer[peer] += 1
        return None

    def release(self, listener: str, peer: str) -> None:
        self.total -= 1
        _decrement(self.by_listener, listener)
        _decrement(self.by_peer, peer)

    def accept_failed(self, listener: str, error: OSError) -> None:
        name = errno.errorcode.get(error.errno or 0, str(error.errno))
        self.metrics.accept_errors.labels(listener, name).inc()
        log_capacity(
            log,
            self.limiter,
            listener,
            name,
            f"accept() failed with {name} ({os.strerror(error.errno or 0)}) with {self.total} connections open; "
            "backing off up to 1 s between tries. Raise the fd limit (ulimit -n) or lower "
            "limits.connections_per_listener / max_stalled",
        )

    def _refuse(self, listener: str, limit: str, explanation: str) -> str:
        self.metrics.connections_refused.labels(listener, limit).inc()
        log_capacity(log, self.limiter, listener, limit, explanation)
        return limit


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]  # the peer map holds only peers with open connections


def peer_host(stream: trio.SocketStream) -> str:
    try:
        address = stream.socket.getpeername()
    except OSError:
        return "-"
    return str(address[0]) if isinstance(address, tuple) else str(address)


async def accept_loop(
    listener: trio.SocketListener,
    name: str,
    handler: Callable[[trio.SocketStream], Awaitable[object]],
    handlers: trio.Nursery,
    admission: Admission,
) -> None:
    """trio.serve_listeners' loop, with admission and a back-off on resource errors (trio's own
    logs a traceback per failure, every 100 ms)."""
    backoff = BACKOFF_FIRST
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            if exc.errno not in CAPACITY_ERRNOS:
                raise
            admission.accept_failed(name, exc)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
            continue
        backoff = BACKOFF_FIRST
        peer = peer_host(stream)
        if admission.admit(name, peer) is not None:
            _close_now(stream)
            continue
        handlers.start_soon(_serve_one, handler, stream, admission, name, peer)


async def _serve_one(
    handler: Callable[[trio.SocketStream], Awaitable[object]],
    stream: trio.SocketStream,
    admission: Admission,
    name: str,
    peer: str,
) -> None:
    try:
        await handler(stream)
    finally:
        admission.release(name, peer)
        await trio.aclose_forcefully(stream)


def _close_now(stream: trio.SocketStream) -> None:
    """Close without waiting: a refused connection costs no task and no time."""
    try:
        stream.socket.close()
    except OSError:
        pass
