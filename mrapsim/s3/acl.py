"""Access control lists, stored and returned, and the one access decision mrapsim enforces:
what an anonymous (unsigned) request may do.

ACLs come from a canned `x-amz-acl`, from `x-amz-grant-*` headers (never both: S3 refuses the
mix), or from an AccessControlPolicy document (Put*Acl). An object's ACL is kept in its extras
under "acl", a bucket's as its "acl" configuration, both as JSON
`{"owner": <canonical id>, "grants": [[grantee type, id|uri|email, permission], ...]}`; no ACL
stored means `private` (the owner alone, FULL_CONTROL).

Enforcement: a signed request with a configured key pair is the account owner and may do
anything (one account; IAM users, roles and full policy evaluation are out of scope). A bucket
policy's statements for everyone decide first (policy.py); otherwise an anonymous request may
read an object (GET/HEAD) whose ACL grants READ to AllUsers, list or head a bucket whose ACL
grants READ to AllUsers, and write into one granting WRITE to AllUsers; anything else is 403
AccessDenied, as S3. The public access block's BlockPublicAcls (a public ACL is
refused with 403) and IgnorePublicAcls (public grants do not count), and ownership controls'
BucketOwnerEnforced (ACLs disabled: only bucket-owner-full-control is accepted,
AccessControlListNotSupported otherwise, and stored grants do not count), are enforced.

mrapsim's buckets start the way S3 buckets did before April 2023: ACLs enabled and no public
access block, so that a `public-read` object is public as soon as it is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mrapsim.s3 import policy
from mrapsim.s3.bucket_config import (
    OWNERSHIP,
    POLICY,
    PUBLIC_ACCESS_BLOCK,
    flag_set,
    object_ownership,
    read_document,
)
from mrapsim.s3.context import Context, Owner
from mrapsim.s3.documents import child_text, parse_request_document
from mrapsim.s3.errors import S3Error, invalid_argument
from mrapsim.s3.responses import S3Response, empty_response, xml_response
from mrapsim.s3.xml import document, leaf, node
from mrapsim.store import NoSuchKeyError

ACL_EXTRA = "acl"
ACL_CONFIG = "acl"
GROUPS = "http://acs.amazonaws.com/groups/"
ALL_USERS = GROUPS + "global/AllUsers"
AUTHENTICATED_USERS = GROUPS + "global/AuthenticatedUsers"
LOG_DELIVERY = GROUPS + "s3/LogDelivery"
PUBLIC_GROUPS = (ALL_USERS, AUTHENTICATED_USERS)
PERMISSIONS = ("FULL_CONTROL", "WRITE", "WRITE_ACP", "READ", "READ_ACP")
GRANT_HEADERS = MappingProxyType(
    {
        "x-amz-grant-read": "READ",
        "x-amz-grant-write": "WRITE",
        "x-amz-grant-read-acp": "READ_ACP",
        "x-amz-grant-write-acp": "WRITE_ACP",
        "x-amz-grant-full-control": "FULL_CONTROL",
    }
)
GRANTEE_TYPES = MappingProxyType({"id": "CanonicalUser", "uri": "Group", "emailaddress": "AmazonCustomerByEmail"})
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CANNED = MappingProxyType(
    {
        "private": (),
        "public-read": (("Group", ALL_USERS, "READ"),),
        "public-read-write": (("Group", ALL_USERS, "READ"), ("Group", ALL_USERS, "WRITE")),
        "authenticated-read": (("Group", AUTHENTICATED_USERS, "READ"),),
        "aws-exec-read": (),
        "bucket-owner-read": (),
        "bucket-owner-full-control": (),
        "log-delivery-write": (("Group", LOG_DELIVERY, "WRITE"), ("Group", LOG_DELIVERY, "READ_ACP")),
    }
)
GRANT_ITEM = re.compile(r'\s*([A-Za-z]+)\s*=\s*"?([^",]*)"?\s*')

Grant = tuple[str, str, str]  # grantee type, its id / uri / email, permission


@dataclass(frozen=True)
class Acl:
    owner: str
    grants: tuple[Grant, ...]

    @classmethod
    def private(cls, owner: str) -> Acl:
        return cls(owner, (("CanonicalUser", owner, "FULL_CONTROL"),))

    @classmethod
    def loads(cls, text: str | None, owner: str) -> Acl:
        if text is None:
            return cls.private(owner)
        value = json.loads(text)
        return cls(value["owner"], tuple((t, g, p) for t, g, p in value["grants"]))

    def dumps(self) -> str:
        return json.dumps({"owner": self.owner, "grants": [list(g) for g in self.grants]}, separators=(",", ":"))

    def is_public(self) -> bool:
        return any(kind == "Group" and grantee in PUBLIC_GROUPS for kind, grantee, _ in self.grants)

    def allows_everyone(self, permission: str) -> bool:
        return any(
            kind == "Group" and grantee == ALL_USERS and granted in (permission, "FULL_CONTROL")
            for kind, grantee, granted in self.grants
        )


# -- ACLs from requests ---------------------------------------------------------------------------


def acl_from_headers(headers: Mapping[str, str], owner: str, *, bucket: bool = False) -> Acl | None:
    """The ACL a request's `x-amz-acl` or `x-amz-grant-*` headers ask for; None when neither."""
    canned = headers.get("x-amz-acl")
    granted = [name for name in GRANT_HEADERS if name in headers]
    if canned is not None and granted:
        raise S3Error("InvalidRequest", "Specifying both Canned ACLs and Header Grants is not allowed", 400)
    if canned is not None:
        canned = canned.strip()
        if canned not in CANNED or (canned == "log-delivery-write" and not bucket):
            raise invalid_argument("", "x-amz-acl", canned)
        return Acl(owner, (("CanonicalUser", owner, "FULL_CONTROL"), *CANNED[canned]))
    if not granted:
        return None
    grants: list[Grant] = []
    for name in granted:
        for item in headers[name].split(","):
            match = GRANT_ITEM.fullmatch(item)
            kind = GRANTEE_TYPES.get(match.group(1).lower()) if match else None
            if match is None or kind is None or not match.group(2):
                raise invalid_argument("Argument format not recognized", name, headers[name])
            grants.append(checked_grant(kind, match.group(2), GRANT_HEADERS[name]))
    return Acl(owner, tuple(grants))


