"""The S3 data plane as one ASGI application.

Per request: resolve the addressed bucket and key (addressing.py), pick the operation from the
dispatch table (routing.py), verify the signature (auth.py), run the handler, render S3Error as
S3's error XML (errors.py), add `x-amz-request-id` / `x-amz-id-2`, send, and hand a
`RequestRecord` to `on_request`. Handlers return values (`S3Response`) and never touch ASGI.

The edge injects `scope["extensions"]["mrapsim"] = {"connection_id": ..., "listener": ...}`;
it is copied into the record so request logs join connection logs.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

from mrapsim.config import Config
from mrapsim.faults import FaultSet
from mrapsim.s3.addressing import resolve_target
from mrapsim.s3.auth import Rejected, SignedRequest, Verifier
from mrapsim.s3.context import Context
from mrapsim.s3.errors import (
    S3Error,
    from_store_error,
    internal_error,
    not_implemented,
    render_error,
)
from mrapsim.s3.faults import RequestFaults, apply_request_faults, faulty_send
from mrapsim.s3.records import RequestRecord
from mrapsim.s3.request import ClientDisconnected, RequestBody, S3Request, Target, parse_query
from mrapsim.s3.responses import XML_CONTENT_TYPE, S3Response
from mrapsim.s3.routing import UNKNOWN_OPERATION, resolve_route
from mrapsim.s3.tokens import ContinuationTokens
from mrapsim.store import Store, StoreError

logger = logging.getLogger("mrapsim.s3")

RequestHook = Callable[[RequestRecord], None]
NO_CONTENT_LENGTH = (204, 304)
# How much of an unread request body is read and dropped before an error response, so that the
# client (which sends the whole body before it reads: Expect: 100-continue is answered at once by
# hypercorn) gets the error rather than a reset. Larger bodies cost the connection instead.
MAX_DISCARD = 128 * 1024 * 1024


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_app(
    config: Config,
    store: Store,
    *,
    on_request: RequestHook | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
    faults: FaultSet | None = None,
) -> ASGIApp:
    """The S3 ASGI app serving `store` as `config` describes (auth, MRAPs); `faults` are the
    server's current faults, of which this app applies the S3 ones."""
    return S3App(config, store, on_request=on_request, clock=clock, faults=faults)


@dataclass
class _Tally:
    """What one request has done so far, for its RequestRecord. Lives for one request."""

    operation: str = UNKNOWN_OPERATION
    target: Target | None = None
    access_key: str | None = None
    status: int = 0
    error_code: str | None = None
    bytes_out: int = 0
    body: RequestBody | None = None
    faults: RequestFaults = field(default_factory=RequestFaults)


