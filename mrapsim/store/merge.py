"""Listing one page over ordered key sources, shared by every store.

A store describes its key space as one or more forward-only cursors (its real keys first, then a
synthetic key space beneath them); `MergedCursor` reads them as one ordered space in which a key
of an earlier source shadows the same key of a later one. `list_merged` walks one page of it:
keys under the prefix after the resume position, each run of keys sharing a common prefix rolled
up by seeking straight to the prefix's successor string. Every step is one seek or one advance
per source, so a page costs O(log n + page size) seeks whatever the sources are: a bisection of
a sorted list, an indexed database query, or a binary search over a synthetic key format.

Runs: where the keys ahead all come from one source (no other source has a key before them, none
rolls up, all under the prefix) the page takes them in bulk, `RunCursor.run`: a slice of a
sorted list, a range of synthetic indices formatted in one call, and the store turns the run into
entries at once (a synthetic run stays keys and a spec: store/synthetic.py's `SyntheticRun`). The
step per key that remains is a comparison or two in C (bisect) and the delimiter test; a page of
synthetic keys with no real key among them is a handful of runs. Where sources interleave closely
(real keys every few synthetic ones) runs are short and each costs more than it saves, so after
two short runs the page reads windows instead, `MergedCursor.window`: each source's next keys in bulk
(`RunCursor.ahead`), merged by one sort of the concatenation (already sorted stretches: a linear
merge in C), shadowed duplicates dropped and the keys grouped by source with C-level tools.

Keys compare as Python strs (by code point), which is S3's UTF-8 byte order for every valid key
and SQLite's BINARY collation of UTF-8 text.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain, groupby
from typing import Protocol

from mrapsim.store.base import ListPage, ObjectInfo, PageEntries

MAX_CODE_POINT = 0x10FFFF
# With a delimiter, a run reads keys in chunks that double from this size: the keys formatted or
# copied past the run's end (a key that rolls up) are at most as many as it took, or this many.
FIRST_RUN_CHUNK = 16
SHORT_RUN = 8  # after two runs shorter than this, windows (module comment)
FIRST_WINDOW = 64  # a window's size doubles while windows come back full and interleaved


def prefix_successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix`
    (None: no such string, every string from `prefix` on starts with it)."""
    while prefix:
        last = ord(prefix[-1])
        if last < MAX_CODE_POINT:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


@dataclass(frozen=True)
class RunBounds:
    """What the keys of a run must be besides ordered: under the listing's prefix (below `upper`,
    its successor) and not rolled up by the delimiter."""

    upper: str | None  # None: no bound
    delimiter: str
    skip: int  # the prefix's length: a delimiter counts after it

    @classmethod
    def of(cls, prefix: str, delimiter: str) -> RunBounds:
        return cls(prefix_successor(prefix) if prefix else None, delimiter, len(prefix))

    def fitting(self, keys: Sequence[str], lo: int, hi: int, below: str | None) -> int:
        """The end of the stretch of sorted `keys[lo:hi]` whose keys are below `below` (None: no
        bound) and within these bounds."""
        if below is not None:
            hi = bisect_left(keys, below, lo, hi)
        if self.upper is not None:
            hi = bisect_left(keys, self.upper, lo, hi)
        if self.delimiter:
            delimiter, skip = self.delimiter, self.skip
            for at in range(lo, hi):
                if keys[at].find(delimiter, skip) >= 0:
                    return at
        return hi


class KeyCursor(Protocol):
    """A forward-only position in an ordered space of distinct keys."""

    def peek(self) -> str | None:
        """The key at the position; None past the end."""
        ...

    def advance(self) -> None:
        """Step past the key at the position."""
        ...

    def seek(self, key: str | None, *, inclusive: bool = True) -> None:
        """Move forward to the first key >= `key` (> `key` when not inclusive; None: the end).
        Never moves backward."""
        ...


class RunCursor(KeyCursor, Protocol):
    """A KeyCursor that can also step past a run of keys at once (the module comment)."""

    def run(self, limit: int, below: str | None, bounds: RunBounds) -> Sequence[str]:
        """Step past the keys from the position on, at most `limit`, that are below `below` and
        within `bounds`, and return them; () when the key at the position is not, or when this
        cursor reads no runs (its keys are then taken one at a time)."""
        ...

    def ahead(self, limit: int, bounds: RunBounds) -> tuple[list[str], str | None]:
        """Without moving: the next keys from the position on within `bounds`, at most `limit`,
        and a stop: every key of this cursor within `bounds` below the stop is in the list, and
        the listing cannot go past the stop without this cursor's next keys (None: no stop)."""
        ...

    def skip_through(self, key: str) -> None:
        """Step past every key up to `key` (a window's last key): all of them are on the page."""
        ...


class KeyIndex(Protocol):
    """An ordered key space with random access: a sorted list, a synthetic key format."""

    def index_at_or_after(self, key: str | None, lo: int = 0) -> int: ...

    def index_after(self, key: str, lo: int = 0) -> int: ...

    def key_at(self, index: int) -> str: ...

    def keys_between(self, start: int, stop: int) -> list[str]: ...

    def index_before_bound(self, key: str, lo: int, hi: int) -> int:
        """The first index in [lo, hi) whose key is >= `key` (hi if none): the end of a run, so
        cheapest when close to `lo`."""
        ...

    def __len__(self) -> int: ...


