"""The admin API of `--workers N`: every question goes to every worker's own admin API, and the
answers are merged — `/connections` and `/requests` newest first across workers, a single
connection from the worker that served it, `/metrics` summed, `/faults` changes applied by every
worker in the same order (so their fault ids agree; the first worker's answer is the answer),
`/mraps` from the first worker (the MRAPs and the replication queue are the one shared store's:
every worker reads the same backlog, which is not summed), readiness when every worker is
ready."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio
from prometheus_client.parser import text_string_to_metric_families

from mrapsim.admin.backend import BackendError
from mrapsim.admin.query import record_query_params, request_query_params
from mrapsim.config import Config
from mrapsim.edge.records import RecordQuery
from mrapsim.faults import FaultConflict, FaultError
from mrapsim.s3.records import RequestQuery

ADMIN_FETCH_SECONDS = 5.0


class WorkerPool(Protocol):
    """What the supervisor knows about its workers."""

    @property
    def config(self) -> Config: ...

    @property
    def listeners(self) -> dict[str, str]: ...

    @property
    def ready(self) -> bool: ...

    @property
    def stopping(self) -> bool: ...

    @property
    def worker_count(self) -> int: ...

    def worker_admins(self) -> list[str]: ...


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> str:
        try:
            return str(self.json()["error"])
        except (ValueError, KeyError, TypeError):
            return self.body.decode(errors="replace")


@dataclass(frozen=True)
class WorkersBackend:
    pool: WorkerPool

    @property
    def config(self) -> Config:
        return self.pool.config

    async def readiness(self) -> dict[str, Any]:
        return {
            "ready": self.pool.ready,
            "draining": self.pool.stopping,
            "listeners": self.pool.listeners,
            "workers": self.pool.worker_count,
        }

    async def metrics(self) -> bytes:
        answers = _expect(await self._ask_all("/metrics"), 200)
        return merge_metrics([answer.body.decode() for answer in answers]).encode()

    async def connections(self, query: RecordQuery) -> list[dict[str, Any]]:
        path = "/connections?" + urllib.parse.urlencode(record_query_params(query))
        answers = _expect(await self._ask_all(path), 200)
        return merge_connections([answer.json() for answer in answers], query.limit)

    async def connection(self, connection_id: str) -> dict[str, Any] | None:
        """A connection is served by one worker, which alone knows it (its requests too)."""
        answers = await self._ask_all(f"/connections/{urllib.parse.quote(connection_id, safe='')}")
        for answer in answers:
            if answer.status == 200:
                document: dict[str, Any] = answer.json()
                return document
        for answer in answers:
            if answer.status != 404:
                raise BackendError(f"a worker answered {answer.status}: {answer.error()}")
        if not answers:
            raise BackendError("no worker is ready")
        return None

    async def requests(self, query: RequestQuery) -> list[dict[str, Any]]:
        path = "/requests?" + urllib.parse.urlencode(request_query_params(query))
        answers = _expect(await self._ask_all(path), 200)
        return merge_requests([answer.json() for answer in answers], query.limit)

    async def faults(self) -> list[dict[str, Any]]:
        first = _expect(await self._ask_all("/faults"), 200)[0]
        documents: list[dict[str, Any]] = first.json()
        return documents

    async def add_fault(self, document: object) -> str:
        first = _fault_answer(await self._ask_all("/faults", "POST", document), 201)
        return str(first.json()["id"])

    async def replace_faults(self, documents: list[object]) -> None:
        _fault_answer(await self._ask_all("/faults", "PUT", documents), 200)

    async def remove_fault(self, fault_id: str) -> bool:
        first = _first(await self._ask_all(f"/faults/{urllib.parse.quote(fault_id, safe='')}", "DELETE"))
        if first.status not in (204, 404):
            raise BackendError(f"a worker answered DELETE /faults with {first.status}: {first.error()}")
        return first.status == 204

    async def toxiproxy(self, method: str, path: str, document: object) -> tuple[int, Any]:
        """Every worker applies the same change in the same order; the first one's answer is the answer."""
        first = _first(await self._ask_all(path, method, document))
        if first.status == 0:
            raise BackendError(first.error())
        return first.status, first.json() if first.body else None

    async def mraps(self) -> list[dict[str, Any]]:
        documents: list[dict[str, Any]] = _expect(await self._ask_all("/mraps"), 200)[0].json()
        return documents

    async def set_mrap_dials(self, name: str, dials: object) -> dict[str, Any] | None:
        """Every worker applies it to the one shared store (the same document: idempotent)."""
        first = _first(await self._ask_all(f"/mraps/{urllib.parse.quote(name, safe='')}/routes", "PUT", dials))
        if first.status == 400:
            raise ValueError(first.error())
        if first.status == 404:
            return None
        document: dict[str, Any] = _expect([first], 200)[0].json()
        return document

    async def _ask_all(self, path: str, method: str = "GET", document: object = None) -> list[Answer]:
        body = None if method in ("GET", "DELETE") else json.dumps(document).encode()
        return await fetch_all(self.pool.worker_admins(), path, method, body, self.pool.config.admin_token)


