"""A request as the S3 app sees it: what was received, and where it is addressed.

`S3Request` is built once per request, from the ASGI scope, and never changes: addressing,
routing, auth (which reads it as a `SignedRequest`) and the handlers all read this one value and
its one header semantics (headers.py). What the app derives from it (the `Target`, the auth
verdict) travels beside it in the handler's `Context`. The body is separate (`RequestBody`)
because reading it is stateful and may fail late (digest mismatch).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote

import trio
from starlette.types import Message, Receive

from mrapsim.s3.errors import S3Error
from mrapsim.s3.headers import Headers


class Addressing(enum.StrEnum):
    PATH = "path"  # /bucket/key on any host that does not name a bucket
    VIRTUAL = "virtual"  # bucket.s3[.region].amazonaws.com, bucket.localhost
    MRAP = "mrap"  # <alias>.accesspoint.s3-global.amazonaws.com (or the alias as a path bucket)


class Level(enum.StrEnum):
    """What a request is addressed to; the dispatch table is keyed on it."""

    SERVICE = "service"
    BUCKET = "bucket"
    OBJECT = "object"


@dataclass(frozen=True)
class Target:
    addressing: Addressing
    bucket: str | None
    key: str | None  # decoded; None when the path names no key
    mrap: str | None = None  # the MRAP alias addressed; `bucket` is then the bucket routed to

    @property
    def level(self) -> Level:
        if self.bucket is None:
            return Level.SERVICE
        return Level.BUCKET if self.key is None else Level.OBJECT


def parse_query(raw_query: str) -> dict[str, str]:
    """Decoded query parameters, first occurrence winning. `+` stays `+`: AWS signers encode a
    space as %20, and the canonical query (auth.py) decodes the same way."""
    params: dict[str, str] = {}
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            params.setdefault(unquote(name), unquote(value))
    return params


@dataclass(frozen=True)
class S3Request:
    method: str
    raw_path: str  # percent-encoded, exactly as on the request line (its bytes as Latin-1)
    raw_query: str  # without the "?"
    headers: Headers
    request_id: str
    host_id: str
    query: Mapping[str, str] = field(init=False)  # decoded from raw_query by parse_query

    def __post_init__(self) -> None:
        object.__setattr__(self, "query", MappingProxyType(parse_query(self.raw_query)))


# How long an error response waits for the rest of a body it will drop: a client that sends the
# whole body before it reads has sent it by then; a stalled one gets the error and a closed
# connection instead of waiting out the body deadline.
DISCARD_SECONDS = 1.0
MAX_DIGITS = 19  # every size, offset and count S3 takes fits in 19 decimal digits (< 2**63)


def bounded_int(text: str | None) -> int | None:
    """A non-negative decimal integer of at most MAX_DIGITS digits, or None: a 5,000-digit number
    is never converted (int() of it costs quadratic time, and past 4,300 digits raises)."""
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def bounded_length(text: str | None) -> int | None:
    """Content-Length as far as the body limits need it; None when absent or unreadable."""
    return bounded_int(text)


class ClientDisconnected(Exception):
    """The client went away while we were reading its body."""


@dataclass(frozen=True)
class BodyLimits:
    """How long a body may take and how large it may be (config.Limits, README "Limits")."""

    timeout: float = 300.0  # the whole body arrives within this long
    min_rate: int = 1024  # bytes/s on average once `rate_grace` has passed; 0: no minimum
    rate_grace: float = 10.0
    max_bytes: int | None = None  # a request document's limit; None: the operation's own checks
    max_discard: int = 64 * 1024


def request_timeout() -> S3Error:
    return S3Error(
        "RequestTimeout",
        "Your socket connection to the server was not read from or written to within the timeout period. "
        "Idle connections will be closed.",
        400,
    )


def too_large(limit: int) -> S3Error:
    return S3Error("MaxMessageLengthExceeded", "Your request was too big.", 400, MaxMessageLengthBytes=limit)


class RequestBody:
    """The request body, read at most once, checked against the signed payload digest.

    A digest mismatch is only knowable at the end of the body, so it surfaces as an S3Error
    from the read that consumes the last byte — before any handler acts on the data.

    Every read has a deadline: the body's total `timeout`, and the time by which a client sending
    at `min_rate` after `rate_grace` would have sent one more byte. A client slower than both gets
    S3's RequestTimeout, however little it sends (one byte a second never ends otherwise). A
    document operation's body is refused (MaxMessageLengthExceeded) as soon as it declares or
    sends more than `max_bytes`, before it is buffered.
    """

    def __init__(
        self,
        receive: Receive,
        expected_sha256: str | None,
        limits: BodyLimits | None = None,
        declared_length: int | None = None,
    ) -> None:
        self._receive = receive
        self._expected_sha256 = expected_sha256
        self._limits = limits or BodyLimits()
        self._declared_length = declared_length
        self._started = trio.current_time()
        self._consumed = False
        self._broken = False  # timed out or refused: what is left will not be read
        self.complete = False  # the last body message has been received
        self.bytes_received = 0

    def _deadline(self) -> float:
        limits = self._limits
        deadline = self._started + limits.timeout
        if limits.min_rate > 0:
            deadline = min(deadline, self._started + limits.rate_grace + (self.bytes_received + 1) / limits.min_rate)
        return deadline

    async def _next_message(self, deadline: float = float("inf")) -> Message:
        with trio.move_on_at(min(deadline, self._deadline())):
            return await self._receive()
        self._broken = True
        raise request_timeout()

    def _check_size(self) -> None:
        limit = self._limits.max_bytes
        if limit is None:
            return
        if self.bytes_received > limit or (self._declared_length or 0) > limit:
            self._broken = True
            raise too_large(limit)

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._consumed:
            raise RuntimeError("the request body was already read")
        self._consumed = True
        self._check_size()
        digest = hashlib.sha256() if self._expected_sha256 is not None else None
        while True:
            message = await self._next_message()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk: bytes = message.get("body", b"")
            if chunk:
                self.bytes_received += len(chunk)
                self._check_size()
                if digest is not None:
                    digest.update(chunk)
            more = bool(message.get("more_body", False))
            self.complete = not more
            if digest is not None and not more:
                self._check_digest(digest.hexdigest())
            if chunk:
                yield chunk
            if not more:
                return

    async def discard(self, limit: int | None = None) -> bool:
        """Read and drop what is left of the body, up to `limit` bytes (the configured
        `max_discard` by default); True when it all came.

        An error answered before the body is read (a refused signature, a missing bucket) would
        otherwise leave the client writing into a connection nobody reads: hypercorn closes it,
        and the client reports a broken connection instead of the S3 error. A body that declares
        more than the bound, or that timed out, is not read at all: the connection closes."""
        limit = self._limits.max_discard if limit is None else limit
        self._consumed = True
        if self._broken:
            return False
        if self._declared_length is not None and self._declared_length - self.bytes_received > limit:
            return False
        dropped = 0
        deadline = trio.current_time() + DISCARD_SECONDS
        while not self.complete:
            try:
                message = await self._next_message(deadline)
            except S3Error:
                return False
            if message["type"] == "http.disconnect":
                return False
            chunk: bytes = message.get("body", b"")
            self.bytes_received += len(chunk)
            dropped += len(chunk)
            self.complete = not message.get("more_body", False)
            if dropped > limit:
                return self.complete
        return True

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    def _check_digest(self, computed: str) -> None:
        if computed != self._expected_sha256:
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                400,
                ClientComputedContentSHA256=self._expected_sha256 or "",
                S3ComputedContentSHA256=computed,
            )
