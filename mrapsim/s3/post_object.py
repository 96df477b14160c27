"""POST Object: a browser form upload (`multipart/form-data` to the bucket) authorised by a
SigV4-signed POST policy rather than a signed request.

The form's fields come before its `file` part (S3 ignores fields after it). Checked in S3's
order, before a byte of the file is stored:
- the signature: `x-amz-signature` is HMAC-SHA256 of the base64 `policy` field under the SigV4
  key of `x-amz-credential` (SignatureDoesNotMatch, InvalidAccessKeyId), or, in the older form
  S3 still accepts, `signature` its base64 HMAC-SHA1 under the secret of `AWSAccessKeyId`; a
  form with neither policy nor signature is anonymous and needs a bucket that grants WRITE to
  everyone (acl.py);
- the policy: not expired, every condition holds (`{"field": value}` and `["eq", "$field",
  value]` exact, `["starts-with", "$field", prefix]`, `["content-length-range", min, max]`), and
  every field the form carries is named by a condition (bar policy, x-amz-signature, file and
  x-ignore-*): AccessDenied "Invalid according to Policy: ...", as S3;
- the size, while the file streams: over the range's maximum is EntityTooLarge, under its
  minimum EntityTooSmall.
Then the object is written with the form's Content-Type, x-amz-meta-*, stored headers, acl,
tagging (an XML Tagging document) and SSE fields, and the answer is S3's: 204 by default,
`success_action_status` 200 or 201 (a PostResponse document), or a 303 to
`success_action_redirect` with bucket, key and etag in its query.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from mrapsim.s3 import acl, object_lock, sse
from mrapsim.s3.auth import SIGV4, Rejected, parse_credential, sigv4_signing_key
from mrapsim.s3.context import Context
from mrapsim.s3.errors import S3Error, invalid_argument, not_implemented
from mrapsim.s3.formdata import Field, FileData, FileStart, FormError, FormReader, boundary_of
from mrapsim.s3.object import METADATA_PREFIX, STORED_HEADERS, check_key_length
from mrapsim.s3.payload import MAX_PUT_SIZE
from mrapsim.s3.responses import S3Response, empty_response, xml_response
from mrapsim.s3.tagging import MAX_OBJECT_TAGS, TAGGING_EXTRA, encode_tags, parse_tagging_document
from mrapsim.s3.xml import document, leaf
from mrapsim.store import ObjectWrite

MAX_FIELD = 20 * 1024  # a policy document may be up to 20 KB base64
MAX_PRE_DATA = 1024 * 1024  # all fields before the file
# Fields no condition needs to name (S3's list, with SigV2's two, which S3 exempts as well).
EXEMPT_FIELDS = frozenset({"policy", "x-amz-signature", "file", "signature", "awsaccesskeyid"})


def malformed_post() -> S3Error:
    return S3Error("MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data.", 400)


def policy_denied(reason: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {reason}", 403)


@dataclass(frozen=True)
class SizeRange:
    low: int
    high: int


class _Form:
    """The body's events, read as they are needed: the fields first, then the file's bytes."""

    def __init__(self, ctx: Context, boundary: str) -> None:
        self._chunks = ctx.body.chunks()
        self._reader = FormReader(boundary, max_field=MAX_FIELD)
        self._pending: list[Field | FileStart | FileData] = []
        self._done = False

    async def _next(self) -> Field | FileStart | FileData | None:
        while not self._pending:
            if self._done:
                return None
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._done = True
                try:
                    self._reader.close()
                except FormError:
                    raise malformed_post() from None
                continue
            try:
                events = self._reader.feed(chunk)
            except FormError:
                raise malformed_post() from None
            self._pending += [e for e in events if isinstance(e, Field | FileStart | FileData)]
        return self._pending.pop(0)

    async def fields(self) -> tuple[dict[str, str], FileStart]:
        """The fields before the file (names lower-cased, first occurrence kept) and the file's part."""
        fields: dict[str, str] = {}
        size = 0
        while True:
            event = await self._next()
            if event is None:
                raise invalid_argument("POST requires exactly one file upload per request.", "file", "0")
            if isinstance(event, FileStart):
                return fields, event
            if isinstance(event, Field):
                size += len(event.value)
                if size > MAX_PRE_DATA:
                    raise S3Error(
                        "MaxPostPreDataLengthExceeded",
                        "Your POST request fields preceeding the upload file was too large.",
                        400,
                    )
                fields.setdefault(event.name.lower(), event.value)

    async def file_data(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._next()
            if event is None or not isinstance(event, FileData):
                break
            yield event.data
        while await self._next() is not None:  # fields after the file: ignored, as S3 does
            pass


# -- the policy -----------------------------------------------------------------------------------


def _secret(ctx: Context, access_key: str) -> str:
    secret = ctx.config.auth.secret_for(access_key)
    if secret is None:
        raise S3Error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            403,
            AWSAccessKeyId=access_key,
        )
    return secret