class IndexCursor:
    """A RunCursor over a KeyIndex; keys for which `hidden` is true are stepped over (deleted
    synthetic keys). Each seek is a bisection; each step looks up one key."""

    def __init__(self, index: KeyIndex, hidden: Callable[[str], bool] | None = None) -> None:
        self._index = index
        self._hidden = hidden
        # A cursor lives for one page, read without a suspension point: the index does not change
        # under it, so its length and key lookup are taken once (a listing steps once per key).
        self._length = len(index)
        self._key_at = index.key_at
        self._at = 0
        self._key: str | None = None
        self._known = False

    def _move(self, at: int) -> None:
        if at != self._at:
            self._at, self._known = at, False

    def peek(self) -> str | None:
        if self._known:
            return self._key
        key = None
        at, hidden = self._at, self._hidden
        while at < self._length:
            candidate = self._key_at(at)
            if hidden is None or not hidden(candidate):
                key = candidate
                break
            at += 1
        self._at, self._key, self._known = at, key, True
        return key

    def advance(self) -> None:
        if self.peek() is not None:
            self._move(self._at + 1)

    def seek(self, key: str | None, *, inclusive: bool = True) -> None:
        if key is None:
            self._move(self._length)
        elif inclusive:
            self._move(max(self._at, self._index.index_at_or_after(key, self._at)))
        else:
            self._move(max(self._at, self._index.index_after(key, self._at)))

    def run(self, limit: int, below: str | None, bounds: RunBounds) -> Sequence[str]:
        if self.peek() is None:
            return ()
        at, index, hidden = self._at, self._index, self._hidden
        end = min(self._length, at + limit)
        for bound in (below, bounds.upper):
            if bound is not None:
                end = index.index_before_bound(bound, at, end)
        taken: list[str] = []
        # Without a delimiter every key up to `end` is in the run: one read. With one, a key may
        # roll up anywhere: chunks that double.
        size = FIRST_RUN_CHUNK if bounds.delimiter else max(1, end - at)
        while at < end:
            chunk = index.keys_between(at, min(end, at + size))
            fits = bounds.fitting(chunk, 0, len(chunk), None)
            if fits < len(chunk):
                chunk = chunk[:fits]
            if hidden is not None:  # hidden keys are not in the key space: the run goes on
                chunk = [key for key in chunk if not hidden(key)]
            if taken:
                taken += chunk
            else:
                taken = chunk
            at += fits
            if fits < size:
                break
            size *= 2
        self._move(at)
        return taken

    def ahead(self, limit: int, bounds: RunBounds) -> tuple[list[str], str | None]:
        if self.peek() is None:
            return [], None
        chunk = self._index.keys_between(self._at, self._at + limit + 1)
        fits = min(limit, bounds.fitting(chunk, 0, len(chunk), None))
        stop = chunk[fits] if fits < len(chunk) else None
        keys = chunk[:fits]
        hidden = self._hidden
        if hidden is not None:
            keys = [key for key in keys if not hidden(key)]
        return keys, stop

    def skip_through(self, key: str) -> None:
        self.seek(key, inclusive=False)


class MergedCursor:
    """Several cursors read as one ordered key space; on equal keys the earliest source wins
    (a real object shadows the synthetic key it overwrites) and all of them step past it.

    The head (smallest key, and the earliest source holding it) is found once per position and
    kept until the cursor moves: a listing asks for it three times per key."""

    def __init__(self, sources: Sequence[RunCursor]) -> None:
        self._sources = list(sources)
        self._head: tuple[str | None, int] | None = None

    def _find_head(self) -> tuple[str | None, int]:
        head = self._head
        if head is None:
            best: str | None = None
            which = -1
            for index, source in enumerate(self._sources):
                key = source.peek()
                if key is not None and (best is None or key < best):
                    best, which = key, index
            head = self._head = (best, which)
        return head

    def peek(self) -> str | None:
        return self._find_head()[0]

    def source(self) -> int:
        """Which source the current key comes from (the earliest that has it)."""
        key, which = self._find_head()
        if key is None:
            raise IndexError("the cursor is past the end")
        return which

    def advance(self) -> None:
        key, which = self._find_head()
        if key is None:
            return
        for source in self._sources[which:]:
            if source.peek() == key:
                source.advance()
        self._head = None

    def seek(self, key: str | None, *, inclusive: bool = True) -> None:
        for source in self._sources:
            source.seek(key, inclusive=inclusive)
        self._head = None

    def run(self, limit: int, bounds: RunBounds) -> tuple[int, Sequence[str]]:
        """The head's source and the run of its keys from the head on that come before every other
        source's next key (`RunCursor.run`), stepped past; () when the head is also another
        source's key (shadowing is a step of its own) or its source reads no runs."""
        key, which = self._find_head()
        if key is None:
            return which, ()
        below: str | None = None
        for index, source in enumerate(self._sources):
            if index != which:
                other = source.peek()
                if other is not None and (below is None or other < below):
                    below = other
        keys = self._sources[which].run(limit, below, bounds)
        if keys:
            self._head = None
        return which, keys

    def window(self, limit: int, bounds: RunBounds) -> list[tuple[int, list[str]]]:
        """The next keys, at most `limit`, all within `bounds`, as (source, keys) groups in key
        order, stepped past (module comment); [] when the head is not within `bounds`."""
        lists: list[list[str]] = []
        stop: str | None = None
        for source in self._sources:
            keys, source_stop = source.ahead(limit, bounds)
            lists.append(keys)
            if source_stop is not None and (stop is None or source_stop < stop):
                stop = source_stop
        # Each key's source is the earliest that has it: later sources' entries are overwritten.
        owner: dict[str, int] = {}
        for number in range(len(lists) - 1, -1, -1):
            owner.update(dict.fromkeys(lists[number], number))
        merged = list(dict.fromkeys(sorted(chain.from_iterable(lists))))
        end = min(limit, len(merged) if stop is None else bisect_left(merged, stop))
        if end == 0:
            return []
        last = merged[end - 1]
        for source in self._sources:
            source.skip_through(last)
        self._head = None
        return [(number, list(keys)) for number, keys in groupby(merged[:end], owner.__getitem__)]


