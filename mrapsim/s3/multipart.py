"""Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
ListMultipartUploads (docs/wire.md §5).

S3's rules, as aws-cli/s3transfer and the SDKs rely on them:
- the object's ETag is md5(concatenated binary part MD5s) + "-N";
- parts are listed ascending (InvalidPartOrder), each must exist with the ETag given
  (InvalidPart), every part but the last must be at least 5 MiB (EntityTooSmall), and a list
  without parts is MalformedXML;
- with a checksum algorithm (x-amz-checksum-algorithm on Create), every part gets that checksum
  (verified when sent, computed when not) and the object's checksum is COMPOSITE (checksum of the
  part checksums, "-N") or FULL_OBJECT (CRCs only: combined from the part CRCs, no data pass).
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from collections.abc import Sequence

from mrapsim.s3 import sse
from mrapsim.s3.checksums import (
    ALGORITHMS,
    CRC_ALGORITHMS,
    HEADER_PREFIX,
    WIRE_NAMES,
    bad_digest,
    composite,
    declared_in_headers,
    encode,
    full_object_crc,
    new_computer,
)
from mrapsim.s3.context import Context
from mrapsim.s3.copying import copy_source_range, resolve_copy_source
from mrapsim.s3.documents import child_text, malformed_xml, parse_request_document
from mrapsim.s3.errors import S3Error, conditional_request_conflict, invalid_argument
from mrapsim.s3.extras import write_extras
from mrapsim.s3.object import (
    check_key_length,
    request_metadata,
    request_stored_headers,
    version_headers,
    write_precondition,
)
from mrapsim.s3.payload import check_put_size, receive_body
from mrapsim.s3.request import bounded_int
from mrapsim.s3.responses import S3Response, empty_response, xml_response
from mrapsim.s3.xml import document, leaf, node, optional_leaf
from mrapsim.store import NoSuchUploadError, ObjectInfo, ObjectWrite, PartInfo, UploadInfo, stream_content

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10_000
MAX_LISTED = 1000


def _owner_xml(ctx: Context, tag: str) -> str:
    owner = ctx.owner
    return node(tag, leaf("ID", owner.id), leaf("DisplayName", owner.display_name))


def _checksum_choice(ctx: Context) -> tuple[str | None, str | None]:
    header = ctx.request.headers.get
    algorithm_text = header("x-amz-checksum-algorithm")
    type_text = (header("x-amz-checksum-type") or "").upper() or None
    if algorithm_text is None:
        if type_text is not None:
            raise S3Error("InvalidRequest", "The x-amz-checksum-type header requires x-amz-checksum-algorithm", 400)
        return None, None
    algorithm = algorithm_text.lower()
    if algorithm not in ALGORITHMS:
        raise invalid_argument(
            "Checksum algorithm provided is unsupported.", "x-amz-checksum-algorithm", algorithm_text
        )
    if type_text is None:
        type_text = "FULL_OBJECT" if algorithm == "crc64nvme" else "COMPOSITE"
    if type_text not in ("COMPOSITE", "FULL_OBJECT"):
        raise invalid_argument("Value for x-amz-checksum-type header is invalid.", "x-amz-checksum-type", type_text)
    if (type_text == "FULL_OBJECT" and algorithm not in CRC_ALGORITHMS) or (
        type_text == "COMPOSITE" and algorithm == "crc64nvme"
    ):
        raise S3Error(
            "InvalidRequest",
            f"The {type_text} checksum type cannot be used with the {WIRE_NAMES[algorithm]} checksum algorithm.",
            400,
        )
    return algorithm, type_text


def _checksum_type_headers(upload: UploadInfo) -> tuple[tuple[str, str], ...]:
    if upload.checksum_algorithm is None or upload.checksum_type is None:
        return ()
    return (
        ("x-amz-checksum-algorithm", WIRE_NAMES[upload.checksum_algorithm]),
        ("x-amz-checksum-type", upload.checksum_type),
    )


# -- create / abort --------------------------------------------------------------------------------


async def create_multipart_upload(ctx: Context) -> S3Response:
    check_key_length(ctx.key)
    await ctx.store.get_bucket(ctx.bucket)
    algorithm, checksum_type = _checksum_choice(ctx)
    await ctx.body.discard(0)
    headers = ctx.request.headers
    extras = await write_extras(ctx)
    upload = await ctx.store.create_upload(
        ctx.bucket,
        UploadInfo(
            upload_id=secrets.token_urlsafe(48),
            key=ctx.key,
            initiated=ctx.now().replace(microsecond=0),
            content_type=headers.get("content-type", "binary/octet-stream"),
            metadata=request_metadata(headers),
            stored_headers=request_stored_headers(headers),
            checksum_algorithm=algorithm,
            checksum_type=checksum_type,
            extras=extras,
        ),
    )
    body = document(
        "InitiateMultipartUploadResult",
        leaf("Bucket", ctx.bucket),
        leaf("Key", ctx.key),
        leaf("UploadId", upload.upload_id),
    )
    return xml_response(body, headers=(*_checksum_type_headers(upload), *sse.put_response_headers(extras)))


async def abort_multipart_upload(ctx: Context) -> S3Response:
    await ctx.store.abort_upload(ctx.bucket, ctx.key, ctx.request.query["uploadId"])
    return empty_response(204)


# -- parts -----------------------------------------------------------------------------------------


def _part_number(ctx: Context) -> int:
    text = ctx.request.query.get("partNumber", "")
    number = bounded_int(text)
    if number is None or not 1 <= number <= MAX_PART_NUMBER:
        raise invalid_argument("Part number must be an integer between 1 and 10000, inclusive", "partNumber", text)
    return number


async def upload_part(ctx: Context) -> S3Response:
    number = _part_number(ctx)
    upload = await ctx.store.get_upload(ctx.bucket, ctx.key, ctx.request.query["uploadId"])
    check_put_size(ctx.request.headers, ctx.auth.content_sha256)
    sse.check_part(ctx, upload.extras)
    algorithm = upload.checksum_algorithm
    received = await receive_body(ctx, compute=(algorithm,) if algorithm else ())
    checksums = {algorithm: received.checksums[algorithm]} if algorithm else dict(received.checksums)
    part = PartInfo(number, received.etag, received.content.size, ctx.now().replace(microsecond=0), checksums)
    await ctx.store.put_part(ctx.bucket, ctx.key, upload.upload_id, part, received.content)
    headers = (("etag", part.etag), *_part_checksum_headers(checksums), *sse.response_headers(upload.extras))
    return empty_response(headers=headers)


def _part_checksum_headers(checksums: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((HEADER_PREFIX + name, value) for name, value in checksums.items())


async def upload_part_copy(ctx: Context) -> S3Response:
    number = _part_number(ctx)
    upload = await ctx.store.get_upload(ctx.bucket, ctx.key, ctx.request.query["uploadId"])
    await ctx.body.discard(0)
    sse.check_part(ctx, upload.extras)
    source = await resolve_copy_source(ctx)
    content = copy_source_range(ctx, source.content)
    md5 = hashlib.md5(usedforsecurity=False)
    async for chunk in stream_content(content, 0, content.size):
        md5.update(chunk)
    checksums = {}
    if upload.checksum_algorithm is not None:
        computer = new_computer(upload.checksum_algorithm)
        async for chunk in stream_content(content, 0, content.size):
            computer.update(chunk)
        checksums[upload.checksum_algorithm] = encode(computer.digest())
    part = PartInfo(number, f'"{md5.hexdigest()}"', content.size, ctx.now().replace(microsecond=0), checksums)
    await ctx.store.put_part(ctx.bucket, ctx.key, upload.upload_id, part, content)
    body = document(
        "CopyPartResult",
        leaf("ETag", part.etag),
        leaf("LastModified", part.last_modified),
        *(leaf(f"Checksum{WIRE_NAMES[name]}", value) for name, value in checksums.items()),
    )
    return xml_response(body)


# -- complete --------------------------------------------------------------------------------------


def _invalid_part(number: int, etag: str) -> S3Error:
    return S3Error(
        "InvalidPart",
        "One or more of the specified parts could not be found.  The part may not have been uploaded, "
        "or the specified entity tag may not have matched the part's entity tag.",
        400,
        PartNumber=number,
        ETag=etag,
    )


def _requested_parts(body: bytes) -> list[tuple[int, str, dict[str, str]]]:
    root = parse_request_document(body, "CompleteMultipartUpload")
    requested = []
    for part in root.findall("Part"):
        number_text = (child_text(part, "PartNumber") or "").strip()
        if bounded_int(number_text) is None:
            raise malformed_xml()
        etag = (child_text(part, "ETag") or "").strip()
        sent = {}
        for name in ALGORITHMS:
            value = child_text(part, f"Checksum{WIRE_NAMES[name]}")
            if value is not None:
                sent[name] = value.strip()
        requested.append((int(number_text), etag, sent))
    if not requested:
        raise malformed_xml()
    return requested


async def complete_multipart_upload(ctx: Context) -> S3Response:
    """Complete, with S3's conditional writes (`If-None-Match: *`, `If-Match`, checked by the
    store atomically with the write) and idempotent retries: a Complete of an upload that has
    just completed answers 200 with the object it made, so a retry after a lost response works."""
    upload_id = ctx.request.query["uploadId"]
    precondition = write_precondition(ctx.request.headers)
    try:
        upload = await ctx.store.get_upload(ctx.bucket, ctx.key, upload_id)
    except NoSuchUploadError:
        done = await ctx.store.completed_upload(ctx.bucket, ctx.key, upload_id)
        if done is None:
            raise
        await receive_body(ctx, checksum_headers_describe_body=False)
        return _complete_result(ctx, done)
    received = await receive_body(ctx, checksum_headers_describe_body=False)
    requested = _requested_parts(received.content.read(0, received.content.size))
    numbers = [number for number, _, _ in requested]
    if any(b <= a for a, b in itertools.pairwise(numbers)):
        raise S3Error(
            "InvalidPartOrder",
            "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
            400,
        )
    stored = {part.number: part for part in (await ctx.store.list_parts(ctx.bucket, ctx.key, upload_id))}
    chosen: list[PartInfo] = []
    for index, (number, etag, sent) in enumerate(requested):
        part = stored.get(number)
        if part is None or etag.strip('"') != part.etag.strip('"'):
            raise _invalid_part(number, etag)
        for name, value in sent.items():
            if part.checksums.get(name, value) != value:
                raise _invalid_part(number, etag)
        if index < len(requested) - 1 and part.size < MIN_PART_SIZE:
            raise S3Error(
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed object size.",
                400,
                ProposedSize=part.size,
                MinSizeAllowed=MIN_PART_SIZE,
                PartNumber=number,
                ETag=part.etag,
            )
        chosen.append(part)
    _check_object_size(ctx, chosen)
    checksums, checksum_type = _object_checksums(ctx, upload, chosen)
    write = ObjectWrite(
        content=received.content,  # ignored: the store joins the parts
        content_type=upload.content_type,
        metadata=upload.metadata,
        stored_headers=upload.stored_headers,
        checksums=checksums,
        checksum_type=checksum_type,
        etag=_multipart_etag(chosen),
        parts=tuple(chosen),
        extras=upload.extras,
    )
    try:
        info = await ctx.store.complete_upload(ctx.bucket, ctx.key, upload_id, numbers, write, precondition)
    except NoSuchUploadError:
        # Completed (or aborted) by a concurrent request since we looked it up.
        done = await ctx.store.completed_upload(ctx.bucket, ctx.key, upload_id)
        if done is not None and done.etag == write.etag:
            return _complete_result(ctx, done)
        if precondition is not None:
            raise conditional_request_conflict() from None
        raise
    return _complete_result(ctx, info)


def _complete_result(ctx: Context, info: ObjectInfo) -> S3Response:
    host = ctx.request.headers.get("host") or "localhost"
    body = document(
        "CompleteMultipartUploadResult",
        leaf("Location", f"https://{host}/{ctx.bucket}/{ctx.key}"),
        leaf("Bucket", ctx.bucket),
        leaf("Key", ctx.key),
        leaf("ETag", info.etag),
        *(leaf(f"Checksum{WIRE_NAMES[name]}", value) for name, value in info.checksums.items()),
        leaf("ChecksumType", info.checksum_type) if info.checksums else "",
    )
    return xml_response(body, headers=(*sse.response_headers(info.extras), *version_headers(info)))


def _check_object_size(ctx: Context, parts: Sequence[PartInfo]) -> None:
    """`x-amz-mp-object-size` (botocore's MpuObjectSize): the size the client expects the object to have."""
    text = ctx.request.headers.get("x-amz-mp-object-size")
    total = sum(part.size for part in parts)
    if text is not None and (not text.strip().isdigit() or int(text) != total):
        raise S3Error(
            "InvalidRequest",
            f"The provided 'x-amz-mp-object-size' header value {text} does not match the size of the object, {total}.",
            400,
        )


def _multipart_etag(parts: Sequence[PartInfo]) -> str:
    digests = b"".join(bytes.fromhex(part.etag.strip('"')) for part in parts)
    return f'"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(parts)}"'


def _object_checksums(ctx: Context, upload: UploadInfo, parts: Sequence[PartInfo]) -> tuple[dict[str, str], str]:
    """The object's checksum, combined from the parts' (COMPOSITE, or FULL_OBJECT for CRCs), and
    checked against the request's `x-amz-checksum-<alg>` header, which describes the object (a
    full-object CRC of all its bytes, or the composite value) — BadDigest when it differs. An
    upload created without an algorithm gets one from that header when every part carries it
    (the SDKs' default integrity protection sends a checksum with each part)."""
    declared = declared_in_headers(ctx.request.headers)
    type_text = (ctx.request.headers.get("x-amz-checksum-type") or "").upper() or None
    algorithm = upload.checksum_algorithm or (declared.algorithm if declared is not None else None)
    if algorithm is None:
        if type_text is not None:
            raise S3Error("InvalidRequest", "The x-amz-checksum-type header requires an x-amz-checksum-* header", 400)
        return {}, "FULL_OBJECT"
    default_type = "FULL_OBJECT" if algorithm in CRC_ALGORITHMS else "COMPOSITE"
    checksum_type = upload.checksum_type or type_text or default_type
    if type_text is not None and type_text != checksum_type:
        raise S3Error(
            "InvalidRequest",
            f"The upload was created using the {checksum_type} checksum mode. "
            f"The complete request must use the same checksum mode.",
            400,
        )
    if declared is not None and declared.algorithm != algorithm:
        raise S3Error(
            "InvalidRequest",
            f"The upload was created using a {WIRE_NAMES[algorithm]} checksum. "
            f"The complete request specified a {WIRE_NAMES[declared.algorithm]} checksum.",
            400,
        )
    if checksum_type == "FULL_OBJECT" and algorithm not in CRC_ALGORITHMS:
        raise S3Error(
            "InvalidRequest",
            f"The FULL_OBJECT checksum type cannot be used with the {WIRE_NAMES[algorithm]} checksum algorithm.",
            400,
        )
    missing = [part.number for part in parts if algorithm not in part.checksums]
    if missing:
        raise S3Error(
            "InvalidRequest",
            f"The {WIRE_NAMES[algorithm]} checksum of the object needs every part's; part {missing[0]} has none.",
            400,
        )
    values = [part.checksums[algorithm] for part in parts]
    if checksum_type == "FULL_OBJECT":
        value = full_object_crc(algorithm, [(v, p.size) for v, p in zip(values, parts, strict=True)])
    else:
        value = composite(algorithm, values)
    if declared is not None and declared.value is not None and declared.value not in (value, value.split("-")[0]):
        raise bad_digest(algorithm)
    return {algorithm: value}, checksum_type


# -- listing ---------------------------------------------------------------------------------------


def _max(ctx: Context, name: str) -> int:
    text = ctx.request.query.get(name)
    if text is None:
        return MAX_LISTED
    value = bounded_int(text)
    if value is None:
        raise invalid_argument(f"Provided {name} not an integer or within integer range", name, text)
    return min(value, MAX_LISTED)


async def list_parts(ctx: Context) -> S3Response:
    upload_id = ctx.request.query["uploadId"]
    upload = await ctx.store.get_upload(ctx.bucket, ctx.key, upload_id)
    marker_text = ctx.request.query.get("part-number-marker", "0") or "0"
    marker = bounded_int(marker_text)
    if marker is None:
        raise invalid_argument("Provided part-number-marker not an integer", "part-number-marker", marker_text)
    max_parts = _max(ctx, "max-parts")
    remaining = [p for p in (await ctx.store.list_parts(ctx.bucket, ctx.key, upload_id)) if p.number > marker]
    page = remaining[:max_parts]
    truncated = len(remaining) > len(page)
    children = [
        leaf("Bucket", ctx.bucket),
        leaf("Key", ctx.key),
        leaf("UploadId", upload_id),
        leaf("PartNumberMarker", marker),
        leaf("NextPartNumberMarker", page[-1].number if page else marker),
        leaf("MaxParts", max_parts),
        leaf("IsTruncated", truncated),
    ]
    for part in page:
        children.append(
            node(
                "Part",
                leaf("PartNumber", part.number),
                leaf("LastModified", part.last_modified),
                leaf("ETag", part.etag),
                leaf("Size", part.size),
                *(leaf(f"Checksum{WIRE_NAMES[n]}", v) for n, v in part.checksums.items()),
            )
        )
    children += [_owner_xml(ctx, "Initiator"), _owner_xml(ctx, "Owner"), leaf("StorageClass", "STANDARD")]
    if upload.checksum_algorithm is not None:
        children.append(leaf("ChecksumAlgorithm", WIRE_NAMES[upload.checksum_algorithm]))
        children.append(optional_leaf("ChecksumType", upload.checksum_type))
    return xml_response(document("ListPartsResult", *children))


async def list_multipart_uploads(ctx: Context) -> S3Response:
    query = ctx.request.query
    prefix = query.get("prefix", "")
    delimiter = query.get("delimiter", "")
    key_marker = query.get("key-marker", "")
    upload_id_marker = query.get("upload-id-marker", "")
    max_uploads = _max(ctx, "max-uploads")
    # In-progress uploads are few (they are completed or aborted); a filter is fine here.
    uploads = [
        u
        for u in (await ctx.store.list_uploads(ctx.bucket))
        if u.key.startswith(prefix)
        and (u.key > key_marker or (u.key == key_marker and upload_id_marker and u.upload_id > upload_id_marker))
    ]
    entries: list[str] = []
    prefixes: list[str] = []
    last_key, last_id = "", ""
    truncated = False
    for upload in uploads:
        if len(entries) + len(prefixes) >= max_uploads:
            truncated = True
            break
        cut = upload.key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            common = upload.key[: cut + len(delimiter)]
            if common not in prefixes:
                prefixes.append(common)
            continue
        last_key, last_id = upload.key, upload.upload_id
        entries.append(
            node(
                "Upload",
                leaf("Key", upload.key),
                leaf("UploadId", upload.upload_id),
                _owner_xml(ctx, "Initiator"),
                _owner_xml(ctx, "Owner"),
                leaf("StorageClass", "STANDARD"),
                leaf("Initiated", upload.initiated),
                optional_leaf(
                    "ChecksumAlgorithm",
                    WIRE_NAMES[upload.checksum_algorithm] if upload.checksum_algorithm else None,
                ),
                optional_leaf("ChecksumType", upload.checksum_type),
            )
        )
    children = [
        leaf("Bucket", ctx.bucket),
        leaf("KeyMarker", key_marker),
        leaf("UploadIdMarker", upload_id_marker),
        leaf("NextKeyMarker", last_key),
        leaf("NextUploadIdMarker", last_id),
        leaf("MaxUploads", max_uploads),
        leaf("IsTruncated", truncated),
        leaf("Prefix", prefix),
        optional_leaf("Delimiter", delimiter or None),
        *entries,
        *(node("CommonPrefixes", leaf("Prefix", p)) for p in prefixes),
    ]
    return xml_response(document("ListMultipartUploadsResult", *children))