CANONICAL_ID = re.compile(r"[0-9a-f]{64}")


def checked_grant(kind: str, grantee: str, permission: str) -> Grant:
    """A grant S3 would accept: canonical ids are 64 hex digits, groups are S3's, and an e-mail
    grantee cannot be resolved to an account here (S3 resolves it, in a few Regions only)."""
    if kind == "CanonicalUser" and not CANONICAL_ID.fullmatch(grantee):
        raise invalid_argument("Invalid id", "CanonicalUser/ID", grantee)
    if kind == "Group" and not grantee.startswith(GROUPS):
        raise invalid_argument("Invalid group uri", "Group/URI", grantee)
    if kind == "AmazonCustomerByEmail":
        raise S3Error(
            "UnresolvableGrantByEmailAddress",
            "The e-mail address you provided does not match any account on record.",
            400,
            EmailAddress=grantee,
        )
    return kind, grantee, permission


def malformed_acl() -> S3Error:
    return S3Error(
        "MalformedACLError",
        "The XML you provided was not well-formed or did not validate against our published schema",
        400,
    )


def acl_from_document(body: bytes, owner: str) -> Acl:
    root = parse_request_document(body, "AccessControlPolicy")
    listed = root.find("AccessControlList")
    if listed is None:
        raise malformed_acl()
    grants: list[Grant] = []
    for grant in listed.findall("Grant"):
        grantee = grant.find("Grantee")
        permission = (child_text(grant, "Permission") or "").strip()
        if grantee is None or permission not in PERMISSIONS:
            raise malformed_acl()
        kind = grantee.get(f"{{{XSI}}}type") or grantee.get("type") or ""
        field = {"CanonicalUser": "ID", "Group": "URI", "AmazonCustomerByEmail": "EmailAddress"}.get(kind)
        value = (child_text(grantee, field) or "").strip() if field else ""
        if not value:
            raise malformed_acl()
        grants.append(checked_grant(kind, value, permission))
    return Acl(owner, tuple(grants))


