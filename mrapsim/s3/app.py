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
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

import trio
from starlette.types import Message, Receive, Scope, Send

from mrapsim.config import Config
from mrapsim.faults import FaultSet
from mrapsim.replication import Replicator
from mrapsim.s3 import acl, control, cors
from mrapsim.s3.addressing import resolve_target
from mrapsim.s3.auth import Authorized, Rejected, Verdict, Verifier
from mrapsim.s3.context import Context
from mrapsim.s3.errors import (
    S3Error,
    from_store_error,
    internal_error,
    not_implemented,
    render_error,
)
from mrapsim.s3.faults import RequestFaults, apply_request_faults, faulty_send
from mrapsim.s3.headers import Headers
from mrapsim.s3.mraps import choose_route, no_such_access_point
from mrapsim.s3.records import RequestRecord
from mrapsim.s3.request import (
    Addressing,
    BodyLimits,
    ClientDisconnected,
    RequestBody,
    S3Request,
    Target,
    bounded_length,
)
from mrapsim.s3.responses import XML_CONTENT_TYPE, S3Response
from mrapsim.s3.routing import UNKNOWN_OPERATION, Route, resolve_route
from mrapsim.s3.tokens import ContinuationTokens
from mrapsim.s3.versioning import latest_delete_marker_headers
from mrapsim.store import MrapRoute, Store, StoreError

logger = logging.getLogger("mrapsim.s3")

