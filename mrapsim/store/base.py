"""The store interface and the values that cross it.

Every value is a frozen dataclass: a listing page or an object's description can be handed to
the S3 layer, logged or cached without anyone mutating it underneath.

Listing is the operation that must scale: `list_page` costs O(log n + page size) in
every implementation, delimiter roll-ups included — never a scan or sort of the bucket. Its
resume position is a plain string (`start_after`) so that stateless continuation tokens can
carry it across restarts and replicas.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

from mrapsim.config import DEFAULT_REGION, SyntheticSpec
from mrapsim.store.content import ContentBuilder, ContentSource
from mrapsim.store.errors import NoSuchKeyError, PreconditionFailedError


@dataclass(frozen=True)
class BucketInfo:
    name: str
    created: dt.datetime  # UTC, whole seconds
    region: str = DEFAULT_REGION


@dataclass(frozen=True)
class ObjectInfo:
    """Everything about an object except its body: what listings and HEAD return."""

    key: str
    size: int
    etag: str  # quoted, as on the wire: '"<md5 hex>"' (multipart: '"<hex>-<parts>"')
    last_modified: dt.datetime  # UTC, whole seconds (HTTP dates have no finer resolution)
    content_type: str = "binary/octet-stream"
    metadata: Mapping[str, str] = field(default_factory=dict)  # x-amz-meta-* without the prefix
    # Headers S3 stores with the object and returns on GET/HEAD: cache-control,
    # content-disposition, content-encoding, content-language, expires.
    stored_headers: Mapping[str, str] = field(default_factory=dict)
    # Lower-case algorithm name ("crc32", "crc64nvme", "sha256", ...) → base64 value.
    checksums: Mapping[str, str] = field(default_factory=dict)
    checksum_type: str = "FULL_OBJECT"  # or "COMPOSITE" (multipart, per-part checksums combined)
    storage_class: str = "STANDARD"
    # A multipart object's parts, in order (GetObject ?partNumber=, GetObjectAttributes); () otherwise.
    parts: tuple[PartInfo, ...] = ()
    # Per-object settings S3 keeps beside the data, by name, values as text the S3 layer encodes
    # (tags, ACL, server-side encryption; s3/extras.py names them). Stores keep them opaquely.
    extras: Mapping[str, str] = field(default_factory=dict)
    # Versioning (store/versions.py): "null" for a version written while versioning was never
    # enabled or suspended; a delete marker is a version with no body.
    version_id: str = "null"
    delete_marker: bool = False


@dataclass(frozen=True)
class StoredObject:
    info: ObjectInfo
    content: ContentSource


@dataclass(frozen=True)
class ObjectWrite:
    """What a writer supplies; the store computes size, ETag and modification time."""

    content: ContentSource
    content_type: str = "binary/octet-stream"
    metadata: Mapping[str, str] = field(default_factory=dict)
    stored_headers: Mapping[str, str] = field(default_factory=dict)
    checksums: Mapping[str, str] = field(default_factory=dict)
    checksum_type: str = "FULL_OBJECT"
    etag: str | None = None  # given by the S3 layer (it hashes while streaming); else md5 of the content
    parts: tuple[PartInfo, ...] = ()  # CompleteMultipartUpload: the parts the object is made of
    extras: Mapping[str, str] = field(default_factory=dict)  # as ObjectInfo.extras


@dataclass(frozen=True)
class Precondition:
    """A conditional write (`If-None-Match: *`, `If-Match: <etag>`), checked by the store in the
    same step that writes, so that of two writers racing on one key with `If-None-Match: *`
    exactly one succeeds (S3's documented semantics; data-lake commit protocols rely on it)."""

    if_none_match: bool = False  # "*": only when no object has the key
    if_match: str | None = None  # only when the object's ETag is this one (quoted or not)

    def check(self, bucket: str, key: str, current_etag: str | None) -> None:
        """Raises PreconditionFailedError, or NoSuchKeyError for If-Match on a missing key (S3's 404)."""
        if self.if_none_match and current_etag is not None:
            raise PreconditionFailedError(bucket, key, "If-None-Match")
        if self.if_match is not None:
            if current_etag is None:
                raise NoSuchKeyError(bucket, key)
            wanted = {tag.strip().strip('"') for tag in self.if_match.split(",")}
            if "*" not in wanted and current_etag.strip('"') not in wanted:
                raise PreconditionFailedError(bucket, key, "If-Match")


def utc_now_seconds() -> dt.datetime:
    """A store's clock: S3 times are UTC with whole seconds (HTTP dates have no finer resolution)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def object_info(key: str, write: ObjectWrite, *, size: int, etag: str, last_modified: dt.datetime) -> ObjectInfo:
    """What a store records for `write` stored under `key`; the store supplies size, ETag, time."""
    return ObjectInfo(
        key=key,
        size=size,
        etag=etag,
        last_modified=last_modified,
        content_type=write.content_type,
        metadata=dict(write.metadata),
        stored_headers=dict(write.stored_headers),
        checksums=dict(write.checksums),
        checksum_type=write.checksum_type,
        parts=tuple(write.parts),
        extras=dict(write.extras),
    )


def merge_extras(extras: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """`extras` with `changes` applied: a name set to None is removed."""
    merged = dict(extras)
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


@dataclass(frozen=True)
class UploadInfo:
    """A multipart upload in progress, with what CreateMultipartUpload said about the object."""

    upload_id: str
    key: str
    initiated: dt.datetime
    content_type: str = "binary/octet-stream"
    metadata: Mapping[str, str] = field(default_factory=dict)
    stored_headers: Mapping[str, str] = field(default_factory=dict)
    checksum_algorithm: str | None = None  # lower-case, as ObjectInfo.checksums keys
    checksum_type: str | None = None  # "COMPOSITE" or "FULL_OBJECT" when an algorithm is set
    extras: Mapping[str, str] = field(default_factory=dict)  # the object's, as ObjectInfo.extras


@dataclass(frozen=True)
class PartInfo:
    number: int
    etag: str  # quoted md5 of the part
    size: int
    last_modified: dt.datetime
    checksums: Mapping[str, str] = field(default_factory=dict)


class PageEntries(Sequence[ObjectInfo]):
    """A listing page's objects in key order, as consecutive parts: lists of ObjectInfo and runs a
    store describes in bulk (store/synthetic.py's `SyntheticRun`: keys and a spec, no object per
    key). Read as a sequence it is the ObjectInfo values, made on first use; a renderer that knows
    a part's type reads `parts` and renders a run without them. Never changed once built."""

    __slots__ = ("_length", "_parts", "_values")

    def __init__(self, parts: Sequence[Sequence[ObjectInfo]]) -> None:
        self._parts = tuple(part for part in parts if part)
        self._length = sum(len(part) for part in self._parts)
        self._values: list[ObjectInfo] | None = None

    @property
    def parts(self) -> tuple[Sequence[ObjectInfo], ...]:
        return self._parts

    def _materialised(self) -> list[ObjectInfo]:
        if self._values is None:
            self._values = [info for part in self._parts for info in part]
        return self._values

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> ObjectInfo: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ObjectInfo]: ...

    def __getitem__(self, index: int | slice) -> ObjectInfo | Sequence[ObjectInfo]:
        return self._materialised()[index]

    def __iter__(self) -> Iterator[ObjectInfo]:
        return iter(self._materialised())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PageEntries | list | tuple):
            return self._materialised() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PageEntries({self._materialised()!r})"


