"""The in-memory ordered store (the default).

Each bucket keeps a dict (key → object) for point lookups and a sorted list of keys for listing.
Listing bisects to the start position and walks one page; a delimiter roll-up bisects past the
whole common prefix (to the prefix's successor string) instead of walking its keys, so a page
costs O(log n + page size) however many keys each common prefix hides.

Writes keep the key list sorted with `bisect.insort`: O(log n) comparisons plus a memmove of the
pointer array, which stays well under a millisecond at a million keys. A write-heavy
multi-million-key workload would want a B-tree-like list (sortedcontainers.SortedList) behind
the same `_SortedKeys` surface.

Python compares str by code point, which is the same order as S3's UTF-8 byte order for every
valid (surrogate-free) key; the S3 layer only admits keys that decode as UTF-8.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mrapsim.store.base import BucketInfo, ListPage, ObjectInfo, ObjectWrite, StoredObject
from mrapsim.store.content import BytesContent, ContentSource
from mrapsim.store.errors import (
    BucketAlreadyExistsError,
    BucketNotEmptyError,
    NoSuchBucketError,
    NoSuchKeyError,
)

MAX_CODE_POINT = 0x10FFFF


def utc_now_seconds() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def prefix_successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix`
    (None: no such string, every string from `prefix` on starts with it)."""
    while prefix:
        last = ord(prefix[-1])
        if last < MAX_CODE_POINT:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


def content_etag(content: ContentSource) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    for chunk in content.chunks(0, content.size):
        md5.update(chunk)
    return f'"{md5.hexdigest()}"'


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


@dataclass
class _Bucket:
    info: BucketInfo
    objects: dict[str, StoredObject] = field(default_factory=dict)
    order: _SortedKeys = field(default_factory=_SortedKeys)


class MemoryStore:
    """Buckets and objects in process memory; see the module comment for the costs."""

    def __init__(self, clock: Callable[[], dt.datetime] = utc_now_seconds) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    # -- buckets -------------------------------------------------------------------------------

    def list_buckets(self) -> Sequence[BucketInfo]:
        return [self._buckets[name].info for name in sorted(self._buckets)]

    def get_bucket(self, bucket: str) -> BucketInfo:
        return self._bucket(bucket).info

    def create_bucket(self, bucket: str) -> BucketInfo:
        if bucket in self._buckets:
            raise BucketAlreadyExistsError(bucket)
        info = BucketInfo(bucket, self._clock())
        self._buckets[bucket] = _Bucket(info)
        return info

    def delete_bucket(self, bucket: str) -> None:
        if self._bucket(bucket).objects:
            raise BucketNotEmptyError(bucket)
        del self._buckets[bucket]

    # -- objects -------------------------------------------------------------------------------

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        return self.get_object(bucket, key).info

    def get_object(self, bucket: str, key: str) -> StoredObject:
        stored = self._bucket(bucket).objects.get(key)
        if stored is None:
            raise NoSuchKeyError(bucket, key)
        return stored

    def put_object(self, bucket: str, key: str, write: ObjectWrite) -> ObjectInfo:
        target = self._bucket(bucket)
        info = ObjectInfo(
            key=key,
            size=write.content.size,
            etag=write.etag or content_etag(write.content),
            last_modified=self._clock(),
            content_type=write.content_type,
            metadata=dict(write.metadata),
            stored_headers=dict(write.stored_headers),
            checksums=dict(write.checksums),
        )
        if key not in target.objects:
            target.order.add(key)
        target.objects[key] = StoredObject(info, write.content)
        return info

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "binary/octet-stream") -> ObjectInfo:
        """Convenience for seeding and tests."""
        return self.put_object(bucket, key, ObjectWrite(BytesContent(data), content_type=content_type))

    def delete_object(self, bucket: str, key: str) -> bool:
        target = self._bucket(bucket)
        if target.objects.pop(key, None) is None:
            return False
        target.order.remove(key)
        return True

    # -- listing -------------------------------------------------------------------------------

    def list_page(
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
        order = target.order
        keys = order.keys
        at = self._resume_index(order, prefix, delimiter, start_after)
        entries: list[ObjectInfo] = []
        common_prefixes: list[str] = []
        last: str | None = None
        while at < len(keys) and len(entries) + len(common_prefixes) < max_keys:
            key = keys[at]
            if not key.startswith(prefix):
                break
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                common_prefixes.append(common)
                last = common
                at = order.index_at_or_after(prefix_successor(common), at)
            else:
                entries.append(target.objects[key].info)
                last = key
                at += 1
        is_truncated = at < len(keys) and keys[at].startswith(prefix)
        return ListPage(entries, common_prefixes, is_truncated, last)

    @staticmethod
    def _resume_index(order: _SortedKeys, prefix: str, delimiter: str, start_after: str) -> int:
        at = order.index_at_or_after(prefix)
        if not start_after:
            return at
        # A start position inside a common prefix (the prefix itself, as a previous page's
        # next_after, or a key under it) means that prefix was already returned: skip all of it.
        if delimiter and start_after.startswith(prefix):
            cut = start_after.find(delimiter, len(prefix))
            if cut >= 0:
                common = start_after[: cut + len(delimiter)]
                return max(at, order.index_at_or_after(prefix_successor(common)))
        return max(at, order.index_after(start_after))

    # -- internals -----------------------------------------------------------------------------

    def _bucket(self, bucket: str) -> _Bucket:
        found = self._buckets.get(bucket)
        if found is None:
            raise NoSuchBucketError(bucket)
        return found