class S3App:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        on_request: RequestHook | None,
        clock: Callable[[], dt.datetime],
        faults: FaultSet | None = None,
    ) -> None:
        self._faults = faults
        self._config = config
        self._store = store
        self._on_request = on_request
        self._clock = clock
        self._verifier = Verifier(config.auth)
        self._tokens = ContinuationTokens.from_secrets(c.secret_key for c in config.auth.credentials)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise RuntimeError(f"the S3 app serves HTTP, not {scope['type']!r}")
        started = time.perf_counter()
        request_id = secrets.token_hex(8).upper()
        host_id = base64.b64encode(secrets.token_bytes(48)).decode("ascii")
        tally = _Tally()
        try:
            await self._serve(scope, receive, send, request_id, host_id, tally)
        except ClientDisconnected:
            tally.error_code = tally.error_code or "ClientDisconnected"
        finally:
            if self._on_request is not None:
                self._on_request(_record(scope, request_id, tally, time.perf_counter() - started))

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        host_id: str,
        tally: _Tally,
    ) -> None:
        method: str = scope["method"]
        raw_path_bytes: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        raw_path = raw_path_bytes.decode("latin-1")
        raw_query = bytes(scope.get("query_string", b"")).decode("latin-1")
        headers = tuple((_text(name).lower(), _text(value)) for name, value in scope["headers"])
        is_head = method == "HEAD"
        try:
            response = await self._handle(
                method,
                raw_path,
                raw_path_bytes,
                raw_query,
                headers,
                receive,
                request_id,
                host_id,
                tally,
            )
        except (S3Error, StoreError) as caught:
            error = caught if isinstance(caught, S3Error) else from_store_error(caught)
            response = _error_response(error, raw_path, request_id, host_id, head=is_head)
            tally.error_code = error.code
            if tally.body is None:
                tally.body = RequestBody(receive, None)
            if not tally.body.complete and not await tally.body.discard(MAX_DISCARD):
                response = response.closing()
        except ClientDisconnected:
            raise
        except Exception:
            logger.exception("request %s failed", request_id)
            response = _error_response(internal_error(), raw_path, request_id, host_id, head=is_head)
            tally.error_code = "InternalError"
        tally.status = response.status
        if tally.faults.body is not None and response.status < 300:  # truncate_body, corrupt_body
            send = faulty_send(send, tally.faults.body, (scope.get("extensions") or {}).get("mrapsim", {}).get("reset"))
        await _send_response(send, response, request_id, host_id, is_head, tally)

    async def _handle(
        self,
        method: str,
        raw_path: str,
        raw_path_bytes: bytes,
        raw_query: str,
        headers: tuple[tuple[str, str], ...],
        receive: Receive,
        request_id: str,
        host_id: str,
        tally: _Tally,
    ) -> S3Response:
        header_map = dict(headers)
        target = resolve_target(header_map.get("host", ""), raw_path_bytes, self._config.mraps)
        tally.target = target
        query = parse_query(raw_query)
        route = resolve_route(method, target.level, query, header_map)
        if route is not None:
            tally.operation = route.operation
        verdict = self._verifier.verify(SignedRequest(method, raw_path, raw_query, headers), self._clock())
        if isinstance(verdict, Rejected):
            raise S3Error(verdict.code, verdict.message, verdict.status, **dict(verdict.extra))
        tally.access_key = verdict.access_key
        if route is not None:
            await self._inject_faults(route.operation, target, tally)
        if route is None or route.handler is None:
            what = route.operation if route else f"{method} {target.level.value} {sorted(query)}"
            raise not_implemented(what)
        body = RequestBody(receive, verdict.payload_sha256)
        tally.body = body
        request = S3Request(method, raw_path, raw_query, query, headers, target, verdict, request_id, host_id)
        context = Context(request, body, self._store, self._config, self._tokens, self._clock)
        return await route.handler(context)

    async def _inject_faults(self, operation: str, target: Target, tally: _Tally) -> None:
        """The S3 faults in force for this request (s3/faults.py): each applies with its rate."""
        if self._faults is not None:
            await apply_request_faults(self._faults, operation, target.bucket, target.key, tally.faults)


def _text(raw: bytes) -> str:
    """Header bytes as text: UTF-8 when they are (that is what clients sign), else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _error_response(error: S3Error, raw_path: str, request_id: str, host_id: str, *, head: bool) -> S3Response:
    body = render_error(error, resource=unquote(raw_path) or "/", request_id=request_id, host_id=host_id)
    # A HEAD error has no body; botocore then names the error by its status ("404").
    return S3Response(error.status, (("content-type", XML_CONTENT_TYPE), *error.headers), b"" if head else body)


async def _send_response(
    send: Send, response: S3Response, request_id: str, host_id: str, is_head: bool, tally: _Tally
) -> None:
    headers = [(name.encode("latin-1"), value.encode("utf-8")) for name, value in response.headers]
    headers += [
        (b"x-amz-request-id", request_id.encode("ascii")),
        (b"x-amz-id-2", host_id.encode("ascii")),
    ]
    body = response.body
    if response.status not in NO_CONTENT_LENGTH:
        length = response.content_length if response.content_length is not None else _length(body)
        if length is not None and not (is_head and response.status >= 400):
            headers.append((b"content-length", str(length).encode("ascii")))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if is_head or response.status in NO_CONTENT_LENGTH:
        await send({"type": "http.response.body", "body": b""})
        return
    if isinstance(body, bytes):
        await send({"type": "http.response.body", "body": body})
        tally.bytes_out += len(body)
        return
    for chunk in body:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        tally.bytes_out += len(chunk)
    await send({"type": "http.response.body", "body": b""})


def _length(body: bytes | Iterable[bytes]) -> int | None:
    return len(body) if isinstance(body, bytes) else None


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _record(scope: Scope, request_id: str, tally: _Tally, duration: float) -> RequestRecord:
    extensions: dict[str, Any] = scope.get("extensions") or {}
    trace: dict[str, Any] = extensions.get("mrapsim") or {}
    target = tally.target
    return RequestRecord(
        connection_id=trace.get("connection_id"),
        listener=trace.get("listener"),
        request_id=request_id,
        method=scope["method"],
        operation=tally.operation,
        addressing=target.addressing.value if target else None,
        bucket=target.bucket if target else None,
        key=target.key if target else None,
        access_key=tally.access_key,
        status=tally.status,
        error_code=tally.error_code,
        duration=duration,
        bytes_in=tally.body.bytes_received if tally.body else 0,
        bytes_out=tally.bytes_out,
        faults=tuple(tally.faults.names),
    )