@dataclass(frozen=True)
class ListPage:
    """One page of a listing in key order.

    `next_after` is the position to resume from (pass it back as `start_after`): the last key or
    common prefix on the page. A common prefix as `start_after` resumes after every key under it.
    The stores' `entries` are PageEntries (runs of synthetic objects kept in bulk).
    """

    entries: Sequence[ObjectInfo]
    common_prefixes: Sequence[str]
    is_truncated: bool
    next_after: str | None  # None when the page is empty


@dataclass(frozen=True)
class VersionEntry:
    info: ObjectInfo  # a version or a delete marker (`info.delete_marker`)
    is_latest: bool


@dataclass(frozen=True)
class VersionPage:
    """One page of ListObjectVersions. Resume from (`next_key`, `next_version_id`); a common
    prefix as `next_key` comes with no version id and resumes after everything under it."""

    entries: Sequence[VersionEntry]
    common_prefixes: Sequence[str]
    is_truncated: bool
    next_key: str | None
    next_version_id: str | None


@dataclass(frozen=True)
class MrapRoute:
    """One bucket behind a Multi-Region Access Point and its traffic dial."""

    bucket: str
    region: str
    dial: int  # TrafficDialPercentage, 0–100; 0 is passive (no requests routed to it)


@dataclass(frozen=True)
class MrapInfo:
    """A Multi-Region Access Point as S3 Control describes it, with its routes."""

    name: str
    alias: str  # "<random>.mrap", the host label clients use
    account: str
    created: dt.datetime
    routes: tuple[MrapRoute, ...]
    client_region: str | None = None  # where requests "come from": the nearest active bucket wins

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "alias": self.alias,
            "account": self.account,
            "created": self.created.isoformat(),
            "routes": [[r.bucket, r.region, r.dial] for r in self.routes],
            "client_region": self.client_region,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> MrapInfo:
        return cls(
            name=str(doc["name"]),
            alias=str(doc["alias"]),
            account=str(doc["account"]),
            created=dt.datetime.fromisoformat(str(doc["created"])),
            routes=tuple(MrapRoute(str(b), str(r), int(d)) for b, r, d in doc["routes"]),
            client_region=doc.get("client_region"),
        )


