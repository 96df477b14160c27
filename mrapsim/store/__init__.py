"""Where objects live: the `Store` interface and its implementations (SPEC §7).

The S3 app (`mrapsim.s3`) talks to a `Store` only; it never knows which implementation it has.
"""

from mrapsim.store.base import (
    BucketInfo,
    ListPage,
    ObjectInfo,
    ObjectWrite,
    Store,
    StoredObject,
)
from mrapsim.store.content import BytesContent, ContentSource
from mrapsim.store.errors import (
    BucketAlreadyExistsError,
    BucketNotEmptyError,
    NoSuchBucketError,
    NoSuchKeyError,
    StoreError,
)
from mrapsim.store.memory import MemoryStore
from mrapsim.store.seed import create_store, seed_store

__all__ = [
    "BucketAlreadyExistsError",
    "BucketInfo",
    "BucketNotEmptyError",
    "BytesContent",
    "ContentSource",
    "ListPage",
    "MemoryStore",
    "NoSuchBucketError",
    "NoSuchKeyError",
    "ObjectInfo",
    "ObjectWrite",
    "Store",
    "StoreError",
    "StoredObject",
    "create_store",
    "seed_store",
]
