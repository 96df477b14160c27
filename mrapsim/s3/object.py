"""Object operations: GetObject, HeadObject, PutObject (plain bodies), DeleteObject.

GET and HEAD share one path: look up, evaluate conditions (RFC 9110 §13.2.2 order, which is
also S3's: If-Match, else If-Unmodified-Since → 412; If-None-Match, else If-Modified-Since →
304), then a single byte range (S3 serves no multi-range; an unparsable Range is ignored, an
unsatisfiable one is 416 InvalidRange). Full-object checksum headers are sent only on a full
200 with `x-amz-checksum-mode: ENABLED` — botocore validates ranged bodies against them too.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime

from mrapsim.s3.checksums import HEADER_PREFIX, checksums_from_headers
from mrapsim.s3.context import Context
from mrapsim.s3.errors import S3Error, not_implemented
from mrapsim.s3.responses import S3Response, empty_response
from mrapsim.store import BytesContent, ObjectInfo, ObjectWrite

STORED_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)
METADATA_PREFIX = "x-amz-meta-"
MAX_KEY_BYTES = 1024


def http_date(when: dt.datetime) -> str:
    return format_datetime(when.astimezone(dt.UTC), usegmt=True)


def object_headers(info: ObjectInfo) -> list[tuple[str, str]]:
    headers = [
        ("etag", info.etag),
        ("last-modified", http_date(info.last_modified)),
        ("content-type", info.content_type),
        ("accept-ranges", "bytes"),
    ]
    headers += list(info.stored_headers.items())
    headers += [(METADATA_PREFIX + name, value) for name, value in info.metadata.items()]
    if info.storage_class != "STANDARD":
        headers.append(("x-amz-storage-class", info.storage_class))
    return headers


# -- GET / HEAD ----------------------------------------------------------------------------------


async def get_object(ctx: Context) -> S3Response:
    return _read(ctx, with_body=True)


async def head_object(ctx: Context) -> S3Response:
    return _read(ctx, with_body=False)


def _read(ctx: Context, *, with_body: bool) -> S3Response:
    stored = ctx.store.get_object(ctx.bucket, ctx.key)
    info = stored.info
    not_modified = _evaluate_conditions(ctx, info)
    if not_modified:
        return empty_response(304, (("etag", info.etag), ("last-modified", http_date(info.last_modified))))
    headers = object_headers(info)
    byte_range = _parse_range(ctx.request.header("range"), info.size)
    if byte_range is None:
        start, stop, status = 0, info.size, 200
        if (ctx.request.header("x-amz-checksum-mode") or "").upper() == "ENABLED" and info.checksums:
            headers += [(HEADER_PREFIX + name, value) for name, value in info.checksums.items()]
            headers.append(("x-amz-checksum-type", "FULL_OBJECT"))
    else:
        start, stop, status = byte_range.start, byte_range.stop, 206
        headers.append(("content-range", f"bytes {start}-{stop - 1}/{info.size}"))
    length = stop - start
    if not with_body:
        return S3Response(status, tuple(headers), (), content_length=length)
    return S3Response(status, tuple(headers), stored.content.chunks(start, stop), content_length=length)


def _evaluate_conditions(ctx: Context, info: ObjectInfo) -> bool:
    """Raises PreconditionFailed; returns True when the answer is 304 Not Modified."""
    header = ctx.request.header
    if_match = header("if-match")
    if if_match is not None:
        if not _etag_matches(if_match, info.etag):
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                412,
                Condition="If-Match",
            )
    else:
        since = _parse_http_date(header("if-unmodified-since"))
        if since is not None and info.last_modified > since:
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                412,
                Condition="If-Unmodified-Since",
            )
    if_none_match = header("if-none-match")
    if if_none_match is not None:
        return _etag_matches(if_none_match, info.etag)
    since = _parse_http_date(header("if-modified-since"))
    return since is not None and info.last_modified <= since


def _etag_matches(condition: str, etag: str) -> bool:
    wanted = {tag.strip().removeprefix("W/") for tag in condition.split(",")}
    return "*" in wanted or etag in wanted or etag.strip('"') in wanted


def _parse_http_date(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class ByteRange:
    start: int
    stop: int  # exclusive


def _parse_range(text: str | None, size: int) -> ByteRange | None:
    """The satisfiable range asked for; None to serve the whole object; raises InvalidRange."""
    if not text or not text.startswith("bytes=") or "," in text:
        return None
    first, sep, last = text[len("bytes=") :].strip().partition("-")
    if (
        not sep
        or not (first.isdigit() or last.isdigit())
        or (first and not first.isdigit())
        or (last and not last.isdigit())
    ):
        return None
    if not first:  # suffix range: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _invalid_range(text, size)
        return ByteRange(max(0, size - suffix), size)
    start = int(first)
    stop = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return None
    if start >= size:
        raise _invalid_range(text, size)
    return ByteRange(start, stop)


def _invalid_range(text: str, size: int) -> S3Error:
    return S3Error(
        "InvalidRange",
        "The requested range is not satisfiable",
        416,
        RangeRequested=text,
        ActualObjectSize=size,
    ).with_headers(("content-range", f"bytes */{size}"))


# -- PUT / DELETE ------------------------------------------------------------------------------


async def put_object(ctx: Context) -> S3Response:
    request = ctx.request
    encoding = request.header("content-encoding") or ""
    content_sha256 = request.auth.content_sha256 or ""
    if "aws-chunked" in encoding.lower() or content_sha256.startswith("STREAMING-"):
        raise not_implemented("aws-chunked request bodies (Content-Encoding: aws-chunked)")
    if len(ctx.key.encode("utf-8")) > MAX_KEY_BYTES:
        raise S3Error(
            "KeyTooLongError",
            "Your key is too long",
            400,
            MaxSizeAllowed=MAX_KEY_BYTES,
            Size=len(ctx.key.encode("utf-8")),
        )
    if request.header("content-length") is None and request.header("transfer-encoding") is None:
        raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.", 411)
    ctx.store.get_bucket(ctx.bucket)  # fail before reading a body we would throw away
    data = await ctx.body.read_all()
    _check_content_md5(request.header("content-md5"), data)
    headers = dict(request.headers)
    checksums = checksums_from_headers(headers, data)
    write = ObjectWrite(
        content=BytesContent(data),
        content_type=headers.get("content-type", "binary/octet-stream"),
        metadata={
            name[len(METADATA_PREFIX) :]: value for name, value in request.headers if name.startswith(METADATA_PREFIX)
        },
        stored_headers={name: headers[name] for name in STORED_HEADERS if name in headers},
        checksums=checksums,
    )
    info = ctx.store.put_object(ctx.bucket, ctx.key, write)
    response_headers = [("etag", info.etag)]
    response_headers += [(HEADER_PREFIX + name, value) for name, value in checksums.items()]
    if checksums:
        response_headers.append(("x-amz-checksum-type", "FULL_OBJECT"))
    return empty_response(headers=tuple(response_headers))


def _check_content_md5(value: str | None, data: bytes) -> None:
    if value is None:
        return
    try:
        declared = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        declared = b""
    if len(declared) != 16:
        raise S3Error(
            "InvalidDigest",
            "The Content-MD5 you specified was invalid.",
            400,
            **{"Content-MD5": value},
        )
    if declared != hashlib.md5(data, usedforsecurity=False).digest():
        raise S3Error(
            "BadDigest",
            "The Content-MD5 you specified did not match what we received.",
            400,
            ExpectedDigest=declared.hex(),
            CalculatedDigest=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        )


async def delete_object(ctx: Context) -> S3Response:
    ctx.store.delete_object(ctx.bucket, ctx.key)
    return empty_response(204)