def _expect(answers: list[Answer], status: int) -> list[Answer]:
    for answer in answers:
        if answer.status != status:
            raise BackendError(f"a worker answered {answer.status}: {answer.error()}")
    if not answers:
        raise BackendError("no worker is ready")
    return answers


def _first(answers: list[Answer]) -> Answer:
    if not answers:
        raise BackendError("no worker is ready")
    return answers[0]


def _fault_answer(answers: list[Answer], status: int) -> Answer:
    """The first worker's answer to a fault change; the others got the same document."""
    first = _first(answers)
    if first.status == 400:
        raise FaultError(first.error())
    if first.status == 409:
        raise FaultConflict(first.error())
    return _expect([first], status)[0]


def _fetch(admin: str, path: str, method: str, body: bytes | None, token: str | None) -> Answer:
    """One call to a worker's admin API, which guards itself as the supervisor's does: the token
    (the workers read the same configuration) and a JSON body."""
    headers = {"content-type": "application/json"} if body is not None else {}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://{admin}{path}", method=method, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=ADMIN_FETCH_SECONDS) as response:
            return Answer(response.status, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read())
    except OSError as error:
        return Answer(0, f"worker admin API {admin} unreachable: {error}".encode())


async def fetch_all(
    admins: Sequence[str], path: str, method: str = "GET", body: bytes | None = None, token: str | None = None
) -> list[Answer]:
    """Ask every worker at once; the answers come back in the workers' order."""
    answers = [Answer(0, b"")] * len(admins)

    async def one(i: int, admin: str) -> None:
        answers[i] = await trio.to_thread.run_sync(_fetch, admin, path, method, body, token)

    async with trio.open_nursery() as nursery:
        for i, admin in enumerate(admins):
            nursery.start_soon(one, i, admin)
    return answers


def merge_connections(documents: Sequence[list[dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    merged = [record for document in documents for record in document]
    merged.sort(key=lambda record: record["start"], reverse=True)
    return merged[:limit]


def merge_requests(documents: Sequence[list[dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    """Newest first by `time`, when each finished: the order each worker lists its own in."""
    merged = [record for document in documents for record in document]
    merged.sort(key=lambda record: record["time"], reverse=True)
    return merged[:limit]


# Gauges that state a fact every worker knows alike (the build, the fault set, the replication
# backlog of the one shared store), not amounts to add.
FACT_GAUGES = ("mrapsim_build_info", "mrapsim_faults_active", "mrapsim_replication_backlog")


def merge_metrics(texts: Sequence[str]) -> str:
    """Sum samples with the same name and labels across workers; `_created` takes the earliest,
    build info and other gauges that are facts rather than amounts take the largest."""
    families: dict[str, tuple[str, str]] = {}
    values: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            families.setdefault(family.name, (family.type, family.documentation))
            for sample in family.samples:
                key = (family.name, sample.name, tuple(sorted(sample.labels.items())))
                if key not in values:
                    values[key] = sample.value
                elif sample.name.endswith("_created"):
                    values[key] = min(values[key], sample.value)
                elif family.name in FACT_GAUGES:
                    values[key] = max(values[key], sample.value)
                else:
                    values[key] += sample.value
    lines: list[str] = []
    for name, (kind, documentation) in families.items():
        lines.append(f"# HELP {name} {documentation}")
        lines.append(f"# TYPE {name} {kind}")
        for (family_name, sample_name, labels), value in values.items():
            if family_name == name:
                rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{sample_name}{{{rendered}}} {value!r}" if labels else f"{sample_name} {value!r}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
