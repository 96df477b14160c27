"""The S3 data plane as one ASGI application.

Per request: build the one request value (`S3Request`, request.py; its headers, headers.py,
join repeats with "," for every reader), resolve the addressed bucket and key (addressing.py),
pick the operation from the dispatch table (routing.py), verify the signature (auth.py, which
reads the same value), run the handler with a `Context` (context.py), render S3Error as
S3's error XML (errors.py), add `x-amz-request-id` / `x-amz-id-2`, send, and hand a
`RequestRecord` to `on_request`. Handlers return values (`S3Response`) and never touch ASGI.

The edge injects `scope["extensions"]["mrapsim"] = {"connection_id": ..., "listener": ...}`;
it is copied into the record so request logs join connection logs.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import random
import secrets
import time
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

import trio
from starlette.types import ASGIApp, Receive, Scope, Send

from mrapsim.config import Config
from mrapsim.faults import S3_ERRORS, FaultSet
from mrapsim.replication import Replicator
from mrapsim.s3 import control
from mrapsim.s3.addressing import resolve_target
from mrapsim.s3.auth import Rejected, Verifier
from mrapsim.s3.context import Context
from mrapsim.s3.errors import (
    S3Error,
    from_store_error,
    internal_error,
    not_implemented,
    render_error,
)
from mrapsim.s3.headers import Headers
from mrapsim.s3.mraps import choose_route, no_such_access_point
from mrapsim.s3.records import RequestRecord
from mrapsim.s3.request import ClientDisconnected, RequestBody, S3Request, Target
from mrapsim.s3.responses import XML_CONTENT_TYPE, S3Response
from mrapsim.s3.routing import UNKNOWN_OPERATION, Route, resolve_route
from mrapsim.s3.tokens import ContinuationTokens
from mrapsim.s3.versioning import latest_delete_marker_headers
from mrapsim.store import MrapRoute, Store, StoreError

logger = logging.getLogger("mrapsim.s3")

RequestHook = Callable[[RequestRecord], None]
# Writes whose new version replicates to an MRAP's other buckets (DELETE with a versionId removes
# a version for good, which S3 does not replicate; it answers no x-amz-delete-marker of a new one).
READS = ("GetObject", "HeadObject")  # their NoSuchKey names a delete marker that is the latest version
REPLICATED = frozenset({"PutObject", "CopyObject", "CompleteMultipartUpload", "DeleteObject"})
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
    replicator: Replicator | None = None,
) -> ASGIApp:
    """The S3 ASGI app serving `store` as `config` describes (auth, MRAPs); `faults` are the
    server's current faults, of which this app applies the S3 ones."""
    return S3App(config, store, on_request=on_request, clock=clock, faults=faults, replicator=replicator)


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
    routed: MrapRoute | None = None  # the MRAP bucket the request was sent to
    trace: dict[str, Any] | None = None  # scope["extensions"]["mrapsim"], when behind the edge


