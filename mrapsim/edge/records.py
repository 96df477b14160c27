"""What the edge remembers about each connection: the connections open now, whose
records are made on demand with their figures so far, and the bounded ring of closed ones."""

from __future__ import annotations

import collections
import datetime
import enum
import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import trio

from mrapsim.outcomes import Outcome

TLS_VERSION_NAMES = {
    0x0002: "SSLv2",
    0x0300: "SSLv3",
    0x0301: "TLSv1.0",
    0x0302: "TLSv1.1",
    0x0303: "TLSv1.2",
    0x0304: "TLSv1.3",
}


def tls_version_name(code: int) -> str:
    return TLS_VERSION_NAMES.get(code, f"0x{code:04x}")


class ConnectionState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class ConnectionRecord:
    """A connection as it ended, or, while it is open, as it is so far: then its duration, bytes
    and requests are those up to now, and `outcome` and `action` are None until the ClientHello
    has been read and decided on."""

    id: str
    state: ConnectionState
    start: float  # seconds since the epoch
    peer: str
    listener: str
    sni: str | None
    alpn_offered: tuple[str, ...]
    tls_versions_offered: tuple[str, ...]
    ech_offered: bool
    ja4: str | None
    ja3: str | None
    client_hello_bytes: int
    outcome: Outcome | None
    action: str | None  # forward:<route>, stall, reset, close, alert:<name>
    reason: str | None  # why a connection was not forwarded, in words
    tls_version: str | None  # negotiated, for builtin routes
    alpn: str | None  # negotiated, for builtin routes
    requests: int
    bytes_in: int
    bytes_out: int
    duration: float
    faults: tuple[str, ...] = ()  # names of the toxics the connection got (docs/faults.md)
    # "bucket@region" the connection's latest MRAP request was routed to (s3/mraps.py), if any.
    mrap_routed: str | None = None

    def to_json(self) -> dict[str, Any]:
        # A shallow copy: every field is a scalar, a tuple of scalars or an enum (replaced
        # below), so asdict's deep copy bought nothing and cost most of a JSON log line.
        document = dict(vars(self))
        document["start"] = (
            datetime.datetime.fromtimestamp(self.start, datetime.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        document["state"] = self.state.value
        document["outcome"] = self.outcome.value if self.outcome else None
        document["duration"] = round(self.duration, 6)
        return document


@dataclass(frozen=True)
class Refusal:
    """A connection the edge decided not to forward, known as soon as the decision is made."""

    connection_id: str
    listener: str
    peer: str
    sni: str | None
    outcome: Outcome
    action: str
    reason: str | None


@dataclass(frozen=True)
class RecordQuery:
    limit: int = 100
    outcome: Outcome | None = None
    sni: str | None = None
    listener: str | None = None
    since: float | None = None  # seconds since the epoch
    state: ConnectionState | None = None  # None: open and closed

    def admits(self, record: ConnectionRecord) -> bool:
        return (
            (self.state is None or record.state == self.state)
            and (self.outcome is None or record.outcome == self.outcome)
            and (self.sni is None or (record.sni or "").lower() == self.sni.lower())
            and (self.listener is None or record.listener == self.listener)
            and (self.since is None or record.start >= self.since)
        )


class RecordRing:
    """The newest `capacity` connection records; older ones fall off the end."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._records: collections.deque[ConnectionRecord] = collections.deque(maxlen=capacity)

    def add(self, record: ConnectionRecord) -> None:
        self._records.append(record)

    def __len__(self) -> int:
        return len(self._records)

    def newest_first(self) -> Iterator[ConnectionRecord]:
        return reversed(self._records)


@dataclass(frozen=True)
class OpenConnection:
    id: str
    listener: str
    start: float  # seconds since the epoch
    record: Callable[[], ConnectionRecord]  # its record so far, made when asked for


class OpenConnections:
    """The connections open now, by id; `wait_until_empty` is what a draining server awaits."""

    def __init__(self) -> None:
        self._open: dict[str, OpenConnection] = {}
        self._empty = trio.Event()
        self._empty.set()

    def add(self, connection: OpenConnection) -> None:
        if self._empty.is_set():
            self._empty = trio.Event()  # a trio Event is set once: a new one for the next time
        self._open[connection.id] = connection

    def remove(self, connection_id: str) -> None:
        self._open.pop(connection_id, None)
        if not self._open:
            self._empty.set()

    def __len__(self) -> int:
        return len(self._open)

    async def wait_until_empty(self) -> None:
        await self._empty.wait()

    def newest_first(self) -> Iterator[ConnectionRecord]:
        """Records made one at a time, newest start first: a query stops at its limit."""
        for connection in sorted(self._open.values(), key=lambda c: c.start, reverse=True):
            yield connection.record()


def find_records(query: RecordQuery, open_now: OpenConnections, closed: RecordRing) -> list[ConnectionRecord]:
    """Newest start first; closed records keep the ring's order (closing order) among themselves."""
    candidates: list[Iterator[ConnectionRecord]] = []
    if query.state in (None, ConnectionState.OPEN):
        candidates.append(open_now.newest_first())
    if query.state in (None, ConnectionState.CLOSED):
        candidates.append(closed.newest_first())
    merged = heapq.merge(*candidates, key=lambda record: record.start, reverse=True)
    return list(itertools.islice(filter(query.admits, merged), query.limit))
