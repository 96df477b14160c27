"""ListObjectsV2 and ListObjects (v1).

Both are one `Store.list_page` call (O(log n + page)) plus rendering. Wire rules, from
docs/wire.md §2: `Prefix`, `Name`, `MaxKeys`, `IsTruncated` always present; `Delimiter`
and `EncodingType` only when sent; `KeyCount` counts keys and common prefixes; V2 echoes
`StartAfter` whenever it was sent, with a continuation token too (botocore's shape: "If
StartAfter was sent with the request, it is included in the response"), treats an empty
`continuation-token=` as absent but echoes it, and sends `NextContinuationToken` only when
truncated; V1 always has `Marker` and has `NextMarker` only with a delimiter and truncation.
With `encoding-type=url` every key-like element is `quote(s, safe='/')` (so `+` → `%2B`, which
botocore's unquote_plus decoding needs).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from mrapsim.config import SyntheticSpec
from mrapsim.s3.context import Context
from mrapsim.s3.errors import invalid_argument
from mrapsim.s3.request import bounded_int
from mrapsim.s3.responses import S3Response, xml_response
from mrapsim.s3.xml import document, escape_text, iso_timestamp, leaf, node
from mrapsim.store import ListPage, ObjectInfo, PageEntries, SyntheticRun

MAX_KEYS_PER_PAGE = 1000
MAX_KEYS_ARGUMENT = 2**31 - 1

CHECKSUM_NAMES = {
    "crc32": "CRC32",
    "crc32c": "CRC32C",
    "crc64nvme": "CRC64NVME",
    "sha1": "SHA1",
    "sha256": "SHA256",
}


@dataclass(frozen=True)
class ListingParams:
    """The parameters both list versions share, validated."""

    prefix: str
    delimiter: str
    max_keys: int  # as requested (echoed); the page holds at most MAX_KEYS_PER_PAGE
    url_encoded: bool

    def encode(self, text: str) -> str:
        return quote(text, safe="/") if self.url_encoded else text

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> ListingParams:
        encoding = query.get("encoding-type")
        if encoding is not None and encoding != "url":
            raise invalid_argument("Invalid Encoding Method specified in Request", "encoding-type", encoding)
        return cls(
            prefix=query.get("prefix", ""),
            delimiter=query.get("delimiter", ""),
            max_keys=_max_keys(query.get("max-keys")),
            url_encoded=encoding == "url",
        )

    @property
    def page_size(self) -> int:
        return min(self.max_keys, MAX_KEYS_PER_PAGE)


def _max_keys(text: str | None) -> int:
    if text is None:
        return MAX_KEYS_PER_PAGE
    value = bounded_int(text.removeprefix("-"))  # a bounded number of ASCII digits, never int() of any text
    if value is None:
        raise invalid_argument("Provided max-keys not an integer or within integer range", "max-keys", text)
    value = -value if text.startswith("-") else value
    if not 0 <= value <= MAX_KEYS_ARGUMENT:
        raise invalid_argument(
            f"Argument maxKeys must be an integer between 0 and {MAX_KEYS_ARGUMENT}",
            "max-keys",
            text,
        )
    return value


async def list_objects_v2(ctx: Context) -> S3Response:
    query = ctx.request.query
    params = ListingParams.parse(query)
    token = query.get("continuation-token")
    start_after = query.get("start-after", "")
    if token:  # an empty token is no token (S3 echoes it all the same)
        position = ctx.tokens.decode(ctx.bucket, token)
        if position is None:
            raise invalid_argument("The continuation token provided is incorrect", "continuation-token", token)
        start_after = max(position, start_after)
    page = await ctx.store.list_page(
        ctx.bucket,
        prefix=params.prefix,
        delimiter=params.delimiter,
        start_after=start_after,
        max_keys=params.page_size,
    )
    fetch_owner = query.get("fetch-owner", "").lower() == "true"
    children = [leaf("Name", ctx.bucket), leaf("Prefix", params.encode(params.prefix))]
    if "start-after" in query:
        children.append(leaf("StartAfter", params.encode(query["start-after"])))
    if token is not None:
        children.append(leaf("ContinuationToken", token))
    if page.is_truncated and page.next_after is not None:
        children.append(leaf("NextContinuationToken", ctx.tokens.encode(ctx.bucket, page.next_after)))
    children.append(leaf("KeyCount", len(page.entries) + len(page.common_prefixes)))
    children += _common_tail(ctx, params, page, with_owner=fetch_owner)
    return xml_response(document("ListBucketResult", *children))


async def list_objects_v1(ctx: Context) -> S3Response:
    query = ctx.request.query
    params = ListingParams.parse(query)
    marker = query.get("marker", "")
    page = await ctx.store.list_page(
        ctx.bucket,
        prefix=params.prefix,
        delimiter=params.delimiter,
        start_after=marker,
        max_keys=params.page_size,
    )
    children = [
        leaf("Name", ctx.bucket),
        leaf("Prefix", params.encode(params.prefix)),
        leaf("Marker", params.encode(marker)),
    ]
    if params.delimiter and page.is_truncated and page.next_after is not None:
        children.append(leaf("NextMarker", params.encode(page.next_after)))
    children += _common_tail(ctx, params, page, with_owner=True)
    return xml_response(document("ListBucketResult", *children))


def _common_tail(ctx: Context, params: ListingParams, page: ListPage, *, with_owner: bool) -> list[str]:
    children = [leaf("MaxKeys", params.max_keys)]
    if params.delimiter:
        children.append(leaf("Delimiter", params.encode(params.delimiter)))
    if params.url_encoded:
        children.append(leaf("EncodingType", "url"))
    children.append(leaf("IsTruncated", page.is_truncated))
    owner_xml = ""
    if with_owner:
        owner = ctx.owner
        owner_xml = node("Owner", leaf("ID", owner.id), leaf("DisplayName", owner.display_name))
    children += render_contents(page.entries, params.url_encoded, owner_xml)
    children += [node("CommonPrefixes", leaf("Prefix", params.encode(p))) for p in page.common_prefixes]
    return children


def render_contents(entries: Sequence[ObjectInfo], url_encoded: bool, owner_xml: str) -> list[str]:
    """The `<Contents>` elements of a page's objects. A run of synthetic objects (PageEntries'
    parts) is written from its keys and ETags alone: the rest of its elements are the same for
    every object of the spec, rendered once per page."""
    render = _contents_renderer(url_encoded, owner_xml)
    if not isinstance(entries, PageEntries):
        return [render(info) for info in entries]
    # A page whose real and synthetic keys interleave has hundreds of short runs: the ETags of
    # all its synthetic keys are computed in one call per spec, then handed out run by run. Specs
    # are told apart by identity (a page's runs share their bucket's spec object): hashing a
    # spec's fields per run would cost more than the run's rendering.
    # `type(part) is SyntheticRun`, not isinstance: a part is a list or a run, and isinstance of
    # a Sequence subclass goes through the ABC machinery, per part.
    parts = entries.parts
    synthetic: dict[int, tuple[SyntheticSpec, list[str]]] = {}
    for part in parts:
        if type(part) is SyntheticRun:
            synthetic.setdefault(id(part.spec), (part.spec, []))[1].extend(part.keys)
    etags = {number: iter(SyntheticRun(spec, keys).etags()) for number, (spec, keys) in synthetic.items()}
    shapes: dict[int, _SyntheticShape] = {}
    rendered: list[str] = []
    for part in parts:
        if type(part) is SyntheticRun:
            number = id(part.spec)
            shape = shapes.get(number)
            if shape is None:
                shape = shapes[number] = _SyntheticShape.of(part, url_encoded, render)
            rendered += shape.render(part.keys, etags[number])
        else:
            rendered += map(render, part)
    return rendered


def _key_text(key: str, url_encoded: bool) -> str:
    """A key as the text of `<Key>`: URL-encoded when asked, XML-escaped."""
    return escape_text(quote(key, safe="/") if url_encoded else key)


@dataclass(frozen=True)
class _SyntheticShape:
    """The `<Contents>` of a synthetic spec's objects around their keys' digits and ETags."""

    head: str  # up to the key's digits
    middle: str  # from the key's digits to the ETag's text
    tail: str
    digits: slice | None  # where a key's digits are; None: the key is its own text

    @classmethod
    def of(cls, run: SyntheticRun, url_encoded: bool, render: Callable[[ObjectInfo], str]) -> _SyntheticShape:
        # One object rendered in full gives the text around its key and ETag, which every object
        # of the spec shares. Keys are the layout's prefix, digits and suffix: the digits are ASCII
        # letters and numbers, which neither URL-encoding nor XML-escaping changes, so a key's text
        # is the prefix's text, its digits and the suffix's text. Synthetic ETags are quoted hex
        # (store/synthetic.py), never escaped.
        first = run.first()
        whole = render(first)
        layout = run.spec.layout
        prefix, suffix = _key_text(layout.prefix, url_encoded), _key_text(layout.suffix, url_encoded)
        opening = "<Contents><Key>"
        key_end = whole.index("</Key>", len(opening))
        etag_at = whole.index(f"<ETag>{first.etag}</ETag>", key_end) + len("<ETag>")
        if (prefix, suffix) == (layout.prefix, layout.suffix):
            return cls(opening, whole[key_end:etag_at], whole[etag_at + len(first.etag) :], None)
        return cls(
            opening + prefix,
            suffix + whole[key_end:etag_at],
            whole[etag_at + len(first.etag) :],
            slice(len(layout.prefix), len(layout.prefix) + layout.width),
        )

    def render(self, keys: Sequence[str], etags: Iterator[str]) -> list[str]:
        """The elements of `keys`, taking their ETags from `etags` (exactly as many as keys)."""
        head, middle, tail = self.head, self.middle, self.tail
        if self.digits is not None:
            digits = self.digits
            keys = [key[digits] for key in keys]
        # zip takes the key first and stops when the keys end, leaving the next run's ETags.
        return [f"{head}{key}{middle}{etag}{tail}" for key, etag in zip(keys, etags)]  # noqa: B905


def _contents_renderer(url_encoded: bool, owner_xml: str) -> Callable[[ObjectInfo], str]:
    # Objects written in the same second share a timestamp; formatting each once per page saves
    # a strftime per entry on bulk-loaded buckets. One f-string per entry (the element order of
    # S3's <Contents>), with only the text that can need it escaped: a 1,000-key page renders
    # without a call per element.
    timestamps: dict[dt.datetime, str] = {}

    def render(info: ObjectInfo) -> str:
        modified = timestamps.get(info.last_modified)
        if modified is None:
            modified = timestamps[info.last_modified] = iso_timestamp(info.last_modified)
        checksums = ""
        if info.checksums:
            checksums = "".join(
                leaf("ChecksumAlgorithm", CHECKSUM_NAMES.get(name, name.upper())) for name in info.checksums
            ) + leaf("ChecksumType", info.checksum_type)
        # escape_text's own test, inlined: this runs per entry, and most need no call at all.
        key, etag, storage_class = info.key, info.etag, info.storage_class
        if url_encoded or "&" in key or "<" in key or ">" in key:
            key = _key_text(key, url_encoded)
        if "&" in etag or "<" in etag or ">" in etag:
            etag = escape_text(etag)
        if storage_class != "STANDARD":
            storage_class = escape_text(storage_class)
        return (
            f"<Contents><Key>{key}</Key><LastModified>{modified}</LastModified>"
            f"<ETag>{etag}</ETag>{checksums}<Size>{info.size}</Size>{owner_xml}"
            f"<StorageClass>{storage_class}</StorageClass></Contents>"
        )

    return render
