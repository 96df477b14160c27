"""Object bodies as sources of bytes, so that a body need not be held in memory.

`BytesContent` holds real bytes. The seam for synthetic objects (SPEC §7: size and content derived
from the key and a seed, gigabytes without storing them) is another `ContentSource` that computes
`read(start, stop)` instead of slicing; the S3 layer only ever asks for ranges and chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

DEFAULT_CHUNK_SIZE = 256 * 1024


@runtime_checkable
class ContentSource(Protocol):
    """An immutable object body of a known size."""

    @property
    def size(self) -> int: ...

    def read(self, start: int, stop: int) -> bytes:
        """Bytes [start, stop) clipped to the body; callers validate ranges first."""
        ...

    def chunks(self, start: int, stop: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """Bytes [start, stop) in pieces of at most `chunk_size`, for streaming responses."""
        ...


@dataclass(frozen=True)
class BytesContent:
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, start: int, stop: int) -> bytes:
        return self.data[start:stop]

    def chunks(self, start: int, stop: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        view = memoryview(self.data)
        stop = min(stop, len(self.data))
        for offset in range(start, stop, chunk_size):
            yield bytes(view[offset : min(offset + chunk_size, stop)])
