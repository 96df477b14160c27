"""A fast AWS Signature Version 4 signer for S3 requests (header form).

botocore's signer builds an AWSRequest, parses its URL back apart and recomputes the signing key
on every call; a load generator signs thousands of requests per second with one key pair, so
this one derives the signing key once per day and scope, formats `x-amz-date` once per second,
and takes the request already split (method, raw path, query pairs, headers). Pure functions of
their inputs: no sockets, no clocks except where the caller passes `now`. Checked against
botocore's `S3SigV4Auth` in tests/load/test_sigv4.py.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
ALGORITHM = "AWS4-HMAC-SHA256"


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
class Signer:
    """Signs S3 requests for one credential, region and service; caches per day and second."""

    credentials: Credentials
    region: str = "us-east-1"
    service: str = "s3"
    _day: str = field(default="", init=False, repr=False)
    _key: bytes = field(default=b"", init=False, repr=False)
    _second: int = field(default=-1, init=False, repr=False)
    _amz_date: str = field(default="", init=False, repr=False)

    def amz_date(self, now: float | None = None) -> str:
        second = int(time.time() if now is None else now)
        if second != self._second:
            self._second = second
            self._amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        return self._amz_date

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
        signed = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
        signed["x-amz-date"] = amz_date
        signed["x-amz-content-sha256"] = payload_sha256
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
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self.signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return {
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload_sha256,
            "authorization": (
                f"{ALGORITHM} Credential={self.credentials.access_key}/{scope}, "
                f"SignedHeaders={signed_headers}, Signature={signature}"
            ),
        }
