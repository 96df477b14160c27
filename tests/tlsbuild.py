"""Build TLS ClientHello bytes for tests: handshake messages, records, GREASE, ECH, SSLv2.

The main entry points:
- `build_client_hello(sni="x", alpn=["h2"], ...) -> bytes`: a ClientHello handshake message
  (4-byte handshake header + body), ready for `to_records`;
- `to_records(handshake, record_sizes=None, record_version=0x0301) -> bytes`: wrap it in TLS
  records (one record, or fragments of the given payload sizes);
- `chrome_like_hello(sni, seed)`: GREASE, X25519MLKEM768 (1216-byte share), ECH GREASE, ALPS,
  permuted extension order, like Chrome 131+;
- `sslv2_client_hello()`: an SSLv2-compatible CLIENT-HELLO record;
- `extension`, `server_name_ext`, `alpn_ext`, ...: pieces for hand-made malformed hellos.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

GREASE_VALUES: tuple[int, ...] = tuple(0x0A0A + 0x1010 * i for i in range(16))

TLS13_CIPHERS = (0x1301, 0x1302, 0x1303)
DEFAULT_CIPHERS = (*TLS13_CIPHERS, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8)
DEFAULT_GROUPS = (0x001D, 0x0017, 0x0018)
DEFAULT_SIGALGS = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
X25519MLKEM768 = 0x11EC
X25519 = 0x001D

Extension = tuple[int, bytes]


def u8(n: int) -> bytes:
    return struct.pack("!B", n)


def u16(n: int) -> bytes:
    return struct.pack("!H", n)


def u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def vec8(data: bytes) -> bytes:
    return u8(len(data)) + data


def vec16(data: bytes) -> bytes:
    return u16(len(data)) + data


def u16s(values: Sequence[int]) -> bytes:
    return b"".join(u16(v) for v in values)


def extension(ext_type: int, data: bytes = b"") -> Extension:
    return (ext_type, data)


def server_name_ext(*names: str | bytes, entries: Sequence[tuple[int, bytes]] = ()) -> Extension:
    """server_name with host_name entries for `names`, then raw (name_type, name) `entries`."""
    items = [(0, n.encode("ascii") if isinstance(n, str) else n) for n in names]
    items += list(entries)
    body = b"".join(u8(t) + vec16(name) for t, name in items)
    return (0x0000, vec16(body))


def alpn_ext(protocols: Sequence[str | bytes]) -> Extension:
    names = [p.encode("latin-1") if isinstance(p, str) else p for p in protocols]
    return (0x0010, vec16(b"".join(vec8(n) for n in names)))


def supported_versions_ext(versions: Sequence[int]) -> Extension:
    return (0x002B, vec8(u16s(versions)))


def supported_groups_ext(groups: Sequence[int]) -> Extension:
    return (0x000A, vec16(u16s(groups)))


def ec_point_formats_ext(formats: Sequence[int] = (0,)) -> Extension:
    return (0x000B, vec8(bytes(formats)))


def signature_algorithms_ext(sigalgs: Sequence[int]) -> Extension:
    return (0x000D, vec16(u16s(sigalgs)))


def key_share_ext(shares: Sequence[tuple[int, int]]) -> Extension:
    """key_share with (group, share length) entries; share bytes are filler."""
    body = b"".join(u16(g) + vec16(bytes([0x42]) * n) for g, n in shares)
    return (0x0033, vec16(body))


def ech_ext(payload_len: int = 144) -> Extension:
    """An outer encrypted_client_hello (0xfe0d) like Chrome's ECH GREASE."""
    body = u8(0) + u16(0x0001) + u16(0x0001) + u8(0x2A) + vec16(b"\x11" * 32)
    return (0xFE0D, body + vec16(b"\x22" * payload_len))


def encode_extensions(extensions: Sequence[Extension]) -> bytes:
    return vec16(b"".join(u16(t) + vec16(data) for t, data in extensions))


def client_hello_body(
    *,
    legacy_version: int = 0x0303,
    session_id: bytes = b"\x5a" * 32,
    ciphers: Sequence[int] = DEFAULT_CIPHERS,
    compression: Sequence[int] = (0,),
    extensions: Sequence[Extension] | None = (),
) -> bytes:
    """A ClientHello body; `extensions=None` omits the extensions block (pre-TLS 1.2 style)."""
    body = u16(legacy_version) + bytes(range(32)) + vec8(session_id)
    body += vec16(u16s(ciphers)) + vec8(bytes(compression))
    if extensions is not None:
        body += encode_extensions(extensions)
    return body


def handshake(body: bytes, msg_type: int = 1) -> bytes:
    return u8(msg_type) + u24(len(body)) + body


