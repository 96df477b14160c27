"""A sans-IO reader for the first TLS ClientHello of a TCP stream.

The edge peeks at each connection's ClientHello to route on SNI. This module turns
bytes into either a parsed `ClientHello` or a `Rejection` verdict; it never touches a socket or
a clock, so every case is a plain byte-string test (h11's receive buffer is the model).

Operations: `ClientHelloReader.feed(data)` adds bytes and returns `None` ("need more"), a
`ClientHello` or a `Rejection`. The first result is final; later feeds return it again.

What it accepts (docs/wire.md §1):
- a ClientHello split over any number of feeds and over any number of TLS records (RFC 8446
  §5.1 lets a handshake message be fragmented across records);
- SSLv2-compatible hellos (`byte0 & 0x80`, message type 1; they carry no extensions, so no SNI);
- TLS 1.3 legacy fields, GREASE values anywhere, ECH (the cleartext SNI is the outer name);
- server_name lists with non-host_name entries (skipped).

Verdicts:
- NOT_TLS: the first byte is neither a handshake record (0x16) nor an SSLv2 hello, or the first
  record's major version is not 3. Decided from the first bytes, without waiting for more.
- MALFORMED: once the stream is TLS, any structural problem: a later record that is not a
  handshake record or has major version != 3, a zero-length record, a record longer than 2^14,
  a handshake type other than ClientHello, truncated or over-long vectors, trailing bytes in the
  body or in an extension, duplicate extension types, two host_names, an empty host_name or one
  with non-ASCII or control bytes.
- TOO_LARGE, the buffering bound. Two rules, both checked as bytes arrive:
  1. the handshake message (4-byte header + body) may be at most `max_size` bytes; this is
     decided as soon as the 4-byte handshake header is seen, without waiting for the body;
  2. the stream bytes that carry it (record headers included) may be at most
     `max_stream_bytes` (default 2 x `max_size`), so a peer cannot make the edge, which keeps
     every byte to replay it to the backend, buffer without bound by sending tiny records
     (1-byte records cost 6 stream bytes per hello byte).
  For an SSLv2 hello (one record, at most 2^15 - 1 bytes) rule 1 applies to the whole record.

Bytes after the end of the ClientHello (TLS 1.3 early data, a further record, the rest of the
last record) are ignored: the edge forwards them untouched.

Complexity: worst case linear in the bytes fed. Record headers are decoded a byte at a time
into a 5-byte buffer; record payload is copied once into the handshake buffer; the message is
parsed once, when it is complete. Nothing is re-scanned on a later feed.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from mrapsim.outcomes import Outcome

DEFAULT_MAX_SIZE = 16384  # BoringSSL, Envoy, caddy-l4 and nginx's default cap (docs/wire.md §1)

_HANDSHAKE = 0x16
_CLIENT_HELLO = 1
_RECORD_HEADER = 5
_HANDSHAKE_HEADER = 4
_MAX_RECORD = 1 << 14  # RFC 8446 §5.1: a longer record is a record_overflow

EXT_SERVER_NAME = 0x0000
EXT_SUPPORTED_GROUPS = 0x000A
EXT_EC_POINT_FORMATS = 0x000B
EXT_SIGNATURE_ALGORITHMS = 0x000D
EXT_ALPN = 0x0010
EXT_SUPPORTED_VERSIONS = 0x002B
EXT_ECH = 0xFE0D

_SSL2_MIN_HELLO = 2 + 9  # record length + type, version and three lengths
SSL2_VERSION = 0x0002  # the record "version" we report for SSLv2-compatible hellos

_HTTP_METHOD_STARTS = frozenset(b"GPHDOCT")  # GET POST PUT PATCH HEAD DELETE OPTIONS CONNECT TRACE


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values: 0x0A0A, 0x1A1A, ... 0xFAFA (both bytes equal, low nibble 0xA)."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


@dataclass(frozen=True)
class ClientHello:
    """The fields of one ClientHello the edge logs, routes and fingerprints on.

    Lists keep wire order and GREASE. `size` counts the stream bytes up to the hello's last
    byte (record headers included); for an SSLv2 hello `record_version` is 0x0002 and
    `cipher_suites` holds the 3-byte cipher specs as integers.
    """

    record_version: int
    legacy_version: int
    cipher_suites: tuple[int, ...]
    compression_methods: tuple[int, ...]
    extensions: tuple[int, ...]
    server_name: str | None
    sni_extension_present: bool
    alpn: tuple[bytes, ...]
    supported_versions: tuple[int, ...]
    supported_groups: tuple[int, ...]
    ec_point_formats: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    ech_offered: bool
    sslv2: bool
    size: int
    records: int

    def __post_init__(self) -> None:
        if self.server_name is not None and not self.sni_extension_present:
            raise ValueError("a server_name needs the server_name extension")
        if self.sslv2 and (self.extensions or self.server_name is not None):
            raise ValueError("an SSLv2-compatible hello carries no extensions")

    @property
    def versions_offered(self) -> tuple[int, ...]:
        """The TLS versions the client offers: supported_versions without GREASE, else legacy."""
        real = tuple(v for v in self.supported_versions if not is_grease(v))
        return real or (self.legacy_version,)

    @property
    def alpn_names(self) -> tuple[str, ...]:
        """ALPN names as text for logs and JSON; non-ASCII bytes shown as \\xNN escapes."""
        return tuple(name.decode("ascii", "backslashreplace") for name in self.alpn)


@dataclass(frozen=True)
class Rejection:
    """Why the stream carries no usable ClientHello: NOT_TLS, MALFORMED or TOO_LARGE."""

    outcome: Outcome
    reason: str

    def __post_init__(self) -> None:
        if self.outcome not in (Outcome.NOT_TLS, Outcome.MALFORMED, Outcome.TOO_LARGE):
            raise ValueError(f"{self.outcome} is not a ClientHello verdict")


class _Reject(Exception):
    """Raised inside the reader only; `feed` turns it into the Rejection it returns."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


