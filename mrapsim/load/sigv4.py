"""Fast AWS Signature Version 4 and 4A signers for S3 requests (header form).

botocore's signer builds an AWSRequest, parses its URL back apart and recomputes the signing key
on every call; a load generator signs thousands of requests per second with one key pair, so
this one derives the signing key once per day and scope, formats `x-amz-date` once per second,
and takes the request already split (method, raw path, query pairs, headers). Pure functions of
their inputs: no sockets, no clocks except where the caller passes `now`. Checked against
botocore's `S3SigV4Auth` in tests/load/test_sigv4.py.

SigV4A (`AWS4-ECDSA-P256-SHA256`, what SDKs use for Multi-Region Access Points) signs the same
canonical request, plus `x-amz-region-set`, with a P-256 key derived from the key pair (the
derivation is mrapsim's own, `mrapsim.s3.auth.sigv4a_private_key`, which the server verifies
with); the scope has no region. ECDSA signatures are randomised, so the test checks botocore's
CRT signature against this signer's string to sign instead of comparing signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
ALGORITHM = "AWS4-HMAC-SHA256"
ALGORITHM_4A = "AWS4-ECDSA-P256-SHA256"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str

    def __post_init__(self) -> None:
        if not self.access_key or not self.secret_key:
            raise ValueError("an access key and a secret key are both needed to sign")


def uri_encode_path(path: str) -> str:
    """S3's canonical URI: every byte of the UTF-8 path percent-encoded except unreserved and '/'
    (S3 does not normalise or double-encode the path)."""
    return quote(path, safe="/~")


def uri_encode(text: str) -> str:
    return quote(text, safe="~")


def canonical_query(query: Sequence[tuple[str, str]]) -> str:
    """Pairs encoded, then sorted by encoded key and value (the SigV4 rule)."""
    return "&".join(sorted(f"{uri_encode(k)}={uri_encode(v)}" for k, v in query))


def query_string(query: Sequence[tuple[str, str]]) -> str:
    """The query as sent on the wire: the same encoding as signed, in the caller's order."""
    return "&".join(f"{uri_encode(k)}={uri_encode(v)}" for k, v in query)


@dataclass
class _AmzDateClock:
    """`x-amz-date` for the current second, formatted once per second."""

    _second: int = -1
    _amz_date: str = ""

    def amz_date(self, now: float | None = None) -> str:
        second = int(time.time() if now is None else now)
        if second != self._second:
            self._second = second
            self._amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        return self._amz_date


def _string_to_sign(
    algorithm: str,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    signed: Mapping[str, str],
    payload_sha256: str,
    amz_date: str,
    scope: str,
) -> tuple[str, str]:
    """(string to sign, signed headers) for the canonical request of `signed` (lower-case names,
    folded values, the `x-amz-*` ones included): the part SigV4 and SigV4A share."""
    names = sorted(signed)
    signed_headers = ";".join(names)
    canonical = "\n".join(
        (
            method,
            uri_encode_path(path),
            canonical_query(query),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            signed_headers,
            payload_sha256,
        )
    )
    to_sign = f"{algorithm}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return to_sign, signed_headers


def _signed_headers(headers: Mapping[str, str], amz_date: str, payload_sha256: str) -> dict[str, str]:
    """The caller's headers, lower-cased with white space folded, plus the date and payload hash."""
    signed = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    signed["x-amz-date"] = amz_date
    signed["x-amz-content-sha256"] = payload_sha256
    return signed


def _authorization(algorithm: str, access_key: str, scope: str, signed_headers: str, signature: str) -> str:
    return f"{algorithm} Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"


@dataclass
class Signer:
    """Signs S3 requests for one credential, region and service; caches per day and second."""

    credentials: Credentials
    region: str = "us-east-1"
    service: str = "s3"
    _day: str = field(default="", init=False, repr=False)
    _key: bytes = field(default=b"", init=False, repr=False)
    _clock: _AmzDateClock = field(default_factory=_AmzDateClock, init=False, repr=False)

    def amz_date(self, now: float | None = None) -> str:
        return self._clock.amz_date(now)

    def signing_key(self, day: str) -> bytes:
        if day != self._day:
            key = ("AWS4" + self.credentials.secret_key).encode()
            for part in (day, self.region, self.service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._day, self._key = day, key
        return self._key

    def sign(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        payload_sha256: str = EMPTY_SHA256,
        now: float | None = None,
    ) -> dict[str, str]:
        """The headers to add: `x-amz-date`, `x-amz-content-sha256`, `authorization`.

        `path` is the raw (unencoded) path; `headers` must include `host` and are all signed.
        """
        amz_date = self.amz_date(now)
        day = amz_date[:8]
        signed = _signed_headers(headers, amz_date, payload_sha256)
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign, signed_headers = _string_to_sign(
            ALGORITHM, method, path, query, signed, payload_sha256, amz_date, scope
        )
        signature = hmac.new(self.signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return {
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload_sha256,
            "authorization": _authorization(ALGORITHM, self.credentials.access_key, scope, signed_headers, signature),
        }


@dataclass
class SignerV4A:
    """Signs S3 requests with SigV4A for one credential; `region_set` is what the request may be
    served in ("*": anywhere, as for an MRAP). Same interface as `Signer`."""

    credentials: Credentials
    region_set: str = "*"
    service: str = "s3"
    _key: ec.EllipticCurvePrivateKey | None = field(default=None, init=False, repr=False)
    _clock: _AmzDateClock = field(default_factory=_AmzDateClock, init=False, repr=False)

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            # Imported here: mrapsim.s3 is heavy, and only SigV4A runs need it.
            from mrapsim.s3.auth import sigv4a_private_key

            self._key = sigv4a_private_key(self.credentials.access_key, self.credentials.secret_key)
        return self._key

    def amz_date(self, now: float | None = None) -> str:
        return self._clock.amz_date(now)

    def string_to_sign(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        payload_sha256: str,
        amz_date: str,
    ) -> tuple[str, str, str]:
        """(string to sign, scope, signed headers)."""
        signed = _signed_headers(headers, amz_date, payload_sha256)
        signed["x-amz-region-set"] = self.region_set
        scope = f"{amz_date[:8]}/{self.service}/aws4_request"
        to_sign, signed_headers = _string_to_sign(
            ALGORITHM_4A, method, path, query, signed, payload_sha256, amz_date, scope
        )
        return to_sign, scope, signed_headers

    def sign(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        payload_sha256: str = EMPTY_SHA256,
        now: float | None = None,
    ) -> dict[str, str]:
        """The headers to add: `x-amz-date`, `x-amz-content-sha256`, `x-amz-region-set`,
        `authorization`."""
        amz_date = self.amz_date(now)
        to_sign, scope, signed_headers = self.string_to_sign(method, path, query, headers, payload_sha256, amz_date)
        signature = self.private_key.sign(to_sign.encode(), ec.ECDSA(hashes.SHA256())).hex()
        return {
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload_sha256,
            "x-amz-region-set": self.region_set,
            "authorization": _authorization(
                ALGORITHM_4A, self.credentials.access_key, scope, signed_headers, signature
            ),
        }
