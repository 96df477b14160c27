"""SigV2 (S3's HMAC-SHA1 "AWS" signatures), sans-IO: what is signed and the signature of it.

S3 still accepts SigV2 in the Regions that allowed it before June 2019, and older SDKs and tools
still send it: boto3's `generate_presigned_url` against a custom endpoint produces a SigV2 URL
unless `signature_version="s3v4"` is configured. Two forms (S3 developer guide, "Signing and
authenticating REST requests", as botocore's HmacV1Auth/HmacV1QueryAuth implement it):
- header: `Authorization: AWS <access key>:<base64 HMAC-SHA1>`, time from `Date` (or `x-amz-date`);
- query: `AWSAccessKeyId`, `Signature`, `Expires` (epoch seconds), the expiry taking the date's line.

String to sign: method, Content-MD5, Content-Type, the date line (empty when `x-amz-date` is
sent: it is signed among the x-amz-* headers instead), the `x-amz-*` headers (lower-case, sorted,
repeats joined by ","), then the canonical resource: the path-style path `/bucket/key` as sent
(also for virtual-hosted requests) and the sub-resource parameters S3 signs, sorted, values
decoded. Auth policy (which key pairs, clock skew, the config switch) lives in auth.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from mrapsim.s3.headers import Headers

ALGORITHM = "AWS"  # the Authorization scheme, and the algorithm name in records

# The query parameters that are part of the canonical resource (botocore's QSAOfInterest).
SIGNED_SUBRESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "cors", "defaultObjectAcl", "delete", "inventory", "lifecycle",
        "location", "logging", "metrics", "notification", "object-lock", "partNumber", "policy", "replication",
        "requestPayment", "response-cache-control", "response-content-disposition", "response-content-encoding",
        "response-content-language", "response-content-type", "response-expires", "restore", "select",
        "select-type", "storageClass", "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning",
        "versions", "website",
    }
)  # fmt: skip
QUERY_PARAMS = ("AWSAccessKeyId", "Signature", "Expires")


@dataclass(frozen=True)
class SigV2:
    access_key: str
    signature: str  # base64
    presigned: bool
    expires: int | None  # query form: epoch seconds


def parse_header(value: str) -> SigV2 | None:
    """`AWS AKID:signature`; None when malformed."""
    scheme, _, rest = value.strip().partition(" ")
    access_key, sep, signature = rest.strip().rpartition(":")
    if scheme != ALGORITHM or not sep or not access_key or not signature:
        return None
    return SigV2(access_key, signature, presigned=False, expires=None)


def parse_query(query: Mapping[str, str]) -> SigV2 | None:
    """The query form; None when a parameter is missing or Expires is not a number."""
    access_key, signature, expires = (query.get(name) for name in QUERY_PARAMS)
    if not access_key or not signature or expires is None or not expires.isdigit():
        return None
    return SigV2(access_key, signature, presigned=True, expires=int(expires))


def canonical_resource(path: str, raw_query: str) -> str:
    """`path` (path-style, percent-encoded as sent) and the signed sub-resources, sorted."""
    signed: list[tuple[str, str | None]] = []
    for part in raw_query.split("&"):
        name, sep, value = part.partition("=")
        if name in SIGNED_SUBRESOURCES:
            signed.append((name, unquote(value) if sep else None))
    if not signed:
        return path
    signed.sort(key=lambda item: item[0])
    return path + "?" + "&".join(name if value is None else f"{name}={value}" for name, value in signed)


def string_to_sign(method: str, headers: Headers, *, date_line: str, resource: str) -> str:
    def first(name: str) -> str:
        values = headers.get_all(name)
        return values[0].strip() if values else ""

    amz = sorted(name for name in headers if name.startswith("x-amz-"))
    lines = [method, first("content-md5"), first("content-type"), date_line]
    lines += [f"{name}:{','.join(value.strip() for value in headers.get_all(name))}" for name in amz]
    return "\n".join([*lines, resource])


def sign(secret: str, to_sign: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def matches(secret: str, to_sign: str, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, to_sign), signature)
