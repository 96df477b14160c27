"""Object versions, as every store keeps them.

A key's newest version that is not a delete marker is its *current* object and lives where
unversioned objects live (so GET, HEAD and ListObjects are untouched by versioning). Every other
version — the ones it replaced, and delete markers — sits in a per-bucket *archive* ordered by
(key, seq), seq growing with each version of a key. Hence, per key, newest first: the current
object (if any), then the archive from the highest seq down. The latest version is a delete
marker exactly when the key has no current object and its newest archived version is a marker.

The rules (S3's): with versioning Enabled a write archives the current object and a delete
archives it and adds a marker with a new version id; Suspended writes and deletes get version id
"null", replacing the key's earlier "null" version wherever it is; a bucket whose versioning was
never enabled keeps no archive (its objects are "null" versions). Removing a version for good
promotes the next newest to current when that one is an object.

ListObjectVersions walks the keys of the current objects and of the archive together (merge.py's
cursors, so delimiter roll-ups seek past a whole common prefix) and reads each key's versions
with one bounded range read: a page costs O(log n + page) in both stores.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

from mrapsim.store.base import VersionEntry, VersionPage
from mrapsim.store.merge import KeyCursor, more_under, prefix_successor, rolled_up, seek_resume

ENABLED = "Enabled"
SUSPENDED = "Suspended"
NULL_VERSION = "null"
# Version ids are opaque to clients; S3's are 32 URL-safe characters.
VERSION_ID_BYTES = 24

# versions_of(key, after_version_id or None, limit) → up to `limit` of the key's versions,
# newest first, after the given one (None: from the newest).
VersionsOf = Callable[[str, str | None, int], Sequence[VersionEntry]]


def new_version_id(status: str) -> str:
    """The id of a version written under versioning `status`."""
    if status != ENABLED:
        return NULL_VERSION
    # Never a leading "-": aws-cli would read `--version-id -x…` as a missing value (S3's own
    # ids are seen to start with a letter or a digit).
    while (version_id := secrets.token_urlsafe(VERSION_ID_BYTES)).startswith("-"):
        pass
    return version_id


def list_version_page(
    cursor: KeyCursor,
    versions_of: VersionsOf,
    *,
    prefix: str = "",
    delimiter: str = "",
    key_marker: str = "",
    version_id_marker: str = "",
    max_keys: int = 1000,
) -> VersionPage:
    """One ListObjectVersions page over `cursor` (the bucket's keys that have any version)."""
    if max_keys <= 0:
        return VersionPage((), (), False, None, None)
    entries: list[VersionEntry] = []
    common_prefixes: list[str] = []
    last: tuple[str | None, str | None] = (None, None)
    resume_inside = bool(key_marker and version_id_marker and key_marker.startswith(prefix))
    if resume_inside:
        cursor.seek(key_marker)
        if cursor.peek() == key_marker:
            batch = versions_of(key_marker, version_id_marker, max_keys + 1)
            entries += batch[:max_keys]
            if entries:
                last = (key_marker, entries[-1].info.version_id)
            if len(batch) > max_keys:
                return VersionPage(entries, (), True, *last)
            cursor.advance()
    else:
        seek_resume(cursor, prefix, delimiter, key_marker)
    while len(entries) + len(common_prefixes) < max_keys:
        key = cursor.peek()
        if key is None or not key.startswith(prefix):
            break
        common = rolled_up(key, prefix, delimiter)
        if common is not None:
            common_prefixes.append(common)
            last = (common, None)
            cursor.seek(prefix_successor(common))
            continue
        room = max_keys - len(entries) - len(common_prefixes)
        batch = versions_of(key, None, room + 1)
        entries += batch[:room]
        if batch:
            last = (key, batch[:room][-1].info.version_id)
        if len(batch) > room:
            return VersionPage(entries, common_prefixes, True, *last)
        cursor.advance()
    return VersionPage(entries, common_prefixes, more_under(cursor, prefix), *last)
