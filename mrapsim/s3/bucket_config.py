"""Bucket configurations stored and returned: policy, public access block, ownership controls,
CORS, lifecycle, default encryption and tagging.

Each lives in the store under one name (`Store.put_bucket_config`); this module validates a
document's shape as S3 does, stores it in a canonical form (XML re-rendered with S3's namespace,
a policy as the JSON text received) and answers Get with it, or with S3's "not found" error for
that configuration. What is enforced and what is only stored is said in the README: lifecycle
rules never expire anything, a policy is never evaluated (IAM evaluation is out of scope), the
public access block's ACL switches and ownership's BucketOwnerEnforced are enforced (acl.py),
CORS rules answer preflights and decorate responses (cors.py), the default encryption is what
objects written without SSE headers are reported as (sse.py).
"""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import MappingProxyType

from mrapsim.s3 import xml
from mrapsim.s3.context import Context
from mrapsim.s3.documents import child_text, malformed_xml, parse_request_document
from mrapsim.s3.errors import S3Error
from mrapsim.s3.payload import receive_body
from mrapsim.s3.policy import is_public
from mrapsim.s3.responses import S3Response, empty_response, xml_response
from mrapsim.s3.xml import DECLARATION, S3_NAMESPACE

POLICY, PUBLIC_ACCESS_BLOCK, OWNERSHIP, CORS = "policy", "public-access-block", "ownership", "cors"
LIFECYCLE, ENCRYPTION, TAGGING = "lifecycle", "encryption", "tagging"
MAX_POLICY_BYTES = 20 * 1024
CORS_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "HEAD"})
MAX_CORS_RULES = 100
MAX_LIFECYCLE_RULES = 1000
LIFECYCLE_ACTIONS = (
    "Expiration",
    "Transition",
    "NoncurrentVersionExpiration",
    "NoncurrentVersionTransition",
    "AbortIncompleteMultipartUpload",
)
SSE_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")
OWNERSHIPS = ("BucketOwnerPreferred", "ObjectWriter", "BucketOwnerEnforced")
PUBLIC_ACCESS_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
# What GetBucketEncryption answers for a bucket never given one: S3 encrypts every new object
# with SSE-S3 since January 2023 and reports that as the bucket's configuration.
DEFAULT_ENCRYPTION = (
    DECLARATION
    + f'<ServerSideEncryptionConfiguration xmlns="{S3_NAMESPACE}">'
    + "<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm>"
    + "</ApplyServerSideEncryptionByDefault><BucketKeyEnabled>false</BucketKeyEnabled></Rule>"
    + "</ServerSideEncryptionConfiguration>"
)


@dataclass(frozen=True)
class Missing:
    """S3's error for a configuration that is not set."""

    code: str
    message: str


MISSING = MappingProxyType(
    {
        POLICY: Missing("NoSuchBucketPolicy", "The bucket policy does not exist"),
        PUBLIC_ACCESS_BLOCK: Missing(
            "NoSuchPublicAccessBlockConfiguration", "The public access block configuration was not found"
        ),
        OWNERSHIP: Missing("OwnershipControlsNotFoundError", "The bucket ownership controls were not found"),
        CORS: Missing("NoSuchCORSConfiguration", "The CORS configuration does not exist"),
        LIFECYCLE: Missing("NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist"),
        TAGGING: Missing("NoSuchTagSet", "The TagSet does not exist"),
    }
)


def canonical_xml(element: ET.Element) -> str:
    """`element` (namespaces stripped by parse_request_document) as a response document."""
    element.set("xmlns", S3_NAMESPACE)
    return DECLARATION + ET.tostring(element, encoding="unicode")


async def read_document(ctx: Context) -> bytes:
    received = await receive_body(ctx)
    return received.content.read(0, received.content.size)


async def stored_or_missing(ctx: Context, name: str) -> str:
    document = await ctx.store.get_bucket_config(ctx.bucket, name)
    if document is None:
        missing = MISSING[name]
        raise S3Error(missing.code, missing.message, 404, BucketName=ctx.bucket)
    return document


def _invalid(message: str) -> S3Error:
    return S3Error("InvalidRequest", message, 400)


# -- the handlers, made per configuration ---------------------------------------------------------

Validator = Callable[[Context, bytes], str]


def putter(name: str, validate: Validator, status: int = 200) -> Callable[[Context], Awaitable[S3Response]]:
    async def put(ctx: Context) -> S3Response:
        await ctx.store.get_bucket(ctx.bucket)
        document = validate(ctx, await read_document(ctx))
        await ctx.store.put_bucket_config(ctx.bucket, name, document)
        return empty_response(status)

    return put


def getter(name: str, content_type: str = "application/xml") -> Callable[[Context], Awaitable[S3Response]]:
    async def get(ctx: Context) -> S3Response:
        document = await stored_or_missing(ctx, name)
        return S3Response(200, (("content-type", content_type),), document.encode("utf-8"))

    return get