async def check_acl_allowed(ctx: Context, acl: Acl) -> None:
    """Ownership controls and the public access block, as S3 applies them to an ACL being set."""
    ownership = object_ownership(await ctx.store.get_bucket_config(ctx.bucket, OWNERSHIP))
    if ownership == "BucketOwnerEnforced" and acl.grants != Acl.private(acl.owner).grants:
        raise S3Error("AccessControlListNotSupported", "The bucket does not allow ACLs", 400)
    block = await ctx.store.get_bucket_config(ctx.bucket, PUBLIC_ACCESS_BLOCK)
    if acl.is_public() and flag_set(block, "BlockPublicAcls"):
        raise S3Error("AccessDenied", "Access Denied", 403)


async def write_extras(ctx: Context) -> dict[str, str]:
    """The ACL extra of an object written by this request (none: private)."""
    acl = acl_from_headers(ctx.request.headers, ctx.owner.id)
    if acl is None:
        return {}
    await check_acl_allowed(ctx, acl)
    return {ACL_EXTRA: acl.dumps()}


# -- Get/Put Object/Bucket ACL --------------------------------------------------------------------


def policy_document(acl: Acl, owner: Owner) -> bytes:
    return document(
        "AccessControlPolicy",
        node("Owner", leaf("ID", acl.owner), leaf("DisplayName", owner.display_name)),
        node("AccessControlList", *(_grant_xml(grant, owner) for grant in acl.grants)),
    )


def _grant_xml(grant: Grant, owner: Owner) -> str:
    kind, grantee, permission = grant
    if kind == "CanonicalUser":
        inner = leaf("ID", grantee) + (leaf("DisplayName", owner.display_name) if grantee == owner.id else "")
    elif kind == "Group":
        inner = leaf("URI", grantee)
    else:
        inner = leaf("EmailAddress", grantee)
    opening = f'<Grantee xmlns:xsi="{XSI}" xsi:type="{kind}">'
    return node("Grant", opening + inner + "</Grantee>", leaf("Permission", permission))


async def _requested_acl(ctx: Context, *, bucket: bool) -> Acl:
    body = await read_document(ctx)
    from_headers = acl_from_headers(ctx.request.headers, ctx.owner.id, bucket=bucket)
    if from_headers is not None:
        if body.strip():
            raise S3Error("UnexpectedContent", "This request does not support content", 400)
        acl = from_headers
    elif body.strip():
        acl = acl_from_document(body, ctx.owner.id)
    else:
        raise S3Error(
            "MissingSecurityHeader", "Your request was missing a required header", 400, MissingHeaderName="x-amz-acl"
        )
    await check_acl_allowed(ctx, acl)
    return acl


async def get_object_acl(ctx: Context) -> S3Response:
    info = await ctx.store.head_object(ctx.bucket, ctx.key)
    return xml_response(policy_document(Acl.loads(info.extras.get(ACL_EXTRA), ctx.owner.id), ctx.owner))


async def put_object_acl(ctx: Context) -> S3Response:
    await ctx.store.head_object(ctx.bucket, ctx.key)
    acl = await _requested_acl(ctx, bucket=False)
    await ctx.store.update_object_extras(ctx.bucket, ctx.key, {ACL_EXTRA: acl.dumps()})
    return empty_response()


async def get_bucket_acl(ctx: Context) -> S3Response:
    stored = await ctx.store.get_bucket_config(ctx.bucket, ACL_CONFIG)
    return xml_response(policy_document(Acl.loads(stored, ctx.owner.id), ctx.owner))


