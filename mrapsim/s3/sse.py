"""Server-side encryption as clients observe it: SSE-S3 and SSE-KMS accepted and echoed, SSE-C
enforced. Bytes are stored in clear; what is kept is what S3 would report and check.

Per object, in its extras: "sse" (AES256, aws:kms, aws:kms:dsse), "sse-kms-key-id",
"sse-context", "sse-bucket-key" ("true"); for SSE-C "sse-c-key-md5" (echoed, as S3 does) and
"sse-c-key-sha256" (what a later key is checked against). An object written without SSE headers
takes the bucket's default encryption (S3's default is SSE-S3); objects from before (seeded,
synthetic) report SSE-S3 too, as every S3 object has since 2023.

SSE-C, as S3: the three headers (algorithm AES256, a base64 256-bit key, its base64 MD5) must all
be sent and agree; a GET/HEAD of an SSE-C object without them is 400 InvalidRequest, with a key
that is not the object's 403 AccessDenied; sending a key for an object that has none is 400.
CopyObject reads an SSE-C source with the `x-amz-copy-source-server-side-encryption-customer-*`
headers. S3 refuses SSE-C over plain HTTP; mrapsim serves plain HTTP only behind its TLS edge or
in tests, so it does not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping

from mrapsim.s3.bucket_config import ENCRYPTION, SSE_ALGORITHMS, default_encryption
from mrapsim.s3.context import Context
from mrapsim.s3.errors import S3Error, invalid_argument

SSE = "x-amz-server-side-encryption"
KMS_KEY_ID = "x-amz-server-side-encryption-aws-kms-key-id"
KMS_CONTEXT = "x-amz-server-side-encryption-context"
BUCKET_KEY = "x-amz-server-side-encryption-bucket-key-enabled"
CUSTOMER = "x-amz-server-side-encryption-customer-"
COPY_SOURCE_CUSTOMER = "x-amz-copy-source-server-side-encryption-customer-"
DEFAULT_KMS_KEY = "arn:aws:kms:us-east-1:000000000000:alias/aws/s3"


def _customer_key(headers: Mapping[str, str], prefix: str) -> tuple[str, str] | None:
    """(key MD5, key SHA-256) from an SSE-C header triple, checked as S3 checks it; None when
    none of the three is sent."""
    algorithm = headers.get(prefix + "algorithm")
    key = headers.get(prefix + "key")
    md5 = headers.get(prefix + "key-md5")
    if algorithm is None and key is None and md5 is None:
        return None
    if algorithm is None:
        raise invalid_argument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption "
            "algorithm.",
            prefix + "algorithm",
            "null",
        )
    if algorithm != "AES256":
        raise invalid_argument("The encryption algorithm specified is not valid.", prefix + "algorithm", algorithm)
    if key is None:
        raise invalid_argument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate "
            "secret key.",
            prefix + "key",
            "null",
        )
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise invalid_argument("The secret key was invalid for the specified algorithm.", prefix + "key", "")
    actual_md5 = base64.b64encode(hashlib.md5(raw).digest()).decode("ascii")
    if md5 is None:
        raise invalid_argument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide the client "
            "calculated MD5 of the secret key.",
            prefix + "key-MD5",
            "null",
        )
    if md5 != actual_md5:
        raise invalid_argument(
            "The calculated MD5 hash of the key did not match the hash that was provided.", prefix + "key-MD5", md5
        )
    return actual_md5, hashlib.sha256(raw).hexdigest()


async def write_extras(ctx: Context) -> dict[str, str]:
    """The SSE extras of an object written by this request (PUT, Copy destination, multipart,
    POST), from its headers, else the bucket's default encryption."""
    return await extras_from(ctx, ctx.request.headers)


