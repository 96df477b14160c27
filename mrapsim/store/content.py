"""Object bodies as sources of bytes, so that a body need not be held in memory.

`BytesContent` holds real bytes; `ConcatContent` joins sources without copying (a streamed
upload's blocks, a multipart object's parts); `SliceContent` is a range of another source
(UploadPartCopy); synthetic objects compute their bytes (store/synthetic.py). The S3 layer only
ever asks for ranges and chunks, so no response body is built whole.

`MemoryContentBuilder` receives a body as it streams in (PutObject, UploadPart) and keeps it as
~1 MiB blocks: one copy of the data, never a second whole-body buffer.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import trio

DEFAULT_CHUNK_SIZE = 256 * 1024


@runtime_checkable
class ContentSource(Protocol):
    """An immutable object body of a known size."""

    @property
    def size(self) -> int: ...

    @property
    def on_disk(self) -> bool:
        """Reading may wait for a disk (the sqlite store's blob files): from the event loop, read
        through `stream_content`, which does it on a worker thread."""
        ...

    def read(self, start: int, stop: int) -> bytes:
        """Bytes [start, stop) clipped to the body; callers validate ranges first."""
        ...

    def chunks(self, start: int, stop: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """Bytes [start, stop) in pieces of at most `chunk_size`, for streaming responses."""
        ...


async def stream_content(
    content: ContentSource, start: int, stop: int, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> AsyncIterator[bytes]:
    """`content.chunks(start, stop)` for the event loop. A body on disk is read a chunk at a time
    on a worker thread, so a slow disk delays this response only, never the process's accepts
    and timers; a body in memory or computed (synthetic) is read in place, as a thread hop per
    chunk would cost more than the read."""
    chunks = content.chunks(start, stop, chunk_size)
    if not content.on_disk:
        for chunk in chunks:
            yield chunk
        return
    while True:
        read = await trio.to_thread.run_sync(_next_chunk, chunks)
        if read is None:
            return
        yield read


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


def content_etag(content: ContentSource) -> str:
    """S3's ETag of a single-part body: the quoted MD5 hex of its bytes."""
    md5 = hashlib.md5(usedforsecurity=False)
    for chunk in content.chunks(0, content.size):
        md5.update(chunk)
    return f'"{md5.hexdigest()}"'


@dataclass(frozen=True)
class BytesContent:
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def on_disk(self) -> bool:
        return False

    def read(self, start: int, stop: int) -> bytes:
        return self.data[start:stop]

    def chunks(self, start: int, stop: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        view = memoryview(self.data)
        stop = min(stop, len(self.data))
        for offset in range(start, stop, chunk_size):
            yield bytes(view[offset : min(offset + chunk_size, stop)])


@dataclass(frozen=True)
class ConcatContent:
    """Several sources read as one: a streamed upload's blocks, or a multipart object's parts
    (completing an upload joins the parts without copying a byte)."""

    parts: tuple[ContentSource, ...]
    offsets: tuple[int, ...]  # offsets[i] = where parts[i] starts; one extra entry: the total size

    @classmethod
    def of(cls, parts: Sequence[ContentSource]) -> ConcatContent:
        offsets = [0]
        for part in parts:
            offsets.append(offsets[-1] + part.size)
        return cls(tuple(parts), tuple(offsets))

    @property
    def size(self) -> int:
        return self.offsets[-1]

    @property
    def on_disk(self) -> bool:
        return any(part.on_disk for part in self.parts)

    def read(self, start: int, stop: int) -> bytes:
        return b"".join(self.chunks(start, stop, max(1, stop - start)))

    def chunks(self, start: int, stop: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        stop = min(stop, self.size)
        index = max(0, bisect.bisect_right(self.offsets, start) - 1)
        while start < stop and index < len(self.parts):
            base = self.offsets[index]
            part_stop = min(stop, self.offsets[index + 1])
            if start < part_stop:
                yield from self.parts[index].chunks(start - base, part_stop - base, chunk_size)
                start = part_stop
            index += 1


class ContentBuilder(Protocol):
    """Receives a body piece by piece (as it streams in) and becomes a ContentSource."""

    def append(self, data: bytes) -> None: ...

    def finish(self) -> ContentSource: ...


class MemoryContentBuilder:
    """Collects a streamed body in memory as blocks of about BLOCK_SIZE bytes: one copy of the
    body, never a second whole-body buffer (no final join)."""

    BLOCK_SIZE = 1024 * 1024

    def __init__(self) -> None:
        self._blocks: list[ContentSource] = []
        self._pending = bytearray()

    def append(self, data: bytes) -> None:
        if not self._pending and len(data) >= self.BLOCK_SIZE:
            self._blocks.append(BytesContent(data))
            return
        self._pending += data
        if len(self._pending) >= self.BLOCK_SIZE:
            self._blocks.append(BytesContent(bytes(self._pending)))
            self._pending.clear()

    def finish(self) -> ContentSource:
        if self._pending:
            self._blocks.append(BytesContent(bytes(self._pending)))
            self._pending.clear()
        if len(self._blocks) == 1:
            return self._blocks[0]
        if not self._blocks:
            return BytesContent(b"")
        return ConcatContent.of(self._blocks)


@dataclass(frozen=True)
class SliceContent:
    """Bytes [start, start + size) of another source (UploadPartCopy with a source range)."""

    source: ContentSource
    start: int
    length: int

    @property
    def size(self) -> int:
        return self.length

    @property
    def on_disk(self) -> bool:
        return self.source.on_disk

    def read(self, start: int, stop: int) -> bytes:
        stop = min(stop, self.length)
        return self.source.read(self.start + start, self.start + stop) if start < stop else b""

    def chunks(self, start: int, stop: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        stop = min(stop, self.length)
        if start < stop:
            yield from self.source.chunks(self.start + start, self.start + stop, chunk_size)
