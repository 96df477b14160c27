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

from mrapsim.s3.checksums import HEADER_PREFIX
from mrapsim.s3.context import Context
from mrapsim.s3.documents import child_text, malformed_xml, parse_request_document
from mrapsim.s3.errors import S3Error
from mrapsim.s3.payload import check_put_size, receive_body, stored_content_encoding
from mrapsim.s3.responses import S3Response, empty_response, xml_response
from mrapsim.s3.xml import document, leaf, node
from mrapsim.store import ObjectInfo, ObjectWrite, stream_content

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
    headers += version_headers(info)
    return headers


# -- GET / HEAD ----------------------------------------------------------------------------------


async def get_object(ctx: Context) -> S3Response:
    return await _read(ctx, with_body=True)


async def head_object(ctx: Context) -> S3Response:
    return await _read(ctx, with_body=False)


async def _read(ctx: Context, *, with_body: bool) -> S3Response:
    stored = await ctx.store.get_object(ctx.bucket, ctx.key)
    info = stored.info
    not_modified = _evaluate_conditions(ctx, info)
    if not_modified:
        return empty_response(304, (("etag", info.etag), ("last-modified", http_date(info.last_modified))))
    headers = object_headers(info)
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
    check_key_length(ctx.key)
    headers = ctx.request.headers
    check_put_size(headers, ctx.auth.content_sha256)
    await ctx.store.get_bucket(ctx.bucket)  # fail before reading a body we would throw away
    received = await receive_body(ctx)
    write = ObjectWrite(
        content=received.content,
        content_type=headers.get("content-type", "binary/octet-stream"),
        metadata=request_metadata(headers),
        stored_headers=request_stored_headers(headers),
        checksums=received.checksums,
        etag=received.etag,
    )
    info = await ctx.store.put_object(ctx.bucket, ctx.key, write)
    return empty_response(headers=(("etag", info.etag), *checksum_headers(received.checksums), *version_headers(info)))


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
    for item in objects:
        key = child_text(item, "Key")
        if key is None:
            raise malformed_xml()
        version_id = child_text(item, "VersionId")
        if version_id:  # one version for good (an emptying tool walking ListObjectVersions)
            removed = await ctx.store.delete_object_version(ctx.bucket, key, version_id)
            marker = removed is not None and removed.delete_marker
            extra = (leaf("VersionId", version_id), leaf("DeleteMarker", True) if marker else "")
        else:
            added = await ctx.store.delete_key(ctx.bucket, key)
            extra = ("", "")
            if added is not None:
                extra = (leaf("DeleteMarker", True), leaf("DeleteMarkerVersionId", added.version_id))
        if not quiet:
            results.append(node("Deleted", leaf("Key", key), *extra))
    return xml_response(document("DeleteResult", *results))
