"""aws-chunked bodies: the sans-IO decoder split at every position and mutated (property tests),
the chunk-signature chain against AWS's published example, checksums against the CRC catalogue's
check values, and every streaming form through the live app."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import xml.etree.ElementTree as ET
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrapsim.s3 import chunked
from mrapsim.s3.auth import StreamingKey, sigv4_signing_key
from mrapsim.s3.checksums import checksum, composite, crc_function, full_object_crc
from tests.s3.chunking import ChunkSigner, crt_signed_headers, send_raw, trailer_crc32, unsigned_trailer_body
from tests.s3.conftest import WRITE_BUCKET as NAMES_BUCKET
from tests.s3.conftest import LiveServer

Event = Any


def decode(pieces: list[bytes], decoded_length: int | None = None) -> tuple[list[Event], chunked.AwsChunkedDecoder]:
    decoder = chunked.AwsChunkedDecoder(decoded_length)
    events: list[Event] = []

    def drain() -> None:
        while True:
            event = decoder.next_event()
            if event is chunked.NEED_DATA:
                return
            events.append(event)
            if isinstance(event, (chunked.Malformed, chunked.EndOfBody)):
                return

    for piece in pieces:
        decoder.receive_data(piece)
        drain()
        if events and isinstance(events[-1], chunked.Malformed):
            return events, decoder
    decoder.receive_eof()
    drain()
    return events, decoder


def summary(events: list[Event]) -> tuple[bytes, tuple[Any, ...], Any]:
    """What a decode means, independent of how the data was split into events."""
    data = b"".join(e.data for e in events if isinstance(e, chunked.Data))
    headers = tuple((e.size, e.signature) for e in events if isinstance(e, chunked.ChunkHeader))
    last = events[-1] if events else None
    trailers = [e for e in events if isinstance(e, chunked.Trailers)]
    return data, headers, (trailers[0] if trailers else None, last)


BODY = unsigned_trailer_body(b"hello world, " * 50, 64, [("x-amz-checksum-crc32", "abc=")])


def test_decodes_botocore_wire_example() -> None:
    events, _ = decode([b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"], 5)
    assert events == [
        chunked.ChunkHeader(5, None),
        chunked.Data(b"hello"),
        chunked.ChunkEnd(),
        chunked.ChunkHeader(0, None),
        chunked.ChunkEnd(),
        chunked.Trailers((("x-amz-checksum-crc32", "NhCmhg=="),), None),
        chunked.EndOfBody(5),
    ]
    assert checksum("crc32", b"hello") == "NhCmhg=="


def test_every_split_decodes_the_same() -> None:
    whole = summary(decode([BODY])[0])
    assert whole[0] == b"hello world, " * 50 and isinstance(whole[2][1], chunked.EndOfBody)
    for at in range(len(BODY) + 1):
        assert summary(decode([BODY[:at], BODY[at:]])[0]) == whole
    assert summary(decode([bytes([b]) for b in BODY])[0]) == whole


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=3000),
    chunk=st.integers(1, 700),
    cuts=st.lists(st.integers(0, 4000), max_size=12),
    signed=st.booleans(),
)
def test_any_split_of_any_body_decodes_the_same(data: bytes, chunk: int, cuts: list[int], signed: bool) -> None:
    if signed:
        signer = ChunkSigner("AWS4-HMAC-SHA256", "20260101T000000Z", "20260101/us-east-1/s3/aws4_request", "0" * 64)
        body = signer.body(data, chunk, [trailer_crc32(data)])
    else:
        body = unsigned_trailer_body(data, chunk, [trailer_crc32(data)])
    points = sorted({min(c, len(body)) for c in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    events, _ = decode(pieces, len(data))
    got, headers, (trailers, last) = summary(events)
    assert got == data and isinstance(last, chunked.EndOfBody)
    assert all((size == 0) == (i == len(headers) - 1) for i, (size, _) in enumerate(headers))
    assert trailers is not None and dict(trailers.fields)["x-amz-checksum-crc32"] == checksum("crc32", data)
    assert (trailers.signature is not None) == signed


@settings(max_examples=400, deadline=None)
@given(
    position=st.integers(0, len(BODY) - 1),
    replacement=st.binary(min_size=0, max_size=8),
    cut=st.integers(0, len(BODY)),
    declared=st.one_of(st.none(), st.integers(0, 2000)),
)
def test_mutations_give_a_verdict_never_an_exception(
    position: int, replacement: bytes, cut: int, declared: int | None
) -> None:
    mutated = BODY[:position] + replacement + BODY[position + 1 :]
    events, _ = decode([mutated[:cut], mutated[cut:]], declared)
    assert events and isinstance(events[-1], (chunked.Malformed, chunked.EndOfBody))


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"5\r\nhel", chunked.Problem.TRUNCATED),
        (b"zz\r\n", chunked.Problem.MALFORMED),
        (b"0x5\r\nhello\r\n", chunked.Problem.MALFORMED),
        (b"5\r\nhelloXX0\r\n\r\n", chunked.Problem.MALFORMED),
        (b"5\nhello\r\n", chunked.Problem.MALFORMED),
        (b"f" * 5000, chunked.Problem.TOO_LARGE),
        (b"ffffffffffffffff\r\n", chunked.Problem.TOO_LARGE),
        (b"0\r\n" + b"x-a:" + b"b" * 4000 + b"\r\n" + (b"x-b:" + b"c" * 4000 + b"\r\n") * 4, chunked.Problem.TOO_LARGE),
        (b"0\r\nnocolon\r\n\r\n", chunked.Problem.MALFORMED),
        (b"0\r\n\r\nextra", chunked.Problem.MALFORMED),
    ],
)
def test_hostile_bodies(body: bytes, problem: chunked.Problem) -> None:
    events, _ = decode([body], 5 if body.startswith(b"ff") else None)
    assert isinstance(events[-1], chunked.Malformed) and events[-1].problem is problem, events[-1]


def test_declared_length_mismatch_is_truncated() -> None:
    events, _ = decode([b"5\r\nhello\r\n0\r\n\r\n"], 6)
    assert isinstance(events[-1], chunked.Malformed) and events[-1].problem is chunked.Problem.TRUNCATED


def test_linear_on_many_tiny_chunks() -> None:
    body = b"1\r\nx\r\n" * 200_000 + b"0\r\n\r\n"
    events, decoder = decode([body[i : i + 4096] for i in range(0, len(body), 4096)])
    assert isinstance(events[-1], chunked.EndOfBody) and decoder.decoded_length == 200_000


# -- chunk signatures: AWS's published example (S3 API reference "sigv4-streaming") ---------------


def test_aws_streaming_example_chain() -> None:
    key = StreamingKey(
        "AWS4-HMAC-SHA256",
        "20130524T000000Z",
        "20130524/us-east-1/s3/aws4_request",
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        sigv4_signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3"),
        None,
    )
    chain = [
        (b"a" * 65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
        (b"a" * 1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
        (b"", "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
    ]
    previous = key.seed_signature
    for data, signature in chain:
        to_sign = key.chunk_string_to_sign(previous, hashlib.sha256(data).hexdigest())
        assert key.verify(to_sign, signature)
        assert not key.verify(to_sign, signature[:-1] + "0")
        previous = signature


# -- checksums -----------------------------------------------------------------------------------


# The catalogue's check values: each CRC of b"123456789" (reveng.sourceforge.io/crc-catalogue).
CHECK_VALUES = {"crc32": 0xCBF43926, "crc32c": 0xE3069283, "crc64nvme": 0xAE8B14860A799888}


@pytest.mark.parametrize("name", ["crc32", "crc32c", "crc64nvme"])
def test_crcs_match_check_values_and_combine(name: str) -> None:
    function = crc_function(name)
    assert function(b"123456789", 0) == CHECK_VALUES[name]
    assert function(b"56789", function(b"1234", 0)) == CHECK_VALUES[name]
    data = os.urandom(100_001)
    if name == "crc32":
        assert function(data, 0) == zlib.crc32(data)
    parts = [(checksum(name, data[:40_000]), 40_000), (checksum(name, data[40_000:]), len(data) - 40_000)]
    assert full_object_crc(name, parts) == checksum(name, data)
    digits = [(checksum(name, part.encode()), len(part)) for part in ("1234", "", "5", "6789")]
    size = 8 if name == "crc64nvme" else 4
    assert full_object_crc(name, digits) == base64.b64encode(CHECK_VALUES[name].to_bytes(size, "big")).decode()
    assert composite(name, [p for p, _ in parts]).endswith("-2")


# -- live: every streaming form --------------------------------------------------------------------


def live_put(live: LiveServer, key: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    return send_raw(live.port, "PUT", f"/{NAMES_BUCKET}/{key}", headers, body)


def streaming_headers(data: bytes, body_value: str, trailer: str | None) -> dict[str, str]:
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
    }
    if trailer:
        headers["x-amz-trailer"] = trailer
    return headers


@pytest.mark.parametrize(
    "body_value, asymmetric",
    [
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", False),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", False),
        ("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", True),
        ("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER", True),
        ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", False),
    ],
)
def test_streaming_forms_round_trip(live: LiveServer, s3: Any, body_value: str, asymmetric: bool) -> None:
    data = os.urandom(150_000)
    with_trailer = body_value.endswith("TRAILER")
    key = f"stream/{body_value.lower()}"
    headers = streaming_headers(data, body_value, "x-amz-checksum-crc32" if with_trailer else None)
    host = f"127.0.0.1:{live.port}"
    signed, signer = crt_signed_headers(
        "PUT", host, f"/{NAMES_BUCKET}/{key}", headers, body_value, asymmetric=asymmetric
    )
    trailer = [trailer_crc32(data)] if with_trailer else None
    if body_value.startswith("STREAMING-UNSIGNED"):
        body = unsigned_trailer_body(data, 65536, trailer or [])
    else:
        body = signer.body(data, 65536, trailer)
    status, response_headers, payload = live_put(live, key, signed, body)
    assert status == 200, payload
    assert response_headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket=NAMES_BUCKET, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert "ContentEncoding" not in got  # aws-chunked is not stored
    if with_trailer:
        assert got["ChecksumCRC32"] == trailer_crc32(data)[1]
    if body_value.startswith("STREAMING-UNSIGNED"):
        return
    # A tampered chunk breaks the chain: SignatureDoesNotMatch, nothing stored.
    tampered = bytearray(body)
    tampered[body.index(b"\r\n") + 10] ^= 1
    signed2, _ = crt_signed_headers(
        "PUT", host, f"/{NAMES_BUCKET}/{key}-bad", headers, body_value, asymmetric=asymmetric
    )
    status, _, payload = live_put(live, f"{key}-bad", signed2, bytes(tampered))
    assert status == 403 and ET.fromstring(payload).findtext("Code") == "SignatureDoesNotMatch"
    assert f"{key}-bad" not in [o["Key"] for o in s3.list_objects_v2(Bucket=NAMES_BUCKET, Prefix="stream/")["Contents"]]


def test_trailer_mismatch_and_length_mismatch(live: LiveServer, s3: Any) -> None:
    data = b"x" * 1000
    host = f"127.0.0.1:{live.port}"
    body_value = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    headers = streaming_headers(data, body_value, "x-amz-checksum-crc32")
    signed, _ = crt_signed_headers("PUT", host, f"/{NAMES_BUCKET}/bad/digest", headers, body_value)
    wrong = unsigned_trailer_body(data, 300, [("x-amz-checksum-crc32", checksum("crc32", b"other"))])
    status, _, payload = live_put(live, "bad/digest", signed, wrong)
    assert status == 400 and ET.fromstring(payload).findtext("Code") == "BadDigest"
    short = {**headers, "x-amz-decoded-content-length": "1001"}
    signed, _ = crt_signed_headers("PUT", host, f"/{NAMES_BUCKET}/bad/length", short, body_value)
    status, _, payload = live_put(live, "bad/length", signed, unsigned_trailer_body(data, 300, [trailer_crc32(data)]))
    assert status == 400 and ET.fromstring(payload).findtext("Code") == "IncompleteBody"
    listed = s3.list_objects_v2(Bucket=NAMES_BUCKET, Prefix="bad/")
    assert listed["KeyCount"] == 0


def test_skewed_seed_is_refused(live: LiveServer) -> None:
    data = b"y" * 10
    body_value = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    headers = streaming_headers(data, body_value, None)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    signed, signer = crt_signed_headers(
        "PUT", f"127.0.0.1:{live.port}", f"/{NAMES_BUCKET}/old", headers, body_value, when=old
    )
    status, _, payload = live_put(live, "old", signed, signer.body(data, 5))
    assert status == 403 and ET.fromstring(payload).findtext("Code") == "RequestTimeTooSkewed"


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_every_checksum_algorithm_header_and_trailer(live: LiveServer, s3: Any, algorithm: str) -> None:
    name = algorithm.lower()
    data = os.urandom(50_000)
    put = s3.put_object(Bucket=NAMES_BUCKET, Key=f"sum/{name}", Body=data, ChecksumAlgorithm=algorithm)
    assert put[f"Checksum{algorithm}"] == checksum(name, data)  # header form (plain http)
    got = s3.get_object(Bucket=NAMES_BUCKET, Key=f"sum/{name}", ChecksumMode="ENABLED")
    assert got["Body"].read() == data and got[f"Checksum{algorithm}"] == checksum(name, data)
    body_value = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    headers = streaming_headers(data, body_value, f"x-amz-checksum-{name}")
    for value, status in ((checksum(name, data), 200), (checksum(name, data[1:]), 400)):
        signed, _ = crt_signed_headers(
            "PUT", f"127.0.0.1:{live.port}", f"/{NAMES_BUCKET}/sum/t-{name}", headers, body_value
        )
        body = unsigned_trailer_body(data, 16384, [(f"x-amz-checksum-{name}", value)])
        got_status, response_headers, payload = live_put(live, f"sum/t-{name}", signed, body)
        assert got_status == status, payload
        if status == 200:
            assert response_headers[f"x-amz-checksum-{name}"] == value
        else:
            assert ET.fromstring(payload).findtext("Code") == "BadDigest"
