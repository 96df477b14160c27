"""Where objects live: the `Store` interface and its implementations.

The S3 app (`mrapsim.s3`) talks to a `Store` only; it never knows which implementation it has.
"""

from mrapsim.store.base import (
    BucketInfo,
    ListPage,
    MrapInfo,
    MrapRoute,
    ObjectInfo,
    ObjectWrite,
    PageEntries,
    PartInfo,
    Precondition,
    ReplicationTask,
    Store,
    StoredObject,
    UploadInfo,
    VersionEntry,
    VersionPage,
)
from mrapsim.store.content import (
    BytesContent,
    ConcatContent,
    ContentBuilder,
    ContentSource,
    MemoryContentBuilder,
    SliceContent,
    stream_content,
)
from mrapsim.store.errors import (
    BucketAlreadyExistsError,
    BucketNotEmptyError,
    NoSuchBucketError,
    NoSuchKeyError,
    NoSuchUploadError,
    NoSuchVersionError,
    PreconditionFailedError,
    StoreError,
    StoreOpenError,
)
from mrapsim.store.memory import MemoryStore
from mrapsim.store.seed import create_store, seed_store
from mrapsim.store.synthetic import SyntheticRun

__all__ = [
    "BucketAlreadyExistsError",
    "BucketInfo",
    "BucketNotEmptyError",
    "BytesContent",
    "ConcatContent",
    "ContentBuilder",
    "ContentSource",
    "ListPage",
    "MemoryContentBuilder",
    "MemoryStore",
    "MrapInfo",
    "MrapRoute",
    "NoSuchBucketError",
    "NoSuchKeyError",
    "NoSuchUploadError",
    "NoSuchVersionError",
    "ObjectInfo",
    "ObjectWrite",
    "PageEntries",
    "PartInfo",
    "Precondition",
    "PreconditionFailedError",
    "ReplicationTask",
    "SliceContent",
    "Store",
    "StoreError",
    "StoreOpenError",
    "StoredObject",
    "SyntheticRun",
    "UploadInfo",
    "VersionEntry",
    "VersionPage",
    "create_store",
    "seed_store",
    "stream_content",
]