def _signature_mismatch(access_key: str, policy: str, provided: str) -> S3Error:
    return S3Error(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. Check your key and "
        "signing method.",
        403,
        AWSAccessKeyId=access_key,
        StringToSign=policy,
        SignatureProvided=provided,
    )


def check_sigv2(ctx: Context, fields: Mapping[str, str]) -> None:
    """The older form: `signature` is base64 HMAC-SHA1 of the policy under the secret key."""
    for name in ("awsaccesskeyid", "policy", "signature"):
        if name not in fields:
            raise invalid_argument(f"Bucket POST must contain a field named '{name}'.", name, "")
    if ctx.config.auth.mode == "none":
        return
    access_key = fields["awsaccesskeyid"]
    secret = _secret(ctx, access_key)
    digest = hmac.new(secret.encode("utf-8"), fields["policy"].encode("utf-8"), hashlib.sha1).digest()
    if not hmac.compare_digest(base64.b64encode(digest).decode("ascii"), fields["signature"]):
        raise _signature_mismatch(access_key, fields["policy"], fields["signature"])


def check_signature(ctx: Context, fields: Mapping[str, str]) -> None:
    if "awsaccesskeyid" in fields or "signature" in fields:
        check_sigv2(ctx, fields)
        return
    if fields.get("x-amz-algorithm") != SIGV4:
        raise invalid_argument(
            "Only AWS4-HMAC-SHA256 is supported for x-amz-algorithm",
            "x-amz-algorithm",
            fields.get("x-amz-algorithm", ""),
        )
    if "policy" not in fields:
        raise invalid_argument("Bucket POST must contain a field named 'policy'.", "policy", "")
    credential = parse_credential(fields.get("x-amz-credential", ""), SIGV4)
    if isinstance(credential, Rejected):
        raise invalid_argument(credential.message, "x-amz-credential", fields.get("x-amz-credential", ""))
    if ctx.config.auth.mode == "none":
        return
    secret = _secret(ctx, credential.access_key)
    assert credential.region is not None  # SigV4 credentials name a region
    key = sigv4_signing_key(secret, credential.date, credential.region, credential.service)
    expected = hmac.new(key, fields["policy"].encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields.get("x-amz-signature", "").lower()):
        raise _signature_mismatch(credential.access_key, fields["policy"], fields.get("x-amz-signature", ""))


def parse_policy(text: str) -> dict[str, object]:
    try:
        policy = json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raise invalid_argument("Invalid Policy: Invalid JSON.", "policy", text[:100]) from None
    if not isinstance(policy, dict) or not isinstance(policy.get("conditions"), list):
        raise invalid_argument("Invalid Policy: Invalid 'conditions' value.", "policy", text[:100])
    if not isinstance(policy.get("expiration"), str):
        raise invalid_argument("Invalid Policy: Policy missing expiration.", "policy", text[:100])
    return policy


def check_policy(policy: Mapping[str, object], fields: Mapping[str, str], now: dt.datetime) -> SizeRange | None:
    """Raises AccessDenied unless `fields` satisfy `policy`; the size range it sets, if any."""
    try:
        expiration = dt.datetime.fromisoformat(str(policy["expiration"]).replace("Z", "+00:00"))
    except ValueError:
        raise invalid_argument("Invalid Policy: Invalid 'expiration' value.", "policy", "") from None
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=dt.UTC)
    if now > expiration:
        raise policy_denied("Policy expired.")
    covered: set[str] = set()
    size: SizeRange | None = None
    conditions = policy["conditions"]
    assert isinstance(conditions, list)
    for condition in conditions:
        if isinstance(condition, dict) and len(condition) == 1:
            ((name, value),) = condition.items()
            condition = ["eq", f"${name}", value]
        if not isinstance(condition, list) or len(condition) != 3:
            raise invalid_argument("Invalid Policy: Invalid Condition.", "policy", json.dumps(condition))
        operator = str(condition[0]).lower()
        if operator == "content-length-range":
            try:
                size = SizeRange(int(condition[1]), int(condition[2]))
            except (TypeError, ValueError):
                raise invalid_argument("Invalid Policy: Invalid content-length-range.", "policy", "") from None
            continue
        name = str(condition[1]).lower().removeprefix("$")
        expected = str(condition[2])
        actual = fields.get(name)
        covered.add(name)
        if operator == "eq":
            holds = actual == expected
        elif operator == "starts-with":
            holds = actual is not None and actual.startswith(expected)
        else:
            raise invalid_argument(f"Invalid Policy: Invalid operator {condition[0]}.", "policy", "")
        if not holds:
            raise policy_denied(f"Policy Condition failed: {json.dumps(condition)}")
    extra = [n for n in fields if n not in covered and n not in EXEMPT_FIELDS and not n.startswith("x-ignore-")]
    if extra:
        raise policy_denied(f"Extra input fields: {', '.join(extra)}")
    return size