class _Malformed(_Reject):
    def __init__(self, reason: str) -> None:
        super().__init__(Outcome.MALFORMED, reason)


class _Cursor:
    """Reads big-endian integers and length-prefixed vectors from one bytes object."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self._data = data
        self._pos = start
        self._end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.remaining:
            raise _Malformed(f"{what} needs {n} bytes, only {self.remaining} left")
        start = self._pos
        self._pos += n
        return self._data[start : self._pos]

    def take_rest(self) -> bytes:
        return self.take(self.remaining, "")

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def vector(self, length_size: int, what: str, number: int | None = None) -> _Cursor:
        """A sub-cursor over a vector with a `length_size`-byte length prefix. Its name is
        `what`, or `what 0x<number>`: made only for an error (this runs a few dozen times
        per hello, on every connection's path)."""
        start = self._pos + length_size
        if start > self._end:
            name = what if number is None else f"{what} 0x{number:04x}"
            raise _Malformed(f"{name} length needs {length_size} bytes, only {self.remaining} left")
        length = int.from_bytes(self._data[self._pos : start], "big")
        end = start + length
        if end > self._end:
            name = what if number is None else f"{what} 0x{number:04x}"
            raise _Malformed(f"{name} length {length} overruns its container ({self._end - start})")
        self._pos = end
        return _Cursor(self._data, start, end)

    def uints(self, size: int, what: str) -> tuple[int, ...]:
        """The rest of this cursor as a list of `size`-byte integers."""
        remaining = self._end - self._pos
        if remaining % size:
            raise _Malformed(f"{what} length {remaining} is not a multiple of {size}")
        chunk = self._data[self._pos : self._end]
        self._pos = self._end
        if size == 1:
            return tuple(chunk)
        if size == 2:
            return struct.unpack(f">{remaining // 2}H", chunk)
        return tuple(int.from_bytes(chunk[i : i + size], "big") for i in range(0, remaining, size))

    def expect_end(self, what: str) -> None:
        if self.remaining:
            raise _Malformed(f"{self.remaining} trailing bytes after {what}")


@dataclass
class _Extensions:
    """Mutable scratch space filled while walking the extensions vector."""

    types: list[int]
    server_name: str | None = None
    sni_present: bool = False
    alpn: tuple[bytes, ...] = ()
    supported_versions: tuple[int, ...] = ()
    supported_groups: tuple[int, ...] = ()
    ec_point_formats: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()


def _host_name(raw: bytes) -> str:
    if not raw:
        raise _Malformed("empty host_name")
    bad = next((b for b in raw if b < 0x20 or b >= 0x7F), None)
    if bad is not None:
        raise _Malformed(f"host_name contains byte 0x{bad:02x} (not printable ASCII)")
    return raw.decode("ascii")


def _parse_server_name(ext: _Cursor) -> str | None:
    """RFC 6066 §3 ServerNameList: at most one host_name(0); other name types are skipped."""
    names = ext.vector(2, "server_name list")
    ext.expect_end("server_name list")
    if not names.remaining:
        raise _Malformed("empty server_name list")
    host: str | None = None
    while names.remaining:
        name_type = names.uint(1, "server_name type")
        # Every name type defined so far is opaque<1..2^16-1>; assume that for unknown types too
        # (Go and sniproxy do) so they can be skipped.
        name = names.vector(2, "server_name entry").take_rest()
        if name_type != 0:
            continue
        if host is not None:
            raise _Malformed("two host_name entries in server_name")
        host = _host_name(name)
    return host


def _parse_alpn(ext: _Cursor) -> tuple[bytes, ...]:
    # Empty protocol names break RFC 7301's <1..2^8-1> but harm no routing decision; keep
    # them so JA4's "empty first ALPN value" rule has something to see.
    protocols = ext.vector(2, "ALPN list")
    ext.expect_end("ALPN list")
    names: list[bytes] = []
    while protocols.remaining:
        names.append(protocols.vector(1, "ALPN protocol name").take_rest())
    return tuple(names)


def _uint_list(ext: _Cursor, length_size: int, item_size: int, what: str) -> tuple[int, ...]:
    items = ext.vector(length_size, what)
    ext.expect_end(what)
    return items.uints(item_size, what)


def _parse_extension(found: _Extensions, ext_type: int, ext: _Cursor) -> bool:
    """Fill `found` from one extension; returns True if this is an ECH extension."""
    if ext_type == EXT_SERVER_NAME:
        found.sni_present = True
        found.server_name = _parse_server_name(ext)
    elif ext_type == EXT_ALPN:
        found.alpn = _parse_alpn(ext)
    elif ext_type == EXT_SUPPORTED_VERSIONS:
        found.supported_versions = _uint_list(ext, 1, 2, "supported_versions")
    elif ext_type == EXT_SUPPORTED_GROUPS:
        found.supported_groups = _uint_list(ext, 2, 2, "supported_groups")
    elif ext_type == EXT_EC_POINT_FORMATS:
        found.ec_point_formats = _uint_list(ext, 1, 1, "ec_point_formats")
    elif ext_type == EXT_SIGNATURE_ALGORITHMS:
        found.signature_algorithms = _uint_list(ext, 2, 2, "signature_algorithms")
    return ext_type == EXT_ECH


def _parse_extensions(body: _Cursor) -> tuple[_Extensions, bool]:
    found = _Extensions(types=[])
    ech = False
    # A ClientHello from before RFC 5246 may end after compression_methods: no extensions.
    if not body.remaining:
        return found, ech
    extensions = body.vector(2, "extensions")
    body.expect_end("extensions")
    seen: set[int] = set()
    while extensions.remaining:
        ext_type = extensions.uint(2, "extension type")
        ext = extensions.vector(2, "extension", ext_type)
        if ext_type in seen:
            raise _Malformed(f"duplicate extension 0x{ext_type:04x}")
        seen.add(ext_type)
        found.types.append(ext_type)
        ech |= _parse_extension(found, ext_type, ext)
    return found, ech


def _parse_client_hello_body(body: bytes, *, record_version: int, size: int, records: int) -> ClientHello:
    """Parse a ClientHello handshake body (after the 4-byte header); raises _Malformed."""
    cur = _Cursor(body)
    legacy_version = cur.uint(2, "legacy_version")
    cur.take(32, "random")
    session_id = cur.vector(1, "legacy_session_id")
    if session_id.remaining > 32:
        raise _Malformed(f"legacy_session_id is {session_id.remaining} bytes (max 32)")
    ciphers = cur.vector(2, "cipher_suites").uints(2, "cipher_suites")
    if not ciphers:
        raise _Malformed("empty cipher_suites")
    compression = cur.vector(1, "compression_methods").uints(1, "compression_methods")
    if not compression:
        raise _Malformed("empty compression_methods")
    found, ech = _parse_extensions(cur)
    return ClientHello(
        record_version=record_version,
        legacy_version=legacy_version,
        cipher_suites=ciphers,
        compression_methods=compression,
        extensions=tuple(found.types),
        server_name=found.server_name,
        sni_extension_present=found.sni_present,
        alpn=found.alpn,
        supported_versions=found.supported_versions,
        supported_groups=found.supported_groups,
        ec_point_formats=found.ec_point_formats,
        signature_algorithms=found.signature_algorithms,
        ech_offered=ech,
        sslv2=False,
        size=size,
        records=records,
    )


def _looks_like_sslv2_hello(head: bytes) -> bool:
    """nginx's test: 2-byte SSLv2 record header, message type 1, version major 0 (SSL2) or 3."""
    return bool(head[0] & 0x80) and head[2] == _CLIENT_HELLO and head[3] in (0, 3)


def _parse_sslv2_hello(record: bytes) -> ClientHello:
    """Parse a whole SSLv2-compatible CLIENT-HELLO record (2-byte header included)."""
    cur = _Cursor(record, 3)  # past the length and the message type
    version = cur.uint(2, "SSLv2 version")
    spec_len = cur.uint(2, "SSLv2 cipher_specs length")
    session_len = cur.uint(2, "SSLv2 session_id length")
    challenge_len = cur.uint(2, "SSLv2 challenge length")
    if spec_len == 0 or spec_len % 3:
        raise _Malformed(f"SSLv2 cipher_specs length {spec_len} is not a positive multiple of 3")
    if session_len not in (0, 16) or not 16 <= challenge_len <= 32:
        raise _Malformed("SSLv2 session_id or challenge has an impossible length")
    # 3-byte cipher specs as integers: TLS suites offered this way (0x00XXYY) read as 0xXXYY.
    specs = _Cursor(cur.take(spec_len, "SSLv2 cipher_specs")).uints(3, "SSLv2 cipher_specs")
    cur.take(session_len + challenge_len, "SSLv2 session_id and challenge")
    cur.expect_end("SSLv2 CLIENT-HELLO")
    return ClientHello(
        record_version=SSL2_VERSION,
        legacy_version=version,
        cipher_suites=specs,
        compression_methods=(),
        extensions=(),
        server_name=None,
        sni_extension_present=False,
        alpn=(),
        supported_versions=(),
        supported_groups=(),
        ec_point_formats=(),
        signature_algorithms=(),
        ech_offered=False,
        sslv2=True,
        size=len(record),
        records=1,
    )


def _not_tls_reason(first: int) -> str:
    reason = f"record type 0x{first:02x} is not handshake"
    if first in _HTTP_METHOD_STARTS:
        return reason + " (this looks like plain HTTP)"
    if first in (0x14, 0x15, 0x17):
        return reason + " (a TLS record, but the stream does not start with a ClientHello)"
    return reason


class _Mode(enum.Enum):
    START = "start"  # nothing decided yet
    MAYBE_SSLV2 = "maybe_sslv2"  # high bit set: buffering the 4 bytes that tell
    SSLV2 = "sslv2"
    TLS = "tls"


class ClientHelloReader:
    """Feed it the first bytes of a TCP stream; it returns the ClientHello or a verdict."""

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE, max_stream_bytes: int | None = None) -> None:
        if max_size < _HANDSHAKE_HEADER:
            raise ValueError("max_size must leave room for a handshake header")
        self._max_size = max_size
        self._max_stream = 2 * max_size if max_stream_bytes is None else max_stream_bytes
        self._mode = _Mode.START
        self._received = 0
        self._consumed = 0  # stream bytes that belong to the hello so far
        self._result: ClientHello | Rejection | None = None
        self._head = bytearray()  # the current TLS record header, or the whole SSLv2 record
        self._record_left = 0  # payload bytes of the current TLS record not yet read
        self._records = 0
        self._record_version = 0
        self._message = bytearray()  # the handshake message: 4-byte header + body
        self._message_size = 0  # 4 + body length, once the handshake header is known

    @property
    def bytes_received(self) -> int:
        """All bytes passed to `feed`, including any after the ClientHello."""
        return self._received

    @property
    def result(self) -> ClientHello | Rejection | None:
        """The final result, or None while more bytes are needed."""
        return self._result

    def feed(self, data: bytes) -> ClientHello | Rejection | None:
        """Add bytes; None means 'need more'. The first non-None result is final."""
        self._received += len(data)
        if self._result is None and data:
            try:
                self._result = self._consume(memoryview(data))
            except _Reject as exc:
                self._result = Rejection(exc.outcome, exc.reason)
        return self._result

    def _consume(self, data: memoryview) -> ClientHello | None:
        if self._mode is _Mode.START:
            self._classify(data[0])
        if self._mode is _Mode.MAYBE_SSLV2:
            data = self._confirm_sslv2(data)
        if self._mode is _Mode.SSLV2:
            return self._consume_sslv2(data)
        if self._mode is _Mode.TLS:
            return self._consume_tls(data)
        return None

    # -- stream classification -----------------------------------------------------------

    def _classify(self, first: int) -> None:
        if first == _HANDSHAKE:
            self._mode = _Mode.TLS
        elif first & 0x80:
            self._mode = _Mode.MAYBE_SSLV2
        else:
            raise _Reject(Outcome.NOT_TLS, _not_tls_reason(first))

    def _confirm_sslv2(self, data: memoryview) -> memoryview:
        need = 4 - len(self._head)
        self._head += data[:need]
        if len(self._head) < 4:
            return data[len(data) :]
        if not _looks_like_sslv2_hello(bytes(self._head)):
            raise _Reject(Outcome.NOT_TLS, f"first byte 0x{self._head[0]:02x} starts no TLS record")
        self._mode = _Mode.SSLV2
        return data[need:]

    # -- SSLv2-compatible hello ----------------------------------------------------------

    def _consume_sslv2(self, data: memoryview) -> ClientHello | None:
        total = 2 + (((self._head[0] & 0x7F) << 8) | self._head[1])
        if total < _SSL2_MIN_HELLO:
            raise _Malformed(f"SSLv2 record of {total} bytes is too short for a CLIENT-HELLO")
        if total > self._max_size:
            raise _Reject(
                Outcome.TOO_LARGE,
                f"SSLv2 hello of {total} bytes exceeds the {self._max_size}-byte cap",
            )
        self._head += data[: total - len(self._head)]
        if len(self._head) < total:
            return None
        return _parse_sslv2_hello(bytes(self._head))

    # -- TLS records ---------------------------------------------------------------------

    def _consume_tls(self, data: memoryview) -> ClientHello | None:
        pos, end = 0, len(data)
        while pos < end:
            if self._record_left == 0:
                pos = self._read_record_header(data, pos)
            else:
                pos = self._read_payload(data, pos)
            hello = self._check_progress()
            if hello is not None:
                return hello
        return None

    def _read_record_header(self, data: memoryview, pos: int) -> int:
        """Take header bytes one at a time so a bad type/version is caught at its byte."""
        head = self._head
        while len(head) < _RECORD_HEADER and pos < len(data):
            head.append(data[pos])
            pos += 1
            self._consumed += 1
            self._check_header_prefix()
        if len(head) == _RECORD_HEADER:
            length = (head[3] << 8) | head[4]
            if length == 0:
                raise _Reject(Outcome.MALFORMED, "zero-length handshake record")
            if length > _MAX_RECORD:
                raise _Reject(Outcome.MALFORMED, f"record length {length} exceeds 2^14")
            if not self._records:
                self._record_version = (head[1] << 8) | head[2]
            self._records += 1
            self._record_left = length
            head.clear()
        return pos

    def _check_header_prefix(self) -> None:
        head = self._head
        if len(head) == 1 and head[0] != _HANDSHAKE:
            # The first record's type was classified already, so this is a later record.
            raise _Reject(Outcome.MALFORMED, f"record type 0x{head[0]:02x} interleaved in the ClientHello")
        if len(head) == 2 and head[1] != 3:
            # The first record decides whether this is TLS at all; later ones must agree.
            outcome = Outcome.MALFORMED if self._records else Outcome.NOT_TLS
            raise _Reject(outcome, f"record major version {head[1]} is not 3")

    def _read_payload(self, data: memoryview, pos: int) -> int:
        message = self._message
        if len(message) < _HANDSHAKE_HEADER:
            want = _HANDSHAKE_HEADER - len(message)
        else:
            want = self._message_size - len(message)
        take = min(want, self._record_left, len(data) - pos)
        message += data[pos : pos + take]
        self._record_left -= take
        self._consumed += take
        if not self._message_size:
            self._read_handshake_header()
        return pos + take

    def _read_handshake_header(self) -> None:
        message = self._message
        if message[0] != _CLIENT_HELLO:
            raise _Reject(Outcome.MALFORMED, f"handshake type {message[0]} is not ClientHello (1)")
        if len(message) < _HANDSHAKE_HEADER:
            return
        self._message_size = _HANDSHAKE_HEADER + int.from_bytes(message[1:4], "big")
        if self._message_size > self._max_size:
            raise _Reject(
                Outcome.TOO_LARGE,
                f"ClientHello of {self._message_size} bytes exceeds the {self._max_size}-byte cap",
            )

    def _check_progress(self) -> ClientHello | None:
        if self._message_size and len(self._message) == self._message_size:
            return _parse_client_hello_body(
                bytes(self._message[_HANDSHAKE_HEADER:]),
                record_version=self._record_version,
                size=self._consumed,
                records=self._records,
            )
        if self._consumed >= self._max_stream:
            raise _Reject(
                Outcome.TOO_LARGE,
                f"{self._consumed} stream bytes in {self._records} records and no complete"
                f" ClientHello yet; the cap is {self._max_stream}",
            )
        return None
