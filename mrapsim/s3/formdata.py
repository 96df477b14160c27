"""A sans-IO `multipart/form-data` reader (RFC 7578), as POST Object needs it: bytes in,
events out, no sockets. Fields are small and come whole (`Field`); the file part (named "file") streams
(`FileStart`, then `FileData` pieces) so a large upload is never held in memory.

Bounds: a part's header block up to MAX_PART_HEADERS bytes and a field's value up to
`max_field` bytes, else `FormError`; anything malformed is a `FormError` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

MAX_PART_HEADERS = 16 * 1024


class FormError(Exception):
    """The body is not well-formed multipart/form-data (or exceeds a bound)."""


@dataclass(frozen=True)
class Field:
    name: str
    value: str


@dataclass(frozen=True)
class FileStart:
    name: str
    filename: str
    content_type: str | None


@dataclass(frozen=True)
class FileData:
    data: bytes


@dataclass(frozen=True)
class FormEnd:
    pass


Event = Field | FileStart | FileData | FormEnd


def boundary_of(content_type: str | None) -> str | None:
    """The boundary of a `multipart/form-data` Content-Type; None when it is not one."""
    if not content_type:
        return None
    message = Message()
    message["content-type"] = content_type
    if message.get_content_type() != "multipart/form-data":
        return None
    boundary = message.get_param("boundary")
    return boundary if isinstance(boundary, str) and boundary else None


class FormReader:
    """Feed body bytes with `feed`; each call returns the events they complete."""

    def __init__(self, boundary: str, *, max_field: int) -> None:
        self._delimiter = b"--" + boundary.encode("latin-1")
        self._inner = b"\r\n" + self._delimiter
        self._max_field = max_field
        self._buffer = bytearray()
        self._state = "preamble"
        self._field: tuple[str, bytearray] | None = None  # the field being read, or None in a file

    def feed(self, data: bytes) -> list[Event]:
        self._buffer += data
        events: list[Event] = []
        while self._step(events):
            pass
        return events

    def close(self) -> None:
        if self._state != "end":
            raise FormError("the form ended before its closing boundary")

    def _step(self, events: list[Event]) -> bool:
        """Advance through the buffer once; False when more bytes are needed."""
        if self._state == "preamble":
            at = self._buffer.find(self._delimiter)
            if at < 0:
                return False
            del self._buffer[: at + len(self._delimiter)]
            self._state = "after-delimiter"
            return True
        if self._state == "after-delimiter":
            if len(self._buffer) < 2:
                return False
            mark = bytes(self._buffer[:2])
            del self._buffer[:2]
            if mark == b"--":
                self._state = "end"
                events.append(FormEnd())
                return False
            if mark != b"\r\n":
                raise FormError("a boundary is not followed by CRLF")
            self._state = "headers"
            return True
        if self._state == "headers":
            return self._read_headers(events)
        if self._state == "body":
            return self._read_body(events)
        return False  # end: the epilogue is ignored

    def _read_headers(self, events: list[Event]) -> bool:
        at = self._buffer.find(b"\r\n\r\n")
        if at < 0:
            if len(self._buffer) > MAX_PART_HEADERS:
                raise FormError("a part's headers are too large")
            return False
        block = bytes(self._buffer[:at]).decode("utf-8", errors="replace")
        del self._buffer[: at + 4]
        message = Message()
        for line in block.split("\r\n"):
            header, sep, value = line.partition(":")
            if not sep:
                raise FormError("a part header has no colon")
            message[header.strip()] = value.strip()
        if message.get_content_disposition() != "form-data":
            raise FormError("a part is not form-data")
        name = message.get_param("name", header="content-disposition")
        filename = message.get_param("filename", header="content-disposition")
        if not isinstance(name, str):
            raise FormError("a part has no name")
        # The file is the part named "file", as S3 reads a form: clients give other parts a
        # filename too (python-requests names every part sent through `files=`).
        if name.lower() == "file":
            self._field = None
            content_type = message.get("content-type")
            events.append(FileStart(name, filename if isinstance(filename, str) else "", content_type))
        else:
            self._field = (name, bytearray())
        self._state = "body"
        return True

    def _read_body(self, events: list[Event]) -> bool:
        at = self._buffer.find(self._inner)
        if at >= 0:
            self._emit(events, bytes(self._buffer[:at]))
            del self._buffer[: at + len(self._inner)]
            if self._field is not None:
                name, value = self._field
                events.append(Field(name, value.decode("utf-8", errors="replace")))
            self._state = "after-delimiter"
            return True
        # Keep what could be the start of the delimiter; the rest is the part's data.
        keep = len(self._inner) - 1
        if len(self._buffer) > keep:
            self._emit(events, bytes(self._buffer[:-keep]))
            del self._buffer[:-keep]
        return False

    def _emit(self, events: list[Event], data: bytes) -> None:
        if not data:
            return
        if self._field is None:
            events.append(FileData(data))
            return
        value = self._field[1]
        value += data
        if len(value) > self._max_field:
            raise FormError(f"the field {self._field[0]} is too large")
