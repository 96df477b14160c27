"""Listing pages read in bulk (store/merge.py's runs and windows, store/synthetic.py's SyntheticRun,
s3/listing.py's rendering of runs) equal the plain definition: random synthetic key spaces with
real keys interleaved, shadowing and deleted keys, random prefixes, delimiters, start positions
and page sizes, on every store; and the `<Contents>` rendered from a page's runs equal those
rendered object by object."""

from __future__ import annotations

from dataclasses import fields

from hypothesis import given, settings
from hypothesis import strategies as st

from mrapsim.config import SyntheticSpec
from mrapsim.s3.listing import render_contents
from mrapsim.store import ObjectInfo, PageEntries, Store
from mrapsim.store.synthetic import SyntheticKeys, SyntheticRun, synthetic_etag, synthetic_info
from tests.store.contract import FIXTURE_CHECKS, MakeStore, fresh_bucket, put

FORMATS = ["k{i:03d}/x", "{i:04x}", "a&b/{i:03d}<x", "p q+{i:03d}", "d/{i:03d}/é"]
OWNER = "<Owner><ID>1</ID><DisplayName>me</DisplayName></Owner>"


def model_page(
    objects: dict[str, ObjectInfo], prefix: str, delimiter: str, start_after: str, max_keys: int
) -> tuple[list[ObjectInfo], list[str], bool, str | None]:
    """A page by the definition: every key in order, grouped under common prefixes, after the
    start position (a common prefix is behind any start position at or after it)."""
    items: list[tuple[str, ObjectInfo | None]] = []
    for key in sorted(objects):
        if not key.startswith(prefix):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            common = key[: cut + len(delimiter)]
            if (not items or items[-1][0] != common) and common > start_after:
                items.append((common, None))
        elif key > start_after:
            items.append((key, objects[key]))
    page, more = items[:max_keys], len(items) > max_keys
    infos = [info for _, info in page if info is not None]
    commons = [name for name, info in page if info is None]
    return infos, commons, more, page[-1][0] if page else None


