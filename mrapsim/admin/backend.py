"""What the admin API reads and changes, behind one small protocol.

One process answers from its own state (`LocalBackend`); the supervisor asks every worker and
merges the answers (`admin/workers.py`). The route table (`admin/app.py`) is written once, over
either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import trio

from mrapsim.admin.toxiproxy import ToxiproxyApi
from mrapsim.config import Config
from mrapsim.edge.records import RecordQuery
from mrapsim.faults import FaultSet
from mrapsim.s3.records import REQUESTS_PER_CONNECTION, RequestQuery
from mrapsim.store import MrapInfo, Store
from mrapsim.telemetry import Telemetry


class BackendError(Exception):
    """The backend could not answer (a worker did not); the message says why in words."""


class AdminBackend(Protocol):
    @property
    def config(self) -> Config: ...

    async def readiness(self) -> dict[str, Any]:
        """The `/readyz` document; its `ready` member decides the status code."""
        ...

    async def metrics(self) -> bytes:
        """Prometheus text exposition."""
        ...

    async def connections(self, query: RecordQuery) -> list[dict[str, Any]]: ...

    async def connection(self, connection_id: str) -> dict[str, Any] | None:
        """One connection's record with its `recent_requests` (newest first); None when no
        process remembers it."""
        ...

    async def requests(self, query: RequestQuery) -> list[dict[str, Any]]:
        """The newest request records, newest first (`RequestRecord.to_json`)."""
        ...

    async def faults(self) -> list[dict[str, Any]]: ...

    async def add_fault(self, document: object) -> str:
        """The new fault's id; FaultError when `document` is not a fault."""
        ...

    async def replace_faults(self, documents: list[object]) -> None:
        """FaultError when one of `documents` is not a fault; then nothing changes."""
        ...

    async def remove_fault(self, fault_id: str) -> bool:
        """False when there is no such fault."""
        ...

    async def toxiproxy(self, method: str, path: str, document: object) -> tuple[int, Any]:
        """Toxiproxy's REST API (admin/toxiproxy.py): status and JSON answer (None: no body).
        `path` is the request's path as sent, percent-encoding kept."""
        ...

    async def mraps(self) -> list[dict[str, Any]]:
        """The MRAPs and their routes, as the store has them now, with the replication copies
        waiting for each route's bucket (`backlog`; the MRAP's is their sum)."""
        ...

    async def set_mrap_dials(self, name: str, dials: object) -> dict[str, Any] | None:
        """Set traffic dials from `{"bucket": dial, ...}` (name, alias or ARN); the MRAP after,
        None when there is none; ValueError for a bad document."""
        ...


def count_tasks(root: trio.lowlevel.Task | None) -> int:
    """Tasks in the tree under `root` (a leak of tasks shows as growth here, in a soak)."""
    count, pending = 0, [root] if root is not None else []
    while pending:
        task = pending.pop()
        count += 1
        pending += [child for nursery in task.child_nurseries for child in nursery.child_tasks]
    return count


@dataclass
class ServerState:
    """What the admin API reports about one process's life: bound addresses and phase."""

    listeners: dict[str, str] = field(default_factory=dict)
    admin: str | None = None
    ready: bool = False
    draining: bool = False


@dataclass(frozen=True)
class LocalBackend:
    """The admin API of one process, over that process's own state."""

    state: ServerState
    telemetry: Telemetry
    fault_set: FaultSet
    store: Store | None = None

    @property
    def config(self) -> Config:
        return self.telemetry.config

    async def readiness(self) -> dict[str, Any]:
        ready = self.state.ready and not self.state.draining
        return {"ready": ready, "draining": self.state.draining, "listeners": self.state.listeners}

    async def metrics(self) -> bytes:
        self.telemetry.metrics.tasks.set(count_tasks(trio.lowlevel.current_root_task()))
        return self.telemetry.metrics.render()

    async def connections(self, query: RecordQuery) -> list[dict[str, Any]]:
        return [record.to_json() for record in self.telemetry.records(query)]

    async def connection(self, connection_id: str) -> dict[str, Any] | None:
        record = self.telemetry.record(connection_id)
        kept = await self.requests(RequestQuery(REQUESTS_PER_CONNECTION, connection_id))
        if record is None and not kept:
            return None
        # `requests` is the connection's count of requests; `recent_requests` those still kept
        document = record.to_json() if record is not None else {"id": connection_id}
        return {**document, "recent_requests": kept}

    async def requests(self, query: RequestQuery) -> list[dict[str, Any]]:
        return [record.to_json(finished) for finished, record in self.telemetry.recent_requests(query)]

    async def faults(self) -> list[dict[str, Any]]:
        return [fault.to_json() for fault in self.fault_set.all()]

    async def add_fault(self, document: object) -> str:
        return self.fault_set.add(self.fault_set.parse(document))

    async def replace_faults(self, documents: list[object]) -> None:
        self.fault_set.load(documents)

    async def remove_fault(self, fault_id: str) -> bool:
        return self.fault_set.remove(fault_id)

    async def toxiproxy(self, method: str, path: str, document: object) -> tuple[int, Any]:
        return ToxiproxyApi(self.config, self.state.listeners, self.fault_set).handle(method, path, document)

    async def mraps(self) -> list[dict[str, Any]]:
        if self.store is None:
            return []
        # the queue is the store's: with --workers every worker reads the same numbers
        backlog = await self.store.replication_backlog()
        return [mrap_document(m, backlog) for m in await self.store.list_mraps()]

    async def set_mrap_dials(self, name: str, dials: object) -> dict[str, Any] | None:
        if self.store is None:
            return None
        if not isinstance(dials, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100 for v in dials.values()
        ):
            raise ValueError('PUT /mraps/{name}/routes takes {"<bucket>": <dial 0-100>, ...}')
        ref = name.rsplit("accesspoint/", 1)[-1]
        for mrap in await self.store.list_mraps():
            if ref in (mrap.name, mrap.alias):
                unknown = set(dials) - {r.bucket for r in mrap.routes}
                if unknown:
                    raise ValueError(f"not buckets of {mrap.name}: {sorted(unknown)}")
                routes = tuple(replace(r, dial=dials.get(r.bucket, r.dial)) for r in mrap.routes)
                updated = replace(mrap, routes=routes)
                await self.store.put_mrap(updated)
                return mrap_document(updated, await self.store.replication_backlog())
        return None


def mrap_document(mrap: MrapInfo, backlog: Mapping[str, int]) -> dict[str, Any]:
    """`backlog`: the replication copies waiting, by target bucket (`Store.replication_backlog`:
    paused or not yet due). A route's is the copies waiting to land in its bucket; the MRAP's is
    the sum over its routes."""
    routes = [
        {"bucket": r.bucket, "region": r.region, "dial": r.dial, "backlog": backlog.get(r.bucket, 0)}
        for r in mrap.routes
    ]
    return {
        "name": mrap.name,
        "alias": mrap.alias,
        "account": mrap.account,
        "client_region": mrap.client_region,
        "routes": routes,
        "backlog": sum(backlog.get(r.bucket, 0) for r in mrap.routes),
    }
