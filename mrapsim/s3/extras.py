"""What a write asks S3 to keep beside the object, gathered from its headers in one place so that
no intent is silently dropped: tags (`x-amz-tagging`), ACL (`x-amz-acl`, `x-amz-grant-*`),
encryption (`x-amz-server-side-encryption*`). The results go into the object's extras
(ObjectWrite.extras); tagging.py, acl.py and sse.py say what each name holds.

`x-amz-object-lock-*` asks for retention: object_lock.py gives it on a bucket with Object Lock
and refuses it, with S3's error, on any other.
"""

from __future__ import annotations

from collections.abc import Mapping

from mrapsim.s3 import acl, object_lock, sse
from mrapsim.s3.context import Context
from mrapsim.s3.errors import invalid_argument
from mrapsim.s3.tagging import TAGGING_EXTRA, encode_tags, parse_tagging_header, tag_count
from mrapsim.store import ObjectInfo


def tagging_extra(headers: Mapping[str, str]) -> dict[str, str]:
    value = headers.get("x-amz-tagging")
    if value is None:
        return {}
    encoded = encode_tags(parse_tagging_header(value))
    return {TAGGING_EXTRA: encoded} if encoded else {}


async def write_extras(ctx: Context, *, tags_from: Mapping[str, str] | None = None) -> dict[str, str]:
    """The extras of an object this request writes (PutObject, CopyObject's destination,
    CreateMultipartUpload). `tags_from`: the copy source's extras when its tags are copied."""
    headers = ctx.request.headers
    if tags_from is None:
        extras = tagging_extra(headers)
    else:
        extras = {TAGGING_EXTRA: tags_from[TAGGING_EXTRA]} if TAGGING_EXTRA in tags_from else {}
    extras.update(await acl.write_extras(ctx))
    extras.update(await sse.write_extras(ctx))
    extras.update(await object_lock.write_extras(ctx))
    return extras


def copy_tags_from(ctx: Context, source: ObjectInfo) -> Mapping[str, str] | None:
    """CopyObject's `x-amz-tagging-directive`: COPY (the default) keeps the source's tags,
    REPLACE takes the request's `x-amz-tagging`."""
    directive = (ctx.request.headers.get("x-amz-tagging-directive") or "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise invalid_argument("Unknown tagging directive.", "x-amz-tagging-directive", directive)
    return source.extras if directive == "COPY" else None


def read_headers(info: ObjectInfo) -> tuple[tuple[str, str], ...]:
    """Headers GET and HEAD add for the object's extras (S3 sends the tag count on both, though
    the SDKs' HeadObject output has no field for it)."""
    headers = sse.response_headers(info.extras) + object_lock.read_headers(info.extras)
    count = tag_count(info.extras.get(TAGGING_EXTRA))
    if count:
        headers += (("x-amz-tagging-count", str(count)),)
    return headers
