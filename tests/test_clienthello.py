"""The sans-IO ClientHello reader: unit vectors, splits, re-fragmentation, fuzzing, real clients.

Hellos are built with tests/tlsbuild.py; real ones come from tests/vectors/ and from clients
run against a loopback listener (`capture_client_hello`).
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrapsim.outcomes import Outcome
from mrapsim.tls.clienthello import ClientHello, ClientHelloReader, Rejection, is_grease
from tests import tlsbuild as tb

VECTORS = Path(__file__).parent / "vectors"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse(stream: bytes, max_size: int = 16384) -> ClientHello | Rejection | None:
    return ClientHelloReader(max_size).feed(stream)


def hello(stream: bytes) -> ClientHello:
    result = parse(stream)
    assert isinstance(result, ClientHello), result
    return result


def rejection(stream: bytes, outcome: Outcome, max_size: int = 16384) -> Rejection:
    result = parse(stream, max_size)
    assert isinstance(result, Rejection), result
    assert result.outcome is outcome, result
    return result


def feed_pieces(pieces: Sequence[bytes], max_size: int = 16384) -> ClientHello | Rejection | None:
    reader = ClientHelloReader(max_size)
    result = None
    for piece in pieces:
        result = reader.feed(piece)
    return result


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def load_vector(name: str) -> bytes:
    return bytes.fromhex((VECTORS / name).read_text())


DEFAULT = tb.to_records(tb.build_client_hello())


# -- well-formed hellos ------------------------------------------------------------------------


def test_parses_the_fields_the_edge_uses() -> None:
    h = hello(DEFAULT)
    assert h.server_name == "example.com"
    assert h.sni_extension_present
    assert h.alpn == (b"h2", b"http/1.1")
    assert h.alpn_names == ("h2", "http/1.1")
    assert h.record_version == 0x0301
    assert h.legacy_version == 0x0303
    assert h.cipher_suites == tb.DEFAULT_CIPHERS
    assert h.compression_methods == (0,)
    assert h.supported_versions == (0x0304, 0x0303)
    assert h.versions_offered == (0x0304, 0x0303)
    assert h.supported_groups == tb.DEFAULT_GROUPS
    assert h.ec_point_formats == (0,)
    assert h.signature_algorithms == tb.DEFAULT_SIGALGS
    assert h.extensions[0] == 0x0000 and 0x0010 in h.extensions
    assert not h.ech_offered and not h.sslv2
    assert (h.size, h.records) == (len(DEFAULT), 1)


def test_sni_is_kept_as_sent() -> None:
    # No normalisation here: case, trailing dot and IP literals are the router's business.
    for name in ("MRAP.Example.COM", "bucket.example.com.", "192.0.2.1", "xn--caf-dma.example"):
        assert hello(tb.to_records(tb.build_client_hello(sni=name))).server_name == name


def test_no_sni_extension() -> None:
    h = hello(tb.to_records(tb.build_client_hello(sni=None)))
    assert h.server_name is None and not h.sni_extension_present


def test_server_name_list_skips_non_host_name_entries() -> None:
    sni = tb.server_name_ext("real.example.com", entries=[(1, b"not-a-host"), (7, b"\x00\xff")])
    h = hello(tb.to_records(tb.build_client_hello(sni=None, extra_extensions=[sni])))
    assert h.server_name == "real.example.com"
    first = tb.server_name_ext(entries=[(5, b"x"), (0, b"late.example.com")])
    assert (
        hello(tb.to_records(tb.build_client_hello(sni=None, extra_extensions=[first]))).server_name
        == "late.example.com"
    )


def test_server_name_list_with_only_other_types_has_no_name() -> None:
    sni = tb.server_name_ext(entries=[(1, b"opaque")])
    h = hello(tb.to_records(tb.build_client_hello(sni=None, extra_extensions=[sni])))
    assert h.server_name is None and h.sni_extension_present


def test_grease_everywhere_is_accepted_and_kept() -> None:
    h = hello(tb.to_records(tb.build_client_hello(grease=True, seed=3)))
    assert is_grease(h.cipher_suites[0])
    assert is_grease(h.extensions[0]) and is_grease(h.extensions[-1])
    assert is_grease(h.supported_groups[0]) and is_grease(h.signature_algorithms[0])
    assert is_grease(h.supported_versions[0])
    assert h.versions_offered == (0x0304, 0x0303)
    assert h.server_name == "example.com"


def test_is_grease() -> None:
    assert [v for v in range(0x10000) if is_grease(v)] == list(tb.GREASE_VALUES)


def test_versions_offered_falls_back_to_legacy_version() -> None:
    h = hello(tb.to_records(tb.build_client_hello(supported_versions=None, legacy_version=0x0303)))
    assert h.supported_versions == () and h.versions_offered == (0x0303,)
    only_grease = tb.build_client_hello(supported_versions=[0x3A3A], legacy_version=0x0302)
    assert hello(tb.to_records(only_grease)).versions_offered == (0x0302,)


def test_ech_offered_and_outer_sni() -> None:
    h = hello(tb.to_records(tb.build_client_hello(sni="public.example.com", ech=True)))
    assert h.ech_offered and h.server_name == "public.example.com"


def test_chromium_post_quantum_grease_hello() -> None:
    """Chromium with an X25519MLKEM768 share and GREASE: ~1.7 KB, arrives in 2 TCP segments."""
    stream = tb.to_records(tb.chrome_like_hello("mrap.example.com"))
    assert len(stream) > 1500
    h = feed_pieces([stream[:1448], stream[1448:]])  # two MSS-sized segments
    assert isinstance(h, ClientHello)
    assert h.server_name == "mrap.example.com" and h.ech_offered
    assert 0x11EC in h.supported_groups and 0x44CD in h.extensions
    assert h.versions_offered == (0x0304, 0x0303)
    assert feed_pieces([stream[:1], stream[1:]]) == h


def test_tls10_style_hello_without_extensions() -> None:
    body = tb.client_hello_body(legacy_version=0x0301, session_id=b"", extensions=None)
    h = hello(tb.to_records(tb.handshake(body)))
    assert h.extensions == () and h.server_name is None and h.versions_offered == (0x0301,)


def test_unknown_alpn_bytes_are_kept_raw() -> None:
    h = hello(tb.to_records(tb.build_client_hello(alpn=[b"\xffx\x00", b""])))
    assert h.alpn == (b"\xffx\x00", b"")
    assert h.alpn_names == ("\\xffx\x00", "")


def test_sslv2_compatible_hello() -> None:
    stream = tb.sslv2_client_hello()
    h = hello(stream)
    assert h.sslv2 and h.server_name is None and not h.sni_extension_present
    assert h.legacy_version == 0x0301 and h.versions_offered == (0x0301,)
    assert h.cipher_suites == (0x010080, 0xC014, 0x0035, 0x002F)
    assert (h.size, h.records) == (len(stream), 1)
    assert feed_pieces([bytes([b]) for b in stream]) == h
    assert hello(tb.sslv2_client_hello(version=0x0002)).legacy_version == 0x0002


def test_sslv2_hello_too_large_and_malformed() -> None:
    big = tb.sslv2_client_hello(cipher_specs=[0x010080] * 300)
    rejection(big, Outcome.TOO_LARGE, max_size=512)
    rejection(tb.sslv2_client_hello(cipher_specs=[]), Outcome.MALFORMED)
    rejection(tb.sslv2_client_hello(challenge=b"x" * 8), Outcome.MALFORMED)
    rejection(b"\x80\x01\x01\x03\x01", Outcome.MALFORMED)  # record too short to be a hello
    short = bytearray(tb.sslv2_client_hello())
    short[1] += 1  # record says one byte more than the hello holds: trailing garbage inside
    rejection(bytes(short) + b"\x00", Outcome.MALFORMED)


# -- fragmentation ---------------------------------------------------------------------------


def test_one_byte_at_a_time_equals_whole() -> None:
    stream = tb.to_records(tb.chrome_like_hello())
    reader = ClientHelloReader()
    results = [reader.feed(bytes([b])) for b in stream]
    assert all(r is None for r in results[:-1])
    assert results[-1] == hello(stream)
    assert reader.bytes_received == len(stream)


def test_multi_record_hello() -> None:
    hs = tb.build_client_hello(grease=True, pq_share=True)
    stream = tb.to_records(hs, [1, 3, 100, 7])
    h = hello(stream)
    assert h.records == 5 and h.size == len(stream) == len(hs) + 5 * 5
    assert dataclasses.replace(h, records=1, size=len(hs) + 5) == hello(tb.to_records(hs))


def test_record_version_is_the_first_records() -> None:
    hs = tb.build_client_hello()
    stream = tb.to_records(hs[:10], record_version=0x0300) + tb.to_records(hs[10:], record_version=0x0303)
    assert hello(stream).record_version == 0x0300


def test_bytes_after_the_hello_are_ignored() -> None:
    after = tb.record(b"\x17" * 40, content_type=0x17) + b"GET / HTTP/1.1\r\n"
    h = hello(DEFAULT + after)
    assert h == hello(DEFAULT) and h.size == len(DEFAULT)
    # ...also inside the last record (the rest of a record after the handshake message).
    hs = tb.build_client_hello()
    assert hello(tb.record(hs + b"\x0b\x00\x00\x00")).size == 5 + len(hs)


def test_result_is_final_and_feeding_on_is_allowed() -> None:
    reader = ClientHelloReader()
    first = reader.feed(DEFAULT)
    assert reader.feed(b"more") is first and reader.feed(b"") is first
    assert reader.result is first and reader.bytes_received == len(DEFAULT) + 4
    bad = ClientHelloReader()
    verdict = bad.feed(b"GET /")
    assert bad.feed(DEFAULT) is verdict


def test_empty_feed_needs_more() -> None:
    reader = ClientHelloReader()
    assert reader.feed(b"") is None and reader.result is None


# -- not TLS ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "hint"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "plain HTTP"),
        (b"PRI * HTTP/2.0\r\n", "plain HTTP"),
        (b"\x00\x00\x00\x00", "0x00"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "0x53"),
        (b"\x17\x03\x03\x00\x10", "not start with a ClientHello"),
        (b"\x15\x03\x03\x00\x02\x02\x28", "not start with a ClientHello"),
        (b"\x16\x02\x00\x00\x10", "major version 2"),
        (b"\x16\x00", "major version 0"),
        (b"\x80\x2e\x02\x03\x01", "0x80"),  # high bit, but not message type 1
        (b"\xff\xff\xff\xff", "0xff"),
        (b"\x81\x01\x01\x02\x00", "0x81"),  # SSLv2 header, type 1, but version major 2
    ],
)
def test_not_tls(stream: bytes, hint: str) -> None:
    assert hint in rejection(stream, Outcome.NOT_TLS).reason


def test_not_tls_is_decided_from_the_first_bytes() -> None:
    verdict = ClientHelloReader().feed(b"G")
    assert isinstance(verdict, Rejection) and verdict.outcome is Outcome.NOT_TLS
    reader = ClientHelloReader()
    assert reader.feed(b"\x16") is None
    assert isinstance(reader.feed(b"\x04"), Rejection)
    maybe_v2 = ClientHelloReader()
    assert maybe_v2.feed(b"\x80") is None and maybe_v2.feed(b"\x2e") is None


# -- malformed -------------------------------------------------------------------------------

SNI_OK = tb.server_name_ext("ok.example.com")


def with_extensions(*extensions: tb.Extension) -> bytes:
    return tb.to_records(tb.build_client_hello(extensions=list(extensions)))


def body_hello(**kwargs: object) -> bytes:
    return tb.to_records(tb.handshake(tb.client_hello_body(**kwargs)))  # type: ignore[arg-type]


def patched(stream: bytes, offset: int, value: bytes) -> bytes:
    return stream[:offset] + value + stream[offset + len(value) :]


HS = tb.build_client_hello()
CH_BODY = HS[4:]

MALFORMED_CASES: dict[str, tuple[bytes, str]] = {
    "two host_names": (
        with_extensions(tb.server_name_ext("a.example", "b.example")),
        "two host_name",
    ),
    "empty host_name": (with_extensions(tb.server_name_ext(b"")), "empty host_name"),
    "non-ASCII host_name": (
        with_extensions(tb.server_name_ext("caf\u00e9.example".encode())),
        "0xc3",
    ),
    "NUL in host_name": (with_extensions(tb.server_name_ext(b"a\x00.example")), "0x00"),
    "DEL in host_name": (with_extensions(tb.server_name_ext(b"a\x7f.example")), "0x7f"),
    "newline in host_name": (with_extensions(tb.server_name_ext(b"a\n.example")), "0x0a"),
    "empty server_name list": (with_extensions((0x0000, tb.vec16(b""))), "empty server_name"),
    "empty server_name extension": (with_extensions((0x0000, b"")), "server_name list length"),
    "server_name list overrun": (with_extensions((0x0000, b"\x00\x10\x00\x00\x01a")), "overruns"),
    "server_name trailing bytes": (with_extensions((SNI_OK[0], SNI_OK[1] + b"\x00")), "trailing"),
    "host_name overrun": (with_extensions((0x0000, tb.vec16(b"\x00\x00\x09abc"))), "overruns"),
    "duplicate extension": (
        with_extensions(SNI_OK, (0x0017, b""), (0x0017, b"")),
        "duplicate extension 0x0017",
    ),
    "duplicate GREASE extension": (
        with_extensions((0x0A0A, b""), SNI_OK, (0x0A0A, b"")),
        "duplicate",
    ),
    "duplicate SNI extension": (with_extensions(SNI_OK, SNI_OK), "duplicate extension 0x0000"),
    "ALPN list overrun": (with_extensions((0x0010, b"\x00\x05\x02h2")), "overruns"),
    "ALPN name overrun": (with_extensions((0x0010, tb.vec16(b"\x09h2"))), "overruns"),
    "supported_versions odd": (with_extensions((0x002B, b"\x03\x03\x04\x03")), "multiple of 2"),
    "supported_groups trailing": (with_extensions((0x000A, b"\x00\x02\x00\x1d\x00")), "trailing"),
    "sigalgs truncated": (with_extensions((0x000D, b"\x00")), "needs 2 bytes"),
    "extension overruns the extensions vector": (
        tb.to_records(tb.handshake(CH_BODY[:-4] + b"\x00\x09" + CH_BODY[-2:])),
        "overruns",
    ),
    "extensions vector overruns the body": (
        tb.to_records(tb.handshake(tb.client_hello_body(extensions=None) + b"\x00\x08\x00\x17\x00\x00")),
        "overruns",
    ),
    "trailing data after extensions": (tb.to_records(tb.handshake(CH_BODY + b"\x00")), "trailing"),
    "trailing byte after compression": (
        tb.to_records(tb.handshake(tb.client_hello_body(extensions=None) + b"\x00")),
        "extensions length",
    ),
    "odd cipher_suites": (
        tb.to_records(tb.handshake(bytes(35) + b"\x00\x03\x13\x01\x00\x01\x00")),
        "multiple of 2",
    ),
    "empty cipher_suites": (body_hello(ciphers=[]), "empty cipher_suites"),
    "empty compression": (body_hello(compression=[]), "empty compression"),
    "session_id over 32": (body_hello(session_id=b"s" * 33), "legacy_session_id is 33"),
    "truncated body": (tb.to_records(tb.handshake(CH_BODY[:30])), "needs"),
    "zero-length handshake": (tb.record(b"\x01\x00\x00\x00"), "legacy_version"),
    "handshake type 2": (tb.to_records(tb.handshake(CH_BODY, msg_type=2)), "handshake type 2"),
    "zero-length first record": (tb.record(b"") + DEFAULT, "zero-length"),
    "zero-length later record": (
        tb.record(HS[:10]) + tb.record(b"") + tb.record(HS[10:]),
        "zero-length",
    ),
    "record over 2^14": (b"\x16\x03\x01\x40\x01" + HS, "exceeds 2^14"),
    "alert interleaved": (
        tb.record(HS[:10]) + tb.record(b"\x02\x28", 0x15) + tb.record(HS[10:]),
        "0x15 interleaved",
    ),
    "ccs interleaved": (
        tb.record(HS[:10]) + tb.record(b"\x01", 0x14) + tb.record(HS[10:]),
        "0x14 interleaved",
    ),
    "later record version 2": (
        tb.record(HS[:10]) + tb.record(HS[10:], version=0x0200),
        "major version 2",
    ),
}


@pytest.mark.parametrize("name", list(MALFORMED_CASES))
def test_malformed(name: str) -> None:
    stream, reason = MALFORMED_CASES[name]
    verdict = rejection(stream, Outcome.MALFORMED)
    assert reason in verdict.reason
    assert feed_pieces([bytes([b]) for b in stream]) == verdict


def test_malformed_is_decided_without_waiting_for_the_whole_hello() -> None:
    interleaved = tb.record(HS[:10]) + b"\x17"
    assert isinstance(ClientHelloReader().feed(interleaved), Rejection)
    server_hello = tb.record(b"\x02\x00\x01\x00")
    assert isinstance(ClientHelloReader().feed(server_hello[:6]), Rejection)


# -- size bounds -----------------------------------------------------------------------------


def padded_hello(total: int) -> bytes:
    """A ClientHello handshake message of exactly `total` bytes (padding extension 0x0015)."""
    base = len(tb.build_client_hello(extra_extensions=[(0x0015, b"")]))
    return tb.build_client_hello(extra_extensions=[(0x0015, b"\x00" * (total - base))])


def test_max_size_hello_is_accepted_and_one_more_byte_is_too_large() -> None:
    assert len(padded_hello(16384)) == 16384
    h = hello(tb.to_records(padded_hello(16384)))
    assert h.size == 16384 + 5
    verdict = rejection(tb.to_records(padded_hello(16385), [16000]), Outcome.TOO_LARGE)
    assert "16385" in verdict.reason


def test_too_large_is_decided_from_the_handshake_header() -> None:
    reader = ClientHelloReader(max_size=1024)
    stream = tb.to_records(padded_hello(2000))
    assert reader.feed(stream[:8]) is None  # 3 of the 4 handshake header bytes
    verdict = reader.feed(stream[8:9])
    assert isinstance(verdict, Rejection) and verdict.outcome is Outcome.TOO_LARGE
    assert reader.bytes_received == 9


def test_tiny_records_cannot_make_the_reader_buffer_without_bound() -> None:
    hs = padded_hello(12000)  # under the 16 KiB cap, but 1-byte records make it 72 KB
    stream = tb.to_records(hs, [1] * len(hs))
    verdict = rejection(stream, Outcome.TOO_LARGE)
    assert "32768" in verdict.reason
    reader = ClientHelloReader()
    for i in range(0, len(stream), 6):
        if reader.feed(stream[i : i + 6]) is not None:
            break
    assert 2 * 16384 <= reader.bytes_received < 2 * 16384 + 6  # stopped at the stream cap
    # A normal-sized hello in 1-byte records is fine: it stays under 2 x max_size.
    small = tb.build_client_hello()
    assert hello(tb.to_records(small, [1] * len(small))).records == len(small)


def test_stream_cap_is_configurable() -> None:
    stream = tb.to_records(HS, [50] * 20)
    rejection_ = ClientHelloReader(max_stream_bytes=100).feed(stream)
    assert isinstance(rejection_, Rejection) and rejection_.outcome is Outcome.TOO_LARGE
    assert isinstance(ClientHelloReader(max_stream_bytes=len(stream)).feed(stream), ClientHello)


def test_feeding_is_linear_in_bytes() -> None:
    """A max-size hello a byte at a time, and the worst tiny-record stream, both stay fast."""
    streams = [
        tb.to_records(padded_hello(16384)),
        tb.to_records(padded_hello(16000), [1] * 16000),
    ]
    start = time.perf_counter()
    for stream in streams:
        reader = ClientHelloReader()
        for i in range(len(stream)):
            if reader.feed(stream[i : i + 1]) is not None:
                break
        assert reader.result is not None
    assert time.perf_counter() - start < 2.0  # ~0.1 s linear; quadratic would be minutes


# -- properties ------------------------------------------------------------------------------

hostnames = st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}\.?", fullmatch=True)
alpn_lists = st.none() | st.lists(st.binary(min_size=1, max_size=12), max_size=4)


@st.composite
def handshakes(draw: st.DrawFn) -> bytes:
    return tb.build_client_hello(
        sni=draw(st.none() | hostnames),
        alpn=draw(alpn_lists),
        ciphers=draw(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=40)),
        grease=draw(st.booleans()),
        ech=draw(st.booleans()),
        pq_share=draw(st.booleans()),
        supported_versions=draw(st.none() | st.just((0x0304, 0x0303))),
        seed=draw(st.none() | st.integers(0, 1000)),
    )


@FUZZ
@given(hs=handshakes(), cuts=st.lists(st.integers(0, 1 << 16), max_size=12))
def test_any_split_parses_like_the_whole(hs: bytes, cuts: list[int]) -> None:
    stream = tb.to_records(hs)
    assert feed_pieces(split_at(stream, cuts)) == hello(stream)


@FUZZ
@given(
    hs=handshakes(),
    sizes=st.lists(st.integers(1, 400), max_size=30),
    version=st.sampled_from([0x0301, 0x0303]),
)
def test_any_record_fragmentation_parses_alike(hs: bytes, sizes: list[int], version: int) -> None:
    stream = tb.to_records(hs, sizes, record_version=version)
    h = hello(stream)
    records = len(stream) - len(hs)
    assert h.size == len(stream) and h.records * 5 == records
    assert h == dataclasses.replace(hello(tb.to_records(hs, record_version=version)), size=h.size, records=h.records)


def check_never_raises(stream: bytes, cuts: list[int]) -> None:
    whole = parse(stream)
    assert whole is None or isinstance(whole, ClientHello | Rejection)
    # The verdict, reason included, does not depend on how the bytes were split.
    assert feed_pieces(split_at(stream, cuts)) == whole


@FUZZ
@given(hs=handshakes(), data=st.data())
def test_mutated_hellos_never_raise(hs: bytes, data: st.DataObject) -> None:
    stream = bytearray(tb.to_records(hs, data.draw(st.lists(st.integers(1, 300), max_size=3))))
    for _ in range(data.draw(st.integers(1, 4))):
        stream[data.draw(st.integers(0, len(stream) - 1))] = data.draw(st.integers(0, 255))
    end = data.draw(st.integers(0, len(stream)))
    check_never_raises(bytes(stream[:end]), data.draw(st.lists(st.integers(0, 5000), max_size=5)))


@FUZZ
@given(stream=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400), max_size=5))
def test_random_bytes_never_raise(stream: bytes, cuts: list[int]) -> None:
    check_never_raises(stream, cuts)
    check_never_raises(b"\x16\x03\x01" + stream, cuts)  # past the record-type check


@FUZZ
@given(body=st.binary(max_size=200), cuts=st.lists(st.integers(0, 400), max_size=5))
def test_random_handshake_bodies_never_raise(body: bytes, cuts: list[int]) -> None:
    check_never_raises(tb.to_records(tb.handshake(body)), cuts)
    check_never_raises(b"\x80" + bytes([len(body) + 1]) + b"\x01" + body, cuts)


@FUZZ
@given(hs=handshakes(), end=st.integers(0, 1 << 16))
def test_truncated_hello_needs_more(hs: bytes, end: int) -> None:
    stream = tb.to_records(hs, [100, 100])
    assert parse(stream[: end % len(stream)]) is None


# -- recorded and live real clients ----------------------------------------------------------

REAL_SNI = "mrap-test.example.com"
VECTOR_EXPECTATIONS: dict[str, tuple[str | None, tuple[bytes, ...]]] = {
    "openssl-3.0.19-s_client.hex": (REAL_SNI, (b"h2", b"http/1.1")),
    "curl-7.88.1-openssl-3.0.19.hex": (REAL_SNI, (b"h2", b"http/1.1")),
    "python-3.11.7-ssl-openssl-3.0.19.hex": (REAL_SNI, (b"h2", b"http/1.1")),
    "node-20.20.2.hex": (REAL_SNI, (b"h2", b"http/1.1")),
    "java-17.0.15-jsse.hex": (REAL_SNI, (b"h2", b"http/1.1")),
    "synthetic-chrome131-pq-grease-ech.hex": ("mrap.example.com", (b"h2", b"http/1.1")),
    "synthetic-chrome131-pq-grease-ech-3-records.hex": ("mrap.example.com", (b"h2", b"http/1.1")),
    "synthetic-sslv2-compat.hex": (None, ()),
}


def test_every_vector_file_is_checked() -> None:
    assert sorted(p.name for p in VECTORS.glob("*.hex")) == sorted(VECTOR_EXPECTATIONS)


@pytest.mark.parametrize("name", sorted(VECTOR_EXPECTATIONS))
def test_recorded_vectors(name: str) -> None:
    stream = load_vector(name)
    h = hello(stream)
    assert (h.server_name, h.alpn) == VECTOR_EXPECTATIONS[name]
    assert h.size == len(stream)
    assert feed_pieces([bytes([b]) for b in stream]) == h
    if name.startswith("synthetic-chrome"):
        assert 0x11EC in h.supported_groups and h.ech_offered
        assert any(is_grease(e) for e in h.extensions)
        assert h.records == (3 if "3-records" in name else 1)


JAVA_CLIENT = """
import javax.net.ssl.*;
import java.util.List;
public class Main {
    public static void main(String[] a) throws Exception {
        SSLSocket s = (SSLSocket) SSLSocketFactory.getDefault()
            .createSocket("127.0.0.1", Integer.parseInt(a[0]));
        SSLParameters p = s.getSSLParameters();
        p.setServerNames(List.of(new SNIHostName(a[1])));
        p.setApplicationProtocols(new String[] {"h2", "http/1.1"});
        s.setSSLParameters(p);
        try { s.startHandshake(); } catch (Exception e) { }
    }
}
"""

NODE_CLIENT = """
const tls = require('tls');
const s = tls.connect({host: '127.0.0.1', port: +process.argv[1], servername: process.argv[2],
                       ALPNProtocols: ['h2', 'http/1.1'], rejectUnauthorized: false});