async def put_bucket_acl(ctx: Context) -> S3Response:
    await ctx.store.get_bucket(ctx.bucket)
    acl = await _requested_acl(ctx, bucket=True)
    await ctx.store.put_bucket_config(ctx.bucket, ACL_CONFIG, acl.dumps())
    return empty_response()


async def apply_create_bucket_headers(ctx: Context) -> None:
    """CreateBucket's `x-amz-acl`/`x-amz-grant-*` and `x-amz-object-ownership`, kept as the new
    bucket's configurations."""
    ownership = ctx.request.headers.get("x-amz-object-ownership")
    if ownership is not None:
        if ownership not in ("BucketOwnerPreferred", "ObjectWriter", "BucketOwnerEnforced"):
            raise invalid_argument("Invalid x-amz-object-ownership header", "x-amz-object-ownership", ownership)
        body = document("OwnershipControls", node("Rule", leaf("ObjectOwnership", ownership))).decode("utf-8")
        await ctx.store.put_bucket_config(ctx.bucket, OWNERSHIP, body)
    acl = acl_from_headers(ctx.request.headers, ctx.owner.id, bucket=True)
    if acl is not None:
        await check_acl_allowed(ctx, acl)
        await ctx.store.put_bucket_config(ctx.bucket, ACL_CONFIG, acl.dumps())


def check_create_bucket_headers(ctx: Context) -> None:
    """Refuse bad ACL headers before the bucket is made."""
    acl_from_headers(ctx.request.headers, ctx.owner.id, bucket=True)


# -- anonymous requests ---------------------------------------------------------------------------

# What an anonymous request may be admitted to, and the permission it needs from whom.
ANONYMOUS_OBJECT_READS = ("GetObject", "HeadObject")
ANONYMOUS_BUCKET_READS = ("ListObjects", "ListObjectsV2", "HeadBucket", "GetBucketLocation")
ANONYMOUS_BUCKET_WRITES = ("PutObject",)
ANONYMOUS_OPERATIONS = ANONYMOUS_OBJECT_READS + ANONYMOUS_BUCKET_READS + ANONYMOUS_BUCKET_WRITES


async def _public_grants_count(ctx: Context) -> bool:
    if object_ownership(await ctx.store.get_bucket_config(ctx.bucket, OWNERSHIP)) == "BucketOwnerEnforced":
        return False
    return not flag_set(await ctx.store.get_bucket_config(ctx.bucket, PUBLIC_ACCESS_BLOCK), "IgnorePublicAcls")


async def authorize_anonymous(ctx: Context, operation: str) -> None:
    """Raises 403 AccessDenied unless the ACLs let everyone do `operation` (module comment)."""
    denied = S3Error("AccessDenied", "Access Denied", 403)
    if operation not in ANONYMOUS_OPERATIONS or ctx.target.bucket is None:
        raise denied
    await ctx.store.get_bucket(ctx.bucket)
    by_policy = policy.decide(
        await ctx.store.get_bucket_config(ctx.bucket, POLICY), operation, ctx.bucket, ctx.target.key
    )
    if by_policy is False:
        raise denied
    restricted = flag_set(await ctx.store.get_bucket_config(ctx.bucket, PUBLIC_ACCESS_BLOCK), "RestrictPublicBuckets")
    if by_policy and not restricted:
        return
    if not await _public_grants_count(ctx):
        raise denied
    bucket_acl = Acl.loads(await ctx.store.get_bucket_config(ctx.bucket, ACL_CONFIG), ctx.owner.id)
    if operation in ANONYMOUS_OBJECT_READS:
        try:
            info = await ctx.store.head_object(ctx.bucket, ctx.key)
        except NoSuchKeyError:
            # Whoever may not list the bucket may not learn that a key is absent either.
            if bucket_acl.allows_everyone("READ"):
                raise
            raise denied from None
        allowed = Acl.loads(info.extras.get(ACL_EXTRA), ctx.owner.id).allows_everyone("READ")
    else:
        allowed = bucket_acl.allows_everyone("READ" if operation in ANONYMOUS_BUCKET_READS else "WRITE")
    if not allowed:
        raise denied
