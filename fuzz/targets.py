"""One function per parser of hostile input. Each takes arbitrary bytes and must return: a
parser's verdict on bad input is a value (a Rejection, a Malformed event, None) or an S3Error —
never another exception, never a hang, never unbounded memory.

The same functions run under atheris (fuzz/run.py, coverage-guided) and under hypothesis
(tests/test_fuzz.py), so a finding from either is a plain function call to reproduce.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from mrapsim.config import load_config
from mrapsim.s3.auth import Authorized, Rejected, Verifier
from mrapsim.s3.chunked import NEED_DATA, AwsChunkedDecoder, EndOfBody, Malformed
from mrapsim.s3.documents import parse_request_document
from mrapsim.s3.errors import S3Error
from mrapsim.s3.headers import Headers
from mrapsim.s3.object import _parse_range, etag_matches, parse_http_date
from mrapsim.s3.request import S3Request
from mrapsim.tls.clienthello import ClientHello, ClientHelloReader
from mrapsim.tls.fingerprint import ja3, ja4

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
VERIFIER = Verifier(load_config().auth)  # the embedded key pair: a forged signature can be checked


def _pieces(data: bytes) -> list[bytes]:
    """Split `data` where its first byte says, so that the fuzzer also explores how a stream
    is cut into reads."""
    if not data:
        return [b""]
    step = data[0] % 17 + 1
    rest = data[1:]
    return [rest[i : i + step] for i in range(0, len(rest), step)] or [b""]


def client_hello(data: bytes) -> None:
    """The edge's ClientHello reader over any stream, cut into any reads."""
    reader = ClientHelloReader(max_size=16384)
    for piece in _pieces(data):
        if reader.feed(piece) is not None:
            break
    if isinstance(reader.result, ClientHello):  # what a connection's record is made of
        ja3(reader.result)
        ja4(reader.result)


def aws_chunked(data: bytes) -> None:
    """The aws-chunked decoder: every stream ends in EndOfBody or Malformed, fed in any reads."""
    declared = int.from_bytes(data[:2], "big") if len(data) > 2 and data[0] & 1 else None
    decoder = AwsChunkedDecoder(declared)
    for piece in _pieces(data[2:]):
        decoder.receive_data(piece)
        if _drain(decoder):
            return
    decoder.receive_eof()
    _drain(decoder)


def _drain(decoder: AwsChunkedDecoder) -> bool:
    for _ in range(100_000):
        event = decoder.next_event()
        if event is NEED_DATA:
            return False
        if isinstance(event, EndOfBody | Malformed):
            return True
    raise AssertionError("the decoder produced events without end")


def _request(data: bytes) -> S3Request:
    """A request whose query and header fields come from `data` as the server would hand them
    over: the first line is the query string, the others `name: value` (bytes, as ASGI gives)."""
    query, _, rest = data.partition(b"\n")
    fields = []
    for line in rest.split(b"\n"):
        name, _, value = line.partition(b":")
        fields.append((name.strip(), value.strip()))
    return S3Request(
        method="GET",
        raw_path="/mraps3sample/hello.txt",
        raw_query=query.decode("latin-1"),  # as S3App reads scope["query_string"]
        headers=Headers.from_raw(fields),
        request_id="FUZZ",
        host_id="FUZZ",
    )


def sigv4(data: bytes) -> None:
    """SigV4 and SigV4A, header and presigned query: a verdict, whatever the fields hold."""
    verdict = VERIFIER.verify(_request(data), NOW)
    assert isinstance(verdict, Authorized | Rejected)


def xml_document(data: bytes) -> None:
    """The request XML documents, in any encoding: an element or MalformedXML."""
    for root in ("Delete", "CompleteMultipartUpload", "CreateBucketConfiguration"):
        try:
            parse_request_document(data, root)
        except S3Error as error:
            assert error.code == "MalformedXML", error.code


def range_and_conditions(data: bytes) -> None:
    """Range (against any object size) and the conditional headers' values."""
    text = data.decode("utf-8", "replace")
    size = int.from_bytes(data[:4], "big") if len(data) >= 4 else 0
    try:
        found = _parse_range(text, size)
    except S3Error as error:
        assert error.status == 416, error.status
    else:
        assert found is None or 0 <= found.start < found.stop <= size
    parse_http_date(text)
    etag_matches(text, '"d41d8cd98f00b204e9800998ecf8427e"')


TARGETS: dict[str, Callable[[bytes], None]] = {
    "client_hello": client_hello,
    "aws_chunked": aws_chunked,
    "sigv4": sigv4,
    "xml_document": xml_document,
    "range_and_conditions": range_and_conditions,
}
