"""The Store contract, checked against every implementation (conftest.py's `make_store`).

Listing is compared with a brute-force model of S3's rules, synthetic buckets with the same
bucket materialised as real objects; the rest drives objects, multipart uploads and content
sources through the `Store` interface only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import os
from collections.abc import Callable
from dataclasses import replace

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrapsim.config import SyntheticSpec
from mrapsim.store import (
    BucketAlreadyExistsError,
    BucketNotEmptyError,
    BytesContent,
    ConcatContent,
    NoSuchBucketError,
    NoSuchKeyError,
    NoSuchUploadError,
    NoSuchVersionError,
    ObjectInfo,
    ObjectWrite,
    PartInfo,
    Precondition,
    PreconditionFailedError,
    SliceContent,
    Store,
    UploadInfo,
    stream_content,
)
from mrapsim.store.synthetic import synthetic_content

MakeStore = Callable[[], Store]
FIXTURE_CHECKS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SPEC = SyntheticSpec(keys=300, key_format="k{i:03d}/x", size=10, seed=7)
_names = itertools.count()


async def fresh_bucket(store: Store) -> str:
    """A new bucket per hypothesis example: one store serves every example of a test."""
    name = f"b{next(_names)}"
    await store.create_bucket(name)
    return name


async def put(store: Store, bucket: str, key: str, data: bytes = b"", **extra: object) -> ObjectInfo:
    return await store.put_object(bucket, key, ObjectWrite(BytesContent(data), **extra))  # type: ignore[arg-type]


def streamed(store: Store, data: bytes, piece: int = 100_003) -> ObjectWrite:
    builder = store.new_content()
    for at in range(0, len(data), piece):
        builder.append(data[at : at + piece])
    return ObjectWrite(builder.finish())


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


async def paginate(store: Store, bucket: str, prefix: str, delimiter: str, page_size: int) -> list[tuple[str, bool]]:
    got: list[tuple[str, bool]] = []
    after = ""
    for _ in range(1000):
        page = await store.list_page(bucket, prefix=prefix, delimiter=delimiter, start_after=after, max_keys=page_size)
        assert len(page.entries) + len(page.common_prefixes) <= page_size
        items = [(e.key, False) for e in page.entries] + [(p, True) for p in page.common_prefixes]
        got += sorted(items)
        if not page.is_truncated:
            return got
        assert page.next_after is not None and page.next_after > after
        after = page.next_after
    raise AssertionError("pagination did not end")


async def walk(store: Store, bucket: str, prefix: str, delimiter: str, page: int) -> list[tuple[list[str], list[str]]]:
    pages, after = [], ""
    while True:
        got = await store.list_page(bucket, prefix=prefix, delimiter=delimiter, start_after=after, max_keys=page)
        pages.append(([e.key for e in got.entries], list(got.common_prefixes)))
        if not got.is_truncated:
            return pages
        assert got.next_after is not None and got.next_after > after
        after = got.next_after


# -- listing ------------------------------------------------------------------------------------------

KEYS = st.sets(st.text(alphabet="ab/.é\U0010ffff\x00", min_size=1, max_size=6), max_size=40)


@settings(FIXTURE_CHECKS, max_examples=150)
@given(
    keys=KEYS,
    prefix=st.text(alphabet="ab/\U0010ffff", max_size=2),
    delimiter=st.sampled_from(["", "/", ".", "b/", "\U0010ffff"]),
    page_size=st.integers(1, 7),
)
async def test_paginated_listing_equals_the_model(
    make_store: MakeStore, keys: set[str], prefix: str, delimiter: str, page_size: int
) -> None:
    store = make_store()
    bucket = await fresh_bucket(store)
    for key in keys:
        await put(store, bucket, key)
    assert await paginate(store, bucket, prefix, delimiter, page_size) == model_listing(keys, prefix, delimiter)


async def test_common_prefix_roll_up_skips_the_group(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    for i in range(2000):
        await put(store, "b", f"big/{i:05d}")
    await put(store, "b", "z.txt")
    page = await store.list_page("b", delimiter="/", max_keys=1)
    assert page.common_prefixes == ["big/"] and page.is_truncated and page.next_after == "big/"
    page = await store.list_page("b", delimiter="/", start_after="big/", max_keys=10)
    assert [e.key for e in page.entries] == ["z.txt"] and not page.is_truncated


async def test_start_after_inside_a_common_prefix_resumes_after_it(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    for key in ("a/1", "a/2", "b"):
        await put(store, "b", key)
    page = await store.list_page("b", delimiter="/", start_after="a/1")
    assert [e.key for e in page.entries] == ["b"] and page.common_prefixes == []


async def test_max_keys_zero_is_empty_and_not_truncated(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    await put(store, "b", "k")
    page = await store.list_page("b", max_keys=0)
    assert (list(page.entries), list(page.common_prefixes), page.is_truncated) == ([], [], False)


async def test_listing_returns_what_was_stored(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    written = await put(
        store,
        "b",
        "dir/ünï 😀.txt",
        b"data",
        content_type="text/plain",
        metadata={"a": "1", "ü": "é"},
        stored_headers={"cache-control": "no-cache"},
        checksums={"crc32": "AAAAAA=="},
        checksum_type="FULL_OBJECT",
    )
    (listed,) = (await store.list_page("b", prefix="dir/")).entries
    assert listed == written == await store.head_object("b", "dir/ünï 😀.txt")
    assert written.metadata == {"a": "1", "ü": "é"} and written.stored_headers == {"cache-control": "no-cache"}
    assert written.last_modified.tzinfo is not None and written.last_modified.microsecond == 0


# -- buckets and objects --------------------------------------------------------------------------------


async def test_objects_and_buckets_lifecycle(make_store: MakeStore) -> None:
    store = make_store()
    created = await store.create_bucket("b")
    assert await store.get_bucket("b") == created and [b.name for b in await store.list_buckets()] == ["b"]
    with pytest.raises(BucketAlreadyExistsError):
        await store.create_bucket("b")
    info = await put(store, "b", "k", b"hello")
    assert info.etag == '"5d41402abc4b2a76b9719d911017c592"' and info.size == 5
    assert (await store.get_object("b", "k")).content.read(1, 3) == b"el"
    with pytest.raises(BucketNotEmptyError):
        await store.delete_bucket("b")
    assert await store.delete_object("b", "k") and not await store.delete_object("b", "k")
    with pytest.raises(NoSuchKeyError):
        await store.get_object("b", "k")
    with pytest.raises(NoSuchKeyError):
        await store.head_object("b", "k")
    await store.delete_bucket("b")
    for call in (
        lambda: store.list_page("b"),
        lambda: store.get_bucket("b"),
        lambda: store.get_object("b", "k"),
        lambda: put(store, "b", "k"),
        lambda: store.delete_object("b", "k"),
        lambda: store.list_uploads("b"),
        lambda: store.delete_bucket("b"),
    ):
        with pytest.raises(NoSuchBucketError):
            await call()


async def test_replacing_an_object_replaces_body_and_attributes(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    big = os.urandom(300_000)
    await store.put_object("b", "k", streamed(store, big))
    assert (await store.get_object("b", "k")).content.read(0, 10**9) == big
    await put(store, "b", "k", b"small", content_type="text/x")
    got = await store.get_object("b", "k")
    assert got.content.read(0, 100) == b"small" and got.info.content_type == "text/x" and got.info.size == 5
    await store.put_object("b", "k", streamed(store, big[::-1]))
    assert (await store.get_object("b", "k")).content.read(0, 10**9) == big[::-1]


@pytest.mark.parametrize("size", [0, 1, 65_536, 65_537, 1_000_000])
async def test_streamed_bodies_read_back_by_range_and_chunk(make_store: MakeStore, size: int) -> None:
    store = make_store()
    await store.create_bucket("b")
    data = os.urandom(size)
    info = await store.put_object("b", "k", streamed(store, data))
    assert info.size == size and info.etag == f'"{hashlib.md5(data).hexdigest()}"'
    content = (await store.get_object("b", "k")).content
    assert content.size == size and content.read(0, size + 10) == data
    for start, stop in [(0, 1), (size // 3, size // 2 + 7), (max(0, size - 5), size + 100)]:
        assert content.read(start, stop) == data[start:stop]
        assert b"".join(content.chunks(start, stop, 4096)) == data[start:stop]


async def test_copies_outlive_their_source(make_store: MakeStore) -> None:
    """CopyObject hands the source's content to put_object, UploadPartCopy a slice of it."""
    store = make_store()
    await store.create_bucket("b")
    data = os.urandom(400_000)
    await store.put_object("b", "src", streamed(store, data))
    source = (await store.get_object("b", "src")).content
    await store.put_object("b", "copy", ObjectWrite(source, etag='"given"'))
    await store.put_object("b", "slice", ObjectWrite(SliceContent(source, 1000, 200_000)))
    joined = ConcatContent.of([SliceContent(source, 0, 100_000), BytesContent(b"middle"), source])
    await store.put_object("b", "joined", ObjectWrite(joined))
    assert await store.delete_object("b", "src")
    assert (await store.get_object("b", "copy")).content.read(0, 10**9) == data
    assert (await store.head_object("b", "copy")).etag == '"given"'
    assert (await store.get_object("b", "slice")).content.read(0, 10**9) == data[1000:201_000]
    assert (await store.get_object("b", "joined")).content.read(0, 10**9) == data[:100_000] + b"middle" + data
    await store.put_object("b", "copy", ObjectWrite((await store.get_object("b", "slice")).content))
    assert (await store.get_object("b", "copy")).content.read(0, 10**9) == data[1000:201_000]


