"""Listing one page over ordered key sources, shared by every store.

A store describes its key space as one or more forward-only cursors (its real keys first, then a
synthetic key space beneath them); `MergedCursor` reads them as one ordered space in which a key
of an earlier source shadows the same key of a later one. `list_merged` walks one page of it:
keys under the prefix after the resume position, each run of keys sharing a common prefix rolled
up by seeking straight to the prefix's successor string. Every step is one seek or one advance
per source, so a page costs O(log n + page size) seeks whatever the sources are: a bisection of
a sorted list, an indexed database query, or a binary search over a synthetic key format.

Keys compare as Python strs (by code point), which is S3's UTF-8 byte order for every valid key
and SQLite's BINARY collation of UTF-8 text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from mrapsim.store.base import ListPage, ObjectInfo

MAX_CODE_POINT = 0x10FFFF


def prefix_successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix`
    (None: no such string, every string from `prefix` on starts with it)."""
    while prefix:
        last = ord(prefix[-1])
        if last < MAX_CODE_POINT:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


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


class KeyIndex(Protocol):
    """An ordered key space with random access: a sorted list, a synthetic key format."""

    def index_at_or_after(self, key: str | None, lo: int = 0) -> int: ...

    def index_after(self, key: str, lo: int = 0) -> int: ...

    def key_at(self, index: int) -> str: ...

    def __len__(self) -> int: ...


class IndexCursor:
    """A KeyCursor over a KeyIndex; keys for which `hidden` is true are stepped over (deleted
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


class MergedCursor:
    """Several cursors read as one ordered key space; on equal keys the earliest source wins
    (a real object shadows the synthetic key it overwrites) and all of them step past it.

    The head (smallest key, and the earliest source holding it) is found once per position and
    kept until the cursor moves: a listing asks for it three times per key."""

    def __init__(self, sources: Sequence[KeyCursor]) -> None:
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
    cursor: KeyCursor,
    take: Callable[[], ObjectInfo],
    *,
    prefix: str = "",
    delimiter: str = "",
    start_after: str = "",
    max_keys: int = 1000,
) -> ListPage:
    """One page of `Store.list_page` over `cursor`. `take()` returns the object at the cursor's
    position and advances past it."""
    if max_keys <= 0:
        return ListPage((), (), False, None)
    seek_resume(cursor, prefix, delimiter, start_after)
    entries: list[ObjectInfo] = []
    common_prefixes: list[str] = []
    last: str | None = None
    while len(entries) + len(common_prefixes) < max_keys:
        key = cursor.peek()
        if key is None or not key.startswith(prefix):
            break
        common = rolled_up(key, prefix, delimiter)
        if common is not None:
            common_prefixes.append(common)
            last = common
            cursor.seek(prefix_successor(common))
        else:
            entries.append(take())
            last = key
    return ListPage(entries, common_prefixes, more_under(cursor, prefix), last)
