"""Building the configured store and filling it from `Config.buckets` and `Config.mraps`.

One seeding routine serves every store. It may run many times over the same store (a sqlite
store outlives restarts and is shared by worker processes that all seed it as they start), so
each step is idempotent: an existing bucket is kept, and each configured object is written
through `Store.seed_object`, which writes a key once in the store's life.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import trio

from mrapsim.config import DEFAULT_REGION, Config, MrapConfig
from mrapsim.store.base import MrapInfo, MrapRoute, ObjectWrite, Store, utc_now_seconds
from mrapsim.store.content import BytesContent
from mrapsim.store.errors import BucketAlreadyExistsError
from mrapsim.store.memory import MemoryStore
from mrapsim.store.sqlite import SqliteStore


async def create_store(config: Config) -> Store:
    """The store `config.store` asks for, seeded. Raises StoreOpenError."""
    store: Store
    if config.store.kind == "sqlite":  # opening may wait for another worker's write lock
        store = await trio.to_thread.run_sync(SqliteStore.open, config.store.path)
    else:
        store = MemoryStore()
    try:
        await seed_store(store, config)
    except BaseException:
        store.close()
        raise
    return store


def seed_content_type(key: str) -> str:
    """The content type of an object declared in the configuration."""
    return "text/plain" if key.endswith((".txt", ".md", ".csv")) else "binary/octet-stream"


def mrap_info(mrap: MrapConfig, regions: Mapping[str, str]) -> MrapInfo:
    """The store's record of a configured MRAP; a bucket's Region is its [[buckets]] region."""
    dials = mrap.dials or tuple(100 for _ in mrap.buckets)
    routes = tuple(
        MrapRoute(bucket, regions.get(bucket, DEFAULT_REGION), dial)
        for bucket, dial in zip(mrap.buckets, dials, strict=True)
    )
    name = mrap.name or mrap.alias.removesuffix(".mrap")
    return MrapInfo(name, mrap.alias, mrap.account, utc_now_seconds(), routes, mrap.client_region)


async def seed_store(store: Store, config: Config) -> None:
    """Create every declared bucket and every bucket an MRAP names (empty), give each declared
    bucket exactly its configured synthetic key space, and write each declared object once."""
    regions = {bucket.name: bucket.region for bucket in config.buckets}
    for name in [bucket.name for bucket in config.buckets] + [name for mrap in config.mraps for name in mrap.buckets]:
        with contextlib.suppress(BucketAlreadyExistsError):
            await store.create_bucket(name, regions.get(name, DEFAULT_REGION))
    for mrap in config.mraps:
        await store.put_mrap(mrap_info(mrap, regions), overwrite=False)  # run-time changes persist
    for bucket in config.buckets:
        await store.set_synthetic(bucket.name, bucket.synthetic)
        for key, data in bucket.objects:
            write = ObjectWrite(BytesContent(data), content_type=seed_content_type(key))
            await store.seed_object(bucket.name, key, write)
