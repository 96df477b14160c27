"""The one part of bucket policy evaluation mrapsim does: statements that apply to everyone.

A bucket policy's statements whose Principal is everyone (`"*"` or `{"AWS": "*"}`) decide what an
anonymous request may do: a matching Deny refuses, a matching Allow admits (unless the public
access block's RestrictPublicBuckets is set), else the ACLs decide (acl.py). Actions match with
`*` and `?` wildcards, case-insensitively; resources (`arn:aws:s3:::bucket/key`) case-sensitively.
A statement with a Condition, NotPrincipal, NotAction or NotResource is not weighed: full IAM
policy evaluation (users, roles, conditions, SCPs) is out of scope, and any configured key pair
is the account owner, allowed everything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType

# What an anonymous request asks for, by operation: the IAM action, and whether the resource is
# the object (else the bucket).
ACTIONS = MappingProxyType(
    {
        "GetObject": ("s3:GetObject", True),
        "HeadObject": ("s3:GetObject", True),
        "PutObject": ("s3:PutObject", True),
        "ListObjects": ("s3:ListBucket", False),
        "ListObjectsV2": ("s3:ListBucket", False),
        "HeadBucket": ("s3:ListBucket", False),
        "GetBucketLocation": ("s3:GetBucketLocation", False),
    }
)


def _wildcard(pattern: str, text: str, *, ignore_case: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE if ignore_case else 0) is not None


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def is_everyone(principal: object) -> bool:
    if principal == "*":
        return True
    return isinstance(principal, Mapping) and "*" in _strings(principal.get("AWS"))


def _public_statements(document: str) -> Iterator[Mapping[str, object]]:
    statements = json.loads(document).get("Statement", [])
    for statement in [statements] if isinstance(statements, dict) else statements:
        if not isinstance(statement, Mapping) or not is_everyone(statement.get("Principal")):
            continue
        if any(name in statement for name in ("Condition", "NotPrincipal", "NotAction", "NotResource")):
            continue
        yield statement


def is_public(document: str) -> bool:
    """S3's IsPublic for the simple case: an Allow for everyone."""
    return any(s.get("Effect") == "Allow" for s in _public_statements(document))


def decide(document: str | None, operation: str, bucket: str, key: str | None) -> bool | None:
    """True: allowed to everyone; False: denied to everyone; None: the policy does not say."""
    if document is None or operation not in ACTIONS:
        return None
    action, on_object = ACTIONS[operation]
    resource = f"arn:aws:s3:::{bucket}/{key}" if on_object else f"arn:aws:s3:::{bucket}"
    verdict: bool | None = None
    for statement in _public_statements(document):
        if not any(_wildcard(p, action, ignore_case=True) for p in _strings(statement.get("Action"))):
            continue
        if not any(_wildcard(p, resource, ignore_case=False) for p in _strings(statement.get("Resource"))):
            continue
        if statement.get("Effect") == "Deny":
            return False
        verdict = True
    return verdict
