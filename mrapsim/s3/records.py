"""One record per request, handed to the edge's `on_request` hook for logs and metrics, and the
bounded ring of recent ones the admin API lists by connection."""

from __future__ import annotations

import collections
import datetime
import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RequestRecord:
    connection_id: str | None  # from scope["extensions"]["mrapsim"], None when not behind the edge
    listener: str | None
    request_id: str  # the x-amz-request-id sent to the client
    method: str
    operation: str  # "ListObjectsV2", ...; "Unknown" when no route matched
    addressing: str | None  # "path", "virtual", "mrap"; None when the host/path did not resolve
    bucket: str | None
    key: str | None
    access_key: str | None
    status: int
    error_code: str | None  # S3 error code of an error response, else None
    duration: float  # seconds, from the request's arrival to the last byte handed to the server
    bytes_in: int  # request body bytes read
    bytes_out: int  # response body bytes sent
    faults: tuple[str, ...] = ()  # names of the S3 faults the request got (docs/faults.md)
    mrap: str | None = None  # the MRAP alias addressed; `bucket` is then the bucket it routed to
    region: str | None = None  # that bucket's Region (MRAP requests)

    def to_json(self, finished: float) -> dict[str, Any]:
        """The record for the admin API; `time` is when the request finished (`finished`, seconds
        since the epoch): the time of its log line, and the order the ring keeps."""
        return {"time": iso_time(finished), **asdict(self), "duration": round(self.duration, 6)}


def iso_time(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# How many request records the admin API keeps (`GET /connections/{id}`, `GET /requests`): the
# newest REQUESTS_KEPT of all connections, of which a connection's detail lists its newest
# REQUESTS_PER_CONNECTION. A kept request holds ~0.6 KiB with its strings (measured with
# tracemalloc): ~3 MiB per process when full.
REQUESTS_KEPT = 5_000
REQUESTS_PER_CONNECTION = 50

# (seconds since the epoch when it finished, the record): one tuple per request, shared by both
# indexes of the ring; the record itself is not copied.
KeptRequest = tuple[float, RequestRecord]


@dataclass(frozen=True)
class RequestQuery:
    limit: int = 100
    connection_id: str | None = None  # None: every connection's


class RequestRing:
    """The newest request records, and by connection the newest of each. `add` is on every
    request's path, so it does O(1) work and no copying: two deque appends (each deque drops its
    oldest itself once full), one dict lookup, and, once the ring is full, the oldest request's
    removal from its connection's index."""

    def __init__(self, capacity: int = REQUESTS_KEPT, per_connection: int = REQUESTS_PER_CONNECTION) -> None:
        self._per_connection = per_connection
        self._all: collections.deque[KeptRequest] = collections.deque(maxlen=capacity)
        # Every request a connection's deque holds is in `_all` too: a connection's requests
        # leave `_all` oldest first, and each takes itself out of its connection's deque then.
        self._by_connection: dict[str | None, collections.deque[KeptRequest]] = {}

    def add(self, record: RequestRecord, finished: float) -> None:
        kept = (finished, record)
        if len(self._all) == self._all.maxlen:
            self._forget(self._all[0])  # about to fall off the end
        self._all.append(kept)
        mine = self._by_connection.get(record.connection_id)
        if mine is None:
            self._by_connection[record.connection_id] = collections.deque((kept,), maxlen=self._per_connection)
        else:
            mine.append(kept)

    def _forget(self, oldest: KeptRequest) -> None:
        """The oldest request of all is the oldest its connection keeps, unless the connection's
        own bound dropped it already."""
        connection_id = oldest[1].connection_id
        theirs = self._by_connection[connection_id]
        if theirs[0] is oldest:
            theirs.popleft()
            if not theirs:
                del self._by_connection[connection_id]

    def __len__(self) -> int:
        return len(self._all)

    def connections(self) -> int:
        """How many connections have requests kept."""
        return len(self._by_connection)

    def find(self, query: RequestQuery) -> list[KeptRequest]:
        """Newest first: of all connections, or of one (at most `per_connection` of its newest)."""
        if query.connection_id is None:
            newest: Iterator[KeptRequest] = reversed(self._all)
        else:
            newest = reversed(self._by_connection.get(query.connection_id, ()))
        return list(itertools.islice(newest, query.limit))
