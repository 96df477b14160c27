"""Versioning: PutBucketVersioning, GetBucketVersioning, ListObjectVersions, and GET / HEAD /
DELETE of one version (`?versionId=`). How the stores keep versions: store/versions.py.

GET and HEAD of a version run the plain GetObject / HeadObject handlers over a view of the store
whose `get_object` answers that version, so conditions, ranges, checksums and whatever else
those handlers learn apply to versions too without a second copy of their code.

ListObjectVersions resumes from `key-marker` / `version-id-marker`, which are plain positions
(stateless: any replica, any restart), as S3's are. Entries come in S3's order: keys ascending,
each key's versions newest first, `Version` and `DeleteMarker` elements interleaved.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from mrapsim.s3 import object as object_ops
from mrapsim.s3 import object_lock
from mrapsim.s3.context import Context
from mrapsim.s3.documents import child_text, malformed_xml, parse_request_document
from mrapsim.s3.errors import S3Error, delete_marker_error
from mrapsim.s3.listing import ListingParams
from mrapsim.s3.request import Target
from mrapsim.s3.responses import S3Response, empty_response, xml_response
from mrapsim.s3.xml import document, iso_timestamp, leaf, node
from mrapsim.store import ObjectInfo, Store, StoredObject, StoreError, VersionEntry

STATUSES = ("Enabled", "Suspended")


async def put_bucket_versioning(ctx: Context) -> S3Response:
    await ctx.store.get_bucket(ctx.bucket)
    body = await ctx.body.read_all()
    status = child_text(parse_request_document(body, "VersioningConfiguration"), "Status")
    if status not in STATUSES:
        raise malformed_xml()
    await object_lock.refuse_suspending(ctx, status)
    await ctx.store.set_versioning(ctx.bucket, status)
    return empty_response()


async def get_bucket_versioning(ctx: Context) -> S3Response:
    status = await ctx.store.get_versioning(ctx.bucket)
    return xml_response(document("VersioningConfiguration", leaf("Status", status) if status else ""))


async def list_object_versions(ctx: Context) -> S3Response:
    query = ctx.request.query
    params = ListingParams.parse(query)
    key_marker = query.get("key-marker", "")
    version_id_marker = query.get("version-id-marker", "")
    if version_id_marker and not key_marker:
        raise S3Error(
            "InvalidArgument",
            "A version-id marker cannot be specified without a key marker.",
            400,
            ArgumentName="version-id-marker",
            ArgumentValue=version_id_marker,
        )
    page = await ctx.store.list_versions(
        ctx.bucket,
        prefix=params.prefix,
        delimiter=params.delimiter,
        key_marker=key_marker,
        version_id_marker=version_id_marker,
        max_keys=params.page_size,
    )
    children = [
        leaf("Name", ctx.bucket),
        leaf("Prefix", params.encode(params.prefix)),
        leaf("KeyMarker", params.encode(key_marker)),
        leaf("VersionIdMarker", version_id_marker),
    ]
    if page.is_truncated and page.next_key is not None:
        children.append(leaf("NextKeyMarker", params.encode(page.next_key)))
        if page.next_version_id is not None:
            children.append(leaf("NextVersionIdMarker", page.next_version_id))
    children.append(leaf("MaxKeys", params.max_keys))
    if params.delimiter:
        children.append(leaf("Delimiter", params.encode(params.delimiter)))
    if params.url_encoded:
        children.append(leaf("EncodingType", "url"))
    children.append(leaf("IsTruncated", page.is_truncated))
    owner = ctx.owner
    owner_xml = node("Owner", leaf("ID", owner.id), leaf("DisplayName", owner.display_name))
    children += [_entry(entry, params, owner_xml) for entry in page.entries]
    children += [node("CommonPrefixes", leaf("Prefix", params.encode(p))) for p in page.common_prefixes]
    return xml_response(document("ListVersionsResult", *children))


def _entry(entry: VersionEntry, params: ListingParams, owner_xml: str) -> str:
    info = entry.info
    head = (
        leaf("Key", params.encode(info.key)),
        leaf("VersionId", info.version_id),
        leaf("IsLatest", entry.is_latest),
        leaf("LastModified", iso_timestamp(info.last_modified)),
    )
    if info.delete_marker:
        return node("DeleteMarker", *head, owner_xml)
    return node(
        "Version",
        *head,
        leaf("ETag", info.etag),
        leaf("Size", info.size),
        leaf("StorageClass", info.storage_class),
        owner_xml,
    )


# -- one version -----------------------------------------------------------------------------------


class _VersionView:
    """The store as the plain GET / HEAD handlers see it when the request names a version."""

    def __init__(self, store: Store, version_id: str, method: str) -> None:
        self._store = store
        self._version_id = version_id
        self._method = method

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def get_object(self, bucket: str, key: str) -> StoredObject:
        stored = await self._store.get_object_version(bucket, key, self._version_id)
        if stored.info.delete_marker:
            raise delete_marker_error(stored.info.version_id, self._method)
        return stored

    async def head_object(self, bucket: str, key: str) -> ObjectInfo:
        return (await self.get_object(bucket, key)).info


def _version_id(ctx: Context) -> str:
    version_id = ctx.request.query.get("versionId", "")
    if not version_id:
        raise S3Error(
            "InvalidArgument", "Version id cannot be the empty string", 400, ArgumentName="versionId", ArgumentValue=""
        )
    return version_id


async def get_object_version(ctx: Context) -> S3Response:
    version_id = _version_id(ctx)
    view = cast(Store, _VersionView(ctx.store, version_id, ctx.request.method))
    response = await object_ops.get_object(replace(ctx, store=view))
    return _with_version_header(response, version_id)


async def head_object_version(ctx: Context) -> S3Response:
    version_id = _version_id(ctx)
    view = cast(Store, _VersionView(ctx.store, version_id, ctx.request.method))
    response = await object_ops.head_object(replace(ctx, store=view))
    return _with_version_header(response, version_id)


def _with_version_header(response: S3Response, version_id: str) -> S3Response:
    """The version asked for ("null" too, which object_headers leaves out), named once."""
    if any(name == "x-amz-version-id" for name, _ in response.headers):
        return response
    return replace(response, headers=(*response.headers, ("x-amz-version-id", version_id)))


async def delete_object_version(ctx: Context) -> S3Response:
    version_id = _version_id(ctx)
    if await object_lock.is_locked(ctx):
        await object_lock.check_deletable(ctx, ctx.key, version_id)
    removed = await ctx.store.delete_object_version(ctx.bucket, ctx.key, version_id)
    headers = [("x-amz-version-id", version_id)]
    if removed is not None and removed.delete_marker:
        headers.append(("x-amz-delete-marker", "true"))
    return empty_response(204, tuple(headers))


async def latest_delete_marker_headers(store: Store, target: Target) -> tuple[tuple[str, str], ...]:
    """What S3 adds to a 404 for a key whose latest version is a delete marker: one bounded
    version lookup, only on that error path."""
    if target.bucket is None or target.key is None:
        return ()
    try:
        page = await store.list_versions(target.bucket, prefix=target.key, max_keys=1)
    except StoreError:
        return ()
    latest = page.entries[0].info if page.entries else None
    if latest is None or latest.key != target.key or not latest.delete_marker:
        return ()
    return (("x-amz-delete-marker", "true"), ("x-amz-version-id", latest.version_id))