@dataclass(frozen=True)
class ReplicationTask:
    """A version of `key` in `source` to copy to `target` once `due` (seconds since the epoch)."""

    source: str
    key: str
    version_id: str
    target: str
    due: float


class Store(Protocol):
    """Buckets and objects, used from one trio event loop. The methods are async so that a store
    that waits (for a disk, for another process's write lock) does it off the event loop: while
    one request waits, the process keeps accepting connections and its stall and peek timers
    keep time. The in-memory store never waits; the sqlite store runs each call in a thread.
    `new_content` and `close` never wait, so they stay synchronous."""

    async def list_buckets(self) -> Sequence[BucketInfo]:
        """All buckets, by name."""
        ...

    async def get_bucket(self, bucket: str) -> BucketInfo:
        """Raises NoSuchBucketError."""
        ...

    async def create_bucket(self, bucket: str, region: str = DEFAULT_REGION) -> BucketInfo:
        """Creates `bucket` in `region`. Raises BucketAlreadyExistsError."""
        ...

    async def delete_bucket(self, bucket: str) -> None:
        """Raises NoSuchBucketError, BucketNotEmptyError."""
        ...

    async def head_object(self, bucket: str, key: str) -> ObjectInfo:
        """Raises NoSuchBucketError, NoSuchKeyError."""
        ...

    async def get_object(self, bucket: str, key: str) -> StoredObject:
        """Raises NoSuchBucketError, NoSuchKeyError."""
        ...

    async def put_object(
        self, bucket: str, key: str, write: ObjectWrite, precondition: Precondition | None = None
    ) -> ObjectInfo:
        """Creates or replaces; raises NoSuchBucketError. With a `precondition`, it is checked
        against the object as it is at the moment of the write, atomically with it: raises
        PreconditionFailedError (or NoSuchKeyError for If-Match on a missing key)."""
        ...

    async def delete_object(self, bucket: str, key: str) -> bool:
        """True when the key existed; raises NoSuchBucketError."""
        ...

    async def list_page(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        """Keys under `prefix` strictly after `start_after`, keys sharing a prefix up to the next
        `delimiter` rolled up into one common prefix; at most `max_keys` entries and prefixes
        together. Raises NoSuchBucketError."""
        ...

    async def set_synthetic(self, bucket: str, spec: SyntheticSpec | None) -> None:
        """Give `bucket` a synthetic key space (store/synthetic.py) beneath its real objects;
        None takes it away. Raises NoSuchBucketError."""
        ...

    async def seed_object(self, bucket: str, key: str, write: ObjectWrite) -> bool:
        """Write `key` the first time this store is seeded with it, never again: a seeded key the
        user has since overwritten or deleted stays as the user left it, across restarts and
        across worker processes that share the store and seed it at once. True when written.
        Raises NoSuchBucketError."""
        ...

    async def update_object_extras(self, bucket: str, key: str, changes: Mapping[str, str | None]) -> ObjectInfo:
        """Merge `changes` into the object's extras (None removes a name), leaving its content,
        ETag and modification time as they are (PutObjectTagging, PutObjectAcl). Raises
        NoSuchBucketError, NoSuchKeyError."""
        ...

    async def update_version_extras(
        self, bucket: str, key: str, version_id: str, changes: Mapping[str, str | None]
    ) -> ObjectInfo:
        """update_object_extras for one version, current or not (Object Lock's retention and
        legal hold are per version). Raises NoSuchBucketError, NoSuchVersionError."""
        ...

    async def put_bucket_config(self, bucket: str, name: str, document: str) -> None:
        """Store one of the bucket's configurations (policy, cors, lifecycle, ...; the S3 layer
        names them and validates the document), replacing any before. Raises NoSuchBucketError."""
        ...

    async def get_bucket_config(self, bucket: str, name: str) -> str | None:
        """The configuration stored under `name`; None when none is. Raises NoSuchBucketError."""
        ...

    async def delete_bucket_config(self, bucket: str, name: str) -> None:
        """Forget the configuration `name` (no error when none was stored). Raises NoSuchBucketError."""
        ...

    def close(self) -> None:
        """Let go of what the store holds open (database connections); the data stays."""
        ...

    def new_content(self) -> ContentBuilder:
        """Where a streamed body goes while it arrives (memory blocks, a spool file, ...)."""
        ...

    # -- multipart uploads -------------------------------------------------------------------------

    async def create_upload(self, bucket: str, upload: UploadInfo) -> UploadInfo:
        """Registers `upload` (its upload_id chosen by the caller). Raises NoSuchBucketError."""
        ...

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        """Raises NoSuchBucketError, NoSuchUploadError."""
        ...

    async def put_part(self, bucket: str, key: str, upload_id: str, part: PartInfo, content: ContentSource) -> PartInfo:
        """Creates or replaces part `part.number`. Raises NoSuchBucketError, NoSuchUploadError."""
        ...

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> Sequence[PartInfo]:
        """The parts uploaded so far, by part number. Raises NoSuchBucketError, NoSuchUploadError."""
        ...

    async def complete_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_numbers: Sequence[int],
        write: ObjectWrite,
        precondition: Precondition | None = None,
    ) -> ObjectInfo:
        """Writes the object made of `part_numbers` (validated by the caller) in that order, with
        `write`'s attributes (its content is ignored), and forgets the upload, remembering that
        it made this object (`completed_upload`). `precondition` as in put_object."""
        ...

    async def completed_upload(self, bucket: str, key: str, upload_id: str) -> ObjectInfo | None:
        """The object `upload_id` made, if it completed recently and the object under `key` is
        still the one it made: a retried CompleteMultipartUpload (after a lost response) answers
        200 with it, as S3 does. None otherwise. Raises NoSuchBucketError."""
        ...

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Raises NoSuchBucketError, NoSuchUploadError."""
        ...

    async def list_uploads(self, bucket: str) -> Sequence[UploadInfo]:
        """Uploads in progress, by key then initiation time. Raises NoSuchBucketError."""
        ...

    # -- versioning (store/versions.py says how the stores keep versions) ---------------------------
    # put_object, complete_upload and delete_object follow the bucket's versioning state: with
    # versioning Enabled a write keeps the version it replaces and a delete adds a delete marker;
    # Suspended writes and deletes replace the key's "null" version.

    # -- Multi-Region Access Points (their routes change at run time, so they live in the store) --

    async def put_mrap(self, mrap: MrapInfo, *, overwrite: bool = True) -> bool:
        """Create or replace (by alias); with overwrite False an existing one is kept. True when
        written."""
        ...

    async def find_mrap(self, alias: str) -> MrapInfo | None: ...

    async def list_mraps(self) -> Sequence[MrapInfo]:
        """By name."""
        ...

    async def delete_mrap(self, alias: str) -> bool: ...

    # -- replication (mrapsim/replication.py): a queue every worker process shares --------------

    async def put_replica(self, bucket: str, key: str, info: ObjectInfo, content: ContentSource) -> ObjectInfo:
        """Write the version `info` describes (its version id, time, headers; a delete marker
        too) as `key`'s newest version in `bucket`. Raises NoSuchBucketError."""
        ...

    async def set_replication_status(self, bucket: str, key: str, version_id: str, status: str) -> bool:
        """Record `x-amz-replication-status` on that version; False when it is gone."""
        ...

    async def enqueue_replication(self, tasks: Sequence[ReplicationTask]) -> None: ...

    async def claim_replication(self, now: float, limit: int) -> Sequence[ReplicationTask]:
        """Take (remove) up to `limit` tasks due by `now` whose target is not paused. A task is
        handed to one caller only, whichever process asks."""
        ...

    async def replication_backlog(self) -> Mapping[str, int]:
        """Tasks waiting, by target bucket (paused or not yet due)."""
        ...

    async def set_replication_paused(self, bucket: str, paused: bool) -> None:
        """A paused bucket (its Region "down") receives no replicas until resumed; its tasks
        wait. Raises NoSuchBucketError."""
        ...

    async def get_versioning(self, bucket: str) -> str:
        """ "" (never enabled), "Enabled" or "Suspended". Raises NoSuchBucketError."""
        ...

    async def set_versioning(self, bucket: str, status: str) -> None:
        """Set "Enabled" or "Suspended". Raises NoSuchBucketError."""
        ...

    async def get_object_version(self, bucket: str, key: str, version_id: str) -> StoredObject:
        """That version (a delete marker too: `info.delete_marker`, empty content). Raises
        NoSuchBucketError, NoSuchVersionError."""
        ...

    async def delete_key(self, bucket: str, key: str) -> ObjectInfo | None:
        """DeleteObject without a version: as delete_object, returning the delete marker it
        added (None in a bucket whose versioning was never enabled). Raises NoSuchBucketError."""
        ...

    async def delete_object_version(self, bucket: str, key: str, version_id: str) -> ObjectInfo | None:
        """Remove that version for good (the next newest becomes current); returns what was
        removed, None when there was no such version. Raises NoSuchBucketError."""
        ...

    async def list_versions(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = 1000,
    ) -> VersionPage:
        """ListObjectVersions: keys in order, each key's versions newest first, resuming after
        (`key_marker`, `version_id_marker`); O(log n + page). Raises NoSuchBucketError."""
        ...
