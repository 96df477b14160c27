"""Object operations: GetObject, HeadObject, PutObject, DeleteObject, DeleteObjects.

GET and HEAD share one path: look up, evaluate conditions (RFC 9110 §13.2.2 order, which is
also S3's: If-Match, else If-Unmodified-Since → 412; If-None-Match, else If-Modified-Since →
304), then a single byte range (S3 serves no multi-range; an unparsable Range is ignored, an
unsatisfiable one is 416 InvalidRange). Full-object checksum headers are sent only on a full
200 with `x-amz-checksum-mode: ENABLED` — botocore validates ranged bodies against them too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime

from mrapsim.s3 import object_lock, sse
from mrapsim.s3.checksums import HEADER_PREFIX
from mrapsim.s3.context import Context
from mrapsim.s3.documents import child_text, malformed_xml, parse_request_document
from mrapsim.s3.errors import S3Error, invalid_argument, not_implemented
from mrapsim.s3.extras import read_headers, write_extras
from mrapsim.s3.payload import check_put_size, receive_body, stored_content_encoding
from mrapsim.s3.responses import S3Response, empty_response, xml_response
from mrapsim.s3.xml import document, leaf, node
from mrapsim.store import ObjectInfo, ObjectWrite, Precondition, stream_content

STORED_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)
METADATA_PREFIX = "x-amz-meta-"
MAX_KEY_BYTES = 1024
MAX_PART_NUMBER = 10_000
# GetObject/HeadObject query parameters that override a response header (signed requests only).
RESPONSE_OVERRIDES = {
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
    "response-content-language": "content-language",
    "response-content-type": "content-type",
    "response-expires": "expires",
}


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
    headers += version_headers(info)
    return headers


# -- GET / HEAD ----------------------------------------------------------------------------------


async def get_object(ctx: Context) -> S3Response:
    return await _read(ctx, with_body=True)


async def head_object(ctx: Context) -> S3Response:
    return await _read(ctx, with_body=False)


async def _read(ctx: Context, *, with_body: bool) -> S3Response:
    overrides = _response_overrides(ctx)
    stored = await ctx.store.get_object(ctx.bucket, ctx.key)
    info = stored.info
    not_modified = _evaluate_conditions(ctx, info)
    if not_modified:
        return empty_response(304, (("etag", info.etag), ("last-modified", http_date(info.last_modified))))
    sse.check_read(ctx, info.extras)
    headers = [(name, value) for name, value in object_headers(info) if name not in overrides]
    headers += read_headers(info)
    headers += overrides.items()
    part_number = ctx.request.query.get("partNumber")
    if part_number is not None:
        byte_range, part_headers = _part_range(ctx, info, part_number)
        headers += part_headers
    else:
        byte_range = _parse_range(ctx.request.headers.get("range"), info.size)
    if byte_range is None:
        start, stop, status = 0, info.size, 200
        if (ctx.request.headers.get("x-amz-checksum-mode") or "").upper() == "ENABLED":
            headers += checksum_headers(info.checksums, info.checksum_type)
    else:
        start, stop, status = byte_range.start, byte_range.stop, 206
        headers.append(("content-range", f"bytes {start}-{stop - 1}/{info.size}"))
    length = stop - start
    if not with_body:
        return S3Response(status, tuple(headers), b"", content_length=length)
    return S3Response(status, tuple(headers), stream_content(stored.content, start, stop), content_length=length)


def _response_overrides(ctx: Context) -> dict[str, str]:
    """The `response-*` header overrides; S3 honours them on signed requests only."""
    query = ctx.request.query
    overrides = {header: query[name] for name, header in RESPONSE_OVERRIDES.items() if name in query}
    if overrides and ctx.auth.access_key is None:
        raise S3Error(
            "InvalidRequest", "Request specific response headers cannot be used for anonymous GET requests.", 400
        )
    return overrides


def _part_range(ctx: Context, info: ObjectInfo, text: str) -> tuple[ByteRange | None, list[tuple[str, str]]]:
    """`?partNumber=N`: the bytes of part N of a multipart object (a single-part object has one
    part, the whole of it), answered 206 with `x-amz-mp-parts-count`."""
    if ctx.request.headers.get("range") is not None:
        raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter", 400)
    if not text.isdigit() or not 1 <= int(text) <= MAX_PART_NUMBER:
        raise invalid_argument("Part number must be an integer between 1 and 10000, inclusive", "partNumber", text)
    number = int(text)
    count = len(info.parts) or 1
    if number > count:
        raise S3Error(
            "InvalidPartNumber",
            "The requested partnumber is not satisfiable",
            416,
            PartNumberRequested=number,
            ActualPartCount=count,
        ).with_headers(("content-range", f"bytes */{info.size}"))
    if not info.parts:
        return (ByteRange(0, info.size) if info.size else None), []
    start = sum(part.size for part in info.parts[: number - 1])
    part = info.parts[number - 1]
    headers = [("x-amz-mp-parts-count", str(count))]
    checksum_mode = (ctx.request.headers.get("x-amz-checksum-mode") or "").upper()
    if info.checksum_type == "COMPOSITE" and checksum_mode == "ENABLED":
        headers += [(HEADER_PREFIX + name, value) for name, value in part.checksums.items()]
    return ByteRange(start, start + part.size), headers


def write_precondition(headers: Mapping[str, str]) -> Precondition | None:
    """A conditional write's `If-None-Match: *` / `If-Match: <etag>`, checked by the store."""
    if_none_match, if_match = headers.get("if-none-match"), headers.get("if-match")
    if if_none_match is None and if_match is None:
        return None
    if if_none_match is not None and if_none_match.strip() != "*":
        raise not_implemented("If-None-Match on a write takes only the value *")
    return Precondition(if_none_match=if_none_match is not None, if_match=if_match)