def seek_resume(cursor: KeyCursor, prefix: str, delimiter: str, start_after: str) -> None:
    """Position `cursor` at the first listing entry under `prefix` after `start_after`."""
    cursor.seek(prefix)
    if not start_after:
        return
    # A start position inside a common prefix (the prefix itself, as a previous page's
    # next_after, or a key under it) means that prefix was already returned: skip all of it.
    common = rolled_up(start_after, prefix, delimiter) if start_after.startswith(prefix) else None
    if common is not None:
        cursor.seek(prefix_successor(common))
        return
    cursor.seek(start_after, inclusive=False)


def rolled_up(key: str, prefix: str, delimiter: str) -> str | None:
    """The common prefix `key` (under `prefix`) rolls up into: up to and including the first
    `delimiter` after `prefix`; None without a delimiter or when there is none after it."""
    cut = key.find(delimiter, len(prefix)) if delimiter else -1
    return key[: cut + len(delimiter)] if cut >= 0 else None


def more_under(cursor: KeyCursor, prefix: str) -> bool:
    """Whether the cursor still stands at a key under `prefix` (the page is truncated)."""
    following = cursor.peek()
    return following is not None and following.startswith(prefix)


def list_merged(
    cursor: MergedCursor,
    take: Callable[[int, list[str]], Sequence[ObjectInfo]],
    *,
    prefix: str = "",
    delimiter: str = "",
    start_after: str = "",
    max_keys: int = 1000,
) -> ListPage:
    """One page of `Store.list_page` over `cursor`. `take(source, keys)` returns the objects of
    `keys`, consecutive keys of the page that the cursor stepped past, all from source number
    `source`; it is called in key order, once per stretch of keys from one source."""
    if max_keys <= 0:
        return ListPage((), (), False, None)
    seek_resume(cursor, prefix, delimiter, start_after)
    bounds = RunBounds.of(prefix, delimiter)
    parts: list[Sequence[ObjectInfo]] = []
    group: list[str] = []  # keys taken from `group_source` since the last call of `take`
    group_source = -1
    common_prefixes: list[str] = []
    count = 0
    last: str | None = None
    window, dense, short_runs = FIRST_WINDOW, False, 0
    while count < max_keys:
        key = cursor.peek()
        if key is None or not key.startswith(prefix):
            break
        common = rolled_up(key, prefix, delimiter) if delimiter else None
        if common is not None:
            common_prefixes.append(common)
            count += 1
            last = common
            cursor.seek(prefix_successor(common))
            continue
        if dense:
            # Windows while sources keep interleaving (short stretches per source), growing while
            # they come back full; runs again once the stretches are long.
            size = min(window, max_keys - count)
            groups = cursor.window(size, bounds)
            taken = sum(len(keys) for _, keys in groups)
            dense = len(groups) * SHORT_RUN > taken
            window = min(window * 2, max_keys) if dense and taken == size else FIRST_WINDOW
            short_runs = 0
        else:
            source, keys = cursor.run(max_keys - count, bounds)
            groups = [(source, list(keys))] if keys else []
            # One short run is a lone key of one source among the other's (a real object in a
            # synthetic space); two in a row, the sources interleave. () is a key two sources
            # share: one step, then a run.
            short_runs = short_runs + 1 if 0 < len(keys) < SHORT_RUN else 0
            dense = short_runs >= 2
        if not groups:
            source = cursor.source()
            cursor.advance()
            groups = [(source, [key])]
        for source, keys in groups:
            if source != group_source:
                if group:
                    parts.append(take(group_source, group))
                group, group_source = keys, source
            else:
                group += keys
            count += len(keys)
            last = keys[-1]
    if group:
        parts.append(take(group_source, group))
    return ListPage(PageEntries(parts), common_prefixes, more_under(cursor, prefix), last)
