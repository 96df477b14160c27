"""Seeding rules and helpers. The store contract (listing against a brute-force model,
lifecycle, multipart, synthetic key spaces) runs on every store in tests/store/contract.py."""

from __future__ import annotations

import trio

from mrapsim.config import load_config
from mrapsim.store import create_store
from mrapsim.store.merge import prefix_successor


def test_prefix_successor() -> None:
    assert prefix_successor("a/") == "a0"
    assert prefix_successor("a\U0010ffff") == "b"
    assert prefix_successor("\U0010ffff") is None


def test_seeding_from_config_creates_declared_and_mrap_buckets() -> None:
    config = load_config(
        overrides={"mraps": [{"alias": "abc.mrap", "account": "123456789012", "buckets": ["only-mrap"]}]}
    )

    async def main() -> None:
        store = await create_store(config)
        names = [b.name for b in await store.list_buckets()]
        assert names == ["mraps3sample", "only-mrap"]
        hello = await store.get_object("mraps3sample", "hello.txt")
        assert hello.content.read(0, 100) == b"hello from mrapsim\n"
        assert list((await store.list_page("only-mrap")).entries) == []

    trio.run(main)
