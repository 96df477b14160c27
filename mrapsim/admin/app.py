"""The admin API (plain HTTP, SPEC §5): a small explicit route table over the server's state."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mrapsim.config import redact
from mrapsim.edge.records import RecordQuery
from mrapsim.faults import FaultError, FaultSet, parse_fault
from mrapsim.outcomes import Outcome
from mrapsim.telemetry import Telemetry

MAX_CONNECTIONS_LIMIT = 10_000
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class ServerState:
    """What the admin API reports about the server's life: bound addresses and phase."""

    listeners: dict[str, str] = field(default_factory=dict)
    admin: str | None = None
    ready: bool = False
    draining: bool = False


class BadQuery(ValueError):
    pass


def create_admin_app(state: ServerState, telemetry: Telemetry, faults: FaultSet) -> Starlette:
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        ready = state.ready and not state.draining
        body = {"ready": ready, "draining": state.draining, "listeners": state.listeners}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(telemetry.metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    async def connections(request: Request) -> Response:
        try:
            query = parse_record_query(dict(request.query_params))
        except BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse([record.to_json() for record in telemetry.ring.query(query)])

    async def config(request: Request) -> Response:
        return Response(
            json.dumps(redact(telemetry.config.raw), indent=2, default=str),
            media_type="application/json",
        )

    def fault_list() -> Response:
        return JSONResponse([fault.to_json() for fault in faults.all()])

    async def read_json(request: Request) -> object:
        try:
            return json.loads(await request.body())
        except ValueError as exc:
            raise FaultError(f"the body is not JSON: {exc}") from exc

    async def faults_endpoint(request: Request) -> Response:
        try:
            if request.method == "PUT":
                documents = await read_json(request)
                if not isinstance(documents, list):
                    raise FaultError("PUT /faults takes a JSON list of faults")
                faults.replace([parse_fault(d, f"faults[{i}]") for i, d in enumerate(documents)])
            elif request.method == "POST":
                fault_id = faults.add(parse_fault(await read_json(request)))
                return JSONResponse({"id": fault_id}, status_code=201)
        except FaultError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return fault_list()

    async def fault_endpoint(request: Request) -> Response:
        if faults.remove(request.path_params["fault_id"]):
            return Response(status_code=204)
        return JSONResponse({"error": "no such fault"}, status_code=404)

    return Starlette(
        routes=[
            Route("/faults", faults_endpoint, methods=["GET", "PUT", "POST"]),
            Route("/faults/{fault_id}", fault_endpoint, methods=["DELETE"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/connections", connections),
            Route("/config", config),
        ]
    )


def parse_record_query(params: dict[str, str]) -> RecordQuery:
    """`limit`, `outcome`, `sni`, `listener`, `since` (ISO 8601 or seconds since the epoch)."""
    unknown = set(params) - {"limit", "outcome", "sni", "listener", "since"}
    if unknown:
        raise BadQuery(f"unknown parameter(s) {', '.join(sorted(unknown))}")
    limit = 100
    if "limit" in params:
        if not params["limit"].isdigit() or not 1 <= int(params["limit"]) <= MAX_CONNECTIONS_LIMIT:
            raise BadQuery(f"limit must be an integer from 1 to {MAX_CONNECTIONS_LIMIT}")
        limit = int(params["limit"])
    outcome = None
    if "outcome" in params:
        try:
            outcome = Outcome(params["outcome"])
        except ValueError:
            raise BadQuery(f"outcome must be one of {', '.join(o.value for o in Outcome)}") from None
    return RecordQuery(
        limit=limit,
        outcome=outcome,
        sni=params.get("sni"),
        listener=params.get("listener"),
        since=parse_since(params["since"]) if "since" in params else None,
    )


def parse_since(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery("since must be ISO 8601 (2026-11-26T12:00:00Z) or seconds since the epoch") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()
