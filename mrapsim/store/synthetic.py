"""Synthetic objects: N keys of a given size whose content derives from key and seed,
costing no memory per key or per byte — a million keys or a 50 GiB object for load tests.

Keys: key i is `key_format.format(i=i)`. Listing needs key order to equal index order, so the
format must zero-pad `{i}` to a fixed width (`obj/{i:07d}`, `{i:08x}`): then every key has the
same length and the digits, the only part that varies, compare like the numbers. Under that rule
"the first key ≥ k" is a binary search over indices (O(log n) formats) and "is k a key" is a
parse, so a bucket of 10^10 keys is as cheap as one of ten. The configuration checks the rule
when it is read (`config.KeyLayout`), so every `SyntheticSpec` a store receives keeps it.

Content: 64 KiB blocks. A per-object base block comes from SHAKE-256 of (seed, key); block b is
the base block with its first 16 bytes replaced by BLAKE2b(seed, key, b). So any byte range is
computable on its own (range reads, parallel downloads), every block differs (misplaced ranges
are caught by a spot check), and generating costs one 16-byte hash and a copy per block.

ETag: a hash of (seed, key, size) shaped like an MD5 — not the MD5 of the content (computing
that for 2 GiB per listing would defeat the purpose; no client verifies a GET against the ETag).
No checksums are declared, so clients have nothing to validate against either.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import overload

from mrapsim.config import SyntheticSpec
from mrapsim.store.base import ObjectInfo
from mrapsim.store.content import DEFAULT_CHUNK_SIZE

BLOCK_SIZE = 64 * 1024
BLOCK_HEADER = 16
SYNTHETIC_LAST_MODIFIED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class SyntheticKeys:
    """The sorted key space `key_format.format(i=i)` for i in [0, count)."""

    count: int
    key_format: str
    prefix: str
    suffix: str
    width: int
    base: int
    # key_format with `{i...}` as the positional `{0...}`: `str.format` of one argument, which
    # `map` can call over an index range (a page of keys in one C loop, twice as fast as kwargs).
    positional: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pieces = []
        for literal, name, spec, _ in string.Formatter().parse(self.key_format):
            pieces.append(literal.replace("{", "{{").replace("}", "}}"))
            if name is not None:
                pieces.append(f"{{0:{spec}}}" if spec else "{0}")
        object.__setattr__(self, "positional", "".join(pieces))

    @classmethod
    def of(cls, spec: SyntheticSpec) -> SyntheticKeys:
        """`spec`'s key space; the configuration checked its format (config.KeyLayout)."""
        layout = spec.layout
        return cls(spec.keys, spec.key_format, layout.prefix, layout.suffix, layout.width, layout.base)

    def __len__(self) -> int:
        return self.count

    def key_at(self, index: int) -> str:
        return self.key_format.format(i=index)

    def keys_between(self, start: int, stop: int) -> list[str]:
        """The keys of indices [start, stop), in bulk."""
        return list(map(self.positional.format, range(start, min(stop, self.count))))

    def index_of(self, key: str) -> int | None:
        """The index of `key` in this space, or None when it is not one of its keys."""
        index = self._index_hint(key)
        if index is None or index >= self.count or self.key_at(index) != key:
            return None
        return index

    def index_at_or_after(self, key: str | None, lo: int = 0) -> int:
        if key is None:
            return self.count
        return self._search(key, lo, inclusive=True)

    def index_after(self, key: str, lo: int = 0) -> int:
        return self._search(key, lo, inclusive=False)

    def index_before_bound(self, key: str, lo: int, hi: int) -> int:
        # The bound is mostly a real key beside a synthetic one (`obj/0001234` itself, or
        # `obj/0001234x`): its digits name the answer or the index before it, which two formats
        # confirm. Otherwise exponential steps from `lo`, then a bisection of the last step:
        # O(log distance) formats.
        guess = self._index_hint(key)
        if guess is not None:
            for candidate in (guess, guess + 1):
                at = min(max(candidate, lo), hi)
                if (at == lo or self.key_at(at - 1) < key) and (at == hi or self.key_at(at) >= key):
                    return at
        step = 1
        while lo < hi:
            probe = min(lo + step, hi) - 1
            if self.key_at(probe) >= key:
                hi = probe
                break
            lo, step = probe + 1, step * 2
        while lo < hi:
            mid = (lo + hi) // 2
            if self.key_at(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _index_hint(self, key: str) -> int | None:
        """The number in `key` where this space's digits are, if any: a guess, to be checked."""
        if not key.startswith(self.prefix):
            return None
        digits = key[len(self.prefix) : len(self.prefix) + self.width]
        if len(digits) != self.width or not digits.isalnum() or not digits.isascii():
            return None
        try:
            return int(digits, self.base)
        except ValueError:
            return None

    def _search(self, key: str, lo: int, *, inclusive: bool) -> int:
        hi = self.count
        while lo < hi:
            mid = (lo + hi) // 2
            probe = self.key_at(mid)
            if probe < key or (not inclusive and probe == key):
                lo = mid + 1
            else:
                hi = mid
        return lo


NO_ENTRIES: Mapping[str, str] = MappingProxyType({})


def synthetic_seed(seed: int, key: str) -> bytes:
    return f"mrapsim synthetic\x00{seed}\x00{key}".encode()


def synthetic_etag(seed: int, key: str, size: int) -> str:
    digest = _etag_head(seed, size)
    digest.update(key.encode())
    return f'"{digest.hexdigest()}"'


def _etag_head(seed: int, size: int) -> hashlib._Hash:
    """The MD5 state every synthetic ETag of (seed, size) starts from; the key follows."""
    return hashlib.md5(b"mrapsim etag\x00%d\x00%d\x00" % (seed, size), usedforsecurity=False)


def synthetic_info(spec: SyntheticSpec, key: str) -> ObjectInfo:
    # A listing page builds one of these per synthetic entry. Filling the instance dict directly
    # skips the frozen dataclass __init__ (one object.__setattr__ per field), which was a third
    # of a synthetic page's cost; tests check the result equals the constructor's.
    info: ObjectInfo = object.__new__(ObjectInfo)
    info.__dict__.update(
        key=key,
        size=spec.size,
        etag=synthetic_etag(spec.seed, key, spec.size),
        last_modified=SYNTHETIC_LAST_MODIFIED,
        content_type="binary/octet-stream",
        metadata=NO_ENTRIES,
        stored_headers=NO_ENTRIES,
        checksums=NO_ENTRIES,
        checksum_type="FULL_OBJECT",
        storage_class="STANDARD",
        parts=(),
        extras=NO_ENTRIES,
        version_id="null",
        delete_marker=False,
    )
    return info


class SyntheticRun(Sequence[ObjectInfo]):
    """Consecutive synthetic objects of a listing page (store/base.py's PageEntries): keys and
    the spec, no ObjectInfo per key until one is read. Its objects differ only in key and ETag,
    so a renderer can write everything else once per run (`first`) and the ETags in bulk."""

    __slots__ = ("keys", "spec")

    def __init__(self, spec: SyntheticSpec, keys: Sequence[str]) -> None:
        self.spec = spec
        self.keys = keys

    def first(self) -> ObjectInfo:
        return synthetic_info(self.spec, self.keys[0])

    def etags(self) -> list[str]:
        """`synthetic_etag` of every key: one MD5 state hashed over the shared head, copied per key."""
        head = _etag_head(self.spec.seed, self.spec.size)
        etags = []
        for key in self.keys:
            digest = head.copy()
            digest.update(key.encode())
            etags.append(f'"{digest.hexdigest()}"')
        return etags

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, index: int) -> ObjectInfo: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ObjectInfo]: ...

    def __getitem__(self, index: int | slice) -> ObjectInfo | Sequence[ObjectInfo]:
        if isinstance(index, slice):
            return [synthetic_info(self.spec, key) for key in self.keys[index]]
        return synthetic_info(self.spec, self.keys[index])


