"""Building the configured store and filling it from `Config.buckets` and `Config.mraps`."""

from __future__ import annotations

import contextlib

from mrapsim.config import Config, ConfigError
from mrapsim.store.base import ObjectWrite, Store
from mrapsim.store.content import BytesContent
from mrapsim.store.errors import BucketAlreadyExistsError
from mrapsim.store.memory import MemoryStore
from mrapsim.store.synthetic import SyntheticFormatError


def create_store(config: Config) -> Store:
    """The store `config.store` asks for, seeded.

    The sqlite store is shared by worker processes and outlives restarts, so it seeds itself:
    once per (bucket, key), never overwriting what a user changed since.
    """
    if config.store.kind == "sqlite":
        from mrapsim.store.sqlite import SqliteStore, StoreOpenError  # sqlite imports this module

        try:
            sqlite = SqliteStore.open(config.store.path)
        except StoreOpenError as exc:
            raise ConfigError("store.path", str(exc)) from exc
        sqlite.seed(config)
        return sqlite
    store = MemoryStore()
    seed_store(store, config)
    return store


def seed_content_type(key: str) -> str:
    """The content type of an object declared in the configuration."""
    return "text/plain" if key.endswith((".txt", ".md", ".csv")) else "binary/octet-stream"


def seed_store(store: Store, config: Config) -> None:
    """Create every declared bucket with its objects, then every bucket an MRAP names but no
    `[[buckets]]` entry declares (empty). Existing buckets are kept, so seeding is idempotent."""
    for bucket in config.buckets:
        _ensure_bucket(store, bucket.name)
        if bucket.synthetic is not None:
            try:
                store.add_synthetic(bucket.name, bucket.synthetic)
            except SyntheticFormatError as exc:
                raise ConfigError(f"buckets.{bucket.name}.synthetic.key_format", str(exc)) from exc
        for key, data in bucket.objects:
            store.put_object(bucket.name, key, ObjectWrite(BytesContent(data), content_type=seed_content_type(key)))
    for mrap in config.mraps:
        for name in mrap.buckets:
            _ensure_bucket(store, name)


def _ensure_bucket(store: Store, name: str) -> None:
    with contextlib.suppress(BucketAlreadyExistsError):
        store.create_bucket(name)