def deleter(name: str) -> Callable[[Context], Awaitable[S3Response]]:
    async def delete(ctx: Context) -> S3Response:
        await ctx.store.delete_bucket_config(ctx.bucket, name)
        return empty_response(204)

    return delete


# -- validators: each returns the document to store ----------------------------------------------


def malformed_policy(message: str) -> S3Error:
    return S3Error("MalformedPolicy", message, 400)


def validate_policy(ctx: Context, body: bytes) -> str:
    """The shape IAM checks before it stores a policy; its meaning is never evaluated."""
    if len(body) > MAX_POLICY_BYTES:
        raise S3Error("PolicyTooLarge", "Policy exceeds the maximum allowed document size.", 400)
    text = body.decode("utf-8", errors="replace").strip()
    if not text.startswith("{"):
        raise malformed_policy("Policies must be valid JSON and the first byte must be '{'")
    try:
        policy = json.loads(text)
    except ValueError:
        raise malformed_policy("Policies must be valid JSON and the first byte must be '{'") from None
    if not isinstance(policy, dict):
        raise malformed_policy("Policies must be valid JSON and the first byte must be '{'")
    if policy.get("Version", "2012-10-17") not in ("2012-10-17", "2008-10-17"):
        raise malformed_policy("Document is invalid: Invalid Version " + str(policy.get("Version")))
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise malformed_policy("Missing required field Statement")
    for statement in statements:
        _check_statement(statement)
    return text


def _check_statement(statement: object) -> None:
    if not isinstance(statement, dict):
        raise malformed_policy("Statement is not well-formed")
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise malformed_policy("Invalid effect: " + str(statement.get("Effect")))
    for one_of in (("Principal", "NotPrincipal"), ("Action", "NotAction"), ("Resource", "NotResource")):
        if not any(name in statement for name in one_of):
            raise malformed_policy(f"Missing required field {one_of[0]}")


def validate_public_access_block(ctx: Context, body: bytes) -> str:
    root = parse_request_document(body, "PublicAccessBlockConfiguration")
    for flag in PUBLIC_ACCESS_FLAGS:
        value = child_text(root, flag)
        if value is not None and value.strip().lower() not in ("true", "false"):
            raise malformed_xml()
    return canonical_xml(root)


def validate_ownership(ctx: Context, body: bytes) -> str:
    root = parse_request_document(body, "OwnershipControls")
    rules = root.findall("Rule")
    if len(rules) != 1 or (child_text(rules[0], "ObjectOwnership") or "").strip() not in OWNERSHIPS:
        raise malformed_xml()
    return canonical_xml(root)


def validate_cors(ctx: Context, body: bytes) -> str:
    root = parse_request_document(body, "CORSConfiguration")
    rules = root.findall("CORSRule")
    if not rules or len(rules) > MAX_CORS_RULES:
        raise malformed_xml()
    for rule in rules:
        methods = [(m.text or "").strip() for m in rule.findall("AllowedMethod")]
        if not methods or not rule.findall("AllowedOrigin"):
            raise malformed_xml()
        for method in methods:
            if method not in CORS_METHODS:
                raise _invalid(f"Found unsupported HTTP method in CORS config. Unsupported method is {method}")
        for origin in rule.findall("AllowedOrigin"):
            if (origin.text or "").count("*") > 1:
                raise _invalid(f'AllowedOrigin "{origin.text}" can not have more than one wildcard.')
    return canonical_xml(root)


def validate_lifecycle(ctx: Context, body: bytes) -> str:
    root = parse_request_document(body, "LifecycleConfiguration")
    rules = root.findall("Rule")
    if not rules or len(rules) > MAX_LIFECYCLE_RULES:
        raise malformed_xml()
    ids = [child_text(rule, "ID") for rule in rules]
    if len({i for i in ids if i}) != len([i for i in ids if i]):
        raise S3Error("InvalidArgument", "Rule ID must be unique. Found same ID for more than one rule", 400)
    for rule in rules:
        if (child_text(rule, "Status") or "") not in ("Enabled", "Disabled"):
            raise malformed_xml()
        if len(child_text(rule, "ID") or "") > 255:
            raise S3Error("InvalidArgument", "ID length should not exceed allowed limit of 255", 400)
        if not any(rule.find(action) is not None for action in LIFECYCLE_ACTIONS):
            raise _invalid("At least one action needs to be specified in a rule")
        _check_lifecycle_times(rule)
    return canonical_xml(root)


def _check_lifecycle_times(rule: ET.Element) -> None:
    """Days are positive integers and a Date is a midnight UTC, as S3 requires."""
    for action in rule:
        for name in ("Days", "NoncurrentDays", "DaysAfterInitiation"):
            days = child_text(action, name)
            if days is not None and (not days.strip().isdigit() or int(days) <= 0):
                raise S3Error("InvalidArgument", f"'{name}' for {action.tag} action must be a positive integer", 400)
        date = child_text(action, "Date")
        if date is not None:
            try:
                when = dt.datetime.fromisoformat(date.strip().replace("Z", "+00:00"))
            except ValueError:
                raise S3Error("InvalidArgument", "'Date' must be at midnight GMT", 400) from None
            if when.utcoffset() not in (None, dt.timedelta(0)) or when.time() != dt.time():
                raise S3Error("InvalidArgument", "'Date' must be at midnight GMT", 400)


