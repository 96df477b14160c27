"""A live S3 app of a test module's own (conftest.py's `live` is shared by the whole session):
for tests that create buckets, which other modules' exact listings must not see."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

from mrapsim.config import load_config
from mrapsim.s3 import RequestRecord, create_app
from mrapsim.store import MemoryStore, seed_store
from tests.s3.conftest import LiveServer, serving


@contextmanager
def own_live_server() -> Iterator[LiveServer]:
    config = load_config(overrides={"buckets": [{"name": "writes"}]})
    store = MemoryStore()
    trio.run(seed_store, store, config)
    records: list[RequestRecord] = []
    with serving(create_app(config, store, on_request=records.append)) as url:
        yield LiveServer(url, int(url.rsplit(":", 1)[1]), config, store, records)