def build_client_hello(
    sni: str | None = "example.com",
    alpn: Sequence[str | bytes] | None = ("h2", "http/1.1"),
    *,
    ciphers: Sequence[int] = DEFAULT_CIPHERS,
    extensions: Sequence[Extension] | None = None,
    extra_extensions: Sequence[Extension] = (),
    grease: bool = False,
    ech: bool = False,
    pq_share: bool = False,
    legacy_version: int = 0x0303,
    supported_versions: Sequence[int] | None = (0x0304, 0x0303),
    groups: Sequence[int] = DEFAULT_GROUPS,
    sigalgs: Sequence[int] = DEFAULT_SIGALGS,
    seed: int | None = None,
) -> bytes:
    """A ClientHello handshake message (header included).

    `extensions` replaces the generated extension list entirely; `extra_extensions` are
    appended to it. `grease` adds GREASE to ciphers, groups, versions, sigalgs and two
    extensions (first and last, like BoringSSL). `seed` permutes the extension order.
    """
    rng = random.Random(seed if seed is not None else 0)
    g = [rng.choice(GREASE_VALUES) for _ in range(6)]
    if grease:
        ciphers = (g[0], *ciphers)
        groups = (g[1], *groups)
        sigalgs = (g[5], *sigalgs)
        if supported_versions is not None:
            supported_versions = (g[2], *supported_versions)
    if pq_share:
        groups = (*groups[:1], X25519MLKEM768, *groups[1:]) if grease else (X25519MLKEM768, *groups)
    if extensions is None:
        exts: list[Extension] = []
        if sni is not None:
            exts.append(server_name_ext(sni))
        exts += [
            (0x0017, b""),  # extended_master_secret
            (0xFF01, b"\x00"),  # renegotiation_info
            supported_groups_ext(groups),
            ec_point_formats_ext(),
            (0x0023, b""),  # session_ticket
        ]
        if alpn is not None:
            exts.append(alpn_ext(alpn))
        exts.append(signature_algorithms_ext(sigalgs))
        shares = [(X25519MLKEM768, 1216)] if pq_share else []
        exts.append(key_share_ext([*shares, (X25519, 32)]))
        if supported_versions is not None:
            exts.append(supported_versions_ext(supported_versions))
        exts.append((0x002D, vec8(b"\x01")))  # psk_key_exchange_modes
        if ech:
            exts.append(ech_ext())
        if seed is not None:
            rng.shuffle(exts)
        if grease:
            exts = [(g[3], b""), *exts, (g[4] if g[4] != g[3] else g[3] ^ 0x1010, b"\x00")]
        extensions = exts
    return handshake(
        client_hello_body(
            legacy_version=legacy_version,
            ciphers=ciphers,
            extensions=[*extensions, *extra_extensions],
        )
    )


def chrome_like_hello(sni: str = "mrap.example.com", seed: int = 1) -> bytes:
    """A Chrome-131-style hello: GREASE, X25519MLKEM768 share, ECH GREASE, ALPS 0x44cd."""
    rng = random.Random(seed)
    g = rng.sample(GREASE_VALUES, 6)
    ciphers = (g[0], 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8,
               0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035)  # fmt: skip
    groups = (g[1], X25519MLKEM768, X25519, 0x0017, 0x0018)
    sigalgs = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
    exts: list[Extension] = [
        server_name_ext(sni),
        (0x0017, b""),
        (0xFF01, b"\x00"),
        supported_groups_ext(groups),
        ec_point_formats_ext(),
        (0x0023, b""),
        alpn_ext(["h2", "http/1.1"]),
        (0x0005, b"\x01\x00\x00\x00\x00"),  # status_request
        signature_algorithms_ext(sigalgs),
        (0x0012, b""),  # signed_certificate_timestamp
        key_share_ext([(g[2], 1), (X25519MLKEM768, 1216), (X25519, 32)]),
        (0x002D, vec8(b"\x01")),
        supported_versions_ext((g[3], 0x0304, 0x0303)),
        (0x001B, vec8(u16(0x0002))),  # compress_certificate: brotli
        (0x44CD, vec16(vec8(b"h2"))),  # application_settings (ALPS, new codepoint)
        ech_ext(),
    ]
    rng.shuffle(exts)  # Chrome permutes everything but GREASE (and pre_shared_key)
    exts = [(g[4], b""), *exts, (g[5], b"\x00")]
    return handshake(client_hello_body(ciphers=ciphers, extensions=exts))


def to_records(
    handshake_bytes: bytes,
    record_sizes: Sequence[int] | None = None,
    record_version: int = 0x0301,
    content_type: int = 0x16,
) -> bytes:
    """Wrap handshake bytes in records; `record_sizes` are payload sizes (last one: the rest)."""
    chunks: list[bytes] = []
    pos = 0
    for size in record_sizes or ():
        if pos >= len(handshake_bytes):
            break
        chunks.append(handshake_bytes[pos : pos + size])
        pos += size
    if pos < len(handshake_bytes) or not chunks:
        chunks.append(handshake_bytes[pos:])
    return b"".join(u8(content_type) + u16(record_version) + vec16(c) for c in chunks)


def record(payload: bytes, content_type: int = 0x16, version: int = 0x0301) -> bytes:
    """One raw record, no checks (for malformed cases)."""
    return u8(content_type) + u16(version) + vec16(payload)


def sslv2_client_hello(
    version: int = 0x0301,
    cipher_specs: Sequence[int] = (0x010080, 0x00C014, 0x000035, 0x00002F),
    session_id: bytes = b"",
    challenge: bytes = b"\x33" * 16,
) -> bytes:
    """An SSLv2-compatible CLIENT-HELLO record (2-byte header with the high bit set)."""
    specs = b"".join(s.to_bytes(3, "big") for s in cipher_specs)
    body = u8(1) + u16(version) + u16(len(specs)) + u16(len(session_id)) + u16(len(challenge))
    body += specs + session_id + challenge
    return u16(0x8000 | len(body)) + body
