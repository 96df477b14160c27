"""JA3 and JA4 fingerprints of a parsed ClientHello, for the connection record.

- JA3 (salesforce/ja3): `version,ciphers,extensions,groups,point_formats` in decimal, values
  joined by `-`, GREASE removed, version = legacy_version; `ja3` is its MD5. Unstable for
  clients that permute extensions (Chrome), which is why JA4 sorts.
- JA4 (FoxIO-LLC/ja4 technical_details/JA4.md, BSD-3): `a_b_c` where
  a = `t` + version + `d`/`i` (SNI extension present or not) + cipher count + extension count
      + first/last character of the first ALPN value;
  b = SHA-256[:12] of the sorted cipher codes (4-digit hex, comma-joined);
  c = SHA-256[:12] of the sorted extension codes minus SNI (0000) and ALPN (0010), then `_`
      and the signature algorithms in wire order (no `_` when there are none).
  GREASE is ignored everywhere; counts are capped at 99; empty lists hash to `000000000000`.
  `ja4_raw` is JA4_r: the same with the lists shown instead of hashed.

SSLv2-compatible hellos have no extensions: their JA4 reads `t<ver>i<nn>00..._<hash>_000000000000`
with the version from the hello (0x0002 gives `s2`), and their 3-byte cipher specs written in hex
(`0x010080` as `010080`, TLS suites offered the SSLv2 way as ordinary 4-digit codes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from mrapsim.tls.clienthello import EXT_ALPN, EXT_SERVER_NAME, ClientHello, is_grease

_VERSION_CODES: dict[int, str] = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
_EMPTY_HASH = "000000000000"


def _real(values: Iterable[int]) -> list[int]:
    return [v for v in values if not is_grease(v)]


def ja3_string(hello: ClientHello) -> str:
    """The JA3 input string (before hashing)."""
    fields = (
        [hello.legacy_version],
        _real(hello.cipher_suites),
        _real(hello.extensions),
        _real(hello.supported_groups),
        list(hello.ec_point_formats),
    )
    return ",".join("-".join(str(v) for v in field) for field in fields)


def ja3(hello: ClientHello) -> str:
    """JA3: the MD5 hex digest of `ja3_string`."""
    return hashlib.md5(ja3_string(hello).encode("ascii"), usedforsecurity=False).hexdigest()


def _version_code(hello: ClientHello) -> str:
    # The highest non-GREASE supported_versions value, else legacy_version; the record version
    # is ignored (JA4.md "TLS and DTLS Version").
    versions = _real(hello.supported_versions)
    version = max(versions) if versions else hello.legacy_version
    return _VERSION_CODES.get(version, "00")


def _is_alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def _alpn_code(hello: ClientHello) -> str:
    """First and last character of the first ALPN value; hex digits if either is not alnum."""
    if not hello.alpn or not hello.alpn[0]:
        return "00"
    first = hello.alpn[0]
    if _is_alnum(first[0]) and _is_alnum(first[-1]):
        return chr(first[0]) + chr(first[-1])
    hexed = first.hex()
    return hexed[0] + hexed[-1]


def _ja4_a(hello: ClientHello) -> str:
    ciphers = min(len(_real(hello.cipher_suites)), 99)
    extensions = min(len(_real(hello.extensions)), 99)
    sni = "d" if hello.sni_extension_present else "i"
    return f"t{_version_code(hello)}{sni}{ciphers:02d}{extensions:02d}{_alpn_code(hello)}"


def _hex_list(values: Iterable[int]) -> str:
    # 4 hex digits per code; only SSLv2 cipher specs (3 bytes) need 6.
    return ",".join(f"{v:04x}" if v <= 0xFFFF else f"{v:06x}" for v in values)


def _ja4_b_raw(hello: ClientHello) -> str:
    return _hex_list(sorted(_real(hello.cipher_suites)))


def _ja4_c_raw(hello: ClientHello) -> str:
    """Sorted extensions minus SNI and ALPN, then `_` and the signature algorithms in order."""
    extensions = sorted(e for e in _real(hello.extensions) if e not in (EXT_SERVER_NAME, EXT_ALPN))
    sigalgs = _real(hello.signature_algorithms)
    text = _hex_list(extensions)
    return f"{text}_{_hex_list(sigalgs)}" if sigalgs else text


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


def ja4(hello: ClientHello) -> str:
    """FoxIO JA4, e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`."""
    ciphers = _ja4_b_raw(hello)
    b = _hash12(ciphers) if ciphers else _EMPTY_HASH
    # FoxIO tests the sorted extension list (not the sigalgs) for the "no values" sentinel.
    has_extensions = any(e not in (EXT_SERVER_NAME, EXT_ALPN) for e in _real(hello.extensions))
    c = _hash12(_ja4_c_raw(hello)) if has_extensions else _EMPTY_HASH
    return f"{_ja4_a(hello)}_{b}_{c}"


def ja4_raw(hello: ClientHello) -> str:
    """JA4_r: JA4 with the sorted lists written out instead of hashed."""
    return f"{_ja4_a(hello)}_{_ja4_b_raw(hello)}_{_ja4_c_raw(hello)}"


FINGERPRINTS_KEPT = 1024  # distinct ClientHello shapes remembered


class FingerprintCache:
    """JA3 and JA4 of a hello, computed once per distinct shape: a proxy's pool opens its
    connections with the same hello, and hashing it for every record cost more than the record
    itself. The key is every field either fingerprint reads (the random and key shares are not)."""

    def __init__(self, size: int = FINGERPRINTS_KEPT) -> None:
        self.size = size
        self._known: dict[tuple[object, ...], tuple[str, str]] = {}

    def of(self, hello: ClientHello) -> tuple[str, str]:
        """(ja3, ja4) of `hello`."""
        key = (
            hello.legacy_version,
            hello.cipher_suites,
            hello.extensions,
            hello.supported_groups,
            hello.ec_point_formats,
            hello.supported_versions,
            hello.alpn[:1],
            hello.sni_extension_present,
            hello.signature_algorithms,
        )
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= self.size:
                del self._known[next(iter(self._known))]  # the oldest shape
            known = self._known[key] = (ja3(hello), ja4(hello))
        return known
