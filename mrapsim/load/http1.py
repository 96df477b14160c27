"""A sans-IO reader for HTTP/1.1 responses, for a client that only counts what it receives.

Why not h11: the harness used h11 first, and profiling showed h11's event machinery taking
about 40% of a harness process's CPU against a trivial server, which made the harness slower than
Locust's FastHttpUser (whose parser is C). A load generator needs much less than h11 offers: the
status, whether the connection can be reused, the body length, and the first few KiB of an error
body (for S3's `<Code>`). So this reader does exactly that; it is tested against h11 on the same
bytes, split at every position (tests/load/test_http1.py).

Operations: `start(method)` before each response, `feed(data)`, `feed_eof()`, `extract()` →
a `ParsedResponse` once the whole response (header block and body) has arrived, else None.
Bodies are counted and dropped, never stored (except the first `keep` bytes). Worst case linear
in bytes received: the header-block search resumes where it stopped; a header block over 64 KiB
or a bad status line, header or chunk size raises `ProtocolError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MAX_HEAD = 65536
MAX_CHUNK_LINE = 1024


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.x response."""


class IncompleteError(ProtocolError):
    """The connection ended before the response did."""


@dataclass(frozen=True)
class ParsedResponse:
    status: int
    body_length: int
    body_head: bytes  # the first bytes of the body, for error responses
    keep_alive: bool


class _State(enum.Enum):
    HEAD = 1
    LENGTH = 2
    CHUNK_SIZE = 3
    CHUNK_DATA = 4
    CHUNK_CRLF = 5
    TRAILERS = 6
    UNTIL_EOF = 7
    DONE = 8


class ResponseReader:
    def __init__(self, keep: int = 4096) -> None:
        self.keep = keep
        self._buffer = bytearray()
        self._scan = 0
        self._state = _State.DONE
        self._head_request = False
        self._status = 0
        self._keep_alive = True
        self._remaining = 0
        self._length = 0
        self._body_head = b""
        self._eof = False

    def start(self, method: str) -> None:
        """Expect the response to a request made with `method` (HEAD has no body)."""
        if self._state is not _State.DONE:
            raise ProtocolError("a response is still being read")
        self._state = _State.HEAD
        self._head_request = method == "HEAD"
        self._status = 0
        self._length = 0
        self._body_head = b""
        self._scan = 0

    def feed(self, data: bytes) -> None:
        if data:
            self._buffer += data
        else:
            self._eof = True

    def feed_eof(self) -> None:
        self._eof = True

    def extract(self) -> ParsedResponse | None:
        while True:
            state = self._state
            if state is _State.HEAD:
                if not self._read_head():
                    return None
            elif state is _State.LENGTH:
                self._take(min(self._remaining, len(self._buffer)))
                if self._remaining:
                    self._need_more()
                    return None
                self._state = _State.DONE
            elif state is _State.CHUNK_SIZE:
                if not self._read_chunk_size():
                    return None
            elif state is _State.CHUNK_DATA:
                self._take(min(self._remaining, len(self._buffer)))
                if self._remaining:
                    self._need_more()
                    return None
                self._state = _State.CHUNK_CRLF
            elif state is _State.CHUNK_CRLF:
                if len(self._buffer) < 2:
                    self._need_more()
                    return None
                if self._buffer[:2] != b"\r\n":
                    raise ProtocolError("chunk data not followed by CRLF")
                del self._buffer[:2]
                self._state = _State.CHUNK_SIZE
            elif state is _State.TRAILERS:
                if not self._read_trailers():
                    return None
            elif state is _State.UNTIL_EOF:
                self._take(len(self._buffer))
                if not self._eof:
                    return None
                self._state = _State.DONE
            else:
                return ParsedResponse(self._status, self._length, self._body_head, self._keep_alive)

    def _need_more(self) -> None:
        if self._eof:
            raise IncompleteError("the connection closed in the middle of a response")
        return None

    def _take(self, n: int) -> None:
        if n <= 0:
            return
        if len(self._body_head) < self.keep:
            self._body_head += bytes(self._buffer[: min(n, self.keep - len(self._body_head))])
        del self._buffer[:n]
        self._length += n
        if self._state is not _State.UNTIL_EOF:
            self._remaining -= n

    def _read_head(self) -> bool:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n", max(0, self._scan - 3))
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise ProtocolError("response header block over 64 KiB")
            self._scan = len(buffer)
            if self._eof:
                raise IncompleteError(
                    "the connection closed before a complete response head"
                    if buffer
                    else "the connection closed before any response"
                )
            return False
        head = bytes(buffer[:end])
        del buffer[: end + 4]
        self._scan = 0
        lines = head.split(b"\r\n")
        version, status = _status_line(lines[0])
        if 100 <= status < 200 and status != 101:
            return True  # informational (100 Continue): the real response follows
        self._status = status
        length, chunked, connection = _framing(lines[1:])
        self._keep_alive = "keep-alive" in connection if version == b"HTTP/1.0" else "close" not in connection
        if self._head_request or status in (204, 304):
            self._state = _State.DONE
        elif chunked:
            self._state = _State.CHUNK_SIZE
        elif length is not None:
            self._remaining = length
            self._state = _State.LENGTH
        else:
            self._state = _State.UNTIL_EOF
            self._keep_alive = False
        return True

    def _read_chunk_size(self) -> bool:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > MAX_CHUNK_LINE:
                raise ProtocolError("chunk size line too long")
            self._need_more()
            return False
        line = bytes(self._buffer[:end]).split(b";", 1)[0].strip()
        del self._buffer[: end + 2]
        try:
            size = int(line, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {line[:20]!r}") from None
        if size < 0:
            raise ProtocolError("negative chunk size")
        self._remaining = size
        self._state = _State.CHUNK_DATA if size else _State.TRAILERS
        return True

    def _read_trailers(self) -> bool:
        while True:
            end = self._buffer.find(b"\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise ProtocolError("trailers over 64 KiB")
                self._need_more()
                return False
            del self._buffer[: end + 2]
            if end == 0:
                self._state = _State.DONE
                return True


def _status_line(line: bytes) -> tuple[bytes, int]:
    parts = line.split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or len(parts[1]) != 3 or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {line[:40]!r}")
    return parts[0], int(parts[1])


def _framing(lines: list[bytes]) -> tuple[int | None, bool, str]:
    """Content-Length, whether chunked, and the Connection header (lower case)."""
    length: int | None = None
    chunked = False
    connection = ""
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"bad header line {line[:40]!r}")
        lname = name.lower()
        if lname == b"content-length":
            text = value.strip()
            if not text.isdigit() or (length is not None and length != int(text)):
                raise ProtocolError(f"bad content-length {text[:20]!r}")
            length = int(text)
        elif lname == b"transfer-encoding":
            chunked = value.strip().lower().endswith(b"chunked")
        elif lname == b"connection":
            connection += value.decode("latin-1").lower()
    return (None if chunked else length), chunked, connection
