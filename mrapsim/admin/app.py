"""The admin API (plain HTTP): one explicit route table over an `AdminBackend`, for one process
and for the supervisor of several alike."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from mrapsim.admin.backend import AdminBackend, BackendError
from mrapsim.admin.guard import AdminGuard, AdminPolicy
from mrapsim.admin.page import event_stream, page_html
from mrapsim.admin.query import BadQuery, parse_record_query, parse_request_query
from mrapsim.config import redact
from mrapsim.faults import FaultConflict, FaultError

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def create_admin_app(backend: AdminBackend) -> ASGIApp:
    """The route table behind the guard (admin/guard.py) that `backend.config` asks for."""
    return AdminGuard(_routes(backend), AdminPolicy.from_config(backend.config))


def _routes(backend: AdminBackend) -> Starlette:
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        body = await backend.readiness()
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    async def metrics(request: Request) -> Response:
        return Response(await backend.metrics(), media_type=PROMETHEUS_CONTENT_TYPE)

    async def connections(request: Request) -> Response:
        return await _queried(request, parse_record_query, backend.connections)

    async def connection(request: Request) -> Response:
        """One connection's record and its recent requests."""
        document = await backend.connection(request.path_params["connection_id"])
        if document is None:
            return JSONResponse({"error": "no such connection (or no longer remembered)"}, status_code=404)
        return JSONResponse(document)

    async def requests(request: Request) -> Response:
        return await _queried(request, parse_request_query, backend.requests)

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
        except FaultConflict as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        except FaultError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(await backend.faults())

    async def fault_endpoint(request: Request) -> Response:
        if await backend.remove_fault(request.path_params["fault_id"]):
            return Response(status_code=204)
        return JSONResponse({"error": "no such fault"}, status_code=404)

    async def toxiproxy(request: Request) -> Response:
        """Toxiproxy's REST API (admin/toxiproxy.py), for its clients and CLI."""
        document = None
        body = await request.body()
        if body.strip():
            try:
                document = json.loads(body)
            except ValueError as exc:
                return JSONResponse({"error": f"bad request body: {exc}", "status": 400}, status_code=400)
        path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").partition("?")[0]
        status, answer = await backend.toxiproxy(request.method, path, document)
        return Response(status_code=status) if answer is None else JSONResponse(answer, status_code=status)

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

    async def page(request: Request) -> Response:
        """The live page (admin/page.py); it draws what `/events` streams."""
        return HTMLResponse(page_html(), headers=PAGE_HEADERS)

    async def events(request: Request) -> Response:
        return StreamingResponse(
            event_stream(backend),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def backend_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=502)

    async def too_large(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"the body is larger than {MAX_ADMIN_BODY} bytes"}, status_code=413)

    return Starlette(
        routes=[
            Route("/", page),
            Route("/events", events),
            Route("/faults", faults_endpoint, methods=["GET", "PUT", "POST"]),
            Route("/faults/{fault_id}", fault_endpoint, methods=["DELETE"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/connections", connections),
            Route("/connections/{connection_id}", connection),
            Route("/requests", requests),
            Route("/config", config),
            # Toxiproxy's API (its api.go routes), over the same fault set as /faults
            Route("/version", toxiproxy, methods=["GET"]),
            Route("/reset", toxiproxy, methods=["POST"]),
            Route("/populate", toxiproxy, methods=["POST"]),
            Route("/proxies", toxiproxy, methods=["GET", "POST"]),
            Route("/proxies/{proxy}", toxiproxy, methods=["GET", "POST", "PATCH", "DELETE"]),
            Route("/proxies/{proxy}/toxics", toxiproxy, methods=["GET", "POST"]),
            Route("/proxies/{proxy}/toxics/{toxic}", toxiproxy, methods=["GET", "POST", "PATCH", "DELETE"]),
            Route("/mraps", mraps_endpoint),
            Route("/mraps/{name:path}/routes", mrap_routes_endpoint, methods=["PUT"]),
        ],
        exception_handlers={BackendError: backend_error, BodyTooLarge: too_large},
    )


# The page loads nothing from anywhere but this origin, and no other site may frame it.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

Q = TypeVar("Q")
MAX_ADMIN_BODY = 1024 * 1024  # a fault list is a few KiB


class BodyTooLarge(Exception):
    pass


async def read_json(request: Request) -> object:
    """The body as JSON, read up to MAX_ADMIN_BODY bytes (BodyTooLarge beyond: a 413)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_ADMIN_BODY:
            raise BodyTooLarge()
    try:
        return json.loads(body)
    except ValueError as exc:
        raise FaultError(f"the body is not JSON: {exc}") from exc


async def _queried(
    request: Request, parse: Callable[[dict[str, str]], Q], fetch: Callable[[Q], Awaitable[object]]
) -> Response:
    """A listing endpoint: its query parameters parsed (400 with the reason), then the answer."""
    try:
        query = parse(dict(request.query_params))
    except BadQuery as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(await fetch(query))
