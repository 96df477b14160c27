"""The admin API (plain HTTP): one explicit route table over an `AdminBackend`, for one process
and for the supervisor of several alike."""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mrapsim.admin.backend import AdminBackend, BackendError
from mrapsim.admin.query import BadQuery, parse_record_query
from mrapsim.config import redact
from mrapsim.faults import FaultError

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def create_admin_app(backend: AdminBackend) -> Starlette:
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        body = await backend.readiness()
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    async def metrics(request: Request) -> Response:
        return Response(await backend.metrics(), media_type=PROMETHEUS_CONTENT_TYPE)

    async def connections(request: Request) -> Response:
        try:
            query = parse_record_query(dict(request.query_params))
        except BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(await backend.connections(query))

    async def config(request: Request) -> Response:
        return Response(
            json.dumps(redact(backend.config.raw), indent=2, default=str),
            media_type="application/json",
        )

    async def faults_endpoint(request: Request) -> Response:
        try:
            if request.method == "PUT":
                documents = await read_json(request)
                if not isinstance(documents, list):
                    raise FaultError("PUT /faults takes a JSON list of faults")
                await backend.replace_faults(documents)
            elif request.method == "POST":
                fault_id = await backend.add_fault(await read_json(request))
                return JSONResponse({"id": fault_id}, status_code=201)
        except FaultError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(await backend.faults())

    async def fault_endpoint(request: Request) -> Response:
        if await backend.remove_fault(request.path_params["fault_id"]):
            return Response(status_code=204)
        return JSONResponse({"error": "no such fault"}, status_code=404)

    async def mraps_endpoint(request: Request) -> Response:
        return JSONResponse(await backend.mraps())

    async def mrap_routes_endpoint(request: Request) -> Response:
        try:
            updated = await backend.set_mrap_dials(request.path_params["name"], await read_json(request))
        except (ValueError, FaultError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if updated is None:
            return JSONResponse({"error": "no such Multi-Region Access Point"}, status_code=404)
        return JSONResponse(updated)

    async def backend_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=502)

    return Starlette(
        routes=[
            Route("/faults", faults_endpoint, methods=["GET", "PUT", "POST"]),
            Route("/faults/{fault_id}", fault_endpoint, methods=["DELETE"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/connections", connections),
            Route("/config", config),
            Route("/mraps", mraps_endpoint),
            Route("/mraps/{name:path}/routes", mrap_routes_endpoint, methods=["PUT"]),
        ],
        exception_handlers={BackendError: backend_error},
    )


async def read_json(request: Request) -> object:
    try:
        return json.loads(await request.body())
    except ValueError as exc:
        raise FaultError(f"the body is not JSON: {exc}") from exc
