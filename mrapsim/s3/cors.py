"""CORS from the bucket's rules (PutBucketCors): preflight `OPTIONS` answered, and the
`Access-Control-*` headers added to actual requests that carry an `Origin`.

A rule matches when one of its AllowedOrigin patterns matches the origin (at most one `*`, any
run of characters, case-sensitive), the method is one of its AllowedMethod, and, for a preflight,
every header named in Access-Control-Request-Headers matches one of its AllowedHeader patterns
(case-insensitive, `*` wildcard). The first matching rule answers, as in S3. A preflight
no rule matches is 403 AccessForbidden, as is one to a bucket without CORS; preflights are not
signed (browsers send none), so they are admitted without a signature (app.py).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from mrapsim.s3.bucket_config import CORS, CORS_METHODS
from mrapsim.s3.context import Context
from mrapsim.s3.errors import S3Error
from mrapsim.s3.responses import S3Response, empty_response
from mrapsim.s3.xml import S3_NAMESPACE
from mrapsim.store import Store, StoreError

PREFLIGHT = "OptionsObject"  # the operation name of a preflight in the dispatch table
NS = f"{{{S3_NAMESPACE}}}"
VARY = ("vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method")


@dataclass(frozen=True)
class CorsRule:
    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    expose: tuple[str, ...]
    max_age: str | None

    def matching_origin(self, origin: str) -> str | None:
        for pattern in self.origins:
            if _wildcard(pattern, origin, ignore_case=False):
                return pattern
        return None

    def allows_headers(self, requested: Sequence[str]) -> bool:
        return all(any(_wildcard(p, name, ignore_case=True) for p in self.headers) for name in requested)


def _wildcard(pattern: str, text: str, *, ignore_case: bool) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, text, re.IGNORECASE if ignore_case else 0) is not None


def parse_rules(document: str) -> tuple[CorsRule, ...]:
    root = ET.fromstring(document)

    def texts(rule: ET.Element, tag: str) -> tuple[str, ...]:
        return tuple((e.text or "").strip() for e in rule.findall(NS + tag))

    return tuple(
        CorsRule(
            texts(rule, "AllowedOrigin"),
            texts(rule, "AllowedMethod"),
            texts(rule, "AllowedHeader"),
            texts(rule, "ExposeHeader"),
            rule.findtext(NS + "MaxAgeSeconds"),
        )
        for rule in root.findall(NS + "CORSRule")
    )


def _forbidden(message: str, method: str) -> S3Error:
    return S3Error("AccessForbidden", message, 403, Method=method, ResourceType="BUCKET")


def _allow_headers(rule: CorsRule, pattern: str, origin: str) -> list[tuple[str, str]]:
    headers = [("access-control-allow-origin", "*" if pattern == "*" else origin)]
    headers.append(("access-control-allow-methods", ", ".join(rule.methods)))
    if rule.expose:
        headers.append(("access-control-expose-headers", ", ".join(rule.expose)))
    if rule.max_age:
        headers.append(("access-control-max-age", rule.max_age))
    if pattern != "*":
        headers.append(("access-control-allow-credentials", "true"))
    headers.append(VARY)
    return headers


async def preflight(ctx: Context) -> S3Response:
    header = ctx.request.headers.get
    origin = header("origin")
    method = header("access-control-request-method")
    if origin is None:
        raise S3Error("BadRequest", "Insufficient information. Origin request header needed.", 400)
    if method is None or method not in CORS_METHODS:
        raise S3Error("BadRequest", f"Invalid Access-Control-Request-Method: {method}", 400)
    requested = [h.strip() for h in (header("access-control-request-headers") or "").split(",") if h.strip()]
    document = await ctx.store.get_bucket_config(ctx.bucket, CORS)
    if document is None:
        raise _forbidden("CORSResponse: CORS is not enabled for this bucket.", method)
    for rule in parse_rules(document):
        pattern = rule.matching_origin(origin)
        if pattern is not None and method in rule.methods and rule.allows_headers(requested):
            headers = _allow_headers(rule, pattern, origin)
            if requested:
                headers.insert(1, ("access-control-allow-headers", ", ".join(h.lower() for h in requested)))
            return empty_response(headers=tuple(headers))
    raise _forbidden(
        "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request "
        "method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the "
        "resource's CORS spec.",
        method,
    )


async def response_headers(store: Store, bucket: str | None, origin: str | None, method: str) -> list[tuple[str, str]]:
    """The CORS headers for an actual (not preflight) request from `origin`; none when the
    bucket has no rule for it."""
    if origin is None or bucket is None:
        return []
    try:
        document = await store.get_bucket_config(bucket, CORS)
    except StoreError:  # no bucket, or a store that cannot answer: the response goes out as it is
        return []
    if document is None:
        return []
    for rule in parse_rules(document):
        pattern = rule.matching_origin(origin)
        if pattern is not None and method in rule.methods:
            return _allow_headers(rule, pattern, origin)
    return []