def _evaluate_conditions(ctx: Context, info: ObjectInfo) -> bool:
    """Raises PreconditionFailed; returns True when the answer is 304 Not Modified."""
    header = ctx.request.headers.get
    if_match = header("if-match")
    if if_match is not None:
        if not etag_matches(if_match, info.etag):
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                412,
                Condition="If-Match",
            )
    else:
        since = parse_http_date(header("if-unmodified-since"))
        if since is not None and info.last_modified > since:
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                412,
                Condition="If-Unmodified-Since",
            )
    if_none_match = header("if-none-match")
    if if_none_match is not None:
        return etag_matches(if_none_match, info.etag)
    since = parse_http_date(header("if-modified-since"))
    return since is not None and info.last_modified <= since


def etag_matches(condition: str, etag: str) -> bool:
    wanted = {tag.strip().removeprefix("W/") for tag in condition.split(",")}
    return "*" in wanted or etag in wanted or etag.strip('"') in wanted


def parse_http_date(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a year such as 99999999999
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class ByteRange:
    start: int
    stop: int  # exclusive


# A Range number longer than this is larger than any object: it is never converted (int() of a
# 5,000-digit number is slow, and raises past 4,300 digits).
RANGE_DIGITS = 19
BEYOND_ANY_SIZE = 10**RANGE_DIGITS


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _range_number(text: str) -> int:
    return int(text) if len(text) <= RANGE_DIGITS else BEYOND_ANY_SIZE


def _parse_range(text: str | None, size: int) -> ByteRange | None:
    """The satisfiable range asked for; None to serve the whole object; raises InvalidRange."""
    if not text or not text.startswith("bytes=") or "," in text:
        return None
    first, sep, last = text[len("bytes=") :].strip().partition("-")
    if not sep or not (first or last) or not all(_is_number(part) for part in (first, last) if part):
        return None
    if not first:  # suffix range: the last N bytes
        suffix = _range_number(last)
        if suffix == 0 or size == 0:
            raise _invalid_range(text, size)
        return ByteRange(max(0, size - suffix), size)
    start = _range_number(first)
    stop = size if not last else min(_range_number(last) + 1, size)
    if last and _range_number(last) < start:
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
    check_key_length(ctx.key)
    headers = ctx.request.headers
    check_put_size(headers, ctx.auth.content_sha256)
    await ctx.store.get_bucket(ctx.bucket)  # fail before reading a body we would throw away
    extras = await write_extras(ctx)
    object_lock.check_integrity_header(headers)
    received = await receive_body(ctx)
    write = ObjectWrite(
        content=received.content,
        content_type=headers.get("content-type", "binary/octet-stream"),
        metadata=request_metadata(headers),
        stored_headers=request_stored_headers(headers),
        checksums=received.checksums,
        etag=received.etag,
        extras=extras,
    )
    info = await ctx.store.put_object(ctx.bucket, ctx.key, write, write_precondition(headers))
    answer = (
        ("etag", info.etag),
        *checksum_headers(received.checksums),
        *sse.put_response_headers(extras),
        *version_headers(info),
    )
    return empty_response(headers=answer)


def version_headers(info: ObjectInfo) -> tuple[tuple[str, str], ...]:
    """`x-amz-version-id` for a version a versioned bucket made (none for "null" ones)."""
    return () if info.version_id == "null" else (("x-amz-version-id", info.version_id),)


def checksum_headers(checksums: Mapping[str, str], checksum_type: str = "FULL_OBJECT") -> tuple[tuple[str, str], ...]:
    if not checksums:
        return ()
    values = tuple((HEADER_PREFIX + name, value) for name, value in checksums.items())
    return (*values, ("x-amz-checksum-type", checksum_type))


def check_key_length(key: str) -> None:
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise S3Error(
            "KeyTooLongError",
            "Your key is too long",
            400,
            MaxSizeAllowed=MAX_KEY_BYTES,
            Size=len(key.encode("utf-8")),
        )


def request_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    """User metadata from `x-amz-meta-*` headers; a repeated one is stored joined by "," (as S3 does)."""
    return {name[len(METADATA_PREFIX) :]: value for name, value in headers.items() if name.startswith(METADATA_PREFIX)}


def request_stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    stored = {name: headers[name] for name in STORED_HEADERS if name in headers}
    encoding = stored_content_encoding(stored.pop("content-encoding", None))
    if encoding is not None:
        stored["content-encoding"] = encoding
    return stored


async def delete_object(ctx: Context) -> S3Response:
    marker = await ctx.store.delete_key(ctx.bucket, ctx.key)  # a versioned bucket adds a marker
    if marker is None:
        return empty_response(204)
    return empty_response(204, (("x-amz-delete-marker", "true"), ("x-amz-version-id", marker.version_id)))


# -- DeleteObjects -------------------------------------------------------------------------------

MAX_DELETE_KEYS = 1000


async def delete_objects(ctx: Context) -> S3Response:
    """POST ?delete. The body's integrity is checked like any body: Content-MD5 if sent, the
    x-amz-checksum-* header botocore ≥ 1.36 sends instead (CRC32) — neither is demanded."""
    await ctx.store.get_bucket(ctx.bucket)
    received = await receive_body(ctx)
    root = parse_request_document(received.content.read(0, received.content.size), "Delete")
    quiet = (child_text(root, "Quiet") or "").strip().lower() == "true"
    objects = root.findall("Object")
    if not objects or len(objects) > MAX_DELETE_KEYS:
        raise malformed_xml()
    results = []
    locked = await object_lock.is_locked(ctx)
    for item in objects:
        key = child_text(item, "Key")
        if key is None:
            raise malformed_xml()
        version_id = child_text(item, "VersionId")
        if version_id:  # one version for good (an emptying tool walking ListObjectVersions)
            try:
                if locked:
                    await object_lock.check_deletable(ctx, key, version_id)
            except S3Error as refused:  # reported even when quiet, as S3 does
                results.append(object_lock.deleted_error(key, version_id, refused))
                continue
            removed = await ctx.store.delete_object_version(ctx.bucket, key, version_id)
            marker = removed is not None and removed.delete_marker
            extra = (leaf("VersionId", version_id), leaf("DeleteMarker", True) if marker else "")
        else:
            added = await ctx.store.delete_key(ctx.bucket, key)
            extra = ("", "")
            if added is not None:
                extra = (leaf("DeleteMarker", True), leaf("DeleteMarkerVersionId", added.version_id))
                ctx.new_markers.append((key, added.version_id))
        if not quiet:
            results.append(node("Deleted", leaf("Key", key), *extra))
    return xml_response(document("DeleteResult", *results))