@dataclass(frozen=True)
class SyntheticContent:
    """The generated body of one synthetic object (see the module comment)."""

    seed: bytes  # synthetic_seed(seed, key)
    length: int

    @property
    def size(self) -> int:
        return self.length

    @property
    def on_disk(self) -> bool:
        return False

    @cached_property
    def _base(self) -> bytes:
        return hashlib.shake_256(self.seed).digest(BLOCK_SIZE)

    def block(self, index: int) -> bytes:
        header = hashlib.blake2b(self.seed + index.to_bytes(8, "big"), digest_size=BLOCK_HEADER).digest()
        return header + self._base[BLOCK_HEADER:]

    def read(self, start: int, stop: int) -> bytes:
        return b"".join(self.chunks(start, stop, max(1, stop - start)))

    def chunks(self, start: int, stop: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        stop = min(stop, self.length)
        pending: list[bytes] = []
        pending_size = 0
        while start < stop:
            index, offset = divmod(start, BLOCK_SIZE)
            take = min(BLOCK_SIZE - offset, stop - start, chunk_size - pending_size)
            block = self.block(index)
            pending.append(block[offset : offset + take] if (offset, take) != (0, BLOCK_SIZE) else block)
            pending_size += take
            start += take
            if pending_size >= chunk_size:
                yield b"".join(pending)
                pending, pending_size = [], 0
        if pending:
            yield b"".join(pending)


def synthetic_content(spec: SyntheticSpec, key: str) -> SyntheticContent:
    return SyntheticContent(synthetic_seed(spec.seed, key), spec.size)