def validate_encryption(ctx: Context, body: bytes) -> str:
    root = parse_request_document(body, "ServerSideEncryptionConfiguration")
    rules = root.findall("Rule")
    if len(rules) != 1:
        raise malformed_xml()
    default = rules[0].find("ApplyServerSideEncryptionByDefault")
    if default is None:
        raise malformed_xml()
    algorithm = (child_text(default, "SSEAlgorithm") or "").strip()
    if algorithm not in SSE_ALGORITHMS:
        raise malformed_xml()
    if child_text(default, "KMSMasterKeyID") and algorithm == "AES256":
        raise S3Error(
            "InvalidArgument", "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms", 400
        )
    return canonical_xml(root)


def default_encryption(document: str | None) -> tuple[str, str | None, bool]:
    """(algorithm, KMS key id, bucket key) of a stored encryption configuration (or S3's default)."""
    if document is None:
        return "AES256", None, False
    root = ET.fromstring(document)
    namespace = f"{{{S3_NAMESPACE}}}"
    rule = root.find(f"{namespace}Rule")
    assert rule is not None  # stored documents were validated
    default = rule.find(f"{namespace}ApplyServerSideEncryptionByDefault")
    assert default is not None
    algorithm = default.findtext(f"{namespace}SSEAlgorithm") or "AES256"
    key_id = default.findtext(f"{namespace}KMSMasterKeyID")
    bucket_key = (rule.findtext(f"{namespace}BucketKeyEnabled") or "").strip().lower() == "true"
    return algorithm, key_id, bucket_key


async def get_bucket_encryption(ctx: Context) -> S3Response:
    document = await ctx.store.get_bucket_config(ctx.bucket, ENCRYPTION)
    return xml_response((document or DEFAULT_ENCRYPTION).encode("utf-8"))


async def get_bucket_policy(ctx: Context) -> S3Response:
    document = await stored_or_missing(ctx, POLICY)
    return S3Response(200, (("content-type", "application/json"),), document.encode("utf-8"))


async def get_bucket_policy_status(ctx: Context) -> S3Response:
    """IsPublic: a policy with an Allow statement for everyone (policy.py)."""
    document = await stored_or_missing(ctx, POLICY)
    return xml_response(xml.document("PolicyStatus", xml.leaf("IsPublic", is_public(document))))


async def put_bucket_policy(ctx: Context) -> S3Response:
    """As S3: a public policy is refused while the public access block's BlockPublicPolicy is on."""
    await ctx.store.get_bucket(ctx.bucket)
    document = validate_policy(ctx, await read_document(ctx))
    block = await ctx.store.get_bucket_config(ctx.bucket, PUBLIC_ACCESS_BLOCK)
    if is_public(document) and flag_set(block, "BlockPublicPolicy"):
        raise S3Error("AccessDenied", "Access Denied", 403)
    await ctx.store.put_bucket_config(ctx.bucket, POLICY, document)
    return empty_response(204)


def flag_set(document: str | None, flag: str) -> bool:
    """A public access block switch (False when no configuration is stored)."""
    if document is None:
        return False
    root = ET.fromstring(document)
    return (root.findtext(f"{{{S3_NAMESPACE}}}{flag}") or "").strip().lower() == "true"


def object_ownership(document: str | None) -> str | None:
    if document is None:
        return None
    root = ET.fromstring(document)
    return root.findtext(f"{{{S3_NAMESPACE}}}Rule/{{{S3_NAMESPACE}}}ObjectOwnership")


# The handlers the dispatch table names.
delete_bucket_policy = deleter(POLICY)
put_public_access_block = putter(PUBLIC_ACCESS_BLOCK, validate_public_access_block)
get_public_access_block = getter(PUBLIC_ACCESS_BLOCK)
delete_public_access_block = deleter(PUBLIC_ACCESS_BLOCK)
put_bucket_ownership_controls = putter(OWNERSHIP, validate_ownership)
get_bucket_ownership_controls = getter(OWNERSHIP)
delete_bucket_ownership_controls = deleter(OWNERSHIP)
put_bucket_cors = putter(CORS, validate_cors)
get_bucket_cors = getter(CORS)
delete_bucket_cors = deleter(CORS)
put_bucket_lifecycle = putter(LIFECYCLE, validate_lifecycle)
get_bucket_lifecycle = getter(LIFECYCLE)
delete_bucket_lifecycle = deleter(LIFECYCLE)
put_bucket_encryption = putter(ENCRYPTION, validate_encryption)
delete_bucket_encryption = deleter(ENCRYPTION)
