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

from starlette.types import Receive

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


class ClientDisconnected(Exception):
    """The client went away while we were reading its body."""


class RequestBody:
    """The request body, read at most once, checked against the signed payload digest.

    A digest mismatch is only knowable at the end of the body, so it surfaces as an S3Error
    from the read that consumes the last byte — before any handler acts on the data.
    """

    def __init__(self, receive: Receive, expected_sha256: str | None) -> None:
        self._receive = receive
        self._expected_sha256 = expected_sha256
        self._consumed = False
        self.complete = False  # the last body message has been received
        self.bytes_received = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._consumed:
            raise RuntimeError("the request body was already read")
        self._consumed = True
        digest = hashlib.sha256() if self._expected_sha256 is not None else None
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk: bytes = message.get("body", b"")
            if chunk:
                self.bytes_received += len(chunk)
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

    async def discard(self, limit: int) -> bool:
        """Read and drop what is left of the body, up to `limit` bytes; True when it all came.

        An error answered before the body is read (a refused signature, a missing bucket) would
        otherwise leave the client writing into a connection nobody reads: hypercorn closes it,
        and the client reports a broken connection instead of the S3 error."""
        self._consumed = True
        dropped = 0
        while not self.complete:
            message = await self._receive()
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
