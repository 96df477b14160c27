"""What the edge remembers about each connection (SPEC §4) and the bounded ring that holds it."""

from __future__ import annotations

import collections
import datetime
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

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


@dataclass(frozen=True)
class ConnectionRecord:
    id: str
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
    outcome: Outcome
    action: str  # forward:<route>, stall, reset, close, alert:<name>
    reason: str | None  # why a connection was not forwarded, in words
    tls_version: str | None  # negotiated, for builtin routes
    alpn: str | None  # negotiated, for builtin routes
    requests: int
    bytes_in: int
    bytes_out: int
    duration: float

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["start"] = (
            datetime.datetime.fromtimestamp(self.start, datetime.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        document["outcome"] = self.outcome.value
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

    def admits(self, record: ConnectionRecord) -> bool:
        return (
            (self.outcome is None or record.outcome == self.outcome)
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

    def query(self, query: RecordQuery) -> list[ConnectionRecord]:
        found: list[ConnectionRecord] = []
        for record in self.newest_first():
            if query.admits(record):
                found.append(record)
                if len(found) >= query.limit:
                    break
        return found