RequestHook = Callable[[RequestRecord], None]
ConnectionReset = Callable[[], Awaitable[None]]
# Writes whose new version replicates to an MRAP's other buckets (DELETE with a versionId removes
# a version for good, which S3 does not replicate; it answers no x-amz-delete-marker of a new one).
READS = ("GetObject", "HeadObject")  # their NoSuchKey names a delete marker that is the latest version
REPLICATED = frozenset({"PutObject", "CopyObject", "CompleteMultipartUpload", "DeleteObject"})
NO_CONTENT_LENGTH = (204, 304)
# A client refused while it waits for 100 Continue gets the whole error at once, then the
# connection stays open this long reading and dropping whatever body it sends all the same
# (botocore may; the AWS SDKs wait at most 1 s for a 100), so that it reads the error rather
# than a reset; then it closes (`Connection: close`). The linger bounds the time, LINGER_DISCARD
# the bytes; any other error response drops at most `limits.max_discard` (RequestBody.discard).
CONTINUE_LINGER = 2.0
LINGER_DISCARD = 128 * 1024 * 1024
SEND_CONTINUE = "send_continue"  # edge/http1.py's hook in the scope's "mrapsim" extension
# Operations whose body is an XML document: refused while reading once larger than
# `limits.max_document`, before it is buffered.
DOCUMENT_OPERATIONS = frozenset({"DeleteObjects", "CompleteMultipartUpload", "CreateBucket"})


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_app(
    config: Config,
    store: Store,
    *,
    on_request: RequestHook | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
    faults: FaultSet | None = None,
    draining: Callable[[], bool] | None = None,
    replicator: Replicator | None = None,
) -> S3App:
    """The S3 ASGI app serving `store` as `config` describes (auth, MRAPs); `faults` are the
    server's current faults, of which this app applies the S3 ones. While `draining()` is true,
    HTTP/1.1 responses carry `Connection: close`, so that a client does not send its next
    request into a connection about to close. `replicator` queues MRAP replication."""
    return S3App(
        config, store, on_request=on_request, clock=clock, faults=faults, draining=draining, replicator=replicator
    )


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
        draining: Callable[[], bool] | None = None,
        replicator: Replicator | None = None,
    ) -> None:
        self._faults = faults
        self._replicator = replicator
        self._rng = random.Random()
        self._config = config
        self._draining = draining
        self._store = store
        self._on_request = on_request
        self._clock = clock
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """Serve the next requests with `config`'s credentials and MRAPs (SIGHUP); a request
        already running keeps what it started with."""
        self._config = config
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
        extension = (scope.get("extensions") or {}).get("mrapsim")
        tally = _Tally(trace=extension)
        trace: dict[str, Any] = extension or {}
        gate = _ContinueGate(receive, trace.get(SEND_CONTINUE))
        try:
            http1 = scope.get("http_version") in ("1.0", "1.1")
            await self._serve(request, gate, send, tally, trace.get("reset"), http1=http1)
        except ClientDisconnected:
            tally.error_code = tally.error_code or "ClientDisconnected"
        finally:
            if self._on_request is not None:
                self._on_request(_record(scope, request.request_id, tally, time.perf_counter() - started))

    async def _serve(
        self,
        request: S3Request,
        receive: _ContinueGate,
        send: Send,
        tally: _Tally,
        reset: ConnectionReset | None,
        *,
        http1: bool,
    ) -> None:
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
                tally.body = self._body(request, receive, None, tally.operation)
            if not tally.body.complete and receive.withholds_continue(request):
                await self._refuse_before_continue(send, response.closing(), request, is_head, tally)
                return
            # What is left of the body is read and dropped (up to limits.max_discard) so that a
            # client that sends it all before reading gets this error rather than a reset.
            if not tally.body.complete and not await tally.body.discard():
                response = response.closing()
        except ClientDisconnected:
            raise
        except Exception:
            logger.exception("request %s failed", request.request_id)
            response = _error_response(internal_error(), request, head=is_head)
            tally.error_code = "InternalError"
        if "origin" in request.headers and tally.operation != cors.PREFLIGHT:
            extra = await cors.response_headers(
                self._store, tally.target.bucket if tally.target else None, request.headers["origin"], request.method
            )
            response = response.with_headers(*extra)
        tally.status = response.status
        if tally.faults.body is not None and response.status < 300:  # truncate_body, corrupt_body
            send = faulty_send(send, tally.faults.body, reset)
        if http1 and self._draining is not None and self._draining():
            response = response.closing()
        await _send_response(send, response, request, is_head, tally)

    async def _refuse_before_continue(
        self, send: Send, response: S3Response, request: S3Request, is_head: bool, tally: _Tally
    ) -> None:
        """The error instead of the 100 (see CONTINUE_LINGER): sent whole, then the response is
        held open while whatever body still comes is dropped, then the connection closes."""
        tally.status = response.status
        await _send_response(send, response, request, is_head, tally, finish=False)
        assert tally.body is not None
        with trio.move_on_after(CONTINUE_LINGER):
            await tally.body.discard(LINGER_DISCARD)
        await send({"type": "http.response.body", "body": b""})

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
        resource = _path_style_path(request, target)
        checked = self._verifier.verify(request, self._clock(), expected_region, resource=resource)
        if isinstance(checked, Rejected) and expected_region and ("Region", expected_region) in checked.extra:
            error = S3Error(checked.code, checked.message, checked.status, **dict(checked.extra))
            raise error.with_headers(("x-amz-bucket-region", expected_region))
        verdict, anonymous = _admit(request, route, checked)
        tally.access_key = verdict.access_key
        if target.mrap is not None and not self._config.auth.can_sign_sigv4a(verdict.access_key):
            # What an MRAP answers a session that cannot sign SigV4A: a bare 500 (saml2aws PR 913,
            # aws-sdk-net issue 3004), so that failure can be rehearsed.
            raise internal_error()
        if route is not None:
            await self._inject_faults(route.operation, target, tally)
        if route is None or route.handler is None:
            what = route.operation if route else f"{request.method} {target.level.value} {sorted(request.query)}"
            raise not_implemented(what)
        body = self._body(request, receive, verdict.payload_sha256, tally.operation)
        tally.body = body
        context = Context(
            request, target, verdict, body, self._store, self._config, self._tokens, self._clock, anonymous
        )
        if anonymous:
            await acl.authorize_anonymous(context, route.operation)
        response = await route.handler(context)
        if "versionId" not in request.query:  # removing one version for good is not replicated
            await self._replicate(route.operation, target, response)
        await self._replicate_markers(target, context.new_markers)
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

    async def _replicate_markers(self, target: Target, markers: list[tuple[str, str]]) -> None:
        """Queue the delete markers a DeleteObjects added, like DeleteObject's one."""
        if self._replicator is None or target.bucket is None:
            return
        for key, version_id in markers:
            await self._replicator.written(target.bucket, key, version_id, delete_marker=True)

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
        if tally.trace is not None:  # the edge's per-connection dict (edge/connection.py)
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

    def _body(self, request: S3Request, receive: Receive, expected_sha256: str | None, operation: str) -> RequestBody:
        limits = self._config.limits
        body_limits = BodyLimits(
            timeout=limits.body_timeout,
            min_rate=limits.body_min_rate,
            rate_grace=limits.body_rate_grace,
            max_bytes=limits.max_document if operation in DOCUMENT_OPERATIONS else None,
            max_discard=limits.max_discard,
        )
        return RequestBody(receive, expected_sha256, body_limits, bounded_length(request.headers.get("content-length")))

    async def _inject_faults(self, operation: str, target: Target, tally: _Tally) -> None:
        """The S3 faults in force for this request (s3/faults.py): each applies with its rate."""
        if self._faults is not None:
            await apply_request_faults(self._faults, operation, target.bucket, target.key, tally.faults)


