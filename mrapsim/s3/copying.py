"""CopyObject, and the copy-source handling UploadPartCopy shares with it.

`x-amz-copy-source` is `[/]bucket/key[?versionId=...]`, percent-encoded. Conditions on the
source (`x-amz-copy-source-if-*`) fail with 412 PreconditionFailed. The metadata directive is
COPY (default: the source's content type, metadata and stored headers) or REPLACE (the
request's). Copying an object onto itself with COPY changes nothing and S3 refuses it.

Stores share content sources, so a copy costs no bytes (synthetic objects stay synthetic).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from mrapsim.s3 import sse
from mrapsim.s3.checksums import ALGORITHMS, WIRE_NAMES, encode, new_computer
from mrapsim.s3.context import Context
from mrapsim.s3.errors import S3Error, invalid_argument
from mrapsim.s3.extras import copy_tags_from, write_extras
from mrapsim.s3.object import (
    check_key_length,
    etag_matches,
    parse_http_date,
    request_metadata,
    request_stored_headers,
    version_headers,
    write_precondition,
)
from mrapsim.s3.request import bounded_int
from mrapsim.s3.responses import S3Response, xml_response
from mrapsim.s3.xml import document, leaf
from mrapsim.store import ContentSource, ObjectWrite, SliceContent, StoredObject, stream_content


@dataclass(frozen=True)
class CopySource:
    bucket: str
    key: str
    version_id: str | None = None


def parse_copy_source(value: str) -> CopySource:
    path, _, query = value.partition("?")
    if query and not query.startswith("versionId="):
        raise invalid_argument("Invalid copy source encoding", "x-amz-copy-source", value)
    decoded = unquote(path).lstrip("/")
    version_id = unquote(query.removeprefix("versionId=")) if query else None
    bucket, _, key = decoded.partition("/")
    if not bucket or not key:
        raise invalid_argument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            "x-amz-copy-source",
            value,
        )
    return CopySource(bucket, key, version_id)


def _precondition_failed(condition: str) -> S3Error:
    return S3Error(
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        412,
        Condition=condition,
    )


async def resolve_copy_source(ctx: Context) -> StoredObject:
    header = ctx.request.headers.get
    source = parse_copy_source(header("x-amz-copy-source") or "")
    if source.version_id is None:
        stored = await ctx.store.get_object(source.bucket, source.key)
    else:
        stored = await ctx.store.get_object_version(source.bucket, source.key, source.version_id)
        if stored.info.delete_marker:  # S3: a delete marker is no copy source
            raise S3Error(
                "InvalidRequest",
                "The source of a copy request may not specifically refer to a delete marker by version id.",
                400,
            )
    info = stored.info
    if_match = header("x-amz-copy-source-if-match")
    if if_match is not None and not etag_matches(if_match, info.etag):
        raise _precondition_failed("x-amz-copy-source-If-Match")
    if_none_match = header("x-amz-copy-source-if-none-match")
    if if_none_match is not None and etag_matches(if_none_match, info.etag):
        raise _precondition_failed("x-amz-copy-source-If-None-Match")
    unmodified = parse_http_date(header("x-amz-copy-source-if-unmodified-since"))
    if if_match is None and unmodified is not None and info.last_modified > unmodified:
        raise _precondition_failed("x-amz-copy-source-If-Unmodified-Since")
    modified = parse_http_date(header("x-amz-copy-source-if-modified-since"))
    if if_none_match is None and modified is not None and info.last_modified <= modified:
        raise _precondition_failed("x-amz-copy-source-If-Modified-Since")
    sse.check_read(ctx, info.extras, prefix=sse.COPY_SOURCE_CUSTOMER)
    return stored


def copy_source_range(ctx: Context, content: ContentSource) -> ContentSource:
    """The `x-amz-copy-source-range: bytes=a-b` slice of `content` (UploadPartCopy)."""
    text = ctx.request.headers.get("x-amz-copy-source-range")
    if text is None:
        return content
    first, sep, last = text.removeprefix("bytes=").partition("-")
    if not text.startswith("bytes=") or bounded_int(first) is None or bounded_int(last) is None or not sep:
        raise invalid_argument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last", "x-amz-copy-source-range", text
        )
    start, stop = int(first), int(last) + 1  # at most 19 digits each (bounded_int)
    if start >= stop or stop > content.size:
        raise S3Error(
            "InvalidArgument",
            f"Range specified is not valid for source object of size: {content.size}",
            400,
            ArgumentName="x-amz-copy-source-range",
            ArgumentValue=text,
        )
    return SliceContent(content, start, stop - start)


async def copy_object(ctx: Context) -> S3Response:
    check_key_length(ctx.key)
    await ctx.store.get_bucket(ctx.bucket)
    await ctx.body.discard(0)
    header = ctx.request.headers.get
    directive = (header("x-amz-metadata-directive") or "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise invalid_argument("Unknown metadata directive.", "x-amz-metadata-directive", directive)
    stored = await resolve_copy_source(ctx)
    source = parse_copy_source(header("x-amz-copy-source") or "")
    info = stored.info
    extras = await write_extras(ctx, tags_from=copy_tags_from(ctx, info))
    changes_encryption = sse.SSE in ctx.request.headers or sse.CUSTOMER + "algorithm" in ctx.request.headers
    if (source.bucket, source.key) == (ctx.bucket, ctx.key) and directive == "COPY" and not changes_encryption:
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself without changing the "
            "object's metadata, storage class, website redirect location or encryption attributes.",
            400,
        )
    checksums = dict(info.checksums)
    checksum_type = info.checksum_type
    wanted = (header("x-amz-checksum-algorithm") or "").lower()
    if wanted and wanted not in ALGORITHMS:
        raise invalid_argument("Checksum algorithm provided is unsupported.", "x-amz-checksum-algorithm", wanted)
    if wanted and wanted not in checksums:
        computer = new_computer(wanted)
        async for chunk in stream_content(stored.content, 0, stored.content.size):
            computer.update(chunk)
        checksums, checksum_type = {wanted: encode(computer.digest())}, "FULL_OBJECT"
    if directive == "REPLACE":
        headers = ctx.request.headers
        write = ObjectWrite(
            content=stored.content,
            content_type=headers.get("content-type", "binary/octet-stream"),
            metadata=request_metadata(headers),
            stored_headers=request_stored_headers(headers),
            checksums=checksums,
            checksum_type=checksum_type,
            etag=info.etag,
            extras=extras,
        )
    else:
        write = ObjectWrite(
            content=stored.content,
            content_type=info.content_type,
            metadata=info.metadata,
            stored_headers=info.stored_headers,
            checksums=checksums,
            checksum_type=checksum_type,
            etag=info.etag,
            extras=extras,
        )
    written = await ctx.store.put_object(ctx.bucket, ctx.key, write, write_precondition(ctx.request.headers))
    body = document(
        "CopyObjectResult",
        leaf("ETag", written.etag),
        leaf("LastModified", written.last_modified),
        *(leaf(f"Checksum{WIRE_NAMES[name]}", value) for name, value in checksums.items()),
        leaf("ChecksumType", checksum_type) if checksums else "",
    )
    source_version = () if source.version_id is None else (("x-amz-copy-source-version-id", source.version_id),)
    return xml_response(body, headers=(*version_headers(written), *source_version, *sse.put_response_headers(extras)))