s.on('error', () => {});
"""

PYTHON_CLIENT = """
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.set_alpn_protocols(["h2", "http/1.1"])
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
try:
    ctx.wrap_socket(raw, server_hostname=sys.argv[2])
except (OSError, ssl.SSLError):
    pass
"""


def client_argv(name: str, port: int, workdir: Path) -> list[str]:
    """The command line of one real client, connecting to `port` with SNI `REAL_SNI`."""
    if name == "openssl":
        return ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                "-servername", REAL_SNI, "-alpn", "h2,http/1.1"]  # fmt: skip
    if name == "curl":
        return ["curl", "-sk", "--max-time", "5", "--resolve", f"{REAL_SNI}:{port}:127.0.0.1",
                f"https://{REAL_SNI}:{port}/"]  # fmt: skip
    if name == "python":
        return [sys.executable, "-c", PYTHON_CLIENT, str(port), REAL_SNI]
    if name == "node":
        return ["node", "-e", NODE_CLIENT, str(port), REAL_SNI]
    if name == "java":
        source = workdir / "Main.java"
        source.write_text(JAVA_CLIENT)
        return ["java", str(source), str(port), REAL_SNI]
    raise ValueError(name)


def capture_client_hello(
    argv_for_port: Callable[[int], Sequence[str]], timeout: float = 20.0
) -> tuple[bytes, ClientHello | Rejection | None]:
    """Run a client against a loopback listener; return the hello's bytes and the verdict.

    Reads the accepted connection until a `ClientHelloReader` returns a result, closes it and
    kills the client. The bytes returned are those that carried the hello (all read bytes if
    there was no hello).
    """
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(timeout)
        port = listener.getsockname()[1]
        client = subprocess.Popen(
            list(argv_for_port(port)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            conn, _ = listener.accept()
            with conn:
                return _read_hello(conn, time.monotonic() + timeout)
        finally:
            client.kill()
            client.wait()


def _read_hello(conn: socket.socket, deadline: float) -> tuple[bytes, ClientHello | Rejection | None]:
    reader = ClientHelloReader()
    stream = bytearray()
    result: ClientHello | Rejection | None = None
    while result is None and time.monotonic() < deadline:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        data = conn.recv(65536)
        if not data:
            break
        stream += data
        result = reader.feed(data)
    size = result.size if isinstance(result, ClientHello) else len(stream)
    return bytes(stream[:size]), result


@pytest.mark.parametrize("client", ["openssl", "curl", "python", "node", "java"])
def test_real_client_hello(client: str, tmp_path: Path) -> None:
    program = sys.executable if client == "python" else client
    if shutil.which(program) is None:
        pytest.skip(f"{client} is not installed")
    raw, result = capture_client_hello(lambda port: client_argv(client, port, tmp_path))
    assert isinstance(result, ClientHello), result
    assert result.server_name == REAL_SNI
    assert result.alpn == (b"h2", b"http/1.1")
    assert 0x0304 in result.versions_offered
    assert result.size == len(raw) and hello(raw) == result