@settings(FIXTURE_CHECKS, max_examples=120)
@given(
    key_format=st.sampled_from(FORMATS),
    count=st.integers(0, 150),
    real=st.lists(st.tuples(st.integers(0, 160), st.sampled_from(["", "0", "/", "~", "/y", "\x00"])), max_size=40),
    deleted=st.lists(st.integers(0, 150), max_size=30),
    prefix_length=st.integers(0, 6),
    delimiter=st.sampled_from(["", "/", "0", "1", "x", "<"]),
    start=st.one_of(st.none(), st.tuples(st.integers(0, 160), st.sampled_from(["", "/", "~", "\x00"]))),
    max_keys=st.sampled_from([1, 2, 3, 7, 20, 64, 1000]),
)
async def test_bulk_pages_equal_the_definition(
    make_store: MakeStore,
    key_format: str,
    count: int,
    real: list[tuple[int, str]],
    deleted: list[int],
    prefix_length: int,
    delimiter: str,
    start: tuple[int, str] | None,
    max_keys: int,
) -> None:
    spec = SyntheticSpec(count, key_format, 5, 3)
    space = SyntheticKeys.of(spec)
    store = make_store()
    bucket = await fresh_bucket(store)
    await store.set_synthetic(bucket, spec)
    objects = {key: synthetic_info(spec, key) for key in space.keys_between(0, count)}
    for index in deleted:
        if index < count:
            await store.delete_object(bucket, space.key_at(index))
            objects.pop(space.key_at(index), None)
    for index, tail in real:  # a synthetic key itself (shadowing it) or a key beside one
        key = space.key_at(index) + tail
        objects[key] = await put(store, bucket, key, b"real")
    prefix = space.key_at(min(count, 10) // 2)[:prefix_length]
    start_after = "" if start is None else space.key_at(start[0]) + start[1]
    page = await store.list_page(bucket, prefix=prefix, delimiter=delimiter, start_after=start_after, max_keys=max_keys)
    infos, commons, more, next_after = model_page(objects, prefix, delimiter, start_after, max_keys)
    assert list(page.entries) == infos
    assert len(page.entries) == len(infos) and page.entries == infos
    assert (list(page.common_prefixes), page.is_truncated, page.next_after) == (commons, more, next_after)
    for url_encoded in (False, True):
        for owner in ("", OWNER):
            assert render_contents(page.entries, url_encoded, owner) == render_contents(infos, url_encoded, owner)


@given(
    key_format=st.sampled_from(FORMATS),
    start=st.integers(0, 200),
    length=st.integers(0, 40),
    seed=st.integers(0, 2**40),
    size=st.integers(0, 2**40),
)
def test_a_synthetic_run_is_its_objects(key_format: str, start: int, length: int, seed: int, size: int) -> None:
    spec = SyntheticSpec(300, key_format, size, seed)
    space = SyntheticKeys.of(spec)
    keys = space.keys_between(start, start + length)
    assert keys == [key_format.format(i=i) for i in range(start, min(300, start + length))]
    run = SyntheticRun(spec, keys)
    assert list(run) == [synthetic_info(spec, key) for key in keys] == list(PageEntries([run]))
    assert run.etags() == [synthetic_etag(seed, key, size) for key in keys]
    assert run[1:3] == [synthetic_info(spec, key) for key in keys[1:3]]


@given(
    key_format=st.sampled_from(["obj/{i:04d}", "{i:04X}/", "{i:04x}", "k{i:04o}z"]),
    lo=st.integers(0, 1000),
    span=st.integers(0, 1000),
    probe=st.one_of(
        st.integers(0, 1100).map(str),
        st.text(alphabet="obj/0123456789aAfFzZ+_ \x00\U0010ffff", max_size=9),
    ),
    tail=st.sampled_from(["", "x", "\x00", "/", "z"]),
)
def test_index_before_bound_is_a_bisection(key_format: str, lo: int, span: int, probe: str, tail: str) -> None:
    space = SyntheticKeys.of(SyntheticSpec(1000, key_format, 1, 1))
    keys = space.keys_between(0, 1000)
    hi = min(1000, lo + span)
    for bound in (probe, space.key_at(min(999, int(probe))) + tail if probe.isdigit() else probe + tail):
        expected = lo + sum(1 for key in keys[lo:hi] if key < bound)
        assert space.index_before_bound(bound, lo, hi) == expected


def test_page_entries_read_as_a_sequence() -> None:
    spec = SyntheticSpec(10, "k{i:01d}", 1, 1)
    real = ObjectInfo("k", 1, '"e"', synthetic_info(spec, "k1").last_modified)
    entries = PageEntries([[real], SyntheticRun(spec, ["k1", "k2"]), [], [real]])
    assert len(entries) == 4 and entries[0] == real and entries[-1] == real
    assert entries[1] == synthetic_info(spec, "k1") and [e.key for e in entries] == ["k", "k1", "k2", "k"]
    assert entries == [real, synthetic_info(spec, "k1"), synthetic_info(spec, "k2"), real]
    assert entries != [real] and PageEntries([]) == [] and len(entries.parts) == 3


async def test_store_pages_are_page_entries(make_store: MakeStore) -> None:
    store: Store = make_store()
    bucket = await fresh_bucket(store)
    await store.set_synthetic(bucket, SyntheticSpec(50, "s{i:02d}", 1, 1))
    page = await store.list_page(bucket)
    assert isinstance(page.entries, PageEntries) and len(page.entries) == 50
    assert [type(part) for part in page.entries.parts] == [SyntheticRun]


async def test_listed_objects_are_whole_object_infos(make_store: MakeStore) -> None:
    """The stores build listed ObjectInfo values without the dataclass constructor: each has every
    field and equals the constructor's value."""
    store = make_store()
    bucket = await fresh_bucket(store)
    await store.set_synthetic(bucket, SyntheticSpec(3, "s{i:01d}", 4, 1))
    await put(store, bucket, "plain", b"x")
    await put(
        store, bucket, "rich", b"xy", content_type="text/plain", metadata={"a": "b"}, checksums={"crc32": "AAAAAA=="}
    )
    names = {f.name for f in fields(ObjectInfo)}
    for info in (await store.list_page(bucket)).entries:
        assert set(vars(info)) == names
        assert info == ObjectInfo(**{name: getattr(info, name) for name in names})
