"""The response reader agrees with h11 on the same bytes, split at every position."""

from __future__ import annotations

import h11
import pytest

from mrapsim.load.http1 import IncompleteError, ParsedResponse, ProtocolError, ResponseReader

CASES = [
    ("GET", b"HTTP/1.1 200 \r\ncontent-length: 5\r\nx-amz-request-id: 1\r\n\r\nhello"),
    (
        "GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"
        b"3\r\n, w\r\n0\r\nx-trailer: y\r\n\r\n",
    ),
    ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n"),
    ("GET", b'HTTP/1.1 304 Not Modified\r\netag: "x"\r\n\r\n'),
    ("PUT", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
    (
        "GET",
        b"HTTP/1.1 503 Slow Down\r\nConnection: close\r\nContent-Length: 55\r\n\r\n"
        b"<Error><Code>SlowDown</Code><Message>x</Message></Error>",
    ),
    ("GET", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"),
]


def h11_view(method: str, data: bytes) -> tuple[int, int]:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    status = length = 0
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            length += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            break
    return status, length


def read_in_pieces(method: str, pieces: list[bytes]) -> ParsedResponse:
    reader = ResponseReader()
    reader.start(method)
    for piece in pieces:
        reader.feed(piece)
        parsed = reader.extract()
        if parsed is not None:
            return parsed
    raise AssertionError("no response")


@pytest.mark.parametrize(("method", "data"), CASES)
def test_agrees_with_h11_at_every_split(method: str, data: bytes) -> None:
    status, length = h11_view(method, data)
    for split in range(len(data) + 1):
        pieces = [data[:split], data[split:]] if split else [data]
        parsed = read_in_pieces(method, [p for p in pieces if p] or [b""])
        assert (parsed.status, parsed.body_length) == (status, length), split
    one_byte = read_in_pieces(method, [data[i : i + 1] for i in range(len(data))])
    assert (one_byte.status, one_byte.body_length) == (status, length)


def test_keep_alive_and_error_body() -> None:
    parsed = read_in_pieces("GET", [CASES[5][1]])
    assert parsed.status == 503 and not parsed.keep_alive and b"<Code>SlowDown</Code>" in parsed.body_head
    assert read_in_pieces("GET", [CASES[0][1]]).keep_alive
    assert read_in_pieces("GET", [CASES[6][1]]).keep_alive


def test_two_responses_on_one_connection() -> None:
    reader = ResponseReader()
    reader.start("GET")
    reader.feed(CASES[0][1] + CASES[0][1][:10])
    assert reader.extract() == ParsedResponse(200, 5, b"hello", True)
    reader.start("GET")
    assert reader.extract() is None
    reader.feed(CASES[0][1][10:])
    assert reader.extract() == ParsedResponse(200, 5, b"hello", True)


def test_body_until_eof() -> None:
    reader = ResponseReader()
    reader.start("GET")
    reader.feed(b"HTTP/1.1 200 OK\r\n\r\nsome body")
    assert reader.extract() is None
    reader.feed(b"")
    assert reader.extract() == ParsedResponse(200, 9, b"some body", False)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\n",
    ],
)
def test_eof_before_the_end_is_incomplete(data: bytes) -> None:
    reader = ResponseReader()
    reader.start("GET")
    reader.feed(data)
    reader.feed_eof()
    with pytest.raises(IncompleteError):
        reader.extract()


@pytest.mark.parametrize(
    "data",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_garbage_is_a_protocol_error(data: bytes) -> None:
    reader = ResponseReader()
    reader.start("GET")
    reader.feed(data)
    with pytest.raises(ProtocolError):
        reader.extract()


def test_huge_header_block_is_refused_without_quadratic_work() -> None:
    reader = ResponseReader()
    reader.start("GET")
    with pytest.raises(ProtocolError):
        for _ in range(100):
            reader.feed(b"x" * 1000)
            reader.extract()
