"""Synthetic buckets: key spaces that list like real ones (checked against a materialised model),
merge with real writes and deletes, and generate range-consistent content."""

from __future__ import annotations

import dataclasses

import pytest

from mrapsim.config import ConfigError, KeyFormatError, SyntheticSpec, load_config
from mrapsim.store import ObjectInfo
from mrapsim.store.synthetic import (
    BLOCK_SIZE,
    SYNTHETIC_LAST_MODIFIED,
    SyntheticKeys,
    synthetic_content,
    synthetic_info,
)

SPEC = SyntheticSpec(keys=300, key_format="k{i:03d}/x", size=10, seed=7)


def key_space(key_format: str, count: int) -> SyntheticKeys:
    return SyntheticKeys.of(SyntheticSpec(keys=count, key_format=key_format, size=0, seed=0))


def test_key_space_search_and_parse() -> None:
    keys = key_space("obj/{i:07d}.bin", 1_000_000)
    assert keys.key_at(42) == "obj/0000042.bin" and len(keys) == 1_000_000
    assert keys.index_of("obj/0000042.bin") == 42
    assert keys.index_of("obj/1000000.bin") is None and keys.index_of("obj/000004.bin") is None
    assert keys.index_of("obj/00000-1.bin") is None and keys.index_of("other") is None
    assert keys.index_at_or_after("obj/0000042") == 42 and keys.index_after("obj/0000042.bin") == 43
    assert keys.index_at_or_after("a") == 0 and keys.index_at_or_after("z") == 1_000_000
    assert key_space("{i:08x}", 1000).index_of("000003e7") == 999


@pytest.mark.parametrize("key_format", ["obj/{i}", "obj/{i:3d}", "obj/{i:02d}", "{i:03d}/{i}", "{j}", "{i!r:05}"])
def test_formats_whose_order_is_not_index_order_are_refused(key_format: str) -> None:
    with pytest.raises(KeyFormatError):
        key_space(key_format, 1000)


def test_bad_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"buckets\[1\]\.synthetic\.key_format"):
        bucket = {"name": "syn", "synthetic": {"keys": 100, "key_format": "k{i}", "size": 1}}
        load_config(overrides={"buckets": [bucket]})


def test_synthetic_info_equals_the_constructed_value() -> None:
    info = synthetic_info(SPEC, "k001/x")
    assert info == ObjectInfo("k001/x", SPEC.size, info.etag, SYNTHETIC_LAST_MODIFIED)
    assert set(vars(info)) == {f.name for f in dataclasses.fields(ObjectInfo)}
    assert synthetic_info(SPEC, "k001/x").etag == info.etag != synthetic_info(SPEC, "k002/x").etag


def test_content_is_range_consistent_and_distinct_per_block() -> None:
    content = synthetic_content(SyntheticSpec(1, "k{i:01d}", 5 * BLOCK_SIZE + 123, 1), "k0")
    whole = content.read(0, content.size)
    assert len(whole) == content.size
    for start, stop in [(0, 1), (BLOCK_SIZE - 3, BLOCK_SIZE + 5), (100, 4 * BLOCK_SIZE + 7), (content.size - 9, 10**9)]:
        assert content.read(start, stop) == whole[start:stop]
        assert b"".join(content.chunks(start, stop, 1000)) == whole[start:stop]
    blocks = {whole[i : i + BLOCK_SIZE] for i in range(0, 5 * BLOCK_SIZE, BLOCK_SIZE)}
    assert len(blocks) == 5
    other = synthetic_content(SyntheticSpec(1, "k{i:01d}", 100, 2), "k0")
    assert other.read(0, 100) != whole[:100]
