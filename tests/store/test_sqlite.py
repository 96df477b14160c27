"""SqliteStore beyond the shared contract: what persists, what it costs, what several processes
see, and that no file outlives the object, part or upload it belonged to."""

from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing
import os
import resource
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from mrapsim.config import BucketConfig, KeyFormatError, SyntheticSpec, load_config
from mrapsim.store import (
    BytesContent,
    ObjectWrite,
    PartInfo,
    PreconditionFailedError,
    StoreOpenError,
    UploadInfo,
    seed_store,
)
from mrapsim.store.sqlite import DATABASE_NAME, INLINE_MAX, SqliteStore
from tests.store.contract import NEW_ONLY, streamed

MIB = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore.open(tmp_path / "data") as opened:
        yield opened


def blob_files(root: Path) -> set[str]:
    return {path.name for path in (root / "blobs").glob("*/*")}


def blob_rows(store: SqliteStore) -> dict[str, int]:
    db = sqlite3.connect(store.path / DATABASE_NAME)
    try:
        return dict(db.execute("SELECT name, refs FROM blobs").fetchall())
    finally:
        db.close()


def assert_no_leaks(store: SqliteStore) -> None:
    """Every blob file has a row and every row a file; nothing is left in tmp/."""
    assert blob_files(store.path) == set(blob_rows(store))
    assert list((store.path / "tmp").iterdir()) == []


# -- persistence -----------------------------------------------------------------------------------


async def test_everything_persists_across_reopen(tmp_path: Path) -> None:
    root = tmp_path / "data"
    big = os.urandom(3 * INLINE_MAX)
    with SqliteStore.open(root) as store:
        created = await store.create_bucket("b")
        small = await store.put_object(
            "b",
            "small.txt",
            ObjectWrite(
                BytesContent(b"hello"),
                content_type="text/plain",
                metadata={"owner": "ü"},
                stored_headers={"cache-control": "max-age=1", "content-language": "fr"},
                checksums={"crc32c": "AAAAAA==", "sha256": "x" * 44},
                checksum_type="COMPOSITE",
            ),
        )
        large = await store.put_object("b", "large.bin", streamed(store, big))
        await store.set_synthetic("b", SyntheticSpec(keys=10, key_format="s{i:02d}", size=3, seed=5))
        await store.delete_object("b", "s03")
        initiated = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
        upload = UploadInfo("u1", "mp", initiated, "text/x", {"m": "1"}, {"expires": "never"}, "crc32", "COMPOSITE")
        await store.create_upload("b", upload)
        part = PartInfo(1, '"p1"', 4, initiated, {"crc32": "BBBBBB=="})
        await store.put_part("b", "mp", "u1", part, BytesContent(b"part"))
        listing = await store.list_page("b")
    with SqliteStore.open(root) as again:
        assert await again.list_buckets() == [created]
        assert await again.head_object("b", "small.txt") == small
        assert (await again.get_object("b", "large.bin")).info == large
        assert (await again.get_object("b", "large.bin")).content.read(0, 10**9) == big
        assert await again.list_page("b") == listing
        assert "s03" not in [e.key for e in listing.entries] and "s04" in [e.key for e in listing.entries]
        assert await again.get_upload("b", "mp", "u1") == upload
        assert await again.list_parts("b", "mp", "u1") == [part]
        assert (await again.get_object("b", "s04")).content.size == 3


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    SqliteStore.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / DATABASE_NAME)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreOpenError, match="schema version 99"):
        SqliteStore.open(tmp_path)


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreOpenError, match="file"):
        SqliteStore.open(tmp_path / "file")


# -- files: sharing, adoption, no leaks ---------------------------------------------------------------