def _path_style_path(request: S3Request, target: Target) -> str:
    """The request's path as path-style addressing spells it, which is what SigV2 signs: a
    bucket is `/bucket/` (with its slash, as botocore signs it), an object `/bucket/key` as sent."""
    if target.bucket is not None and target.key is None:
        return f"/{target.bucket}/"
    path = request.raw_path or "/"
    if target.addressing is Addressing.VIRTUAL and target.bucket is not None:
        return f"/{target.bucket}{path}"
    return path


class _ContinueGate:
    """The ASGI `receive` of one request, which lets the edge's `100 Continue` go out
    (edge/http1.py) when the app first reads the body: after authentication and routing, as
    S3 does. Without the edge (a plain ASGI server) it is `receive` unchanged."""

    def __init__(self, receive: Receive, send_continue: Callable[[], Awaitable[None]] | None) -> None:
        self._receive = receive
        self._send_continue = send_continue
        self.started = False

    async def __call__(self) -> Message:
        if not self.started:
            self.started = True
            if self._send_continue is not None:
                await self._send_continue()
        return await self._receive()

    def withholds_continue(self, request: S3Request) -> bool:
        """True when the client waits for a 100 that has not gone out: then it never will (the
        body, if it comes anyway, is read through this gate without releasing it)."""
        expects = (request.headers.get("expect") or "").strip().lower() == "100-continue"
        withheld = expects and not self.started and self._send_continue is not None
        if withheld:
            self.started = True
        return withheld


# Operations a request reaches without a signature: a CORS preflight (browsers sign nothing) and
# POST Object (its form carries a signed policy, checked by post_object.py).
SELF_AUTHENTICATED = frozenset({cors.PREFLIGHT, "PostObject"})


def _admit(request: S3Request, route: Route | None, verdict: Verdict) -> tuple[Authorized, bool]:
    """The verdict a handler runs under, and whether the request is anonymous (acl.py then
    decides what it may do). A request refused only for carrying no signature at all is
    admitted to the operations that authenticate themselves and to those ACLs and bucket
    policies can open to everyone; any other refusal is the answer."""
    if isinstance(verdict, Authorized):
        return verdict, False
    unsigned = (
        verdict.code == "AccessDenied"
        and "authorization" not in request.headers
        and not any(name in request.query for name in ("X-Amz-Signature", "X-Amz-Algorithm", "Signature"))
    )
    operation = route.operation if route is not None else None
    if not unsigned or (operation not in SELF_AUTHENTICATED and operation not in acl.ANONYMOUS_OPERATIONS):
        raise S3Error(verdict.code, verdict.message, verdict.status, **dict(verdict.extra))
    anonymous = Authorized(None, None, False, None, request.headers.get("x-amz-content-sha256"))
    return anonymous, operation not in SELF_AUTHENTICATED


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


async def _send_response(
    send: Send, response: S3Response, request: S3Request, is_head: bool, tally: _Tally, *, finish: bool = True
) -> None:
    """Send `response`; with `finish=False` the last body message says more is coming (the caller
    ends the response later, with an empty body message)."""
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
        await send({"type": "http.response.body", "body": b"", "more_body": not finish})
        return
    if isinstance(body, bytes):
        await send({"type": "http.response.body", "body": body, "more_body": not finish})
        tally.bytes_out += len(body)
        return
    async for chunk in body:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        tally.bytes_out += len(chunk)
    await send({"type": "http.response.body", "body": b"", "more_body": not finish})


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
        faults=tuple(tally.faults.names),
        mrap=target.mrap if target else None,
        region=tally.routed.region if tally.routed else None,
    )
