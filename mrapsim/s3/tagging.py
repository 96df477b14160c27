"""Object and bucket tagging: Get/Put/DeleteObjectTagging, Get/Put/DeleteBucketTagging, and the
`x-amz-tagging` header (PutObject, CopyObject with `x-amz-tagging-directive`, CreateMultipartUpload,
POST Object's `tagging` field).

An object's tags are kept in its extras under "tagging" in the header's own form, a URL-encoded
query string (`k1=v1&k2=v2`, order kept), so the header is stored as validated and the count is
one split away (`x-amz-tagging-count` on GET). A bucket's tags are a stored configuration.

S3's limits, all answered InvalidTag: at most 10 tags on an object (50 on a bucket), keys up to
128 and values up to 256 characters, no key twice, no key starting with "aws:".
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl, quote, urlencode

from mrapsim.s3.bucket_config import TAGGING, canonical_xml, read_document, stored_or_missing
from mrapsim.s3.context import Context
from mrapsim.s3.documents import child_text, malformed_xml, parse_request_document
from mrapsim.s3.errors import S3Error
from mrapsim.s3.responses import S3Response, empty_response, xml_response
from mrapsim.s3.xml import document, leaf, node

TAGGING_EXTRA = "tagging"
MAX_OBJECT_TAGS = 10
MAX_BUCKET_TAGS = 50
MAX_KEY = 128
MAX_VALUE = 256

Tags = tuple[tuple[str, str], ...]


def invalid_tag(message: str) -> S3Error:
    return S3Error("InvalidTag", message, 400)


def check_tags(tags: Tags, limit: int = MAX_OBJECT_TAGS) -> Tags:
    if len(tags) > limit:
        what = "Object" if limit == MAX_OBJECT_TAGS else "Bucket"
        raise invalid_tag(f"{what} tags cannot be greater than {limit}")
    seen: set[str] = set()
    for key, value in tags:
        if len(key) > MAX_KEY or not key:
            raise invalid_tag(f"The TagKey you have provided is {'too long' if key else 'invalid'}, max {MAX_KEY}")
        if len(value) > MAX_VALUE:
            raise invalid_tag(f"The TagValue you have provided is too long, max {MAX_VALUE}")
        if key.lower().startswith("aws:"):
            raise invalid_tag("Your TagKey cannot be prefixed with aws:")
        if key in seen:
            raise invalid_tag("Cannot provide multiple Tags with the same key")
        seen.add(key)
    return tags


def parse_tagging_header(value: str) -> Tags:
    """The `x-amz-tagging` header (URL-encoded `k=v&...`; a bare `k` is a tag with an empty
    value, as S3 reads it), checked against S3's limits."""
    return check_tags(tuple(parse_qsl(value, keep_blank_values=True)))


def encode_tags(tags: Tags) -> str:
    return urlencode(tags, quote_via=quote)


def decode_tags(text: str | None) -> Tags:
    return tuple(parse_qsl(text, keep_blank_values=True)) if text else ()


def tag_count(text: str | None) -> int:
    return len(decode_tags(text))


def parse_tagging_document(body: bytes, limit: int) -> Tags:
    root = parse_request_document(body, "Tagging")
    tag_set = root.find("TagSet")
    if tag_set is None:
        raise malformed_xml()
    tags = []
    for tag in tag_set.findall("Tag"):
        key, value = child_text(tag, "Key"), child_text(tag, "Value")
        if key is None or value is None:
            raise malformed_xml()
        tags.append((key, value))
    return check_tags(tuple(tags), limit)


def tagging_document(tags: Sequence[tuple[str, str]]) -> bytes:
    return document("Tagging", node("TagSet", *(node("Tag", leaf("Key", k), leaf("Value", v)) for k, v in tags)))


# -- object tagging -------------------------------------------------------------------------------


async def get_object_tagging(ctx: Context) -> S3Response:
    info = await ctx.store.head_object(ctx.bucket, ctx.key)
    return xml_response(tagging_document(decode_tags(info.extras.get(TAGGING_EXTRA))))


async def put_object_tagging(ctx: Context) -> S3Response:
    await ctx.store.head_object(ctx.bucket, ctx.key)
    tags = parse_tagging_document(await read_document(ctx), MAX_OBJECT_TAGS)
    await ctx.store.update_object_extras(ctx.bucket, ctx.key, {TAGGING_EXTRA: encode_tags(tags) or None})
    return empty_response()


async def delete_object_tagging(ctx: Context) -> S3Response:
    await ctx.store.update_object_extras(ctx.bucket, ctx.key, {TAGGING_EXTRA: None})
    return empty_response(204)


# -- bucket tagging -------------------------------------------------------------------------------


async def get_bucket_tagging(ctx: Context) -> S3Response:
    return xml_response((await stored_or_missing(ctx, TAGGING)).encode("utf-8"))


async def put_bucket_tagging(ctx: Context) -> S3Response:
    await ctx.store.get_bucket(ctx.bucket)
    body = await read_document(ctx)
    parse_tagging_document(body, MAX_BUCKET_TAGS)
    await ctx.store.put_bucket_config(ctx.bucket, TAGGING, canonical_xml(parse_request_document(body, "Tagging")))
    return empty_response(204)


async def delete_bucket_tagging(ctx: Context) -> S3Response:
    await ctx.store.delete_bucket_config(ctx.bucket, TAGGING)
    return empty_response(204)
