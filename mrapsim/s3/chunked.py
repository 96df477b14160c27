"""A sans-IO decoder for aws-chunked request bodies (Content-Encoding: aws-chunked).

Feed it the request body as it arrives (HTTP chunked framing already removed by the server) and
pull events, as h11 does: `receive_data(bytes)`, `receive_eof()`, `next_event()` → an event,
`NEED_DATA`, or a terminal `Malformed` verdict. No sockets, no clock, no signatures: signature
and checksum checks belong to the caller (payload.py), which sees every chunk boundary here.

Wire format (docs/wire.md §3; AWS "sigv4-streaming" and "-trailers" pages):

    <hex-size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n     ... repeated
    0[;chunk-signature=<sig>]\\r\\n                        the final chunk
    <name>:<value>\\r\\n ...                               trailer fields (may be none)
    [x-amz-trailer-signature:<sig>\\r\\n]
    \\r\\n

Goals: worst case linear in the bytes fed (a line is searched for once, from where the last
search stopped; data is sliced, never rescanned), bounded memory (a line or a trailer that
outgrows its limit is `Malformed`, not buffered), and every hostile input answered by a verdict,
never an exception. Data is passed through in whatever pieces it arrives, so a 5 GiB body never
sits here; the buffer holds at most one line or one fed piece.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

MAX_LINE = 4096  # a chunk header line or one trailer field
MAX_TRAILER = 16384  # all trailer fields together
MAX_TRAILER_FIELDS = 32
HEX_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
CHUNK_SIGNATURE = "chunk-signature"
TRAILER_SIGNATURE = "x-amz-trailer-signature"


@dataclass(frozen=True)
class ChunkHeader:
    size: int
    signature: str | None  # the `chunk-signature` extension, when present


@dataclass(frozen=True)
class Data:
    data: bytes


@dataclass(frozen=True)
class ChunkEnd:
    """The chunk announced by the last ChunkHeader is complete."""


@dataclass(frozen=True)
class Trailers:
    fields: tuple[tuple[str, str], ...]  # names lower-case, values stripped, signature removed
    signature: str | None  # x-amz-trailer-signature, when present


@dataclass(frozen=True)
class EndOfBody:
    decoded_length: int


class Problem(enum.StrEnum):
    TRUNCATED = "truncated"  # the body ended inside a chunk, line or trailer
    MALFORMED = "malformed"  # framing that is not aws-chunked
    TOO_LARGE = "too_large"  # a line or trailer beyond its limit, or more data than declared


@dataclass(frozen=True)
class Malformed:
    problem: Problem
    reason: str


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()

Event = ChunkHeader | Data | ChunkEnd | Trailers | EndOfBody | Malformed


class _State(enum.Enum):
    HEADER = enum.auto()
    DATA = enum.auto()
    DATA_END = enum.auto()
    TRAILER = enum.auto()
    DONE = enum.auto()
    FAILED = enum.auto()


class AwsChunkedDecoder:
    """One request body's decoder. `decoded_length` (x-amz-decoded-content-length), when
    given, bounds the data: a chunk reaching past it is TOO_LARGE as soon as its header arrives."""

    def __init__(self, decoded_length: int | None = None) -> None:
        self._declared = decoded_length
        self._buffer = bytearray()
        self._scan_from = 0  # where the next line-end search starts
        self._state = _State.HEADER
        self._remaining = 0  # data bytes left in the current chunk
        self._decoded = 0
        self._eof = False
        self._trailer_fields: list[tuple[str, str]] = []
        self._trailer_bytes = 0
        self._verdict: Malformed | None = None
        self._pending: list[Event] = []

    @property
    def decoded_length(self) -> int:
        return self._decoded

    def receive_data(self, data: bytes) -> None:
        if self._eof:
            raise RuntimeError("receive_data after receive_eof")
        if self._verdict is not None:
            return  # the verdict stands; buffering more would only cost memory
        if self._state is _State.DONE and data:
            self._fail(Problem.MALFORMED, "data after the end of the aws-chunked body")
            return
        self._buffer += data

    def receive_eof(self) -> None:
        self._eof = True

    def next_event(self) -> Event | _NeedData:
        if self._pending:
            return self._pending.pop(0)
        if self._verdict is not None:
            return self._verdict
        state = self._state
        if state is _State.HEADER:
            return self._header()
        if state is _State.DATA:
            return self._data()
        if state is _State.DATA_END:
            return self._data_end()
        if state is _State.TRAILER:
            return self._trailer()
        if state is _State.DONE:
            return NEED_DATA
        raise AssertionError(state)  # FAILED always has a verdict

    # -- states ----------------------------------------------------------------------------------

    def _header(self) -> Event | _NeedData:
        line = self._line()
        if line is None:
            return self._starved("a chunk header")
        if isinstance(line, Malformed):
            return line
        size_text, _, extensions = line.partition(b";")
        if not HEX_SIZE.fullmatch(size_text):
            return self._fail(Problem.MALFORMED, f"chunk size {_show(size_text)} is not hexadecimal")
        size = int(size_text, 16)
        signature = None
        for extension in extensions.split(b";") if extensions else ():
            name, _, value = extension.partition(b"=")
            if name.strip().decode("latin-1").lower() == CHUNK_SIGNATURE:
                signature = value.strip().decode("latin-1")
        if self._declared is not None and self._decoded + size > self._declared:
            return self._fail(
                Problem.TOO_LARGE,
                f"chunks carry more than the declared x-amz-decoded-content-length {self._declared}",
            )
        if size == 0:
            self._state = _State.TRAILER
            self._pending.append(ChunkEnd())
        else:
            self._state = _State.DATA
            self._remaining = size
        return ChunkHeader(size, signature)

    def _data(self) -> Event | _NeedData:
        if not self._buffer:
            return self._starved("chunk data")
        take = min(self._remaining, len(self._buffer))
        with memoryview(self._buffer) as view:
            piece = bytes(view[:take])  # one copy (slicing the bytearray first would make two)
        del self._buffer[:take]  # bytearray drops a prefix in O(1) amortised
        self._remaining -= take
        self._decoded += take
        if not self._remaining:
            self._state = _State.DATA_END
        return Data(piece)

    def _data_end(self) -> Event | _NeedData:
        if len(self._buffer) < 2:
            if self._buffer and self._buffer[:1] != b"\r":
                return self._fail(Problem.MALFORMED, "chunk data is not followed by CRLF")
            return self._starved("the CRLF after chunk data")
        if self._buffer[:2] != b"\r\n":
            return self._fail(Problem.MALFORMED, "chunk data is longer than its declared size")
        del self._buffer[:2]
        self._state = _State.HEADER
        return ChunkEnd()

    def _trailer(self) -> Event | _NeedData:
        while True:
            if self._eof and not self._buffer:
                # Some clients end the body after the last trailer field without the final
                # empty line; everything they sent is complete, so accept it.
                return self._finish()
            line = self._line()
            if line is None:
                return self._starved("the trailer")
            if isinstance(line, Malformed):
                return line
            if not line:
                return self._finish()
            self._trailer_bytes += len(line)
            if self._trailer_bytes > MAX_TRAILER or len(self._trailer_fields) >= MAX_TRAILER_FIELDS:
                return self._fail(Problem.TOO_LARGE, "the trailer is too large")
            name, colon, value = line.partition(b":")
            text_name = name.strip().decode("latin-1").lower()
            if not colon or not text_name:
                return self._fail(Problem.MALFORMED, f"trailer line {_show(line)} is not name:value")
            self._trailer_fields.append((text_name, value.strip().decode("latin-1")))

    def _finish(self) -> Event:
        signature = None
        fields = []
        for name, value in self._trailer_fields:
            if name == TRAILER_SIGNATURE:
                signature = value
            else:
                fields.append((name, value))
        if self._declared is not None and self._decoded != self._declared:
            return self._fail(
                Problem.TRUNCATED,
                f"the chunks carry {self._decoded} bytes, x-amz-decoded-content-length declares {self._declared}",
            )
        self._state = _State.DONE
        if self._buffer:
            return self._fail(Problem.MALFORMED, "data after the end of the aws-chunked body")
        self._pending.append(EndOfBody(self._decoded))
        return Trailers(tuple(fields), signature)

    # -- helpers ---------------------------------------------------------------------------------

    def _line(self) -> bytes | Malformed | None:
        """The next CRLF-terminated line without its CRLF; None until it is complete."""
        end = self._buffer.find(b"\n", self._scan_from)
        if end < 0:
            if len(self._buffer) > MAX_LINE:
                return self._fail(Problem.TOO_LARGE, f"a line longer than {MAX_LINE} bytes")
            self._scan_from = len(self._buffer)
            return None
        self._scan_from = 0
        if end > MAX_LINE:
            return self._fail(Problem.TOO_LARGE, f"a line longer than {MAX_LINE} bytes")
        if end == 0 or self._buffer[end - 1] != 0x0D:
            return self._fail(Problem.MALFORMED, "a line ends in LF without CR")
        line = bytes(self._buffer[: end - 1])
        del self._buffer[: end + 1]
        return line

    def _starved(self, waiting_for: str) -> Event | _NeedData:
        if self._eof:
            return self._fail(Problem.TRUNCATED, f"the body ended inside {waiting_for}")
        return NEED_DATA

    def _fail(self, problem: Problem, reason: str) -> Malformed:
        self._state = _State.FAILED
        self._pending.clear()
        self._verdict = Malformed(problem, reason)
        return self._verdict


def _show(raw: bytes) -> str:
    return repr(raw[:40].decode("latin-1"))
