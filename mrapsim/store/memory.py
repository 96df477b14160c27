"""The in-memory ordered store (the default).

Each bucket keeps a dict (key → object) for point lookups and a sorted list of keys for listing.
Listing bisects to the start position and walks one page; a delimiter roll-up bisects past the
whole common prefix (to the prefix's successor string) instead of walking its keys, so a page
costs O(log n + page size) however many keys each common prefix hides.

Writes keep the key list sorted with `bisect.insort`: O(log n) comparisons plus a memmove of the
pointer array, which stays well under a millisecond at a million keys. A write-heavy
multi-million-key workload would want a B-tree-like list (sortedcontainers.SortedList) behind
the same `_SortedKeys` surface.

A bucket may also carry a synthetic key space (store/synthetic.py): listing merges it with the
real keys through store/merge.py's cursors (two bisections per seek, a real key shadowing an equal synthetic
one, deleted synthetic keys remembered in a set and skipped), so the page cost stays
O(log n + page) for a million synthetic keys.

Multipart uploads live with their bucket; completing one joins the parts' content sources.

Python compares str by code point, which is the same order as S3's UTF-8 byte order for every
valid (surrogate-free) key; the S3 layer only admits keys that decode as UTF-8.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from mrapsim.config import DEFAULT_REGION, SyntheticSpec
from mrapsim.store.base import (
    BucketInfo,
    ListPage,
    MrapInfo,
    ObjectInfo,
    ObjectWrite,
    PartInfo,
    Precondition,
    ReplicationTask,
    StoredObject,
    UploadInfo,
    VersionEntry,
    VersionPage,
    merge_extras,
    object_info,
    utc_now_seconds,
)
from mrapsim.store.content import (
    BytesContent,
    ConcatContent,
    ContentBuilder,
    ContentSource,
    MemoryContentBuilder,
    content_etag,
)
from mrapsim.store.errors import (
    BucketAlreadyExistsError,
    BucketNotEmptyError,
    NoSuchBucketError,
    NoSuchKeyError,
    NoSuchUploadError,
    NoSuchVersionError,
)
from mrapsim.store.merge import IndexCursor, MergedCursor, RunCursor, list_merged
from mrapsim.store.synthetic import SyntheticKeys, SyntheticRun, synthetic_content, synthetic_info
from mrapsim.store.versions import NULL_VERSION, SUSPENDED, list_version_page, new_version_id

COMPLETED_REMEMBERED = 1000  # completed uploads per bucket a retried Complete can still find


@dataclass
class _SortedKeys:
    """A sorted list of distinct keys with the few operations listing needs."""

    keys: list[str] = field(default_factory=list)

    def add(self, key: str) -> None:
        at = bisect.bisect_left(self.keys, key)
        if at == len(self.keys) or self.keys[at] != key:
            self.keys.insert(at, key)

    def remove(self, key: str) -> None:
        at = bisect.bisect_left(self.keys, key)
        if at < len(self.keys) and self.keys[at] == key:
            del self.keys[at]

    def index_at_or_after(self, key: str | None, lo: int = 0) -> int:
        """Index of the first key >= `key` (None: past the end)."""
        if key is None:
            return len(self.keys)
        return bisect.bisect_left(self.keys, key, lo)

    def index_after(self, key: str, lo: int = 0) -> int:
        return bisect.bisect_right(self.keys, key, lo)

    def key_at(self, index: int) -> str:
        return self.keys[index]

    def keys_between(self, start: int, stop: int) -> list[str]:
        return self.keys[start:stop]

    def index_before_bound(self, key: str, lo: int, hi: int) -> int:
        return bisect.bisect_left(self.keys, key, lo, hi)

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class _Upload:
    info: UploadInfo
    parts: dict[int, tuple[PartInfo, ContentSource]] = field(default_factory=dict)


@dataclass
class _Bucket:
    info: BucketInfo
    objects: dict[str, StoredObject] = field(default_factory=dict)
    order: _SortedKeys = field(default_factory=_SortedKeys)
    uploads: dict[str, _Upload] = field(default_factory=dict)
    synthetic: SyntheticKeys | None = None
    spec: SyntheticSpec | None = None
    deleted: set[str] = field(default_factory=set)  # synthetic keys deleted (or overwritten and deleted)
    seeded: set[str] = field(default_factory=set)  # keys seed_object wrote once
    # upload id → (key, ETag) of the object it made, oldest first: retried Completes (bounded).
    completed: dict[str, tuple[str, str]] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)  # bucket configurations by name
    # Versioning (store/versions.py): state, each current object's seq, the archive per key
    # (oldest first) and the sorted keys that have an archive.
    versioning: str = ""
    current_seq: dict[str, int] = field(default_factory=dict)
    archive: dict[str, list[tuple[int, StoredObject]]] = field(default_factory=dict)
    archive_order: _SortedKeys = field(default_factory=_SortedKeys)

    def synthetic_object(self, key: str) -> StoredObject | None:
        if self.synthetic is None or self.spec is None or key in self.deleted:
            return None
        if self.synthetic.index_of(key) is None:
            return None
        return StoredObject(synthetic_info(self.spec, key), synthetic_content(self.spec, key))

    def key_cursor(self, *also: RunCursor) -> MergedCursor:
        """The stored keys (source 0), then `also`, then the synthetic keys not deleted, merged."""
        sources: list[RunCursor] = [IndexCursor(self.order), *also]
        if self.synthetic is not None:
            sources.append(IndexCursor(self.synthetic, self.deleted.__contains__ if self.deleted else None))
        return MergedCursor(sources)

    def is_empty(self) -> bool:
        return (
            not self.objects
            and not self.archive
            and (self.synthetic is None or len(self.deleted) >= len(self.synthetic))
        )


class MemoryStore:
    """Buckets and objects in process memory; see the module comment for the costs."""

    def __init__(self, clock: Callable[[], dt.datetime] = utc_now_seconds) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._seq = itertools.count(1)  # version order within a key (store/versions.py)
        self._mraps: dict[str, MrapInfo] = {}
        self._replication: list[ReplicationTask] = []
        self._paused: set[str] = set()

    # -- buckets -------------------------------------------------------------------------------

    async def list_buckets(self) -> Sequence[BucketInfo]:
        return [self._buckets[name].info for name in sorted(self._buckets)]

    async def get_bucket(self, bucket: str) -> BucketInfo:
        return self._bucket(bucket).info

    async def create_bucket(self, bucket: str, region: str = DEFAULT_REGION) -> BucketInfo:
        if bucket in self._buckets:
            raise BucketAlreadyExistsError(bucket)
        info = BucketInfo(bucket, self._clock(), region)
        self._buckets[bucket] = _Bucket(info)
        return info

    async def delete_bucket(self, bucket: str) -> None:
        if not self._bucket(bucket).is_empty():
            raise BucketNotEmptyError(bucket)
        del self._buckets[bucket]

    # -- objects -------------------------------------------------------------------------------

    async def head_object(self, bucket: str, key: str) -> ObjectInfo:
        return (await self.get_object(bucket, key)).info

    async def get_object(self, bucket: str, key: str) -> StoredObject:
        target = self._bucket(bucket)
        stored = target.objects.get(key) or target.synthetic_object(key)
        if stored is None:
            raise NoSuchKeyError(bucket, key)
        return stored

    async def put_object(
        self, bucket: str, key: str, write: ObjectWrite, precondition: Precondition | None = None
    ) -> ObjectInfo:
        # No await between the check and the write: one step of the event loop, so atomic.
        target = self._bucket(bucket)
        if precondition is not None:
            current = target.objects.get(key) or target.synthetic_object(key)
            precondition.check(bucket, key, current.info.etag if current else None)
        info = object_info(
            key,
            write,
            size=write.content.size,
            etag=write.etag or content_etag(write.content),
            last_modified=self._clock(),
        )
        info = replace(info, version_id=new_version_id(target.versioning))
        self._displace(target, key)
        target.order.add(key)
        target.objects[key] = StoredObject(info, write.content)
        if target.versioning:
            target.current_seq[key] = next(self._seq)
        return info

    async def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "binary/octet-stream"
    ) -> ObjectInfo:
        """Convenience for seeding and tests."""
        return await self.put_object(bucket, key, ObjectWrite(BytesContent(data), content_type=content_type))

    async def delete_object(self, bucket: str, key: str) -> bool:
        target = self._bucket(bucket)
        if target.versioning:
            existed = key in target.objects or target.synthetic_object(key) is not None
            await self.delete_key(bucket, key)
            return existed
        synthetic = target.synthetic_object(key) is not None
        if synthetic:
            target.deleted.add(key)
        if target.objects.pop(key, None) is None:
            return synthetic
        target.order.remove(key)
        return True

    async def update_object_extras(self, bucket: str, key: str, changes: Mapping[str, str | None]) -> ObjectInfo:
        target = self._bucket(bucket)
        stored = await self.get_object(bucket, key)
        info = replace(stored.info, extras=merge_extras(stored.info.extras, changes))
        if key not in target.objects:  # a synthetic object becomes a real one with its content
            target.order.add(key)
        target.objects[key] = StoredObject(info, stored.content)
        return info

    async def update_version_extras(
        self, bucket: str, key: str, version_id: str, changes: Mapping[str, str | None]
    ) -> ObjectInfo:
        target = self._bucket(bucket)
        current = target.objects.get(key)
        if current is not None and current.info.version_id == version_id:
            return await self.update_object_extras(bucket, key, changes)
        versions = target.archive.get(key, [])
        for at, (seq, stored) in enumerate(versions):
            if stored.info.version_id == version_id:
                info = replace(stored.info, extras=merge_extras(stored.info.extras, changes))
                versions[at] = (seq, StoredObject(info, stored.content))
                return info
        if current is None and version_id == NULL_VERSION and target.synthetic_object(key) is not None:
            return await self.update_object_extras(bucket, key, changes)
        raise NoSuchVersionError(bucket, key, version_id)

    async def put_bucket_config(self, bucket: str, name: str, document: str) -> None:
        self._bucket(bucket).configs[name] = document

    async def get_bucket_config(self, bucket: str, name: str) -> str | None:
        return self._bucket(bucket).configs.get(name)

    async def delete_bucket_config(self, bucket: str, name: str) -> None:
        self._bucket(bucket).configs.pop(name, None)

    async def set_synthetic(self, bucket: str, spec: SyntheticSpec | None) -> None:
        """Give `bucket` the synthetic key space `spec` describes, under its real objects
        (a real object with a synthetic key shadows it); None takes it away."""
        target = self._bucket(bucket)
        target.synthetic = None if spec is None else SyntheticKeys.of(spec)
        target.spec = spec

    async def seed_object(self, bucket: str, key: str, write: ObjectWrite) -> bool:
        target = self._bucket(bucket)
        if key in target.seeded:
            return False
        target.seeded.add(key)
        if key in target.objects:
            return False
        await self.put_object(bucket, key, write)
        return True

    # -- listing -------------------------------------------------------------------------------

    async def list_page(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        target = self._bucket(bucket)
        if max_keys <= 0:
            return ListPage((), (), False, None)
        cursor = target.key_cursor()

        def take(source: int, keys: list[str]) -> Sequence[ObjectInfo]:
            if source == 0:
                objects = target.objects
                return [objects[key].info for key in keys]
            assert target.spec is not None
            return SyntheticRun(target.spec, keys)

        return list_merged(cursor, take, prefix=prefix, delimiter=delimiter, start_after=start_after, max_keys=max_keys)

    def new_content(self) -> ContentBuilder:
        return MemoryContentBuilder()

    def close(self) -> None:
        """Nothing to let go of: the objects live as long as the process."""

    # -- multipart uploads -----------------------------------------------------------------------

    async def create_upload(self, bucket: str, upload: UploadInfo) -> UploadInfo:
        self._bucket(bucket).uploads[upload.upload_id] = _Upload(upload)
        return upload

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        return self._upload(bucket, key, upload_id).info

    async def put_part(self, bucket: str, key: str, upload_id: str, part: PartInfo, content: ContentSource) -> PartInfo:
        self._upload(bucket, key, upload_id).parts[part.number] = (part, content)
        return part

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> Sequence[PartInfo]:
        parts = self._upload(bucket, key, upload_id).parts
        return [parts[number][0] for number in sorted(parts)]

    async def complete_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_numbers: Sequence[int],
        write: ObjectWrite,
        precondition: Precondition | None = None,
    ) -> ObjectInfo:
        upload = self._upload(bucket, key, upload_id)
        content = ConcatContent.of([upload.parts[number][1] for number in part_numbers])
        info = await self.put_object(bucket, key, replace(write, content=content), precondition)
        target = self._bucket(bucket)
        del target.uploads[upload_id]
        target.completed[upload_id] = (key, info.etag)
        if len(target.completed) > COMPLETED_REMEMBERED:
            del target.completed[next(iter(target.completed))]
        return info

    async def completed_upload(self, bucket: str, key: str, upload_id: str) -> ObjectInfo | None:
        target = self._bucket(bucket)
        made = target.completed.get(upload_id)
        current = target.objects.get(key)
        if made is None or current is None or made != (key, current.info.etag):
            return None
        return current.info

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self._upload(bucket, key, upload_id)
        del self._bucket(bucket).uploads[upload_id]

    async def list_uploads(self, bucket: str) -> Sequence[UploadInfo]:
        uploads = [u.info for u in self._bucket(bucket).uploads.values()]
        return sorted(uploads, key=lambda u: (u.key, u.initiated, u.upload_id))

    # -- Multi-Region Access Points -------------------------------------------------------------

    async def put_mrap(self, mrap: MrapInfo, *, overwrite: bool = True) -> bool:
        if not overwrite and mrap.alias in self._mraps:
            return False
        self._mraps[mrap.alias] = mrap
        return True

    async def find_mrap(self, alias: str) -> MrapInfo | None:
        return self._mraps.get(alias)

    async def list_mraps(self) -> Sequence[MrapInfo]:
        return sorted(self._mraps.values(), key=lambda m: m.name)

    async def delete_mrap(self, alias: str) -> bool:
        return self._mraps.pop(alias, None) is not None

    # -- replication -----------------------------------------------------------------------------

    async def put_replica(self, bucket: str, key: str, info: ObjectInfo, content: ContentSource) -> ObjectInfo:
        target = self._bucket(bucket)
        self._displace(target, key)
        if info.delete_marker:
            self._archive(target, key, next(self._seq), StoredObject(info, BytesContent(b"")))
        else:
            target.order.add(key)
            target.objects[key] = StoredObject(info, content)
            target.current_seq[key] = next(self._seq)
        return info

    async def set_replication_status(self, bucket: str, key: str, version_id: str, status: str) -> bool:
        target = self._bucket(bucket)

        def marked(stored: StoredObject) -> StoredObject:
            headers = {**stored.info.stored_headers, "x-amz-replication-status": status}
            return StoredObject(replace(stored.info, stored_headers=headers), stored.content)

        current = target.objects.get(key)
        if current is not None and current.info.version_id == version_id:
            target.objects[key] = marked(current)
            return True
        versions = target.archive.get(key, [])
        for at, (seq, stored) in enumerate(versions):
            if stored.info.version_id == version_id:
                versions[at] = (seq, marked(stored))
                return True
        return False

    async def enqueue_replication(self, tasks: Sequence[ReplicationTask]) -> None:
        self._replication.extend(tasks)

    async def claim_replication(self, now: float, limit: int) -> Sequence[ReplicationTask]:
        claimed: list[ReplicationTask] = []
        waiting: list[ReplicationTask] = []
        for task in self._replication:
            ready = task.due <= now and task.target not in self._paused and len(claimed) < limit
            (claimed if ready else waiting).append(task)
        self._replication = waiting
        return claimed

    async def replication_backlog(self) -> Mapping[str, int]:
        return dict(Counter(task.target for task in self._replication))

    async def set_replication_paused(self, bucket: str, paused: bool) -> None:
        self._bucket(bucket)
        if paused:
            self._paused.add(bucket)
        else:
            self._paused.discard(bucket)

    # -- versioning (store/versions.py) ----------------------------------------------------------

    async def get_versioning(self, bucket: str) -> str:
        return self._bucket(bucket).versioning

    async def set_versioning(self, bucket: str, status: str) -> None:
        self._bucket(bucket).versioning = status

    async def get_object_version(self, bucket: str, key: str, version_id: str) -> StoredObject:
        target = self._bucket(bucket)
        current = target.objects.get(key)
        if current is None and version_id == NULL_VERSION:
            current = target.synthetic_object(key)
        if current is not None and current.info.version_id == version_id:
            return current
        for _, stored in target.archive.get(key, ()):
            if stored.info.version_id == version_id:
                return stored
        raise NoSuchVersionError(bucket, key, version_id)

    async def delete_key(self, bucket: str, key: str) -> ObjectInfo | None:
        target = self._bucket(bucket)
        if not target.versioning:
            await self.delete_object(bucket, key)
            return None
        self._displace(target, key)
        if target.synthetic_object(key) is not None:
            target.deleted.add(key)  # the marker hides the synthetic key, which keeps no versions
        marker = ObjectInfo(key, 0, "", self._clock(), version_id=new_version_id(target.versioning), delete_marker=True)
        self._archive(target, key, next(self._seq), StoredObject(marker, BytesContent(b"")))
        return marker

    async def delete_object_version(self, bucket: str, key: str, version_id: str) -> ObjectInfo | None:
        target = self._bucket(bucket)
        current = target.objects.get(key)
        if current is not None and current.info.version_id == version_id:
            self._drop_current(target, key)
            self._promote(target, key)
            return current.info
        if current is None and version_id == NULL_VERSION and target.synthetic_object(key) is not None:
            target.deleted.add(key)
            return synthetic_info(target.spec, key) if target.spec is not None else None
        removed = self._unarchive(target, key, version_id)
        if removed is not None:
            self._promote(target, key)
        return removed

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
        target = self._bucket(bucket)

        def versions_of(key: str, after: str | None, limit: int) -> Sequence[VersionEntry]:
            # A key's chain is short in practice; the page cost is bounded by keys, not chains.
            current = target.objects.get(key) or target.synthetic_object(key)
            chain = [current.info] if current is not None else []
            chain += [stored.info for _, stored in reversed(target.archive.get(key, []))]
            start = 0
            if after is not None:
                ids = [info.version_id for info in chain]
                start = ids.index(after) + 1 if after in ids else len(chain)
            return [VersionEntry(info, at == 0) for at, info in enumerate(chain[start : start + limit], start)]

        return list_version_page(
            target.key_cursor(IndexCursor(target.archive_order)),
            versions_of,
            prefix=prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            version_id_marker=version_id_marker,
            max_keys=max_keys,
        )

    def _displace(self, target: _Bucket, key: str) -> None:
        """Make way for a new version of `key` (module comment of store/versions.py): the current
        object is archived (Enabled, or Suspended and not "null") or dropped; a Suspended bucket
        also drops the key's archived "null" version."""
        if target.versioning == SUSPENDED:
            self._unarchive(target, key, NULL_VERSION)
        current = target.objects.get(key)
        if current is None:
            return
        if target.versioning and not (target.versioning == SUSPENDED and current.info.version_id == NULL_VERSION):
            self._archive(target, key, target.current_seq.get(key, 0), current)
        self._drop_current(target, key)

    @staticmethod
    def _drop_current(target: _Bucket, key: str) -> None:
        target.objects.pop(key, None)
        target.current_seq.pop(key, None)
        target.order.remove(key)

    @staticmethod
    def _archive(target: _Bucket, key: str, seq: int, stored: StoredObject) -> None:
        versions = target.archive.setdefault(key, [])
        if not versions:
            target.archive_order.add(key)
        versions.append((seq, stored))
        versions.sort(key=lambda item: item[0])  # a pre-versioning "null" object has seq 0

    @staticmethod
    def _unarchive(target: _Bucket, key: str, version_id: str) -> ObjectInfo | None:
        versions = target.archive.get(key)
        if not versions:
            return None
        for at, (_, stored) in enumerate(versions):
            if stored.info.version_id == version_id:
                del versions[at]
                if not versions:
                    del target.archive[key]
                    target.archive_order.remove(key)
                return stored.info
        return None

    @staticmethod
    def _promote(target: _Bucket, key: str) -> None:
        """With no current object, the newest archived version becomes current unless it is a
        delete marker (which then is the latest version)."""
        versions = target.archive.get(key)
        if key in target.objects or not versions or versions[-1][1].info.delete_marker:
            return
        seq, stored = versions.pop()
        if not versions:
            del target.archive[key]
            target.archive_order.remove(key)
        target.objects[key] = stored
        target.current_seq[key] = seq
        target.order.add(key)

    # -- internals -----------------------------------------------------------------------------

    def _upload(self, bucket: str, key: str, upload_id: str) -> _Upload:
        upload = self._bucket(bucket).uploads.get(upload_id)
        if upload is None or upload.info.key != key:
            raise NoSuchUploadError(bucket, key, upload_id)
        return upload

    def _bucket(self, bucket: str) -> _Bucket:
        found = self._buckets.get(bucket)
        if found is None:
            raise NoSuchBucketError(bucket)
        return found
