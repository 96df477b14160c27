"""The persistent store: SQLite for the catalogue, plain files for large bodies, one
directory shared by every `mrapsim serve --workers N` process on a machine.

Layout of the directory (`store.path`):

    mrapsim.sqlite3   buckets, objects, small bodies, uploads, parts, blob reference counts
    blobs/ab/<name>   large bodies and multipart parts, one immutable file per blob
    tmp/              bodies while they stream in (`spool-<pid>-*`), copies being written

Sharing between processes: the database is in WAL mode (readers never block the writer), every
connection waits up to BUSY_TIMEOUT for the write lock, and every write is one short
`BEGIN IMMEDIATE` transaction that only touches rows and renames files — bodies are written
before it starts. Each method runs on a worker thread with a connection of its own (the class
comment says how), so that waiting for the lock never stalls the process's event loop.

Bodies: up to INLINE_MAX bytes live in the database (`bodies`). Larger ones stream into a spool
file under tmp/ (`new_content()`), never into memory, and storing the object renames that file
into blobs/ inside the write transaction. An object or part refers to its bytes as a list of
segments (blob, offset, length) and every blob counts its references, so completing a multipart
upload joins its parts without copying a byte, CopyObject and UploadPartCopy share the source's
blobs, and a blob's file is deleted (after the commit) when the last object or part using it is
replaced, deleted or aborted. Readers open a blob's file when they fetch the row and read through
that descriptor, so a concurrent delete cannot pull the bytes from under a response; a reader
that finds a file already gone re-reads the row. Files orphaned by a crash (a rename whose
transaction never committed, an unlink that never ran, a dead process's spool) are swept when a
store opens: blobs/ under the write lock (renames happen under it too, so no live write is
mistaken for an orphan), tmp/ by the owner's pid.

Listing: objects are a WITHOUT ROWID table clustered on (bucket, key), so "the next keys after k"
is one indexed range query. `_ObjectRows` reads a page in batches and, for a delimiter roll-up,
seeks past the whole common prefix with a new query from the prefix's successor; merge.py
merges that cursor with a synthetic key space exactly as the in-memory store does. Keys compare
by SQLite's BINARY collation of UTF-8 text — byte order, the same as S3's and as Python's code
point order. Each page runs in one read transaction: one consistent snapshot.

Seeding (store/seed.py) is idempotent across restarts and across workers starting at once:
`seed_object` records each seeded key in the `seeded` table in the transaction that writes it,
so each configured object is written once (a key the user has since overwritten or deleted is
left alone).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import sqlite3
import tempfile
import threading
import uuid
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast

import trio

from mrapsim.config import DEFAULT_REGION, SyntheticSpec
from mrapsim.store.base import (
    BucketInfo,
    ListPage,
    MrapInfo,
    ObjectInfo,
    ObjectWrite,
    PartInfo,
    Precondition,
    ReplicationTask,
    StoredObject,
    UploadInfo,
    VersionEntry,
    VersionPage,
    merge_extras,
    object_info,
    utc_now_seconds,
)
from mrapsim.store.content import (
    DEFAULT_CHUNK_SIZE,
    BytesContent,
    ConcatContent,
    ContentBuilder,
    ContentSource,
    SliceContent,
    content_etag,
)
from mrapsim.store.errors import (
    BucketAlreadyExistsError,
    BucketNotEmptyError,
    NoSuchBucketError,
    NoSuchKeyError,
    NoSuchUploadError,
    NoSuchVersionError,
    StoreOpenError,
)
from mrapsim.store.merge import IndexCursor, MergedCursor, RunBounds, RunCursor, list_merged, prefix_successor
from mrapsim.store.synthetic import NO_ENTRIES, SyntheticKeys, SyntheticRun, synthetic_content, synthetic_info
from mrapsim.store.versions import ENABLED, NULL_VERSION, SUSPENDED, list_version_page, new_version_id

T = TypeVar("T")
P = ParamSpec("P")

SCHEMA_VERSION = 2
DATABASE_NAME = "mrapsim.sqlite3"
INLINE_MAX = 64 * 1024  # bodies up to this size live in the database
BUSY_TIMEOUT = 30.0  # seconds a connection waits for another process's write transaction
SEEK_BATCH = 16  # rows read after a seek: a roll-up usually needs one
MAX_BATCH = 1000  # rows read at most per query while walking a page
DELETED_BATCH = 64  # deleted synthetic keys read per query
READ_RETRIES = 5  # re-reads of an object whose blob file vanished (replaced meanwhile)
COPY_CHUNK = 1024 * 1024

BUCKET_CONFIGS_TABLE = """CREATE TABLE bucket_configs (
        bucket TEXT NOT NULL, name TEXT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (bucket, name)
    ) WITHOUT ROWID"""
SCHEMA = (
    """CREATE TABLE buckets (
        name TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        synthetic TEXT                      -- SyntheticSpec as JSON, or NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE objects (
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        last_modified TEXT NOT NULL,
        content_type TEXT NOT NULL,
        metadata TEXT NOT NULL,             -- JSON objects
        stored_headers TEXT NOT NULL,
        checksums TEXT NOT NULL,
        checksum_type TEXT NOT NULL,
        storage_class TEXT NOT NULL,
        body_id INTEGER,                    -- bodies.id of a small body, or NULL
        segments TEXT,                      -- else JSON [[blob, offset, length], ...]
        extras TEXT NOT NULL DEFAULT '{}',  -- ObjectInfo.extras as JSON (schema 2)
        parts TEXT,                         -- a multipart object's parts as JSON, or NULL
        PRIMARY KEY (bucket, key)
    ) WITHOUT ROWID""",
    "CREATE TABLE bodies (id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
    "CREATE TABLE blobs (name TEXT PRIMARY KEY, size INTEGER NOT NULL, refs INTEGER NOT NULL) WITHOUT ROWID",
    """CREATE TABLE synthetic_deleted (
        bucket TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (bucket, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE seeded (
        bucket TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (bucket, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE uploads (
        bucket TEXT NOT NULL,
        upload_id TEXT NOT NULL,
        key TEXT NOT NULL,
        info TEXT NOT NULL,                 -- the rest of UploadInfo as JSON
        PRIMARY KEY (bucket, upload_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE parts (
        bucket TEXT NOT NULL,
        upload_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        etag TEXT NOT NULL,
        size INTEGER NOT NULL,
        last_modified TEXT NOT NULL,
        checksums TEXT NOT NULL,
        segments TEXT NOT NULL,
        PRIMARY KEY (bucket, upload_id, number)
    ) WITHOUT ROWID""",
    BUCKET_CONFIGS_TABLE,
)
# Schema 1 → 2: objects gained `extras`, buckets their configurations.
MIGRATE_1_TO_2 = ("ALTER TABLE objects ADD COLUMN extras TEXT NOT NULL DEFAULT '{}'", BUCKET_CONFIGS_TABLE)

# Tables added after schema version 1, created when missing by every mrapsim that opens a store
# (additive: an older store gains them empty, and an older mrapsim never reads them).
ADDED_TABLES = (
    """CREATE TABLE IF NOT EXISTS bucket_settings (
        bucket TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (bucket, name)
    ) WITHOUT ROWID""",
    # Versioning (store/versions.py): the current object's version id and seq (no row: "null",
    # seq 0), and the archive of older versions and delete markers.
    """CREATE TABLE IF NOT EXISTS current_versions (
        bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (bucket, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS versions (
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        version_id TEXT NOT NULL,
        delete_marker INTEGER NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        last_modified TEXT NOT NULL,
        content_type TEXT NOT NULL,
        metadata TEXT NOT NULL,
        stored_headers TEXT NOT NULL,
        checksums TEXT NOT NULL,
        checksum_type TEXT NOT NULL,
        storage_class TEXT NOT NULL,
        extras TEXT NOT NULL DEFAULT '{}',
        parts TEXT,
        body_id INTEGER,
        segments TEXT,
        PRIMARY KEY (bucket, key, seq)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS versions_by_id ON versions (bucket, key, version_id)",
    "CREATE TABLE IF NOT EXISTS mraps (alias TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS replication_queue (
        id INTEGER PRIMARY KEY, due REAL NOT NULL, target TEXT NOT NULL,
        source TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS replication_by_due ON replication_queue (due)",
)
# The columns an object row and an archived version share, moved as they are between the two.
BODY_COLUMNS = (
    "size, etag, last_modified, content_type, metadata, stored_headers, checksums, checksum_type, storage_class,"
    " extras, parts, body_id, segments"
)
# Positions in a row selected as `key, {BODY_COLUMNS}, ...` (or `{INFO_COLUMNS}, body_id, segments`):
# the body's columns, then whatever the query adds after them.
BODY_ID, SEGMENTS, AFTER_BODY = 12, 13, 14

INFO_COLUMNS = (
    "key, size, etag, last_modified, content_type, metadata, stored_headers, checksums, checksum_type, storage_class,"
    " extras, parts"
)
# Added to a version-1 database when it opens, so that older stores need no migration step.
ADDED_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS completed_uploads (
        bucket TEXT NOT NULL,
        upload_id TEXT NOT NULL,
        key TEXT NOT NULL,
        etag TEXT NOT NULL,
        completed TEXT NOT NULL,
        PRIMARY KEY (bucket, upload_id)
    ) WITHOUT ROWID""",
)
COMPLETED_KEPT = dt.timedelta(days=1)  # how long a retried Complete still finds its object

Segment = tuple[str, int, int]  # blob name, offset, length
Row = tuple[Any, ...]


# -- bodies in files ------------------------------------------------------------------------------


class _OpenFile:
    """An open blob or spool file. A spool (`blob` None) that no object adopted is removed when
    its last holder lets go of it: an upload that failed or was never stored leaves nothing."""

    def __init__(self, fd: int, path: Path, owner: Path, blob: str | None, size: int) -> None:
        self.fd = fd
        self.path = path
        self.owner = owner  # the store directory, so that one store never adopts another's files
        self.blob = blob
        self.size = size

    def close(self) -> None:
        if self.fd < 0:
            return
        os.close(self.fd)
        self.fd = -1
        if self.blob is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # at interpreter exit `os` may already be gone; the OS closes the fd
            pass


def _pread(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) == size:
        return data
    pieces = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, offset + got)
        if not more:
            raise OSError(f"blob file ends {size - got} bytes early")
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)


@dataclass(frozen=True)
class FileContent:
    """Bytes [offset, offset + length) of an open file, read with pread (no shared position)."""

    file: _OpenFile
    offset: int
    length: int

    @property
    def size(self) -> int:
        return self.length

    @property
    def on_disk(self) -> bool:
        return True

    def read(self, start: int, stop: int) -> bytes:
        stop = min(stop, self.length)
        return _pread(self.file.fd, stop - start, self.offset + start) if start < stop else b""

    def chunks(self, start: int, stop: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        stop = min(stop, self.length)
        for at in range(start, stop, chunk_size):
            yield self.read(at, min(at + chunk_size, stop))


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _temp_file(directory: Path, kind: str) -> tuple[int, Path]:
    fd, name = tempfile.mkstemp(prefix=f"{kind}-{os.getpid()}-", dir=directory)
    return fd, Path(name)


class SpoolBuilder:
    """A ContentBuilder that keeps a small body in memory and spools a larger one to a file
    under tmp/: memory use stays at INLINE_MAX whatever the body's size."""

    def __init__(self, spool_dir: Path, owner: Path, inline_max: int = INLINE_MAX) -> None:
        self._dir = spool_dir
        self._owner = owner
        self._inline_max = inline_max
        self._buffer = bytearray()
        self._file: _OpenFile | None = None
        self._size = 0

    def append(self, data: bytes) -> None:
        if self._file is None:
            if len(self._buffer) + len(data) <= self._inline_max:
                self._buffer += data
                return
            fd, path = _temp_file(self._dir, "spool")
            self._file = _OpenFile(fd, path, self._owner, None, 0)
            _write_all(fd, self._buffer)
            self._size = len(self._buffer)
            self._buffer = bytearray()
        _write_all(self._file.fd, data)
        self._size += len(data)

    def finish(self) -> ContentSource:
        if self._file is None:
            return BytesContent(bytes(self._buffer))
        self._file.size = self._size
        return FileContent(self._file, 0, self._size)


# -- preparing a body for a write -----------------------------------------------------------------


@dataclass(frozen=True)
class _FilePiece:
    file: _OpenFile
    offset: int
    length: int


@dataclass(frozen=True)
class _SourcePiece:
    source: ContentSource
    start: int
    stop: int


@dataclass
class _NewBlob:
    """A file to move into blobs/ when the write commits: an adopted spool or a fresh copy."""

    name: str
    source_path: Path
    size: int
    spool: _OpenFile | None  # the spool that becomes this blob (else a copy nobody else holds)


@dataclass
class _Body:
    """An object's or part's bytes, ready to be recorded: inline, or segments of blobs."""

    size: int
    inline: bytes | None = None
    segments: list[Segment] = field(default_factory=list)
    new_blobs: list[_NewBlob] = field(default_factory=list)
    installed: list[_NewBlob] = field(default_factory=list)


class _BlobGoneError(Exception):
    """Blobs a write meant to share were deleted meanwhile (their last object went away)."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(", ".join(names))
        self.names = set(names)


# -- listing cursors ------------------------------------------------------------------------------


class _ObjectRows:
    """A RunCursor over one bucket's object rows (under a prefix), read in batches of indexed
    range queries. Sequential reading doubles the batch; a seek beyond the batch starts a new
    small one, so a page of roll-ups costs one short query per common prefix."""

    def __init__(self, db: sqlite3.Connection, bucket: str, prefix: str, first_batch: int, max_batch: int) -> None:
        self._db = db
        self._bucket = bucket
        self._upper = prefix_successor(prefix) if prefix else None
        self._rows: list[Row] = []
        self._keys: list[str] = []
        self._at = 0
        self._bound: tuple[str, bool] | None = ("", True)  # where the next query starts; None: the end
        self._batch = first_batch
        self._max_batch = max(first_batch, max_batch)
        self._filled = False
        self._taken: list[Row] = []  # rows stepped past, in order; the first `_given` returned
        self._given = 0

    @classmethod
    def for_page(
        cls, db: sqlite3.Connection, bucket: str, prefix: str, delimiter: str, max_keys: int, *, merged: bool = False
    ) -> _ObjectRows:
        """Sized for one listing page of `max_keys` (and one more, to tell truncation): with a
        delimiter, seeks past roll-ups are likely, and `merged` with other keys (a synthetic key
        space) the page may hold few of these rows, so the first batch is small (then doubles)."""
        wanted = max(1, min(max_keys, MAX_BATCH)) + 1
        return cls(db, bucket, prefix, min(wanted, SEEK_BATCH) if delimiter or merged else wanted, wanted)

    def _fill(self, start: str, inclusive: bool) -> None:
        sql = f"SELECT {INFO_COLUMNS} FROM objects WHERE bucket = ? AND key {'>=' if inclusive else '>'} ?"
        args: list[object] = [self._bucket, start]
        if self._upper is not None:
            sql += " AND key < ?"
            args.append(self._upper)
        sql += " ORDER BY key LIMIT ?"
        args.append(self._batch)
        self._rows = self._db.execute(sql, args).fetchall()
        self._keys = [row[0] for row in self._rows]
        self._at = 0
        self._bound = (self._keys[-1], False) if len(self._rows) == self._batch else None
        self._batch = min(self._batch * 2, self._max_batch)
        self._filled = True

    def peek(self) -> str | None:
        if self._at >= len(self._keys):
            if self._bound is None:
                return None
            self._fill(*self._bound)
            if not self._keys:
                return None
        return self._keys[self._at]

    def run(self, limit: int, below: str | None, bounds: RunBounds) -> Sequence[str]:
        """A run within the batch read (the next batch is another run)."""
        if self.peek() is None:
            return ()
        at = self._at
        stop = bounds.fitting(self._keys, at, min(len(self._keys), at + limit), below)
        self._at = stop
        self._taken += self._rows[at:stop]
        return self._keys[at:stop]

    def ahead(self, limit: int, bounds: RunBounds) -> tuple[list[str], str | None]:
        """Within the batch read: past its last key the stop is that key's successor."""
        if self.peek() is None:
            return [], None
        at, keys = self._at, self._keys
        fits = bounds.fitting(keys, at, min(len(keys), at + limit), None)
        if fits < len(keys):
            return keys[at:fits], keys[fits]
        return keys[at:fits], None if self._bound is None else keys[-1] + "\x00"

    def skip_through(self, key: str) -> None:
        stop = bisect_right(self._keys, key, self._at)
        self._taken += self._rows[self._at : stop]
        self._at = stop

    def taken(self, count: int) -> list[ObjectInfo]:
        """The objects of the first `count` rows stepped past (`advance`, `run`, `skip_through`)
        and not yet returned: a listing page's, in order, as a seek skips rows without taking
        them."""
        start, self._given = self._given, self._given + count
        return [_object_info(row) for row in self._taken[start : self._given]]

    def advance(self) -> None:
        if self.peek() is not None:
            self._taken.append(self._rows[self._at])
            self._at += 1

    def _end(self) -> None:
        self._rows, self._keys, self._at, self._bound = [], [], 0, None

    def seek(self, key: str | None, *, inclusive: bool = True) -> None:
        if key is None or (self._upper is not None and key >= self._upper):
            self._end()
            return
        if self._at < len(self._keys):
            current = self._keys[self._at]
            if current > key or (inclusive and current == key):
                return
            at = (bisect_left if inclusive else bisect_right)(self._keys, key, self._at)
            if at < len(self._keys):
                self._at = at
                return
            if self._bound is None:
                self._at = len(self._keys)
                return
        elif self._bound is None:
            return
        else:
            start, start_inclusive = self._bound
            if key < start or (key == start and (inclusive or not start_inclusive)):
                return  # the pending query already starts at or beyond `key`
        self._rows, self._keys, self._at = [], [], 0
        self._bound = (key, inclusive)
        if self._filled:  # a jump: the next query starts small (the first keeps its size)
            self._batch = min(SEEK_BATCH, self._max_batch)


class _ArchiveKeys:
    """A RunCursor over the distinct keys of a bucket's archived versions (store/versions.py):
    each step is one indexed `min(key)` query."""

    def __init__(self, db: sqlite3.Connection, bucket: str, prefix: str) -> None:
        self._db = db
        self._bucket = bucket
        self._upper = prefix_successor(prefix) if prefix else None
        self._bound: tuple[str, bool] | None = ("", True)
        self._key: str | None = None
        self._known = False

    def peek(self) -> str | None:
        if not self._known:
            self._known = True
            self._key = None
            if self._bound is not None:
                start, inclusive = self._bound
                row = self._db.execute(
                    f"SELECT min(key) FROM versions WHERE bucket = ? AND key {'>=' if inclusive else '>'} ?",
                    (self._bucket, start),
                ).fetchone()
                key = row[0] if row else None
                if key is not None and (self._upper is None or key < self._upper):
                    self._key = key
        return self._key

    def advance(self) -> None:
        key = self.peek()
        if key is not None:
            self._bound, self._known = (key, False), False

    def run(self, limit: int, below: str | None, bounds: RunBounds) -> Sequence[str]:
        return ()  # one query per key: a version listing steps

    def ahead(self, limit: int, bounds: RunBounds) -> tuple[list[str], str | None]:
        key = self.peek()
        return [], key  # nothing in bulk: a window stops at the next key

    def skip_through(self, key: str) -> None:
        self.seek(key, inclusive=False)

    def seek(self, key: str | None, *, inclusive: bool = True) -> None:
        if key is None:
            self._bound, self._key, self._known = None, None, True
            return
        current = self.peek()
        if current is None or current > key or (inclusive and current == key):
            return
        self._bound, self._known = (key, inclusive), False


class _DeletedKeys:
    """Membership in a bucket's deleted synthetic keys for keys asked about in ascending order:
    one indexed query per DELETED_BATCH deleted keys passed, not one per key."""

    def __init__(self, db: sqlite3.Connection, bucket: str) -> None:
        self._db = db
        self._bucket = bucket
        self._keys: list[str] = []
        self._low: str | None = None  # the loaded keys are every deleted key in [low, high]
        self._high: str | None = None  # None: no upper end

    def __call__(self, key: str) -> bool:
        if self._low is None or key < self._low or (self._high is not None and key > self._high):
            rows = self._db.execute(
                "SELECT key FROM synthetic_deleted WHERE bucket = ? AND key >= ? ORDER BY key LIMIT ?",
                (self._bucket, key, DELETED_BATCH),
            ).fetchall()
            self._keys = [row[0] for row in rows]
            self._low = key
            self._high = self._keys[-1] if len(self._keys) == DELETED_BATCH else None
        at = bisect_left(self._keys, key)
        return at < len(self._keys) and self._keys[at] == key


# -- rows and values ------------------------------------------------------------------------------


def _key_cursor(
    db: sqlite3.Connection,
    bucket: str,
    synthetic: tuple[SyntheticSpec, SyntheticKeys] | None,
    rows: _ObjectRows,
    *also: RunCursor,
) -> MergedCursor:
    """The bucket's object rows (source 0), then `also`, then its synthetic keys not deleted,
    merged."""
    sources: list[RunCursor] = [rows, *also]
    if synthetic is not None:
        sources.append(IndexCursor(synthetic[1], _DeletedKeys(db, bucket)))
    return MergedCursor(sources)


def _time(value: dt.datetime) -> str:
    return value.isoformat()


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _spec_json(spec: SyntheticSpec | None) -> str | None:
    if spec is None:
        return None
    return _json({"keys": spec.keys, "key_format": spec.key_format, "size": spec.size, "seed": spec.seed})


def _object_info(row: Row) -> ObjectInfo:
    key, size, etag, modified, content_type, metadata, headers, checksums, checksum_type, storage_class = row[:10]
    extras, parts = row[10], row[11]
    # A listing page makes one per row: filling the instance dict skips the frozen dataclass
    # __init__ (an object.__setattr__ per field), as synthetic_info does; tests check the result
    # equals the constructor's and has every field.
    info: ObjectInfo = object.__new__(ObjectInfo)
    info.__dict__.update(
        key=key,
        size=size,
        etag=etag,
        last_modified=_parse_time(modified),
        content_type=content_type,
        metadata=_mapping(metadata),
        stored_headers=_mapping(headers),
        checksums=_mapping(checksums),
        checksum_type=checksum_type,
        storage_class=storage_class,
        parts=() if parts is None else tuple(_part_info(item) for item in json.loads(parts)),
        extras=_mapping(extras),
        version_id="null",
        delete_marker=False,
    )
    return info


def _mapping(text: str) -> Mapping[str, str]:
    # Most objects have no metadata, headers, checksums or extras: a listing page reads four
    # empty ones per row, and json.loads costs microseconds even for "{}".
    return NO_ENTRIES if text == "{}" else cast(Mapping[str, str], json.loads(text))


def _part_json(part: PartInfo) -> list[object]:
    return [part.number, part.etag, part.size, _time(part.last_modified), dict(part.checksums)]


def _part_info(item: list[Any]) -> PartInfo:
    number, etag, size, modified, checksums = item
    return PartInfo(number, etag, size, _parse_time(modified), checksums)


def _object_values(bucket: str, info: ObjectInfo, body_id: int | None, segments: Sequence[Segment] | None) -> Row:
    return (
        bucket,
        info.key,
        info.size,
        info.etag,
        _time(info.last_modified),
        info.content_type,
        _json(dict(info.metadata)),
        _json(dict(info.stored_headers)),
        _json(dict(info.checksums)),
        info.checksum_type,
        info.storage_class,
        body_id,
        None if segments is None else _json([list(s) for s in segments]),
        _json(dict(info.extras)),
        _json([_part_json(part) for part in info.parts]) if info.parts else None,
    )


def _segments(text: str) -> list[Segment]:
    return [(name, offset, length) for name, offset, length in json.loads(text)]


def _upload_info(upload_id: str, key: str, text: str) -> UploadInfo:
    fields = json.loads(text)
    return UploadInfo(
        upload_id=upload_id,
        key=key,
        initiated=_parse_time(fields["initiated"]),
        content_type=fields["content_type"],
        metadata=fields["metadata"],
        stored_headers=fields["stored_headers"],
        checksum_algorithm=fields["checksum_algorithm"],
        checksum_type=fields["checksum_type"],
        extras=fields.get("extras", {}),
    )


def _upload_json(upload: UploadInfo) -> str:
    return _json(
        {
            "initiated": _time(upload.initiated),
            "content_type": upload.content_type,
            "metadata": dict(upload.metadata),
            "stored_headers": dict(upload.stored_headers),
            "checksum_algorithm": upload.checksum_algorithm,
            "checksum_type": upload.checksum_type,
            "extras": dict(upload.extras),
        }
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the store ------------------------------------------------------------------------------------


@dataclass
class _Returned(Generic[T]):
    """What a call on a worker thread returned or raised (see `_in_thread`)."""

    value: T | None = None
    error: BaseException | None = None


def _capture(call: Callable[[], T]) -> _Returned[T]:
    try:
        return _Returned(value=call())
    except BaseException as exc:
        return _Returned(error=exc)


def _in_thread(
    method: Callable[Concatenate[SqliteStore, P], T],
) -> Callable[Concatenate[SqliteStore, P], Coroutine[Any, Any, T]]:
    """The async Store method that runs the synchronous `method` on a worker thread. It is not
    abandoned when its caller is cancelled: the thread finishes (its wait is bounded by
    BUSY_TIMEOUT) and the transaction commits or rolls back whole, files included."""

    async def run(self: SqliteStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        # An exception comes back as a value and is raised here, leaving no reference to it in
        # trio's thread machinery: there it would sit in a reference cycle with its frames and
        # keep the call's arguments (an unstored upload's spool file) until the garbage collector
        # ran. Raised here, everything is let go of when the caller is done with the exception.
        returned = await trio.to_thread.run_sync(_capture, functools.partial(method, self, *args, **kwargs))
        error, returned.error = returned.error, None
        if error is None:
            return cast(T, returned.value)
        try:
            raise error
        finally:
            del error, returned

    run.__name__, run.__qualname__, run.__doc__ = method.__name__, method.__qualname__, method.__doc__
    return run


class SqliteStore:
    """The persistent Store; see the module comment. Construct with `SqliteStore.open(path)`.

    Every Store method runs on a worker thread (`_in_thread`), so a wait for another process's
    write lock, a large copy or an fsync never stalls the event loop. Threads and connections:
    sqlite3 ties a connection to the thread that made it unless `check_same_thread=False`, and
    even then a connection must not be used by two threads at once. Each call checks a connection
    out of `_idle` for its whole transaction and puts it back afterwards, so a connection is only
    ever used by one thread at a time, while trio may run the next call on another thread of its
    pool (hence `check_same_thread=False`). Concurrent calls get connections of their own: a read
    never queues behind a write that waits for the lock (WAL readers do not block on writers), and
    writers queue in SQLite's busy handler, at most BUSY_TIMEOUT each.
    """

    def __init__(self, root: Path, clock: Callable[[], dt.datetime] = utc_now_seconds) -> None:
        self._root = root
        self._blobs = root / "blobs"
        self._tmp = root / "tmp"
        self._clock = clock
        self._idle: list[sqlite3.Connection] = []  # connections no thread is using, last used last
        self._idle_lock = threading.Lock()
        self._pid = os.getpid()
        # Parsed synthetic specs by their JSON; threads may fill it at once (same value, no harm).
        self._synthetic: dict[str, tuple[SyntheticSpec, SyntheticKeys]] = {}

    @classmethod
    def open(cls, path: Path, *, clock: Callable[[], dt.datetime] = utc_now_seconds) -> SqliteStore:
        """Open (creating if need be) the store in directory `path`; safe to call from several
        processes at once. It may wait for another process's write lock: from the event loop,
        call it through `trio.to_thread`. Raises StoreOpenError."""
        root = Path(path).absolute()
        try:
            for directory in (root, root / "blobs", root / "tmp"):
                directory.mkdir(parents=True, exist_ok=True)
            store = cls(root, clock)
            store._create_schema()
            store._sweep()
        except (OSError, sqlite3.Error) as exc:
            raise StoreOpenError(f"{root}: {exc}") from exc
        return store

    @property
    def path(self) -> Path:
        return self._root

    def close(self) -> None:
        """Close the idle connections (a call still running puts its own back afterwards)."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
            ours = self._pid == os.getpid()
        for db in idle if ours else ():
            db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- connection and transactions ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self._root / DATABASE_NAME, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            db.close()
            raise StoreOpenError(f"{self._root}: SQLite cannot use WAL mode here (got {mode!r})")
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection for this thread alone until the block ends (see the class comment)."""
        with self._idle_lock:
            if self._pid != os.getpid():  # a forked child never uses its parent's connections
                self._idle, self._pid = [], os.getpid()
            db = self._idle.pop() if self._idle else None
        if db is None:
            db = self._connect()
        try:
            yield db
        finally:
            if db.in_transaction:  # a failed rollback: do not hand the transaction on
                db.close()
            else:
                with self._idle_lock:
                    self._idle.append(db)

    @contextlib.contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        with self._connection() as db:
            db.execute(begin)
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _read(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One consistent snapshot; never blocks nor is blocked by writers (WAL)."""
        return self._transaction("BEGIN")

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """Takes the write lock at once (waiting up to BUSY_TIMEOUT): a deferred transaction that
        upgrades later can fail with SQLITE_BUSY without waiting."""
        return self._transaction("BEGIN IMMEDIATE")

    def _create_schema(self) -> None:
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version == 1:
                for statement in MIGRATE_1_TO_2:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise StoreOpenError(
                    f"{self._root / DATABASE_NAME}: schema version {version}, this mrapsim knows {SCHEMA_VERSION}"
                )
            columns = {row[1] for row in db.execute("PRAGMA table_info(objects)").fetchall()}
            if "parts" not in columns:
                db.execute("ALTER TABLE objects ADD COLUMN parts TEXT")
            for statement in (*ADDED_SCHEMA, *ADDED_TABLES):
                db.execute(statement)

    def _sweep(self) -> None:
        """Remove files a crashed process left behind (see the module comment)."""
        with self._write() as db:
            for directory in self._blobs.iterdir():
                low = directory.name
                high = prefix_successor(low) or "\U0010ffff"
                rows = db.execute("SELECT name FROM blobs WHERE name >= ? AND name < ?", (low, high)).fetchall()
                known = {name for (name,) in rows}
                for path in directory.iterdir():
                    if path.name not in known:
                        path.unlink(missing_ok=True)
        for path in self._tmp.iterdir():
            _, _, rest = path.name.partition("-")
            pid = rest.partition("-")[0]
            if not pid.isdigit() or not _pid_alive(int(pid)):
                path.unlink(missing_ok=True)

    # -- buckets -----------------------------------------------------------------------------------

    @_in_thread
    def list_buckets(self) -> Sequence[BucketInfo]:
        with self._read() as db:
            rows = db.execute(
                "SELECT buckets.name, created, value FROM buckets LEFT JOIN bucket_settings"
                " ON bucket_settings.bucket = buckets.name AND bucket_settings.name = 'region'"
                " ORDER BY buckets.name"
            ).fetchall()
        return [BucketInfo(name, _parse_time(created), region or DEFAULT_REGION) for name, created, region in rows]

    @_in_thread
    def get_bucket(self, bucket: str) -> BucketInfo:
        with self._read() as db:
            row = self._bucket_row(db, bucket)
            region = self._setting(db, bucket, "region") or DEFAULT_REGION
        return BucketInfo(bucket, _parse_time(row[0]), region)

    @_in_thread
    def create_bucket(self, bucket: str, region: str = DEFAULT_REGION) -> BucketInfo:
        info = BucketInfo(bucket, self._clock(), region)
        with self._write() as db:
            if db.execute("SELECT 1 FROM buckets WHERE name = ?", (bucket,)).fetchone() is not None:
                raise BucketAlreadyExistsError(bucket)
            db.execute("INSERT INTO buckets (name, created) VALUES (?, ?)", (bucket, _time(info.created)))
            db.execute("INSERT OR REPLACE INTO bucket_settings VALUES (?, 'region', ?)", (bucket, region))
        return info

    @_in_thread
    def delete_bucket(self, bucket: str) -> None:
        with self._write() as db:
            synthetic = self._synthetic_of(self._bucket_row(db, bucket))
            if db.execute("SELECT 1 FROM objects WHERE bucket = ? LIMIT 1", (bucket,)).fetchone() is not None:
                raise BucketNotEmptyError(bucket)
            if db.execute("SELECT 1 FROM versions WHERE bucket = ? LIMIT 1", (bucket,)).fetchone() is not None:
                raise BucketNotEmptyError(bucket)
            if synthetic is not None:
                (deleted,) = db.execute("SELECT count(*) FROM synthetic_deleted WHERE bucket = ?", (bucket,)).fetchone()
                if deleted < len(synthetic[1]):
                    raise BucketNotEmptyError(bucket)
            dead: list[str] = []
            for (upload_id,) in db.execute("SELECT upload_id FROM uploads WHERE bucket = ?", (bucket,)).fetchall():
                dead += self._drop_upload(db, bucket, upload_id)
            for table in ("synthetic_deleted", "seeded", "bucket_configs", "bucket_settings", "current_versions"):
                db.execute(f"DELETE FROM {table} WHERE bucket = ?", (bucket,))
            db.execute("DELETE FROM buckets WHERE name = ?", (bucket,))
        self._unlink(dead)

    @_in_thread
    def set_synthetic(self, bucket: str, spec: SyntheticSpec | None) -> None:
        """Give `bucket` the synthetic key space `spec` describes, beneath its real objects;
        None takes it away. Raises NoSuchBucketError."""
        with self._write() as db:
            self._bucket_row(db, bucket)
            db.execute("UPDATE buckets SET synthetic = ? WHERE name = ?", (_spec_json(spec), bucket))

    # -- objects -----------------------------------------------------------------------------------

    @_in_thread
    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        with self._read() as db:
            synthetic = self._synthetic_of(self._bucket_row(db, bucket))
            row = db.execute(
                f"SELECT {INFO_COLUMNS} FROM objects WHERE bucket = ? AND key = ?", (bucket, key)
            ).fetchone()
            if row is not None:
                return replace(_object_info(row), version_id=self._current_version(db, bucket, key)[0])
            if synthetic is not None and self._synthetic_exists(db, bucket, key, synthetic[1]):
                return synthetic_info(synthetic[0], key)
        raise NoSuchKeyError(bucket, key)

    @_in_thread
    def get_object(self, bucket: str, key: str) -> StoredObject:
        for _ in range(READ_RETRIES):
            with self._read() as db:
                synthetic = self._synthetic_of(self._bucket_row(db, bucket))
                row = db.execute(
                    f"SELECT {INFO_COLUMNS}, body_id, segments FROM objects WHERE bucket = ? AND key = ?",
                    (bucket, key),
                ).fetchone()
                if row is None:
                    if synthetic is not None and self._synthetic_exists(db, bucket, key, synthetic[1]):
                        return StoredObject(synthetic_info(synthetic[0], key), synthetic_content(synthetic[0], key))
                    raise NoSuchKeyError(bucket, key)
                info = replace(_object_info(row), version_id=self._current_version(db, bucket, key)[0])
                body_id, segments = row[-2], row[-1]
                if body_id is not None:
                    (data,) = db.execute("SELECT data FROM bodies WHERE id = ?", (body_id,)).fetchone()
                    return StoredObject(info, BytesContent(data))
            try:
                return StoredObject(info, self._open_segments(_segments(segments)))
            except FileNotFoundError:
                continue  # replaced or deleted since the row was read: read it again
        raise NoSuchKeyError(bucket, key)

    @_in_thread
    def put_object(
        self, bucket: str, key: str, write: ObjectWrite, precondition: Precondition | None = None
    ) -> ObjectInfo:
        etag = write.etag or content_etag(write.content)
        modified = self._clock()

        def record(db: sqlite3.Connection, body: _Body) -> tuple[ObjectInfo, list[str]]:
            bucket_row = self._bucket_row(db, bucket)
            self._check(db, bucket, key, bucket_row, precondition)
            info = object_info(key, write, size=body.size, etag=etag, last_modified=modified)
            return self._store_current(db, bucket, info, body)

        return self._write_body(write.content, inline=True, record=record)

    async def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "binary/octet-stream"
    ) -> ObjectInfo:
        """Convenience for seeding and tests (as MemoryStore.put_bytes)."""
        return await self.put_object(bucket, key, ObjectWrite(BytesContent(data), content_type=content_type))

    @_in_thread
    def delete_object(self, bucket: str, key: str) -> bool:
        return self._delete_key(bucket, key)[0]

    def _delete_key(self, bucket: str, key: str) -> tuple[bool, ObjectInfo | None]:
        with self._write() as db:
            if self._versioning(db, bucket):
                existed = db.execute("SELECT 1 FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
                synthetic = self._synthetic_of(self._bucket_row(db, bucket))
                hidden = synthetic is not None and self._synthetic_exists(db, bucket, key, synthetic[1])
                marker, dead = self._add_delete_marker(db, bucket, key, synthetic)
                existed_or_hidden = existed is not None or hidden
            else:
                marker, existed_or_hidden, dead = None, *self._delete_unversioned(db, bucket, key)
        self._unlink(dead)
        return existed_or_hidden, marker

    def _delete_unversioned(self, db: sqlite3.Connection, bucket: str, key: str) -> tuple[bool, list[str]]:
        synthetic = self._synthetic_of(self._bucket_row(db, bucket))
        hidden = False
        if synthetic is not None and synthetic[1].index_of(key) is not None:
            cursor = db.execute("INSERT OR IGNORE INTO synthetic_deleted VALUES (?, ?)", (bucket, key))
            hidden = cursor.rowcount == 1
        existed = db.execute("SELECT 1 FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
        dead = self._drop_object(db, bucket, key)
        return existed is not None or hidden, dead

    async def update_object_extras(self, bucket: str, key: str, changes: Mapping[str, str | None]) -> ObjectInfo:
        updated = await self._update_extras(bucket, key, changes)
        if updated is not None:
            return updated
        # Not a real object: a synthetic one becomes real, with its content (or NoSuchKey).
        stored = await self.get_object(bucket, key)
        info = stored.info
        write = ObjectWrite(
            stored.content,
            content_type=info.content_type,
            metadata=info.metadata,
            stored_headers=info.stored_headers,
            checksums=info.checksums,
            checksum_type=info.checksum_type,
            etag=info.etag,
            extras=merge_extras(info.extras, changes),
        )
        return await self.put_object(bucket, key, write)

    @_in_thread
    def _update_extras(self, bucket: str, key: str, changes: Mapping[str, str | None]) -> ObjectInfo | None:
        with self._write() as db:
            self._bucket_row(db, bucket)
            row = db.execute(
                f"SELECT {INFO_COLUMNS} FROM objects WHERE bucket = ? AND key = ?", (bucket, key)
            ).fetchone()
            if row is None:
                return None
            info = _object_info(row)
            info = replace(info, extras=merge_extras(info.extras, changes))
            db.execute(
                "UPDATE objects SET extras = ? WHERE bucket = ? AND key = ?", (_json(dict(info.extras)), bucket, key)
            )
        return info

    async def update_version_extras(
        self, bucket: str, key: str, version_id: str, changes: Mapping[str, str | None]
    ) -> ObjectInfo:
        updated = await self._update_version_extras(bucket, key, version_id, changes)
        if updated is not None:
            return updated
        # The current version, or a synthetic key's "null" one (which becomes real), or none.
        info = (await self.get_object_version(bucket, key, version_id)).info
        if info.delete_marker:
            raise NoSuchVersionError(bucket, key, version_id)
        return await self.update_object_extras(bucket, key, changes)

    @_in_thread
    def _update_version_extras(
        self, bucket: str, key: str, version_id: str, changes: Mapping[str, str | None]
    ) -> ObjectInfo | None:
        """An archived (non-current) version's; None when the version is not in the archive."""
        with self._write() as db:
            self._bucket_row(db, bucket)
            if self._current_version(db, bucket, key)[0] == version_id:
                return None
            where, args = "bucket = ? AND key = ? AND version_id = ?", (bucket, key, version_id)
            row = db.execute(f"SELECT key, {BODY_COLUMNS}, delete_marker FROM versions WHERE {where}", args).fetchone()
            if row is None:
                return None
            info = replace(_object_info(row), version_id=version_id, delete_marker=bool(row[AFTER_BODY]))
            info = replace(info, extras=merge_extras(info.extras, changes))
            db.execute(f"UPDATE versions SET extras = ? WHERE {where}", (_json(dict(info.extras)), *args))
        return info

    @_in_thread
    def put_bucket_config(self, bucket: str, name: str, document: str) -> None:
        with self._write() as db:
            self._bucket_row(db, bucket)
            db.execute("INSERT OR REPLACE INTO bucket_configs VALUES (?, ?, ?)", (bucket, name, document))

    @_in_thread
    def get_bucket_config(self, bucket: str, name: str) -> str | None:
        with self._read() as db:
            self._bucket_row(db, bucket)
            row = db.execute(
                "SELECT document FROM bucket_configs WHERE bucket = ? AND name = ?", (bucket, name)
            ).fetchone()
        return None if row is None else str(row[0])

    @_in_thread
    def delete_bucket_config(self, bucket: str, name: str) -> None:
        with self._write() as db:
            self._bucket_row(db, bucket)
            db.execute("DELETE FROM bucket_configs WHERE bucket = ? AND name = ?", (bucket, name))

    # -- listing -----------------------------------------------------------------------------------

    @_in_thread
    def list_page(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        with self._read() as db:
            synthetic = self._synthetic_of(self._bucket_row(db, bucket))
            rows = _ObjectRows.for_page(db, bucket, prefix, delimiter, max_keys, merged=synthetic is not None)
            cursor = _key_cursor(db, bucket, synthetic, rows)

            def take(source: int, keys: list[str]) -> Sequence[ObjectInfo]:
                if source == 0:
                    return rows.taken(len(keys))
                assert synthetic is not None
                return SyntheticRun(synthetic[0], keys)

            return list_merged(
                cursor, take, prefix=prefix, delimiter=delimiter, start_after=start_after, max_keys=max_keys
            )

    def new_content(self) -> ContentBuilder:
        return SpoolBuilder(self._tmp, self._root)

    # -- multipart uploads -------------------------------------------------------------------------

    @_in_thread
    def create_upload(self, bucket: str, upload: UploadInfo) -> UploadInfo:
        with self._write() as db:
            self._bucket_row(db, bucket)
            db.execute(
                "INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?)",
                (bucket, upload.upload_id, upload.key, _upload_json(upload)),
            )
        return upload

    @_in_thread
    def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        with self._read() as db:
            return self._upload(db, bucket, key, upload_id)

    @_in_thread
    def put_part(self, bucket: str, key: str, upload_id: str, part: PartInfo, content: ContentSource) -> PartInfo:
        def record(db: sqlite3.Connection, body: _Body) -> tuple[PartInfo, list[str]]:
            self._upload(db, bucket, key, upload_id)
            old = db.execute(
                "SELECT segments FROM parts WHERE bucket = ? AND upload_id = ? AND number = ?",
                (bucket, upload_id, part.number),
            ).fetchone()
            dead = self._unref(db, _segments(old[0])) if old is not None else []
            db.execute(
                "INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    bucket,
                    upload_id,
                    part.number,
                    part.etag,
                    body.size,
                    _time(part.last_modified),
                    _json(dict(part.checksums)),
                    _json([list(s) for s in body.segments]),
                ),
            )
            return part, dead

        return self._write_body(content, inline=False, record=record)

    @_in_thread
    def list_parts(self, bucket: str, key: str, upload_id: str) -> Sequence[PartInfo]:
        with self._read() as db:
            self._upload(db, bucket, key, upload_id)
            rows = db.execute(
                "SELECT number, etag, size, last_modified, checksums FROM parts"
                " WHERE bucket = ? AND upload_id = ? ORDER BY number",
                (bucket, upload_id),
            ).fetchall()
        return [
            PartInfo(n, etag, size, _parse_time(modified), json.loads(sums)) for n, etag, size, modified, sums in rows
        ]

    @_in_thread
    def complete_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_numbers: Sequence[int],
        write: ObjectWrite,
        precondition: Precondition | None = None,
    ) -> ObjectInfo:
        etag = write.etag or content_etag(self._parts_content(bucket, key, upload_id, part_numbers))
        modified = self._clock()
        with self._write() as db:
            self._upload(db, bucket, key, upload_id)
            self._check(db, bucket, key, self._bucket_row(db, bucket), precondition)
            segments = self._part_segments(db, bucket, upload_id, part_numbers)
            for name, count in Counter(name for name, _, _ in segments).items():
                db.execute("UPDATE blobs SET refs = refs + ? WHERE name = ?", (count, name))
            size = sum(length for _, _, length in segments)
            info = object_info(key, write, size=size, etag=etag, last_modified=modified)
            dead = self._drop_upload(db, bucket, upload_id)
            info, displaced = self._store_current(db, bucket, info, _Body(info.size, segments=segments))
            dead += displaced
            db.execute(
                "DELETE FROM completed_uploads WHERE bucket = ? AND completed < ?",
                (bucket, _time(modified - COMPLETED_KEPT)),
            )
            db.execute(
                "INSERT OR REPLACE INTO completed_uploads VALUES (?, ?, ?, ?, ?)",
                (bucket, upload_id, key, info.etag, _time(modified)),
            )
        self._unlink(dead)
        return info

    @_in_thread
    def completed_upload(self, bucket: str, key: str, upload_id: str) -> ObjectInfo | None:
        with self._read() as db:
            self._bucket_row(db, bucket)
            made = db.execute(
                "SELECT key, etag FROM completed_uploads WHERE bucket = ? AND upload_id = ?", (bucket, upload_id)
            ).fetchone()
            row = db.execute(
                f"SELECT {INFO_COLUMNS} FROM objects WHERE bucket = ? AND key = ?", (bucket, key)
            ).fetchone()
        if made is None or row is None or tuple(made) != (key, row[2]):
            return None
        return _object_info(row)

    @_in_thread
    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        with self._write() as db:
            self._upload(db, bucket, key, upload_id)
            dead = self._drop_upload(db, bucket, upload_id)
        self._unlink(dead)

    @_in_thread
    def list_uploads(self, bucket: str) -> Sequence[UploadInfo]:
        with self._read() as db:
            self._bucket_row(db, bucket)
            rows = db.execute("SELECT upload_id, key, info FROM uploads WHERE bucket = ?", (bucket,)).fetchall()
        uploads = [_upload_info(upload_id, key, text) for upload_id, key, text in rows]
        return sorted(uploads, key=lambda u: (u.key, u.initiated, u.upload_id))

    # -- seeding -----------------------------------------------------------------------------------

    @_in_thread
    def seed_object(self, bucket: str, key: str, write: ObjectWrite) -> bool:
        """See Store.seed_object: the `seeded` table remembers every key ever seeded, in the same
        transaction as the write, so workers seeding at once write each key once between them."""
        data = write.content.read(0, write.content.size)
        etag = write.etag or content_etag(write.content)
        modified = self._clock()
        with self._write() as db:
            self._bucket_row(db, bucket)
            if db.execute("INSERT OR IGNORE INTO seeded VALUES (?, ?)", (bucket, key)).rowcount == 0:
                return False  # seeded before: the user may have changed or deleted it since
            if db.execute("SELECT 1 FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone():
                return False
            info = object_info(key, write, size=len(data), etag=etag, last_modified=modified)
            self._insert_object(db, bucket, info, _Body(len(data), inline=data))
        return True

    # -- Multi-Region Access Points ----------------------------------------------------------------

    @_in_thread
    def put_mrap(self, mrap: MrapInfo, *, overwrite: bool = True) -> bool:
        verb = "INSERT OR REPLACE" if overwrite else "INSERT OR IGNORE"
        with self._write() as db:
            cursor = db.execute(f"{verb} INTO mraps VALUES (?, ?)", (mrap.alias, _json(mrap.to_json())))
            return cursor.rowcount == 1

    @_in_thread
    def find_mrap(self, alias: str) -> MrapInfo | None:
        with self._read() as db:
            row = db.execute("SELECT doc FROM mraps WHERE alias = ?", (alias,)).fetchone()
        return None if row is None else MrapInfo.from_json(json.loads(row[0]))

    @_in_thread
    def list_mraps(self) -> Sequence[MrapInfo]:
        with self._read() as db:
            rows = db.execute("SELECT doc FROM mraps").fetchall()
        return sorted((MrapInfo.from_json(json.loads(doc)) for (doc,) in rows), key=lambda m: m.name)

    @_in_thread
    def delete_mrap(self, alias: str) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM mraps WHERE alias = ?", (alias,)).rowcount == 1

    # -- replication -------------------------------------------------------------------------------

    @_in_thread
    def put_replica(self, bucket: str, key: str, info: ObjectInfo, content: ContentSource) -> ObjectInfo:
        if info.delete_marker:
            with self._write() as db:
                status = self._versioning(db, bucket)
                dead = self._displace(db, bucket, key, status or ENABLED)
                self._insert_marker(db, bucket, info)
            self._unlink(dead)
            return info

        def record(db: sqlite3.Connection, body: _Body) -> tuple[ObjectInfo, list[str]]:
            status = self._versioning(db, bucket) or ENABLED  # replicas keep their version ids
            return self._store_current(db, bucket, info, body, status=status, version_id=info.version_id)

        return self._write_body(content, inline=True, record=record)

    @_in_thread
    def set_replication_status(self, bucket: str, key: str, version_id: str, status: str) -> bool:
        with self._write() as db:
            current = self._current_version(db, bucket, key)[0] == version_id
            table, where, args = (
                ("objects", "bucket = ? AND key = ?", (bucket, key))
                if current
                else ("versions", "bucket = ? AND key = ? AND version_id = ?", (bucket, key, version_id))
            )
            row = db.execute(f"SELECT stored_headers FROM {table} WHERE {where}", args).fetchone()
            if row is None:
                return False
            headers = {**json.loads(row[0]), "x-amz-replication-status": status}
            db.execute(f"UPDATE {table} SET stored_headers = ? WHERE {where}", (_json(headers), *args))
            return True

    @_in_thread
    def enqueue_replication(self, tasks: Sequence[ReplicationTask]) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT INTO replication_queue (due, target, source, key, version_id) VALUES (?, ?, ?, ?, ?)",
                [(t.due, t.target, t.source, t.key, t.version_id) for t in tasks],
            )

    @_in_thread
    def claim_replication(self, now: float, limit: int) -> Sequence[ReplicationTask]:
        """Select and delete in one write transaction: two workers never claim the same task."""
        with self._write() as db:
            rows = db.execute(
                "SELECT id, source, key, version_id, target, due FROM replication_queue WHERE due <= ?"
                " AND target NOT IN"
                " (SELECT bucket FROM bucket_settings WHERE name = 'replication' AND value = 'paused')"
                " ORDER BY due LIMIT ?",
                (now, limit),
            ).fetchall()
            db.executemany("DELETE FROM replication_queue WHERE id = ?", [(row[0],) for row in rows])
        return [ReplicationTask(*row[1:]) for row in rows]

    @_in_thread
    def replication_backlog(self) -> Mapping[str, int]:
        with self._read() as db:
            rows = db.execute("SELECT target, count(*) FROM replication_queue GROUP BY target").fetchall()
        return {str(target): int(count) for target, count in rows}

    @_in_thread
    def set_replication_paused(self, bucket: str, paused: bool) -> None:
        with self._write() as db:
            self._bucket_row(db, bucket)
            db.execute(
                "INSERT OR REPLACE INTO bucket_settings VALUES (?, 'replication', ?)",
                (bucket, "paused" if paused else "active"),
            )

    # -- versioning (store/versions.py) ------------------------------------------------------------

    @_in_thread
    def get_versioning(self, bucket: str) -> str:
        with self._read() as db:
            return self._versioning(db, bucket)

    @_in_thread
    def set_versioning(self, bucket: str, status: str) -> None:
        with self._write() as db:
            self._bucket_row(db, bucket)
            db.execute("INSERT OR REPLACE INTO bucket_settings VALUES (?, 'versioning', ?)", (bucket, status))

    @_in_thread
    def get_object_version(self, bucket: str, key: str, version_id: str) -> StoredObject:
        for _ in range(READ_RETRIES):
            with self._read() as db:
                synthetic = self._synthetic_of(self._bucket_row(db, bucket))
                row = db.execute(
                    f"SELECT {INFO_COLUMNS}, body_id, segments FROM objects WHERE bucket = ? AND key = ?",
                    (bucket, key),
                ).fetchone()
                if row is not None and self._current_version(db, bucket, key)[0] != version_id:
                    row = None
                if row is None:
                    row = db.execute(
                        f"SELECT key, {BODY_COLUMNS}, delete_marker FROM versions"
                        " WHERE bucket = ? AND key = ? AND version_id = ?",
                        (bucket, key, version_id),
                    ).fetchone()
                    if row is None:
                        exists = synthetic is not None and self._synthetic_exists(db, bucket, key, synthetic[1])
                        if version_id == NULL_VERSION and synthetic is not None and exists:
                            spec = synthetic[0]
                            return StoredObject(synthetic_info(spec, key), synthetic_content(spec, key))
                        raise NoSuchVersionError(bucket, key, version_id)
                    info = replace(_object_info(row), version_id=version_id, delete_marker=bool(row[AFTER_BODY]))
                else:
                    info = replace(_object_info(row), version_id=version_id)
                body_id, segments = row[BODY_ID], row[SEGMENTS]
                if body_id is not None:
                    (data,) = db.execute("SELECT data FROM bodies WHERE id = ?", (body_id,)).fetchone()
                    return StoredObject(info, BytesContent(data))
                if segments is None:
                    return StoredObject(info, BytesContent(b""))
            try:
                return StoredObject(info, self._open_segments(_segments(segments)))
            except FileNotFoundError:
                continue
        raise NoSuchVersionError(bucket, key, version_id)

    @_in_thread
    def delete_key(self, bucket: str, key: str) -> ObjectInfo | None:
        return self._delete_key(bucket, key)[1]

    @_in_thread
    def delete_object_version(self, bucket: str, key: str, version_id: str) -> ObjectInfo | None:
        with self._write() as db:
            synthetic = self._synthetic_of(self._bucket_row(db, bucket))
            row = db.execute(
                f"SELECT {INFO_COLUMNS} FROM objects WHERE bucket = ? AND key = ?", (bucket, key)
            ).fetchone()
            removed: ObjectInfo | None = None
            dead: list[str] = []
            if row is not None and self._current_version(db, bucket, key)[0] == version_id:
                removed = replace(_object_info(row), version_id=version_id)
                dead = self._drop_object(db, bucket, key)
                db.execute("DELETE FROM current_versions WHERE bucket = ? AND key = ?", (bucket, key))
            elif row is None and version_id == NULL_VERSION and synthetic is not None:
                if self._synthetic_exists(db, bucket, key, synthetic[1]):
                    db.execute("INSERT OR IGNORE INTO synthetic_deleted VALUES (?, ?)", (bucket, key))
                    removed = synthetic_info(synthetic[0], key)
            else:
                removed, dead = self._drop_archived(db, bucket, key, version_id)
            if removed is not None:
                self._promote(db, bucket, key)
        self._unlink(dead)
        return removed

    @_in_thread
    def list_versions(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = 1000,
    ) -> VersionPage:
        with self._read() as db:
            synthetic = self._synthetic_of(self._bucket_row(db, bucket))
            rows = _ObjectRows.for_page(db, bucket, prefix, delimiter, max_keys)
            cursor = _key_cursor(db, bucket, synthetic, rows, _ArchiveKeys(db, bucket, prefix))

            def versions_of(key: str, after: str | None, limit: int) -> Sequence[VersionEntry]:
                return self._versions_of(db, bucket, key, synthetic, after, limit)

            return list_version_page(
                cursor,
                versions_of,
                prefix=prefix,
                delimiter=delimiter,
                key_marker=key_marker,
                version_id_marker=version_id_marker,
                max_keys=max_keys,
            )

    def _versions_of(
        self,
        db: sqlite3.Connection,
        bucket: str,
        key: str,
        synthetic: tuple[SyntheticSpec, SyntheticKeys] | None,
        after: str | None,
        limit: int,
    ) -> list[VersionEntry]:
        """Up to `limit` of `key`'s versions, newest first, after version `after`: the current
        object, then one indexed range read of the archive."""
        row = db.execute(f"SELECT {INFO_COLUMNS} FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
        current: ObjectInfo | None = None
        if row is not None:
            current = replace(_object_info(row), version_id=self._current_version(db, bucket, key)[0])
        elif synthetic is not None and self._synthetic_exists(db, bucket, key, synthetic[1]):
            current = synthetic_info(synthetic[0], key)
        out: list[VersionEntry] = []
        below: int | None = None  # archive seqs below this one (None: all)
        if after is None:
            if current is not None:
                out.append(VersionEntry(current, True))
        elif current is None or current.version_id != after:
            found = db.execute(
                "SELECT seq FROM versions WHERE bucket = ? AND key = ? AND version_id = ?", (bucket, key, after)
            ).fetchone()
            if found is None:
                return []
            below = found[0]
        sql = f"SELECT key, {BODY_COLUMNS}, delete_marker, version_id FROM versions WHERE bucket = ? AND key = ?"
        args: list[object] = [bucket, key]
        if below is not None:
            sql += " AND seq < ?"
            args.append(below)
        args.append(limit - len(out))
        for archived in db.execute(sql + " ORDER BY seq DESC LIMIT ?", args).fetchall():
            version_id, marker = archived[AFTER_BODY + 1], bool(archived[AFTER_BODY])
            info = replace(_object_info(archived), version_id=version_id, delete_marker=marker)
            out.append(VersionEntry(info, after is None and not out))
        return out[:limit]

    def _versioning(self, db: sqlite3.Connection, bucket: str) -> str:
        self._bucket_row(db, bucket)
        return self._setting(db, bucket, "versioning") or ""

    @staticmethod
    def _current_version(db: sqlite3.Connection, bucket: str, key: str) -> tuple[str, int]:
        row = db.execute(
            "SELECT version_id, seq FROM current_versions WHERE bucket = ? AND key = ?", (bucket, key)
        ).fetchone()
        return (NULL_VERSION, 0) if row is None else (str(row[0]), int(row[1]))

    @staticmethod
    def _next_seq(db: sqlite3.Connection, bucket: str, key: str) -> int:
        (archived,) = db.execute(
            "SELECT coalesce(max(seq), 0) FROM versions WHERE bucket = ? AND key = ?", (bucket, key)
        ).fetchone()
        current = SqliteStore._current_version(db, bucket, key)[1]
        return max(int(archived), current) + 1

    def _store_current(
        self,
        db: sqlite3.Connection,
        bucket: str,
        info: ObjectInfo,
        body: _Body,
        *,
        status: str | None = None,
        version_id: str | None = None,
    ) -> tuple[ObjectInfo, list[str]]:
        """Write `info` as the key's current object under the bucket's versioning state (a
        replica: `status` and `version_id` given); the blobs freed, to unlink after commit."""
        status = self._versioning(db, bucket) if status is None else status
        dead = self._displace(db, bucket, info.key, status)
        info = replace(info, version_id=version_id or new_version_id(status))
        self._insert_object(db, bucket, info, body)
        if status:
            seq = self._next_seq(db, bucket, info.key)
            db.execute(
                "INSERT OR REPLACE INTO current_versions VALUES (?, ?, ?, ?)", (bucket, info.key, info.version_id, seq)
            )
        return info, dead

    def _displace(self, db: sqlite3.Connection, bucket: str, key: str, status: str) -> list[str]:
        """Make way for a new version of `key` (store/versions.py): archive the current object or
        drop it; a Suspended bucket also drops the key's archived "null" version."""
        if not status:
            return self._drop_object(db, bucket, key)
        dead: list[str] = []
        if status == SUSPENDED:
            dead += self._drop_archived(db, bucket, key, NULL_VERSION)[1]
        if db.execute("SELECT 1 FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone() is None:
            return dead
        version_id, seq = self._current_version(db, bucket, key)
        if status == SUSPENDED and version_id == NULL_VERSION:
            dead += self._drop_object(db, bucket, key)
        else:
            db.execute(
                f"INSERT INTO versions (bucket, key, seq, version_id, delete_marker, {BODY_COLUMNS})"
                f" SELECT bucket, key, ?, ?, 0, {BODY_COLUMNS} FROM objects WHERE bucket = ? AND key = ?",
                (seq, version_id, bucket, key),
            )
            db.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, key))
        db.execute("DELETE FROM current_versions WHERE bucket = ? AND key = ?", (bucket, key))
        return dead

    def _add_delete_marker(
        self, db: sqlite3.Connection, bucket: str, key: str, synthetic: tuple[SyntheticSpec, SyntheticKeys] | None
    ) -> tuple[ObjectInfo, list[str]]:
        status = self._versioning(db, bucket)
        dead = self._displace(db, bucket, key, status)
        if synthetic is not None and synthetic[1].index_of(key) is not None:
            db.execute("INSERT OR IGNORE INTO synthetic_deleted VALUES (?, ?)", (bucket, key))
        marker = ObjectInfo(key, 0, "", self._clock(), version_id=new_version_id(status), delete_marker=True)
        self._insert_marker(db, bucket, marker)
        return marker, dead

    def _insert_marker(self, db: sqlite3.Connection, bucket: str, marker: ObjectInfo) -> None:
        values = _object_values(bucket, marker, None, None)
        db.execute(
            f"INSERT INTO versions (bucket, key, seq, version_id, delete_marker, {BODY_COLUMNS})"
            " VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
            (
                bucket,
                marker.key,
                self._next_seq(db, bucket, marker.key),
                marker.version_id,
                *values[2:11],
                *values[13:],
            ),
        )

    def _drop_archived(
        self, db: sqlite3.Connection, bucket: str, key: str, version_id: str
    ) -> tuple[ObjectInfo | None, list[str]]:
        row = db.execute(
            f"SELECT key, {BODY_COLUMNS}, delete_marker, seq FROM versions"
            " WHERE bucket = ? AND key = ? AND version_id = ?",
            (bucket, key, version_id),
        ).fetchone()
        if row is None:
            return None, []
        seq = row[AFTER_BODY + 1]
        db.execute("DELETE FROM versions WHERE bucket = ? AND key = ? AND seq = ?", (bucket, key, seq))
        if row[BODY_ID] is not None:
            db.execute("DELETE FROM bodies WHERE id = ?", (row[BODY_ID],))
        dead = self._unref(db, _segments(row[SEGMENTS])) if row[SEGMENTS] is not None else []
        return replace(_object_info(row), version_id=version_id, delete_marker=bool(row[AFTER_BODY])), dead

    @staticmethod
    def _promote(db: sqlite3.Connection, bucket: str, key: str) -> None:
        """With no current object, the newest archived version becomes current unless it is a
        delete marker (which then is the latest version)."""
        if db.execute("SELECT 1 FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone() is not None:
            return
        newest = db.execute(
            "SELECT seq, version_id, delete_marker FROM versions WHERE bucket = ? AND key = ?"
            " ORDER BY seq DESC LIMIT 1",
            (bucket, key),
        ).fetchone()
        if newest is None or newest[2]:
            return
        seq, version_id = newest[0], newest[1]
        db.execute(
            f"INSERT INTO objects (bucket, key, {BODY_COLUMNS})"
            f" SELECT bucket, key, {BODY_COLUMNS} FROM versions WHERE bucket = ? AND key = ? AND seq = ?",
            (bucket, key, seq),
        )
        db.execute("DELETE FROM versions WHERE bucket = ? AND key = ? AND seq = ?", (bucket, key, seq))
        db.execute("INSERT OR REPLACE INTO current_versions VALUES (?, ?, ?, ?)", (bucket, key, version_id, seq))

    # -- internals: rows ---------------------------------------------------------------------------

    def _bucket_row(self, db: sqlite3.Connection, bucket: str) -> Row:
        row = db.execute("SELECT created, synthetic FROM buckets WHERE name = ?", (bucket,)).fetchone()
        if row is None:
            raise NoSuchBucketError(bucket)
        return tuple(row)

    @staticmethod
    def _setting(db: sqlite3.Connection, bucket: str, name: str) -> str | None:
        row = db.execute("SELECT value FROM bucket_settings WHERE bucket = ? AND name = ?", (bucket, name)).fetchone()
        return None if row is None else str(row[0])

    def _synthetic_of(self, bucket_row: Row) -> tuple[SyntheticSpec, SyntheticKeys] | None:
        text = bucket_row[1]
        if text is None:
            return None
        found = self._synthetic.get(text)
        if found is None:
            spec = SyntheticSpec(**json.loads(text))
            found = self._synthetic[text] = (spec, SyntheticKeys.of(spec))
        return found

    def _synthetic_exists(self, db: sqlite3.Connection, bucket: str, key: str, keys: SyntheticKeys) -> bool:
        if keys.index_of(key) is None:
            return False
        deleted = db.execute("SELECT 1 FROM synthetic_deleted WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
        return deleted is None

    def _check(
        self, db: sqlite3.Connection, bucket: str, key: str, bucket_row: Row, precondition: Precondition | None
    ) -> None:
        """Inside the write transaction (which holds the write lock): the condition is checked
        against the object as it is when the write happens, so racing writers serialise here."""
        if precondition is None:
            return
        row = db.execute("SELECT etag FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
        etag = None if row is None else row[0]
        synthetic = self._synthetic_of(bucket_row)
        if etag is None and synthetic is not None and self._synthetic_exists(db, bucket, key, synthetic[1]):
            etag = synthetic_info(synthetic[0], key).etag
        precondition.check(bucket, key, etag)

    def _upload(self, db: sqlite3.Connection, bucket: str, key: str, upload_id: str) -> UploadInfo:
        self._bucket_row(db, bucket)
        row = db.execute(
            "SELECT key, info FROM uploads WHERE bucket = ? AND upload_id = ?", (bucket, upload_id)
        ).fetchone()
        if row is None or row[0] != key:
            raise NoSuchUploadError(bucket, key, upload_id)
        return _upload_info(upload_id, row[0], row[1])

    def _part_segments(
        self, db: sqlite3.Connection, bucket: str, upload_id: str, part_numbers: Sequence[int]
    ) -> list[Segment]:
        segments: list[Segment] = []
        for number in part_numbers:
            row = db.execute(
                "SELECT segments FROM parts WHERE bucket = ? AND upload_id = ? AND number = ?",
                (bucket, upload_id, number),
            ).fetchone()
            if row is None:
                raise ValueError(f"upload {upload_id} has no part {number}")
            segments += _segments(row[0])
        return segments

    def _parts_content(self, bucket: str, key: str, upload_id: str, part_numbers: Sequence[int]) -> ContentSource:
        with self._read() as db:
            self._upload(db, bucket, key, upload_id)
            segments = self._part_segments(db, bucket, upload_id, part_numbers)
            return self._open_segments(segments)

    def _insert_object(self, db: sqlite3.Connection, bucket: str, info: ObjectInfo, body: _Body) -> None:
        if body.inline is not None:
            body_id = db.execute("INSERT INTO bodies (data) VALUES (?)", (body.inline,)).lastrowid
            values = _object_values(bucket, info, body_id, None)
        else:
            values = _object_values(bucket, info, None, body.segments)
        db.execute(f"INSERT INTO objects VALUES ({', '.join('?' * len(values))})", values)

    def _drop_object(self, db: sqlite3.Connection, bucket: str, key: str) -> list[str]:
        """Delete the object's row and body; the blobs no longer used, to unlink after commit."""
        row = db.execute("SELECT body_id, segments FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
        if row is None:
            return []
        db.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, key))
        if row[0] is not None:
            db.execute("DELETE FROM bodies WHERE id = ?", (row[0],))
        return self._unref(db, _segments(row[1])) if row[1] is not None else []

    def _drop_upload(self, db: sqlite3.Connection, bucket: str, upload_id: str) -> list[str]:
        segments: list[Segment] = []
        rows = db.execute("SELECT segments FROM parts WHERE bucket = ? AND upload_id = ?", (bucket, upload_id))
        for (text,) in rows.fetchall():
            segments += _segments(text)
        db.execute("DELETE FROM parts WHERE bucket = ? AND upload_id = ?", (bucket, upload_id))
        db.execute("DELETE FROM uploads WHERE bucket = ? AND upload_id = ?", (bucket, upload_id))
        return self._unref(db, segments)

    def _unref(self, db: sqlite3.Connection, segments: Sequence[Segment]) -> list[str]:
        dead = []
        for name, count in Counter(name for name, _, _ in segments).items():
            db.execute("UPDATE blobs SET refs = refs - ? WHERE name = ?", (count, name))
            if db.execute("DELETE FROM blobs WHERE name = ? AND refs <= 0", (name,)).rowcount:
                dead.append(name)
        return dead

    # -- internals: files --------------------------------------------------------------------------

    def _blob_path(self, name: str) -> Path:
        return self._blobs / name[:2] / name

    def _unlink(self, names: Sequence[str]) -> None:
        for name in names:
            self._blob_path(name).unlink(missing_ok=True)

    def _open_segments(self, segments: Sequence[Segment]) -> ContentSource:
        """The content of `segments`, every file opened now. Raises FileNotFoundError."""
        files: dict[str, _OpenFile] = {}
        pieces: list[ContentSource] = []
        for name, offset, length in segments:
            file = files.get(name)
            if file is None:
                path = self._blob_path(name)
                fd = os.open(path, os.O_RDONLY)
                file = files[name] = _OpenFile(fd, path, self._root, name, os.fstat(fd).st_size)
            pieces.append(FileContent(file, offset, length))
        if len(pieces) == 1:
            return pieces[0]
        return ConcatContent.of(pieces) if pieces else BytesContent(b"")

    def _pieces(self, content: ContentSource, start: int, stop: int) -> Iterator[_FilePiece | _SourcePiece]:
        """`content` [start, stop) as ranges of this store's files where it is made of them
        (to share or adopt) and ranges of other sources (to copy)."""
        if start >= stop:
            return
        if isinstance(content, FileContent) and content.file.owner == self._root:
            yield _FilePiece(content.file, content.offset + start, stop - start)
        elif isinstance(content, ConcatContent):
            for part, base, end in zip(content.parts, content.offsets[:-1], content.offsets[1:], strict=True):
                low, high = max(start, base), min(stop, end)
                if low < high:
                    yield from self._pieces(part, low - base, high - base)
        elif isinstance(content, SliceContent):
            yield from self._pieces(content.source, content.start + start, content.start + stop)
        else:
            yield _SourcePiece(content, start, stop)

    def _prepare(self, content: ContentSource, *, inline: bool, copy: set[str]) -> _Body:
        """Lay out `content` as a body: inline when small, else segments of existing blobs
        (shared), spools (adopted) and new files (copied from other sources) — the writing
        happens here, before any transaction. Blobs named in `copy` are copied, not shared."""
        size = content.size
        if inline and size <= INLINE_MAX:
            return _Body(size, inline=content.read(0, size))
        body = _Body(size)
        pending: list[_SourcePiece] = []
        adopting: dict[int, str] = {}  # id(spool) → its new blob name

        def flush() -> None:
            if pending:
                body.new_blobs.append(self._copy(pending))
                body.segments.append((body.new_blobs[-1].name, 0, body.new_blobs[-1].size))
                pending.clear()

        try:
            for piece in self._pieces(content, 0, size):
                if isinstance(piece, _SourcePiece):
                    pending.append(piece)
                    continue
                file = piece.file
                if file.blob is not None and file.blob not in copy:
                    flush()
                    body.segments.append((file.blob, piece.offset, piece.length))
                elif file.blob is None and id(file) in adopting:
                    flush()
                    body.segments.append((adopting[id(file)], piece.offset, piece.length))
                elif file.blob is None and file.fd >= 0 and (piece.offset, piece.length) == (0, file.size):
                    flush()
                    name = adopting[id(file)] = uuid.uuid4().hex
                    body.new_blobs.append(_NewBlob(name, file.path, file.size, file))
                    body.segments.append((name, 0, file.size))
                else:
                    source = FileContent(file, piece.offset, piece.length)
                    pending.append(_SourcePiece(source, 0, piece.length))
            flush()
        except BaseException:
            self._discard(body)
            raise
        return body

    def _copy(self, pieces: Sequence[_SourcePiece]) -> _NewBlob:
        fd, path = _temp_file(self._tmp, "copy")
        size = 0
        try:
            for piece in pieces:
                for chunk in piece.source.chunks(piece.start, piece.stop, COPY_CHUNK):
                    _write_all(fd, chunk)
                    size += len(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        return _NewBlob(uuid.uuid4().hex, path, size, None)

    def _install(self, db: sqlite3.Connection, body: _Body) -> None:
        """Inside the write transaction: count `body`'s references and move its new files into
        blobs/. Raises _BlobGoneError when a blob to share was deleted meanwhile."""
        counts = Counter(name for name, _, _ in body.segments)
        new = {blob.name for blob in body.new_blobs}
        gone = []
        for name, count in counts.items():
            if name in new:
                continue
            if db.execute("UPDATE blobs SET refs = refs + ? WHERE name = ?", (count, name)).rowcount == 0:
                gone.append(name)
        if gone:
            raise _BlobGoneError(gone)
        for blob in body.new_blobs:
            db.execute("INSERT INTO blobs VALUES (?, ?, ?)", (blob.name, blob.size, counts[blob.name]))
            target = self._blob_path(blob.name)
            target.parent.mkdir(exist_ok=True)
            os.rename(blob.source_path, target)
            body.installed.append(blob)

    def _uninstall(self, body: _Body) -> None:
        """After a rollback: put the files `_install` moved back where they were."""
        for blob in body.installed:
            with contextlib.suppress(OSError):
                os.rename(self._blob_path(blob.name), blob.source_path)
        body.installed.clear()

    def _discard(self, body: _Body) -> None:
        """Remove the copies made for a body that will not be stored (spools stay with their owners)."""
        for blob in body.new_blobs:
            if blob.spool is None:
                blob.source_path.unlink(missing_ok=True)

    def _write_body(
        self,
        content: ContentSource,
        *,
        inline: bool,
        record: Callable[[sqlite3.Connection, _Body], tuple[T, list[str]]],
    ) -> T:
        """Prepare `content`, then in one write transaction install it and let `record` write
        the rows (returning its result and the blobs it freed)."""
        copy: set[str] = set()
        while True:
            body = self._prepare(content, inline=inline, copy=copy)
            try:
                with self._write() as db:
                    self._install(db, body)
                    result, dead = record(db, body)
            except _BlobGoneError as gone:
                self._uninstall(body)
                self._discard(body)
                copy |= gone.names  # our open files still hold those bytes: copy them
                continue
            except BaseException:
                self._uninstall(body)
                self._discard(body)
                raise
            for blob in body.new_blobs:
                if blob.spool is not None:
                    blob.spool.blob, blob.spool.path = blob.name, self._blob_path(blob.name)
            self._unlink(dead)
            return result