class S3App:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        on_request: RequestHook | None,
        clock: Callable[[], dt.datetime],
        faults: FaultSet | None = None,
        replicator: Replicator | None = None,
    ) -> None:
        self._faults = faults
        self._replicator = replicator
        self._rng = random.Random()
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
        request = _request(scope)
        tally = _Tally(trace=(scope.get("extensions") or {}).get("mrapsim"))
        try:
            await self._serve(request, receive, send, tally)
        except ClientDisconnected:
            tally.error_code = tally.error_code or "ClientDisconnected"
        finally:
            if self._on_request is not None:
                self._on_request(_record(scope, request.request_id, tally, time.perf_counter() - started))

    async def _serve(self, request: S3Request, receive: Receive, send: Send, tally: _Tally) -> None:
        is_head = request.method == "HEAD"
        try:
            response = await self._handle(request, receive, tally)
        except (S3Error, StoreError) as caught:
            error = caught if isinstance(caught, S3Error) else from_store_error(caught)
            if error.code == "NoSuchKey" and tally.target is not None and tally.operation in READS:
                error = error.with_headers(*await latest_delete_marker_headers(self._store, tally.target))
            response = _error_response(error, request, head=is_head)
            tally.error_code = error.code
            if tally.body is None:
                tally.body = RequestBody(receive, None)
            if not tally.body.complete and not await tally.body.discard(MAX_DISCARD):
                response = response.closing()
        except ClientDisconnected:
            raise
        except Exception:
            logger.exception("request %s failed", request.request_id)
            response = _error_response(internal_error(), request, head=is_head)
            tally.error_code = "InternalError"
        tally.status = response.status
        await _send_response(send, response, request, is_head, tally)

    async def _handle(self, request: S3Request, receive: Receive, tally: _Tally) -> S3Response:
        if control.is_control_path(request.raw_path):
            return await self._control(request, receive, tally)
        raw_path = request.raw_path.encode("latin-1")  # the request line's bytes, as received
        target = resolve_target(request.headers.get("host", ""), raw_path, self._config.mraps)
        if target.mrap is not None:
            target = await self._route_mrap(target, tally)
        tally.target = target
        route = resolve_route(request.method, target.level, request.query, request.headers)
        if route is not None:
            tally.operation = route.operation
        expected_region = await self._bucket_region(target, route)
        verdict = self._verifier.verify(request, self._clock(), expected_region)
        if isinstance(verdict, Rejected):
            error = S3Error(verdict.code, verdict.message, verdict.status, **dict(verdict.extra))
            if expected_region is not None and ("Region", expected_region) in verdict.extra:
                error = error.with_headers(("x-amz-bucket-region", expected_region))
            raise error
        tally.access_key = verdict.access_key
        if target.mrap is not None and not self._config.auth.can_sign_sigv4a(verdict.access_key):
            # What an MRAP answers a session that cannot sign SigV4A: a bare 500 (saml2aws PR 913,
            # aws-sdk-net issue 3004), so that failure can be rehearsed.
            raise internal_error()
        if route is not None:
            await self._inject_faults(route.operation, target)
        if route is None or route.handler is None:
            what = route.operation if route else f"{request.method} {target.level.value} {sorted(request.query)}"
            raise not_implemented(what)
        body = RequestBody(receive, verdict.payload_sha256)
        tally.body = body
        context = Context(request, target, verdict, body, self._store, self._config, self._tokens, self._clock)
        response = await route.handler(context)
        if "versionId" not in request.query:  # removing one version for good is not replicated
            await self._replicate(route.operation, target, response)
        return response

    async def _replicate(self, operation: str, target: Target, response: S3Response) -> None:
        """Queue the new version a write made for the bucket's MRAP partners (replication.py)."""
        if self._replicator is None or operation not in REPLICATED or target.bucket is None or target.key is None:
            return
        headers = dict(response.headers)
        version_id = headers.get("x-amz-version-id")
        if response.status < 300 and version_id:
            marker = headers.get("x-amz-delete-marker") == "true"
            await self._replicator.written(target.bucket, target.key, version_id, delete_marker=marker)

    async def _control(self, request: S3Request, receive: Receive, tally: _Tally) -> S3Response:
        """An S3 Control call (control.py): SigV4 for any Region, the account from
        `x-amz-account-id` or the `{account}.` host label."""
        tally.operation = control.operation_of(request.method, request.raw_path)
        verdict = self._verifier.verify(request, self._clock())
        if isinstance(verdict, Rejected):
            raise S3Error(verdict.code, verdict.message, verdict.status, **dict(verdict.extra))
        tally.access_key = verdict.access_key
        label = request.headers.get("host", "").split(".", 1)[0]
        account = request.headers.get("x-amz-account-id") or label
        if not (account.isdigit() and len(account) == 12) and tally.operation not in control.ACCOUNTLESS:
            raise S3Error("InvalidRequest", "An S3 Control request needs a 12-digit account id.", 400)
        body = RequestBody(receive, verdict.payload_sha256)
        tally.body = body
        now = self._clock()
        return await control.handle(tally.operation, request.raw_path, account, self._store, body.read_all, now)

    async def _route_mrap(self, target: Target, tally: _Tally) -> Target:
        """The MRAP's bucket for this request (mraps.py's rule), recorded for the request log and
        for the connection record (through the edge's per-connection trace)."""
        assert target.mrap is not None
        mrap = await self._store.find_mrap(target.mrap)
        if mrap is None:
            raise no_such_access_point(target.mrap)
        route = choose_route(mrap, self._rng)
        tally.routed = route
        if tally.trace is not None:  # the edge's per-connection dict (edge/forward.py)
            tally.trace["routed"] = f"{route.bucket}@{route.region}"
        return replace(target, bucket=route.bucket)

    async def _bucket_region(self, target: Target, route: Route | None) -> str | None:
        """The Region a SigV4 signature must name: the addressed bucket's (on an MRAP host, the
        bucket the request was routed to). None (any Region) for service-level requests, a
        bucket being created, or a bucket that does not exist (its handler answers that)."""
        if target.bucket is None or (route is not None and route.operation == "CreateBucket"):
            return None
        try:
            return (await self._store.get_bucket(target.bucket)).region
        except StoreError:
            return None

    async def _inject_faults(self, operation: str, target: Target) -> None:
        """The S3 faults in force for this request (SPEC §8): each applies with its rate."""
        if self._faults is None:
            return
        for fault in self._faults.s3_faults_for(operation, target.bucket, target.key):
            if self._rng.random() >= fault.rate:
                continue
            if fault.type == "s3_latency":
                jitter = self._rng.uniform(-fault.jitter_ms, fault.jitter_ms)
                await trio.sleep(max(0.0, fault.latency_ms + jitter) / 1000)
            elif fault.code is not None:
                status, message = S3_ERRORS[fault.code]
                error = S3Error(fault.code, message, status)
                raise error.with_headers(("retry-after", "1")) if status == 503 else error


def _request(scope: Scope) -> S3Request:
    """The one request value, from the scope, with the ids S3 answers it under."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    return S3Request(
        method=scope["method"],
        raw_path=raw_path.decode("latin-1"),
        raw_query=bytes(scope.get("query_string", b"")).decode("latin-1"),
        headers=Headers.from_raw(scope["headers"]),
        request_id=secrets.token_hex(8).upper(),
        host_id=base64.b64encode(secrets.token_bytes(48)).decode("ascii"),
    )


def _error_response(error: S3Error, request: S3Request, *, head: bool) -> S3Response:
    resource = unquote(request.raw_path) or "/"
    body = render_error(error, resource=resource, request_id=request.request_id, host_id=request.host_id)
    # A HEAD error has no body; botocore then names the error by its status ("404").
    return S3Response(error.status, (("content-type", XML_CONTENT_TYPE), *error.headers), b"" if head else body)


async def _send_response(send: Send, response: S3Response, request: S3Request, is_head: bool, tally: _Tally) -> None:
    headers = [(name.encode("latin-1"), value.encode("utf-8")) for name, value in response.headers]
    headers += [
        (b"x-amz-request-id", request.request_id.encode("ascii")),
        (b"x-amz-id-2", request.host_id.encode("ascii")),
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
    async for chunk in body:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        tally.bytes_out += len(chunk)
    await send({"type": "http.response.body", "body": b""})


def _length(body: bytes | AsyncIterable[bytes]) -> int | None:
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
        mrap=target.mrap if target else None,
        region=tally.routed.region if tally.routed else None,
    )