# -- the handler ----------------------------------------------------------------------------------


async def post_object(ctx: Context) -> S3Response:
    boundary = boundary_of(ctx.request.headers.get("content-type"))
    if boundary is None:
        raise S3Error(
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
            412,
            Condition="Bucket POST must be of the enclosure-type multipart/form-data",
        )
    await ctx.store.get_bucket(ctx.bucket)
    form = _Form(ctx, boundary)
    fields, file_part = await form.fields()
    if "key" not in fields:
        raise invalid_argument(
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
            "key",
            "",
        )
    fields["key"] = fields["key"].replace("${filename}", file_part.filename)
    fields["bucket"] = ctx.bucket
    check_key_length(fields["key"])
    size_range = None
    if any(name in fields for name in ("x-amz-signature", "policy", "signature", "awsaccesskeyid")):
        check_signature(ctx, fields)
        size_range = check_policy(parse_policy(fields["policy"]), fields, ctx.now())
    elif ctx.auth.algorithm is None and ctx.config.auth.mode != "none":
        await acl.authorize_anonymous(ctx, "PutObject")
    extras = await _extras(ctx, fields)
    builder = ctx.store.new_content()
    md5 = hashlib.md5(usedforsecurity=False)
    high = size_range.high if size_range is not None else MAX_PUT_SIZE
    size = 0
    async for data in form.file_data():
        size += len(data)
        if size > high:
            raise S3Error(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400, MaxSizeAllowed=high
            )
        builder.append(data)
        md5.update(data)
    if size_range is not None and size < size_range.low:
        raise S3Error(
            "EntityTooSmall",
            "Your proposed upload is smaller than the minimum allowed size",
            400,
            ProposedSize=size,
            MinSizeAllowed=size_range.low,
        )
    write = ObjectWrite(
        content=builder.finish(),
        content_type=fields.get("content-type", "binary/octet-stream"),
        metadata={n[len(METADATA_PREFIX) :]: v for n, v in fields.items() if n.startswith(METADATA_PREFIX)},
        stored_headers={n: fields[n] for n in STORED_HEADERS if n in fields},
        etag=f'"{md5.hexdigest()}"',
        extras=extras,
    )
    info = await ctx.store.put_object(ctx.bucket, fields["key"], write)
    return _answer(ctx, fields, info.etag, extras)


async def _extras(ctx: Context, fields: Mapping[str, str]) -> dict[str, str]:
    if any(name.startswith("x-amz-checksum-") for name in fields):
        raise not_implemented("POST Object checksum fields")
    extras: dict[str, str] = {}
    if "tagging" in fields:
        tags = encode_tags(parse_tagging_document(fields["tagging"].encode("utf-8"), MAX_OBJECT_TAGS))
        if tags:
            extras[TAGGING_EXTRA] = tags
    wanted = acl.acl_from_headers({"x-amz-acl": fields["acl"]} if "acl" in fields else fields, ctx.owner.id)
    if wanted is not None:
        await acl.check_acl_allowed(ctx, wanted)
        extras[acl.ACL_EXTRA] = wanted.dumps()
    extras.update(await sse.extras_from(ctx, fields))
    extras.update(await object_lock.extras_from(ctx, fields))
    return extras


def _answer(ctx: Context, fields: Mapping[str, str], etag: str, extras: Mapping[str, str]) -> S3Response:
    key = fields["key"]
    host = ctx.request.headers.get("host") or "localhost"
    location = f"https://{host}/{quote(ctx.bucket)}/{quote(key)}"
    headers = (("etag", etag), ("location", location), *sse.put_response_headers(extras))
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    if redirect:
        query = urlencode({"bucket": ctx.bucket, "key": key, "etag": etag})
        target = f"{redirect}{'&' if '?' in redirect else '?'}{query}"
        return empty_response(303, (*headers[:1], ("location", target), *headers[2:]))
    status = fields.get("success_action_status")
    if status == "201":
        # Without S3's namespace, as S3 sends it (clients find its elements unqualified).
        body = document(
            "PostResponse",
            leaf("Location", location),
            leaf("Bucket", ctx.bucket),
            leaf("Key", key),
            leaf("ETag", etag),
            namespaced=False,
        )
        return xml_response(body, 201, headers)
    return empty_response(200 if status == "200" else 204, headers)