async def test_no_file_outlives_its_objects_parts_and_uploads(store: SqliteStore) -> None:
    await store.create_bucket("b")
    data = os.urandom(500_000)
    await store.put_object("b", "a", streamed(store, data))
    await store.put_object("b", "copy", ObjectWrite((await store.get_object("b", "a")).content))
    assert list(blob_rows(store).values()) == [2]  # the copy shares the blob
    await store.put_object("b", "a", streamed(store, data[::-1]))  # replaced: the old blob stays for "copy"
    assert sorted(blob_rows(store).values()) == [1, 1]
    await store.delete_object("b", "copy")
    assert len(blob_files(store.path)) == 1
    await store.create_upload("b", UploadInfo("u", "mp", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    for number in (1, 2, 3):
        await store.put_part(
            "b",
            "mp",
            "u",
            PartInfo(number, '"e"', 100_000, dt.datetime.now(dt.UTC)),
            streamed(store, data[:100_000]).content,
        )
    await store.put_part("b", "mp", "u", PartInfo(2, '"e"', 10, dt.datetime.now(dt.UTC)), BytesContent(b"0123456789"))
    assert len(blob_files(store.path)) == 4
    await store.complete_upload("b", "mp", "u", [1, 2], ObjectWrite(BytesContent(b""), etag='"m-2"'))
    assert len(blob_files(store.path)) == 3  # part 3 was not used
    await store.create_upload("b", UploadInfo("v", "mp", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    await store.put_part(
        "b", "mp", "v", PartInfo(1, '"e"', 100_000, dt.datetime.now(dt.UTC)), streamed(store, data[:100_000]).content
    )
    await store.abort_upload("b", "mp", "v")
    assert len(blob_files(store.path)) == 3
    assert_no_leaks(store)
    for key in ("a", "mp"):
        await store.delete_object("b", key)
    await store.delete_bucket("b")
    assert blob_files(store.path) == set() and blob_rows(store) == {}
    assert_no_leaks(store)


async def test_a_spool_nobody_stores_is_removed(store: SqliteStore) -> None:
    builder = store.new_content()
    builder.append(os.urandom(2 * INLINE_MAX))
    assert len(list((store.path / "tmp").iterdir())) == 1
    content = builder.finish()
    del builder
    assert content.size == 2 * INLINE_MAX
    del content
    assert list((store.path / "tmp").iterdir()) == []
    with pytest.raises(Exception, match="nobucket"):
        await store.put_object("nobucket", "k", streamed(store, os.urandom(2 * INLINE_MAX)))
    assert_no_leaks(store)


async def test_sharing_a_blob_that_was_deleted_meanwhile_copies_it(store: SqliteStore) -> None:
    """Another process may delete the source's last object between our read and our write."""
    await store.create_bucket("b")
    data = os.urandom(200_000)
    await store.put_object("b", "src", streamed(store, data))
    source = (await store.get_object("b", "src")).content
    await store.delete_object("b", "src")
    assert blob_rows(store) == {}
    await store.put_object("b", "dst", ObjectWrite(source))
    assert (await store.get_object("b", "dst")).content.read(0, 10**9) == data
    assert_no_leaks(store)


async def test_opening_sweeps_what_a_crash_left(tmp_path: Path) -> None:
    root = tmp_path / "data"
    with SqliteStore.open(root) as store:
        await store.create_bucket("b")
        await store.put_object("b", "kept", streamed(store, os.urandom(100_000)))
    (root / "blobs" / "zz").mkdir()
    (root / "blobs" / "zz" / "zz-orphan").write_bytes(b"x")
    dead = multiprocessing.get_context("spawn").Process(target=os.getpid)
    dead.start()
    dead.join()
    (root / "tmp" / f"spool-{dead.pid}-abc").write_bytes(b"x")
    (root / "tmp" / f"spool-{os.getpid()}-live").write_bytes(b"x")
    with SqliteStore.open(root) as store:
        assert len(blob_files(root)) == 1
        assert (await store.get_object("b", "kept")).content.size == 100_000
        assert [p.name for p in (root / "tmp").iterdir()] == [f"spool-{os.getpid()}-live"]


# -- cost ----------------------------------------------------------------------------------------------


async def test_a_page_of_roll_ups_costs_one_short_query_per_prefix(store: SqliteStore) -> None:
    await store.create_bucket("b")
    db = sqlite3.connect(store.path / DATABASE_NAME)
    rows = [
        ("b", f"d{d:02d}/{i:04d}", 0, '""', "2026-01-01T00:00:00+00:00", "x", "{}", "{}", "{}", "F", "S")
        for d in range(30)
        for i in range(1000)
    ]
    db.executemany("INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '[]', '{}', NULL)", rows)
    db.commit()
    db.close()
    statements: list[str] = []
    with store._connection() as traced:  # idle again after the block: the next call uses it
        traced.set_trace_callback(statements.append)
    page = await store.list_page("b", delimiter="/", max_keys=10)
    assert page.common_prefixes == [f"d{d:02d}/" for d in range(10)] and page.is_truncated
    queries = [s for s in statements if s.startswith("SELECT") and "FROM objects" in s]
    assert len(queries) <= 12, queries
    assert all(s.rstrip().endswith(("LIMIT 11", "LIMIT 16", "LIMIT 32")) for s in queries), queries
    statements.clear()
    page = await store.list_page("b", prefix="d07/", start_after="d07/0499", max_keys=100)
    assert [e.key for e in page.entries][:2] == ["d07/0500", "d07/0501"] and len(page.entries) == 100
    queries += [s for s in statements if "FROM objects" in s]
    assert len(queries) <= 13
    traced.set_trace_callback(None)
    for query in queries:  # every one an index range search, none a scan
        plan = " ".join(row[-1] for row in traced.execute(f"EXPLAIN QUERY PLAN {query}"))
        assert plan.startswith("SEARCH objects USING PRIMARY KEY (bucket=? AND key>? AND key<?)") or plan.startswith(
            "SEARCH objects USING PRIMARY KEY (bucket=? AND key>?)"
        ), plan


def test_a_large_body_streams_without_growing_memory(tmp_path: Path) -> None:
    """64 MiB in, stored, and read back: peak RSS grows by far less than the body."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        growth, digest, read_digest = pool.apply(stream_large_body, (str(tmp_path / "data"), 64))
    assert digest == read_digest
    assert growth < 32 * MIB, f"peak RSS grew by {growth / MIB:.1f} MiB"


def stream_large_body(root: str, mebibytes: int) -> tuple[int, str, str]:
    return trio.run(stream_large_body_async, root, mebibytes)


async def stream_large_body_async(root: str, mebibytes: int) -> tuple[int, str, str]:
    store = SqliteStore.open(Path(root))
    await store.create_bucket("b")
    chunk = os.urandom(MIB)
    md5 = hashlib.md5()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    builder = store.new_content()
    for i in range(mebibytes):
        piece = i.to_bytes(8, "big") + chunk[8:]
        builder.append(piece)
        md5.update(piece)
    info = await store.put_object("b", "big", ObjectWrite(builder.finish(), etag=f'"{md5.hexdigest()}"'))
    copied = await store.put_object("b", "copy", ObjectWrite((await store.get_object("b", "big")).content))
    read = hashlib.md5()
    for part in (await store.get_object("b", "copy")).content.chunks(0, copied.size, 256 * 1024):
        read.update(part)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert info.size == mebibytes * MIB
    return peak - baseline, md5.hexdigest(), read.hexdigest()


# -- several processes ---------------------------------------------------------------------------------


def writer_and_lister(root: str, worker: int, count: int) -> tuple[float, float, list[str]]:
    return trio.run(writer_and_lister_async, root, worker, count)


async def writer_and_lister_async(root: str, worker: int, count: int) -> tuple[float, float, list[str]]:
    """Each worker writes its own keys (small and spooled) and lists everything as it goes;
    every listing must be sorted, hold all of its own writes so far, and never shrink."""
    store = SqliteStore.open(Path(root))
    started = time.time()
    seen_total = 0
    for i in range(count):
        key = f"w{worker}/{i:04d}"
        if i % 10 == 0:
            await store.put_object("shared", key, streamed(store, os.urandom(INLINE_MAX + 1)))
        else:
            await store.put_object("shared", key, ObjectWrite(BytesContent(key.encode())))
        if i % 7 == 0:
            keys: list[str] = []
            after = ""
            while True:
                page = await store.list_page("shared", start_after=after, max_keys=250)
                keys += [e.key for e in page.entries]
                if not page.is_truncated:
                    break
                after = page.next_after or ""
            assert keys == sorted(keys) and len(set(keys)) == len(keys)
            mine = [k for k in keys if k.startswith(f"w{worker}/")]
            assert mine == [f"w{worker}/{j:04d}" for j in range(i + 1)]
            assert len(keys) >= seen_total
            seen_total = len(keys)
        if i % 25 == 0:
            page = await store.list_page("shared", prefix=f"w{worker}/", delimiter="/")
            assert (await store.get_object("shared", key)).info.size in (len(key), INLINE_MAX + 1)
    await store.create_upload("shared", UploadInfo(f"u{worker}", "mp", dt.datetime.now(dt.UTC)))
    store.close()
    return started, time.time(), [f"w{worker}/{j:04d}" for j in range(count)]


def seed_in_process(root: str) -> int:
    return trio.run(seed_in_process_async, root)


async def seed_in_process_async(root: str) -> int:
    config = load_config(
        overrides={
            "buckets": [
                {"name": "mraps3sample", "objects": {"hello.txt": "hello\n", "b.bin": "b"}},
                {"name": "syn", "synthetic": {"keys": 50, "key_format": "k{i:02d}", "size": 1}},
            ]
        }
    )
    store = SqliteStore.open(Path(root))
    await seed_store(store, config)
    count = len((await store.list_page("mraps3sample")).entries)
    store.close()
    return count


async def test_processes_write_and_list_one_store_concurrently(tmp_path: Path) -> None:
    root = tmp_path / "data"
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        seeded = pool.map(seed_in_process, [str(root)] * 4)  # N workers starting at once
        # The two objects given, plus the default bucket's own (objects merge key by key).
        assert seeded == [5, 5, 5, 5]
        with SqliteStore.open(root) as store:
            await store.create_bucket("shared")
        results = pool.starmap(writer_and_lister, [(str(root), worker, 120) for worker in range(4)])
    with SqliteStore.open(root) as store:
        listed = [e.key for e in (await store.list_page("shared", max_keys=1000)).entries]
        assert listed == sorted(key for _, _, keys in results for key in keys)
    assert max(start for start, _, _ in results) < min(end for _, end, _ in results), "the workers did not overlap"
    with SqliteStore.open(root) as store:
        assert sorted(u.upload_id for u in await store.list_uploads("shared")) == ["u0", "u1", "u2", "u3"]
        assert len((await store.list_page("syn")).entries) == 50
        assert_no_leaks(store)


# -- seeding -------------------------------------------------------------------------------------------


async def test_seeding_is_idempotent_and_keeps_user_changes(tmp_path: Path) -> None:
    root = tmp_path / "data"
    config = load_config(
        overrides={
            "buckets": [{"name": "mraps3sample", "objects": {"hello.txt": "hello\n", "gone.txt": "g", "a.bin": "a"}}],
            "mraps": [{"alias": "abc.mrap", "account": "123456789012", "buckets": ["mraps3sample", "only-mrap"]}],
        }
    )
    with SqliteStore.open(root) as store:
        await seed_store(store, config)
        assert [b.name for b in await store.list_buckets()] == ["mraps3sample", "only-mrap"]
        hello = await store.get_object("mraps3sample", "hello.txt")
        assert hello.content.read(0, 100) == b"hello\n" and hello.info.content_type == "text/plain"
        assert (await store.head_object("mraps3sample", "a.bin")).content_type == "binary/octet-stream"
        await store.put_object("mraps3sample", "a.bin", ObjectWrite(BytesContent(b"changed")))
        await store.delete_object("mraps3sample", "gone.txt")
        before = await store.list_page("mraps3sample")
    with SqliteStore.open(root) as store:
        await seed_store(store, config)
        await seed_store(store, config)
        assert await store.list_page("mraps3sample") == before
        assert (await store.get_object("mraps3sample", "a.bin")).content.read(0, 100) == b"changed"
        await store.delete_bucket("only-mrap")
        await seed_store(store, config)
        assert [b.name for b in await store.list_buckets()] == ["mraps3sample", "only-mrap"]


def test_a_bad_synthetic_format_never_reaches_the_store() -> None:
    """load_config names the setting; a SyntheticSpec built in code is refused as it is built."""
    with pytest.raises(KeyFormatError, match="zero-pad"):
        BucketConfig("syn", (), SyntheticSpec(keys=100, key_format="k{i}", size=1, seed=0))


# -- conditional writes across processes ----------------------------------------------------------------


def conditional_writer(root: str, worker: int, start_at: float) -> list[str]:
    return trio.run(conditional_writer_async, root, worker, start_at)


async def conditional_writer_async(root: str, worker: int, start_at: float) -> list[str]:
    """`If-None-Match: *` on 40 keys that every worker also writes: the keys this worker won."""
    store = SqliteStore.open(Path(root))
    await trio.sleep(max(0.0, start_at - time.time()))  # all workers start together
    won = []
    for i in range(40):
        try:
            await store.put_object("race", f"k{i:02d}", ObjectWrite(BytesContent(b"%d" % worker)), NEW_ONLY)
            won.append(f"k{i:02d}")
        except PreconditionFailedError:
            pass
    store.close()
    return won


async def test_of_processes_racing_with_if_none_match_exactly_one_wins_each_key(tmp_path: Path) -> None:
    """`--workers N` share one sqlite store: the condition is checked inside the write
    transaction, which holds the database's write lock, so it holds across processes too."""
    root = tmp_path / "data"
    with SqliteStore.open(root) as store:
        await store.create_bucket("race")
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 3  # after the spawned interpreters have imported mrapsim
    with context.Pool(4) as pool:
        results = pool.starmap(conditional_writer, [(str(root), worker, start_at) for worker in range(4)])
    won = [key for keys in results for key in keys]
    assert sorted(won) == [f"k{i:02d}" for i in range(40)]  # each key once, by exactly one worker
    with SqliteStore.open(root) as store:
        for worker, keys in enumerate(results):
            for key in keys:
                assert (await store.get_object("race", key)).content.read(0, 10) == b"%d" % worker


async def test_a_schema_1_store_is_migrated_in_place(tmp_path: Path) -> None:
    """Schema 1 had no object extras and no bucket configurations: opening adds both, keeping data."""
    with SqliteStore.open(tmp_path) as old:
        await old.create_bucket("b")
        await old.put_bytes("b", "k", b"kept")
    db = sqlite3.connect(tmp_path / DATABASE_NAME)
    db.execute("ALTER TABLE objects DROP COLUMN extras")
    db.execute("DROP TABLE bucket_configs")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with SqliteStore.open(tmp_path) as migrated:
        stored = await migrated.get_object("b", "k")
        assert stored.content.read(0, 4) == b"kept" and stored.info.extras == {}
        await migrated.update_object_extras("b", "k", {"tagging": "a=1"})
        await migrated.put_bucket_config("b", "cors", "<CORSConfiguration/>")
        assert (await migrated.head_object("b", "k")).extras == {"tagging": "a=1"}
        assert await migrated.get_bucket_config("b", "cors") == "<CORSConfiguration/>"