async def extras_from(ctx: Context, headers: Mapping[str, str]) -> dict[str, str]:
    algorithm = headers.get(SSE)
    customer = _customer_key(headers, CUSTOMER)
    if customer is not None:
        if algorithm is not None:
            raise invalid_argument(
                "Server Side Encryption with Customer provided key is incompatible with the encryption method "
                "specified",
                SSE,
                algorithm,
            )
        return {"sse-c-key-md5": customer[0], "sse-c-key-sha256": customer[1]}
    if algorithm is not None and algorithm not in SSE_ALGORITHMS:
        raise invalid_argument("The encryption method specified is not supported", SSE, algorithm)
    key_id = headers.get(KMS_KEY_ID)
    if key_id is not None and not (algorithm or "").startswith("aws:kms"):
        raise invalid_argument(
            "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : "
            "aws:kms",
            KMS_KEY_ID,
            key_id,
        )
    bucket_key_header = headers.get(BUCKET_KEY)
    if algorithm is None:
        algorithm, key_id, bucket_key = default_encryption(await ctx.store.get_bucket_config(ctx.bucket, ENCRYPTION))
    else:
        bucket_key = False
    if bucket_key_header is not None:
        bucket_key = bucket_key_header.strip().lower() == "true"
    extras = {"sse": algorithm}
    if algorithm.startswith("aws:kms"):
        extras["sse-kms-key-id"] = key_id or DEFAULT_KMS_KEY
        if bucket_key:
            extras["sse-bucket-key"] = "true"
        if headers.get(KMS_CONTEXT) is not None:
            extras["sse-context"] = headers[KMS_CONTEXT]
    return extras


def check_read(ctx: Context, extras: Mapping[str, str], *, prefix: str = CUSTOMER) -> None:
    """Refuse to read an object whose SSE-C key is not the one sent, as S3 does. SSE-S3/KMS
    headers on a read are refused too: they only mean something on a write."""
    if prefix == CUSTOMER:
        for name in (SSE, KMS_KEY_ID):
            if name in ctx.request.headers:
                raise invalid_argument(
                    f"{name} header is not supported for this operation.", name, ctx.request.headers[name]
                )
    customer = _customer_key(ctx.request.headers, prefix)
    stored = extras.get("sse-c-key-sha256")
    if stored is None:
        if customer is not None:
            raise S3Error("InvalidRequest", "The encryption parameters are not applicable to this object.", 400)
        return
    if customer is None:
        raise S3Error(
            "InvalidRequest",
            "The object was stored using a form of Server Side Encryption. The correct parameters must be provided "
            "to retrieve the object.",
            400,
        )
    if customer[1] != stored:
        raise S3Error("AccessDenied", "Access Denied", 403)


def check_part(ctx: Context, extras: Mapping[str, str]) -> None:
    """UploadPart of an SSE-C upload must send the upload's key again."""
    if "sse-c-key-sha256" in extras and _customer_key(ctx.request.headers, CUSTOMER) is None:
        raise S3Error(
            "InvalidRequest",
            "The multipart upload initiate requested encryption. Subsequent part requests must include the "
            "appropriate encryption parameters.",
            400,
        )
    customer = _customer_key(ctx.request.headers, CUSTOMER)
    if "sse-c-key-sha256" in extras and customer is not None and customer[1] != extras["sse-c-key-sha256"]:
        raise S3Error(
            "InvalidRequest", "The provided encryption parameters did not match the ones used originally.", 400
        )
    check_read(ctx, extras)


def response_headers(extras: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """What S3 reports about an object's encryption on PUT, GET, HEAD, Copy and multipart."""
    md5 = extras.get("sse-c-key-md5")
    if md5 is not None:
        return ((CUSTOMER + "algorithm", "AES256"), (CUSTOMER + "key-MD5", md5))
    headers = [(SSE, extras.get("sse", "AES256"))]
    if "sse-kms-key-id" in extras:
        headers.append((KMS_KEY_ID, extras["sse-kms-key-id"]))
    if "sse-bucket-key" in extras:
        headers.append((BUCKET_KEY, "true"))
    return tuple(headers)


def put_response_headers(extras: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """As `response_headers`, plus the encryption context a PUT echoes."""
    headers = response_headers(extras)
    if "sse-context" in extras:
        headers += ((KMS_CONTEXT, extras["sse-context"]),)
    return headers
