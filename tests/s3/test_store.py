"""MemoryStore: listing semantics against a brute-force model, and the seeding rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrapsim.config import load_config
from mrapsim.store import (
    BucketNotEmptyError,
    MemoryStore,
    NoSuchBucketError,
    NoSuchKeyError,
    create_store,
)
from mrapsim.store.merge import prefix_successor


def model_listing(keys: set[str], prefix: str, delimiter: str) -> list[tuple[str, bool]]:
    """Every entry of a full listing in order: (key or common prefix, is_common_prefix)."""
    seen: list[tuple[str, bool]] = []
    for key in sorted(keys):
        if not key.startswith(prefix):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        item = (key[: cut + len(delimiter)], True) if cut >= 0 else (key, False)
        if not seen or seen[-1] != item:
            seen.append(item)
    return seen


def paginate(store: MemoryStore, bucket: str, prefix: str, delimiter: str, page_size: int) -> list[tuple[str, bool]]:
    got: list[tuple[str, bool]] = []
    after = ""
    for _ in range(1000):
        page = store.list_page(bucket, prefix=prefix, delimiter=delimiter, start_after=after, max_keys=page_size)
        assert len(page.entries) + len(page.common_prefixes) <= page_size
        items = [(e.key, False) for e in page.entries] + [(p, True) for p in page.common_prefixes]
        got += sorted(items)
        if not page.is_truncated:
            return got
        assert page.next_after is not None and page.next_after > after
        after = page.next_after
    raise AssertionError("pagination did not end")


KEYS = st.sets(st.text(alphabet="ab/.é", min_size=1, max_size=6), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    keys=KEYS,
    prefix=st.text(alphabet="ab/", max_size=2),
    delimiter=st.sampled_from(["", "/", ".", "b/"]),
    page_size=st.integers(1, 7),
)
def test_paginated_listing_equals_the_model(keys: set[str], prefix: str, delimiter: str, page_size: int) -> None:
    store = MemoryStore()
    store.create_bucket("b")
    for key in keys:
        store.put_bytes("b", key, b"")
    assert paginate(store, "b", prefix, delimiter, page_size) == model_listing(keys, prefix, delimiter)


def test_common_prefix_roll_up_skips_the_group_in_one_step() -> None:
    store = MemoryStore()
    store.create_bucket("b")
    for i in range(10_000):
        store.put_bytes("b", f"big/{i:05d}", b"")
    store.put_bytes("b", "z.txt", b"")
    page = store.list_page("b", delimiter="/", max_keys=1)
    assert page.common_prefixes == ["big/"] and page.is_truncated and page.next_after == "big/"
    page = store.list_page("b", delimiter="/", start_after="big/", max_keys=10)
    assert [e.key for e in page.entries] == ["z.txt"] and not page.is_truncated


def test_start_after_inside_a_common_prefix_resumes_after_it() -> None:
    store = MemoryStore()
    store.create_bucket("b")
    for key in ("a/1", "a/2", "b"):
        store.put_bytes("b", key, b"")
    page = store.list_page("b", delimiter="/", start_after="a/1")
    assert [e.key for e in page.entries] == ["b"] and page.common_prefixes == []


def test_max_keys_zero_is_empty_and_not_truncated() -> None:
    store = MemoryStore()
    store.create_bucket("b")
    store.put_bytes("b", "k", b"")
    page = store.list_page("b", max_keys=0)
    assert (list(page.entries), list(page.common_prefixes), page.is_truncated) == ([], [], False)


def test_prefix_successor() -> None:
    assert prefix_successor("a/") == "a0"
    assert prefix_successor("a\U0010ffff") == "b"
    assert prefix_successor("\U0010ffff") is None


def test_objects_and_buckets_lifecycle() -> None:
    store = MemoryStore()
    store.create_bucket("b")
    info = store.put_bytes("b", "k", b"hello")
    assert info.etag == '"5d41402abc4b2a76b9719d911017c592"' and info.size == 5
    assert store.get_object("b", "k").content.read(1, 3) == b"el"
    with pytest.raises(BucketNotEmptyError):
        store.delete_bucket("b")
    assert store.delete_object("b", "k") and not store.delete_object("b", "k")
    with pytest.raises(NoSuchKeyError):
        store.get_object("b", "k")
    store.delete_bucket("b")
    with pytest.raises(NoSuchBucketError):
        store.list_page("b")


def test_seeding_from_config_creates_declared_and_mrap_buckets() -> None:
    config = load_config(
        overrides={"mraps": [{"alias": "abc.mrap", "account": "123456789012", "buckets": ["only-mrap"]}]}
    )
    store = create_store(config)
    names = [b.name for b in store.list_buckets()]
    assert names == ["mraps3sample", "only-mrap"]
    assert store.get_object("mraps3sample", "hello.txt").content.read(0, 100) == b"hello from mrapsim\n"
    assert list(store.list_page("only-mrap").entries) == []