async def test_a_stored_body_survives_its_object_being_replaced_while_read(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    data = os.urandom(200_000)
    await store.put_object("b", "k", streamed(store, data))
    reading = (await store.get_object("b", "k")).content
    await put(store, "b", "k", b"new")
    await store.delete_object("b", "k")
    assert reading.read(0, 10**9) == data


async def test_a_body_streams_to_the_event_loop_as_it_reads(make_store: MakeStore) -> None:
    """`stream_content` gives what `chunks` gives, whether the body is in memory or on disk."""
    store = make_store()
    await store.create_bucket("b")
    data = os.urandom(700_000)
    await store.put_object("b", "k", streamed(store, data))
    await put(store, "b", "small", b"small")
    for key, body in (("k", data), ("small", b"small")):
        content = (await store.get_object("b", key)).content
        pieces = [piece async for piece in stream_content(content, 3, len(body) - 2, 65_536)]
        assert pieces == list(content.chunks(3, len(body) - 2, 65_536)) and b"".join(pieces) == body[3:-2]


# -- seeding ----------------------------------------------------------------------------------------------


async def test_seeding_writes_each_key_once_in_the_store_s_life(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    assert await store.seed_object("b", "k", ObjectWrite(BytesContent(b"one"), content_type="text/plain"))
    seeded = await store.get_object("b", "k")
    assert seeded.content.read(0, 10) == b"one" and seeded.info.content_type == "text/plain"
    assert seeded.info.etag == f'"{hashlib.md5(b"one").hexdigest()}"'
    await put(store, "b", "k", b"user")
    assert not await store.seed_object("b", "k", ObjectWrite(BytesContent(b"two")))
    assert (await store.get_object("b", "k")).content.read(0, 10) == b"user"
    await store.delete_object("b", "k")
    assert not await store.seed_object("b", "k", ObjectWrite(BytesContent(b"three")))
    with pytest.raises(NoSuchKeyError):
        await store.get_object("b", "k")
    await put(store, "b", "mine", b"user")  # written by a user before it was ever seeded
    assert not await store.seed_object("b", "mine", ObjectWrite(BytesContent(b"seed")))
    assert (await store.get_object("b", "mine")).content.read(0, 10) == b"user"
    with pytest.raises(NoSuchBucketError):
        await store.seed_object("nobucket", "k", ObjectWrite(BytesContent(b"x")))


# -- synthetic key spaces ---------------------------------------------------------------------------------


async def materialised(make_store: MakeStore, store: Store, bucket: str) -> tuple[Store, str]:
    """The same bucket with every key a real object: the model listing must agree with."""
    model = make_store()
    name = await fresh_bucket(model)
    page = await store.list_page(bucket, max_keys=10**9)
    for info in page.entries:
        await put(model, name, info.key, b"x" * info.size)
    return model, name


@settings(FIXTURE_CHECKS, max_examples=40)
@given(
    real=st.lists(st.sampled_from(["k005/x", "k005/y", "a", "k299/zz", "e/1", "k100/x", "k010/"]), max_size=5),
    deleted=st.lists(st.integers(0, 299), max_size=20),
    prefix=st.sampled_from(["", "k", "k00", "k005/", "k1", "e", "zz"]),
    delimiter=st.sampled_from(["", "/", "0"]),
    page=st.integers(1, 40),
)
async def test_synthetic_listing_matches_a_materialised_model(
    make_store: MakeStore, real: list[str], deleted: list[int], prefix: str, delimiter: str, page: int
) -> None:
    store = make_store()
    bucket = await fresh_bucket(store)
    await store.set_synthetic(bucket, SPEC)
    for key in real:
        await put(store, bucket, key, b"real")
    for i in deleted:
        await store.delete_object(bucket, f"k{i:03d}/x")
    model, name = await materialised(make_store, store, bucket)
    assert await walk(store, bucket, prefix, delimiter, page) == await walk(model, name, prefix, delimiter, page)


async def test_synthetic_objects_merge_shadow_and_delete(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    await store.set_synthetic("b", SPEC)
    synthetic = await store.get_object("b", "k001/x")
    assert synthetic.info.size == 10 and synthetic.info.etag.startswith('"') and len(synthetic.info.etag) == 34
    assert synthetic.content.read(0, 10) == synthetic_content(SPEC, "k001/x").read(0, 10)
    assert await store.head_object("b", "k001/x") == synthetic.info
    await put(store, "b", "k001/x", b"real")
    assert (await store.get_object("b", "k001/x")).content.read(0, 10) == b"real"
    assert await store.delete_object("b", "k001/x")
    assert not await store.delete_object("b", "k001/x")
    with pytest.raises(NoSuchKeyError, match="k001/x"):
        await store.get_object("b", "k001/x")
    assert list((await store.list_page("b", prefix="k001/")).entries) == []
    await put(store, "b", "k001/x", b"back")
    assert [e.key for e in (await store.list_page("b", prefix="k001/")).entries] == ["k001/x"]


async def test_a_synthetic_key_space_can_be_taken_away(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    await store.set_synthetic("b", SPEC)
    await put(store, "b", "real", b"r")
    assert len((await store.list_page("b", max_keys=1000)).entries) == 301
    await store.set_synthetic("b", None)
    assert [e.key for e in (await store.list_page("b")).entries] == ["real"]
    with pytest.raises(NoSuchKeyError):
        await store.get_object("b", "k001/x")
    with pytest.raises(NoSuchBucketError):
        await store.set_synthetic("nobucket", SPEC)


async def test_a_synthetic_bucket_is_empty_once_every_key_is_deleted(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    await store.set_synthetic("b", SyntheticSpec(keys=3, key_format="s{i:01d}", size=1, seed=1))
    with pytest.raises(BucketNotEmptyError):
        await store.delete_bucket("b")
    for key in ("s0", "s1", "s2"):
        assert await store.delete_object("b", key)
    await store.delete_bucket("b")


# -- multipart uploads ---------------------------------------------------------------------------------------


def upload(upload_id: str, key: str, **extra: object) -> UploadInfo:
    return UploadInfo(upload_id, key, dt.datetime(2026, 5, 1, tzinfo=dt.UTC), **extra)  # type: ignore[arg-type]


def part(number: int, data: bytes) -> PartInfo:
    return PartInfo(number, f'"{hashlib.md5(data).hexdigest()}"', len(data), dt.datetime(2026, 5, 1, tzinfo=dt.UTC))


async def test_multipart_upload_lifecycle(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    info = upload("u1", "mp/k", content_type="text/x", metadata={"m": "1"}, checksum_algorithm="crc32")
    assert await store.create_upload("b", info) == info and await store.get_upload("b", "mp/k", "u1") == info
    await store.create_upload("b", upload("u0", "mp/a"))
    assert [u.upload_id for u in await store.list_uploads("b")] == ["u0", "u1"]
    first, second, third = os.urandom(300_000), os.urandom(100_000), b"tail"
    await store.put_part("b", "mp/k", "u1", part(1, b"replaced"), BytesContent(b"replaced"))
    builder = store.new_content()
    builder.append(first)
    await store.put_part("b", "mp/k", "u1", part(1, first), builder.finish())
    await store.put_part("b", "mp/k", "u1", part(3, third), BytesContent(third))
    await store.put_part("b", "mp/k", "u1", part(2, second), streamed(store, second).content)
    parts = await store.list_parts("b", "mp/k", "u1")
    assert [(p.number, p.size) for p in parts] == [(1, 300_000), (2, 100_000), (3, 4)]
    assert (await store.list_parts("b", "mp/k", "u1"))[0] == part(1, first)
    with pytest.raises(NoSuchUploadError):
        await store.get_upload("b", "other-key", "u1")
    with pytest.raises(NoSuchUploadError):
        await store.list_parts("b", "mp/k", "nope")
    write = ObjectWrite(BytesContent(b""), content_type="text/x", metadata={"m": "1"}, etag='"abc-2"')
    done = await store.complete_upload("b", "mp/k", "u1", [1, 3], write)
    assert (done.size, done.etag, done.content_type, dict(done.metadata)) == (300_004, '"abc-2"', "text/x", {"m": "1"})
    got = await store.get_object("b", "mp/k")
    assert got.info == done and got.content.read(0, 10**9) == first + third
    assert got.content.read(299_998, 300_002) == first[-2:] + third[:2]
    with pytest.raises(NoSuchUploadError):
        await store.get_upload("b", "mp/k", "u1")
    await store.abort_upload("b", "mp/a", "u0")
    with pytest.raises(NoSuchUploadError):
        await store.abort_upload("b", "mp/a", "u0")
    assert list(await store.list_uploads("b")) == []


async def test_an_upload_part_copy_shares_the_source_range(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    data = os.urandom(500_000)
    await store.put_object("b", "src", streamed(store, data))
    await store.create_upload("b", upload("u", "dst"))
    source = (await store.get_object("b", "src")).content
    await store.put_part("b", "dst", "u", part(1, data[:200_000]), SliceContent(source, 0, 200_000))
    await store.put_part("b", "dst", "u", part(2, data[300_000:]), SliceContent(source, 300_000, 200_000))
    await store.delete_object("b", "src")
    await store.complete_upload("b", "dst", "u", [2, 1], ObjectWrite(BytesContent(b""), etag='"x-2"'))
    assert (await store.get_object("b", "dst")).content.read(0, 10**9) == data[300_000:] + data[:200_000]


# -- conditional writes and completed uploads ---------------------------------------------------------

NEW_ONLY = Precondition(if_none_match=True)


async def test_conditional_writes_check_the_current_object(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    first = await store.put_object("b", "k", ObjectWrite(BytesContent(b"one")), NEW_ONLY)
    with pytest.raises(PreconditionFailedError) as failed:
        await store.put_object("b", "k", ObjectWrite(BytesContent(b"two")), NEW_ONLY)
    assert failed.value.condition == "If-None-Match"
    with pytest.raises(PreconditionFailedError) as failed:
        await store.put_object("b", "k", ObjectWrite(BytesContent(b"two")), Precondition(if_match='"0000"'))
    assert failed.value.condition == "If-Match"
    assert (await store.get_object("b", "k")).content.read(0, 10) == b"one"
    second = await store.put_object("b", "k", ObjectWrite(BytesContent(b"2")), Precondition(if_match=first.etag))
    unquoted = Precondition(if_match=second.etag.strip('"'))
    third = await store.put_object("b", "k", ObjectWrite(BytesContent(b"3")), unquoted)
    await store.put_object("b", "k", ObjectWrite(BytesContent(b"two")), Precondition(if_match=f'"x", {third.etag}'))
    assert (await store.get_object("b", "k")).content.read(0, 10) == b"two"
    with pytest.raises(NoSuchKeyError):
        await store.put_object("b", "missing", ObjectWrite(BytesContent(b"x")), Precondition(if_match="*"))
    await store.set_synthetic("b", SPEC)
    with pytest.raises(PreconditionFailedError):  # a synthetic object exists like any other
        await store.put_object("b", "k001/x", ObjectWrite(BytesContent(b"x")), NEW_ONLY)


async def test_of_racing_if_none_match_writers_exactly_one_wins(make_store: MakeStore) -> None:
    """The sqlite store runs each call on a thread with its own connection: a real race."""
    store = make_store()
    await store.create_bucket("b")
    outcomes: list[bytes | None] = []

    async def writer(data: bytes) -> None:
        try:
            await store.put_object("b", "k", ObjectWrite(BytesContent(data)), NEW_ONLY)
            outcomes.append(data)
        except PreconditionFailedError:
            outcomes.append(None)

    async with trio.open_nursery() as nursery:
        for number in range(8):
            nursery.start_soon(writer, b"writer %d" % number)
    (winner,) = [data for data in outcomes if data is not None]
    assert len(outcomes) == 8 and (await store.get_object("b", "k")).content.read(0, 100) == winner


async def test_a_conditional_complete_and_its_retry(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    for upload_id in ("u1", "u2"):
        await store.create_upload("b", upload(upload_id, "k"))
        await store.put_part("b", "k", upload_id, part(1, upload_id.encode()), BytesContent(upload_id.encode()))
    assert await store.completed_upload("b", "k", "u1") is None
    parts = tuple(await store.list_parts("b", "k", "u1"))
    write = ObjectWrite(BytesContent(b""), etag='"one-1"', parts=parts)
    done = await store.complete_upload("b", "k", "u1", [1], write, NEW_ONLY)
    assert done.parts == parts and (await store.head_object("b", "k")).parts == parts
    assert await store.completed_upload("b", "k", "u1") == done
    assert await store.completed_upload("b", "other", "u1") is None
    with pytest.raises(PreconditionFailedError):
        await store.complete_upload("b", "k", "u2", [1], ObjectWrite(BytesContent(b""), etag='"two-1"'), NEW_ONLY)
    assert (await store.get_upload("b", "k", "u2")).upload_id == "u2"  # a failed Complete keeps the upload
    await store.complete_upload("b", "k", "u2", [1], ObjectWrite(BytesContent(b""), etag='"two-1"'))
    assert await store.completed_upload("b", "k", "u1") is None  # replaced since: not a retry any more
    assert (await store.completed_upload("b", "k", "u2") or done).etag == '"two-1"'
    assert (await store.head_object("b", "k")).parts == ()


# -- per-object extras and bucket configurations (issue 12) ---------------------------------------


async def test_object_extras_are_stored_and_updated_without_touching_the_object(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    written = await put(store, "b", "k", b"data", extras={"tagging": "a=1", "acl": "private"})
    assert written.extras == {"tagging": "a=1", "acl": "private"}
    assert (await store.head_object("b", "k")).extras == written.extras
    updated = await store.update_object_extras("b", "k", {"tagging": "b=2", "acl": None, "sse": "AES256"})
    assert updated.extras == {"tagging": "b=2", "sse": "AES256"}
    stored = await store.get_object("b", "k")
    assert stored.info == updated
    assert (stored.info.etag, stored.info.last_modified) == (written.etag, written.last_modified)
    assert stored.content.read(0, 4) == b"data"
    page = await store.list_page("b")
    assert page.entries[0].extras == updated.extras
    with pytest.raises(NoSuchKeyError):
        await store.update_object_extras("b", "missing", {"tagging": ""})
    with pytest.raises(NoSuchBucketError):
        await store.update_object_extras("missing", "k", {"tagging": ""})


async def test_extras_of_a_synthetic_object_make_it_real(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    spec = SyntheticSpec(keys=3, key_format="s{i:01d}", size=10, seed=1)
    await store.set_synthetic("b", spec)
    updated = await store.update_object_extras("b", "s1", {"tagging": "x=y"})
    stored = await store.get_object("b", "s1")
    assert stored.info.extras == updated.extras == {"tagging": "x=y"}
    assert stored.content.read(0, 10) == synthetic_content(spec, "s1").read(0, 10)
    assert [e.key for e in (await store.list_page("b")).entries] == ["s0", "s1", "s2"]


async def test_uploads_carry_the_object_s_extras(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    upload = UploadInfo("u1", "k", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), extras={"tagging": "a=b"})
    await store.create_upload("b", upload)
    assert (await store.get_upload("b", "k", "u1")).extras == {"tagging": "a=b"}
    assert (await store.list_uploads("b"))[0].extras == {"tagging": "a=b"}


async def test_bucket_configurations_round_trip_and_go_with_the_bucket(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("b")
    assert await store.get_bucket_config("b", "cors") is None
    await store.put_bucket_config("b", "cors", "<CORSConfiguration/>")
    await store.put_bucket_config("b", "policy", '{"Version": "2012-10-17"}')
    await store.put_bucket_config("b", "cors", "<CORSConfiguration>ü</CORSConfiguration>")
    assert await store.get_bucket_config("b", "cors") == "<CORSConfiguration>ü</CORSConfiguration>"
    assert await store.get_bucket_config("b", "policy") == '{"Version": "2012-10-17"}'
    await store.delete_bucket_config("b", "cors")
    await store.delete_bucket_config("b", "cors")  # forgetting twice is no error
    assert await store.get_bucket_config("b", "cors") is None
    await store.delete_bucket("b")
    await store.create_bucket("b")
    assert await store.get_bucket_config("b", "policy") is None
    for call in (
        store.get_bucket_config("missing", "cors"),
        store.put_bucket_config("missing", "cors", ""),
        store.delete_bucket_config("missing", "cors"),
    ):
        with pytest.raises(NoSuchBucketError):
            await call


async def test_a_bucket_keeps_its_region(make_store: MakeStore) -> None:
    store = make_store()
    await store.create_bucket("west", "us-west-2")
    await store.create_bucket("plain")
    assert (await store.get_bucket("west")).region == "us-west-2"
    assert (await store.get_bucket("plain")).region == "us-east-1"
    assert {b.name: b.region for b in await store.list_buckets()} == {"west": "us-west-2", "plain": "us-east-1"}


# -- versioning (store/versions.py) --------------------------------------------------------------


async def all_versions(
    store: Store, bucket: str, page_size: int, prefix: str = "", delimiter: str = ""
) -> list[tuple[object, ...]]:
    """Every (key, version id, is latest, delete marker) or (common prefix,) read page by page."""
    got: list[tuple[object, ...]] = []
    key_marker = version_marker = ""
    for _ in range(1000):
        page = await store.list_versions(
            bucket,
            prefix=prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            version_id_marker=version_marker,
            max_keys=page_size,
        )
        assert len(page.entries) + len(page.common_prefixes) <= page_size
        got += [(e.info.key, e.info.version_id, e.is_latest, e.info.delete_marker) for e in page.entries]
        got += [(p,) for p in page.common_prefixes]
        if not page.is_truncated:
            return got
        key_marker, version_marker = page.next_key or "", page.next_version_id or ""
    raise AssertionError("listing did not end")


async def test_versioning_keeps_versions_and_delete_markers(make_store: MakeStore) -> None:
    store = make_store()
    bucket = await fresh_bucket(store)
    assert await store.get_versioning(bucket) == ""
    old = await put(store, bucket, "k", b"before")  # written before versioning: the "null" version
    assert old.version_id == "null"
    await store.set_versioning(bucket, "Enabled")
    assert await store.get_versioning(bucket) == "Enabled"
    v1 = await put(store, bucket, "k", b"one")
    v2 = await put(store, bucket, "k", b"two")
    assert len({"null", v1.version_id, v2.version_id}) == 3
    assert (await store.head_object(bucket, "k")).version_id == v2.version_id
    got = await store.get_object_version(bucket, "k", v1.version_id)
    assert got.content.read(0, got.info.size) == b"one"
    null = await store.get_object_version(bucket, "k", "null")
    assert null.content.read(0, null.info.size) == b"before"
    marker = await store.delete_key(bucket, "k")
    assert marker is not None and marker.delete_marker and marker.version_id not in ("null", v2.version_id)
    with pytest.raises(NoSuchKeyError):
        await store.get_object(bucket, "k")
    assert (await store.list_page(bucket)).entries == []
    assert await all_versions(store, bucket, 1000) == [
        ("k", marker.version_id, True, True),
        ("k", v2.version_id, False, False),
        ("k", v1.version_id, False, False),
        ("k", "null", False, False),
    ]
    # Removing the marker for good brings v2 back; removing v2 brings v1.
    assert (await store.delete_object_version(bucket, "k", marker.version_id)) is not None
    assert (await store.head_object(bucket, "k")).version_id == v2.version_id
    removed = await store.delete_object_version(bucket, "k", v2.version_id)
    assert removed is not None and removed.version_id == v2.version_id
    current = await store.get_object(bucket, "k")
    assert current.content.read(0, current.info.size) == b"one" and current.info.version_id == v1.version_id
    assert await store.delete_object_version(bucket, "k", "nope") is None
    with pytest.raises(NoSuchVersionError):
        await store.get_object_version(bucket, "k", v2.version_id)
    with pytest.raises(BucketNotEmptyError):
        await store.delete_bucket(bucket)
    for version in await all_versions(store, bucket, 1000):
        await store.delete_object_version(bucket, "k", str(version[1]))
    assert await all_versions(store, bucket, 1000) == []
    await store.delete_bucket(bucket)


async def test_a_version_s_extras_change_without_touching_other_versions(make_store: MakeStore) -> None:
    store = make_store()
    bucket = await fresh_bucket(store)
    await store.set_versioning(bucket, "Enabled")
    v1 = await put(store, bucket, "k", b"one", extras={"tagging": "a=1"})
    v2 = await put(store, bucket, "k", b"two")
    old = await store.update_version_extras(bucket, "k", v1.version_id, {"lock": "x", "tagging": None})
    assert (old.version_id, old.extras) == (v1.version_id, {"lock": "x"})
    got = await store.get_object_version(bucket, "k", v1.version_id)
    assert got.info.extras == {"lock": "x"} and got.content.read(0, 3) == b"one"
    assert (await store.head_object(bucket, "k")).extras == {}
    new = await store.update_version_extras(bucket, "k", v2.version_id, {"lock": "y"})
    assert new.extras == {"lock": "y"} and new.etag == v2.etag
    assert (await store.head_object(bucket, "k")).extras == {"lock": "y"}
    assert (await store.get_object_version(bucket, "k", v1.version_id)).info.extras == {"lock": "x"}
    with pytest.raises(NoSuchVersionError):
        await store.update_version_extras(bucket, "k", "nope", {"lock": "z"})
    with pytest.raises(NoSuchBucketError):
        await store.update_version_extras("missing", "k", v1.version_id, {"lock": "z"})


async def test_suspended_versioning_replaces_the_null_version(make_store: MakeStore) -> None:
    store = make_store()
    bucket = await fresh_bucket(store)
    await store.set_versioning(bucket, "Enabled")
    v1 = await put(store, bucket, "k", b"one")
    await store.set_versioning(bucket, "Suspended")
    n1 = await put(store, bucket, "k", b"null one")
    n2 = await put(store, bucket, "k", b"null two")
    assert n1.version_id == n2.version_id == "null"
    assert await all_versions(store, bucket, 1000) == [("k", "null", True, False), ("k", v1.version_id, False, False)]
    marker = await store.delete_key(bucket, "k")
    assert marker is not None and marker.version_id == "null"
    assert await all_versions(store, bucket, 1000) == [("k", "null", True, True), ("k", v1.version_id, False, False)]


async def test_an_unversioned_bucket_lists_null_versions(make_store: MakeStore) -> None:
    store = make_store()
    bucket = await fresh_bucket(store)
    for key in ("a", "b/1", "b/2", "c"):
        await put(store, bucket, key)
    assert await store.delete_key(bucket, "c") is None
    assert await all_versions(store, bucket, 1000) == [(k, "null", True, False) for k in ("a", "b/1", "b/2")]
    assert await all_versions(store, bucket, 1, delimiter="/") == [("a", "null", True, False), ("b/",)]
    assert await store.delete_object_version(bucket, "a", "null") is not None
    assert await all_versions(store, bucket, 1000, prefix="a") == []


@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["put", "delete"]), st.sampled_from(["a", "b/x", "b/y", "c", "d/e/f"])), max_size=25
    ),
    page=st.integers(1, 7),
    delimiter=st.sampled_from(["", "/"]),
)
@FIXTURE_CHECKS
async def test_version_listing_pages_equal_one_listing(
    make_store: MakeStore, ops: list[tuple[str, str]], page: int, delimiter: str
) -> None:
    store = make_store()
    bucket = await fresh_bucket(store)
    await store.set_versioning(bucket, "Enabled")
    model: dict[str, list[tuple[str, bool]]] = {}  # key → [(version id, delete marker)], newest first
    for op, key in ops:
        if op == "put":
            info = await put(store, bucket, key, b"x")
            model.setdefault(key, []).insert(0, (info.version_id, False))
        else:
            marker = await store.delete_key(bucket, key)
            assert marker is not None
            model.setdefault(key, []).insert(0, (marker.version_id, True))
    expected: list[tuple[object, ...]] = []
    for key in sorted(model):
        cut = key.find(delimiter) if delimiter else -1
        if cut >= 0:
            if (key[: cut + 1],) not in expected:
                expected.append((key[: cut + 1],))
            continue
        expected += [(key, vid, i == 0, dm) for i, (vid, dm) in enumerate(model[key])]
    got = await all_versions(store, bucket, page, delimiter=delimiter)
    assert sorted(got, key=str) == sorted(expected, key=str)
    assert [g for g in got if len(g) > 1] == [e for e in expected if len(e) > 1]


async def test_replicas_keep_their_version_and_the_queue_hands_each_task_out_once(make_store: MakeStore) -> None:
    from mrapsim.store import ReplicationTask

    store = make_store()
    source, target = await fresh_bucket(store), await fresh_bucket(store)
    for bucket in (source, target):
        await store.set_versioning(bucket, "Enabled")
    written = await put(store, source, "k", b"payload")
    assert await store.set_replication_status(source, "k", written.version_id, "PENDING")
    assert (await store.head_object(source, "k")).stored_headers["x-amz-replication-status"] == "PENDING"
    stored = await store.get_object_version(source, "k", written.version_id)
    headers = {**stored.info.stored_headers, "x-amz-replication-status": "REPLICA"}
    await store.put_replica(target, "k", replace(stored.info, stored_headers=headers), stored.content)
    replica = await store.get_object(target, "k")
    assert replica.info.version_id == written.version_id and replica.content.read(0, 7) == b"payload"
    assert replica.info.stored_headers["x-amz-replication-status"] == "REPLICA"
    marker = await store.delete_key(source, "k")
    assert marker is not None
    await store.put_replica(target, "k", marker, BytesContent(b""))
    listed = await all_versions(store, target, 10)
    assert listed == [("k", marker.version_id, True, True), ("k", written.version_id, False, False)]
    tasks = [ReplicationTask(source, f"k{i}", "v", target, due=100.0 + i) for i in range(3)]
    await store.enqueue_replication(tasks)
    assert await store.replication_backlog() == {target: 3}
    await store.set_replication_paused(target, True)
    assert await store.claim_replication(1000.0, 10) == []
    await store.set_replication_paused(target, False)
    assert await store.claim_replication(100.5, 10) == tasks[:1]
    assert [t.key for t in await store.claim_replication(1000.0, 10)] == ["k1", "k2"]
    assert await store.claim_replication(1000.0, 10) == [] and await store.replication_backlog() == {}
