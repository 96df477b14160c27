"""GetObjectAttributes (`GET /bucket/key?attributes`): what a checksum-aware downloader asks
before it fetches — ETag, the object's checksum and type, its parts (paginated with
`x-amz-max-parts` / `x-amz-part-number-marker`), storage class and size — without the body.

Only the attributes named in `x-amz-object-attributes` are returned. `ObjectParts` is present for
multipart objects only (a single-part object has no parts to list), and its parts carry their
checksums when the upload had an algorithm. The ETag is unquoted here, as S3 sends it.
"""

from __future__ import annotations

from mrapsim.s3.checksums import WIRE_NAMES
from mrapsim.s3.context import Context
from mrapsim.s3.errors import S3Error, invalid_argument
from mrapsim.s3.object import http_date
from mrapsim.s3.responses import S3Response, xml_response
from mrapsim.s3.xml import document, leaf, node
from mrapsim.store import ObjectInfo

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_PARTS = 1000


def _requested(ctx: Context) -> set[str]:
    text = ctx.request.headers.get("x-amz-object-attributes") or ""
    names = {name.strip() for name in text.split(",") if name.strip()}
    if not names:
        raise S3Error(
            "InvalidRequest",
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty",
            400,
        )
    unknown = sorted(names - set(ATTRIBUTES))
    if unknown:
        raise invalid_argument("Invalid attribute name specified.", "x-amz-object-attributes", unknown[0])
    return names


def _number(ctx: Context, header: str, default: int) -> int:
    text = ctx.request.headers.get(header)
    if text is None:
        return default
    if not text.strip().isdigit():
        raise invalid_argument(f"Provided {header} not an integer or within integer range", header, text)
    return int(text)


def _object_parts(ctx: Context, info: ObjectInfo) -> str:
    marker = _number(ctx, "x-amz-part-number-marker", 0)
    max_parts = min(_number(ctx, "x-amz-max-parts", MAX_PARTS), MAX_PARTS)
    remaining = [part for part in info.parts if part.number > marker]
    page = remaining[:max_parts]
    parts = [
        node(
            "Part",
            leaf("PartNumber", part.number),
            leaf("Size", part.size),
            *(leaf(f"Checksum{WIRE_NAMES[name]}", value) for name, value in part.checksums.items()),
        )
        for part in page
    ]
    return node(
        "ObjectParts",
        leaf("PartsCount", len(info.parts)),
        leaf("PartNumberMarker", marker),
        leaf("NextPartNumberMarker", page[-1].number if page else marker),
        leaf("MaxParts", max_parts),
        leaf("IsTruncated", len(remaining) > len(page)),
        *parts,
    )


async def get_object_attributes(ctx: Context) -> S3Response:
    wanted = _requested(ctx)
    info = await ctx.store.head_object(ctx.bucket, ctx.key)
    children = []
    if "ETag" in wanted:
        children.append(leaf("ETag", info.etag.strip('"')))
    if "Checksum" in wanted and info.checksums:
        values = [leaf(f"Checksum{WIRE_NAMES[name]}", value) for name, value in info.checksums.items()]
        children.append(node("Checksum", *values, leaf("ChecksumType", info.checksum_type)))
    if "ObjectParts" in wanted and info.parts:
        children.append(_object_parts(ctx, info))
    if "StorageClass" in wanted:
        children.append(leaf("StorageClass", info.storage_class))
    if "ObjectSize" in wanted:
        children.append(leaf("ObjectSize", info.size))
    headers = (("last-modified", http_date(info.last_modified)),)
    return xml_response(document("GetObjectAttributesResponse", *children), headers=headers)
