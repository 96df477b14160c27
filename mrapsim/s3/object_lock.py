"""Object Lock: a bucket's lock configuration (its default retention), each version's retention
(GOVERNANCE or COMPLIANCE until a date) and legal hold, and the refusals that protect a locked
version from deletion.

A bucket has Object Lock when its "object-lock" configuration is stored (CreateBucket with
`x-amz-bucket-object-lock-enabled: true`, or PutObjectLockConfiguration on a versioned bucket).
A version's lock lives in its extras (LOCK_MODE, LOCK_UNTIL, LEGAL_HOLD), set when it is written
(the `x-amz-object-lock-*` headers, else the bucket's default retention) and changed with
PutObjectRetention / PutObjectLegalHold. As in S3, locks protect versions, not keys: a DELETE
without a version id still adds a delete marker; deleting the locked version itself is refused
(403 AccessDenied) while its legal hold is ON, its COMPLIANCE retention runs, or its GOVERNANCE
retention runs and the request does not send `x-amz-bypass-governance-retention: true`.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from mrapsim.s3.context import Context
from mrapsim.s3.documents import child_text, malformed_xml, parse_request_document
from mrapsim.s3.errors import S3Error, delete_marker_error, invalid_argument
from mrapsim.s3.payload import receive_body
from mrapsim.s3.responses import S3Response, empty_response, xml_response
from mrapsim.s3.xml import DECLARATION, S3_NAMESPACE, document, iso_timestamp, leaf, node
from mrapsim.store import ObjectInfo, StoreError

OBJECT_LOCK = "object-lock"  # the bucket configuration's name
LOCK_MODE, LOCK_UNTIL, LEGAL_HOLD = "lock-mode", "lock-until", "legal-hold"  # a version's extras
MODES = ("GOVERNANCE", "COMPLIANCE")
HOLD_STATUSES = ("ON", "OFF")
BYPASS_HEADER = "x-amz-bypass-governance-retention"
ENABLED_ONLY = (
    DECLARATION + f'<ObjectLockConfiguration xmlns="{S3_NAMESPACE}"><ObjectLockEnabled>Enabled</ObjectLockEnabled>'
    "</ObjectLockConfiguration>"
)


def protected_error() -> S3Error:
    return S3Error("AccessDenied", "Access Denied because object protected by object lock.", 403)


def missing_configuration() -> S3Error:
    return S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration", 400)


def parse_date(text: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


# -- the bucket's configuration ---------------------------------------------------------------


def enabled_on_create(headers: Mapping[str, str]) -> bool:
    return (headers.get("x-amz-bucket-object-lock-enabled") or "").strip().lower() == "true"


async def enable_on_create(ctx: Context) -> None:
    """CreateBucket with Object Lock: S3 turns versioning on with it, for good."""
    await ctx.store.set_versioning(ctx.bucket, "Enabled")
    await ctx.store.put_bucket_config(ctx.bucket, OBJECT_LOCK, ENABLED_ONLY)


def _default_retention(document_text: str) -> tuple[str, dt.timedelta] | None:
    root = parse_request_document(document_text.encode("utf-8"), "ObjectLockConfiguration")
    retention = root.find("Rule/DefaultRetention")
    if retention is None:
        return None
    mode = child_text(retention, "Mode") or ""
    days, years = child_text(retention, "Days"), child_text(retention, "Years")
    span = dt.timedelta(days=int(days)) if days else dt.timedelta(days=365 * int(years or "0"))
    return mode, span


def validate_configuration(body: bytes) -> str:
    root = parse_request_document(body, "ObjectLockConfiguration")
    if (child_text(root, "ObjectLockEnabled") or "").strip() != "Enabled":
        raise malformed_xml()
    rule = root.find("Rule")
    if rule is not None:
        retention = rule.find("DefaultRetention")
        if retention is None:
            raise malformed_xml()
        if (child_text(retention, "Mode") or "") not in MODES:
            raise malformed_xml()
        days, years = child_text(retention, "Days"), child_text(retention, "Years")
        if (days is None) == (years is None):
            raise malformed_xml()
        value = (days if days is not None else years) or ""
        if not value.strip().isdigit() or int(value) <= 0:
            raise S3Error("InvalidArgument", "Default retention period must be a positive integer value.", 400)
    root.set("xmlns", S3_NAMESPACE)
    return DECLARATION + ET.tostring(root, encoding="unicode")


async def put_object_lock_configuration(ctx: Context) -> S3Response:
    await ctx.store.get_bucket(ctx.bucket)
    received = await receive_body(ctx)
    stored = validate_configuration(received.content.read(0, received.content.size))
    locked = await ctx.store.get_bucket_config(ctx.bucket, OBJECT_LOCK) is not None
    if not locked and await ctx.store.get_versioning(ctx.bucket) != "Enabled":
        raise S3Error(
            "InvalidBucketState",
            "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration",
            409,
        )
    await ctx.store.put_bucket_config(ctx.bucket, OBJECT_LOCK, stored)
    return empty_response()


async def get_object_lock_configuration(ctx: Context) -> S3Response:
    stored = await ctx.store.get_bucket_config(ctx.bucket, OBJECT_LOCK)
    if stored is None:
        raise S3Error(
            "ObjectLockConfigurationNotFoundError",
            "Object Lock configuration does not exist for this bucket",
            404,
            BucketName=ctx.bucket,
        )
    return xml_response(stored.encode("utf-8"))


async def refuse_suspending(ctx: Context, status: str) -> None:
    """Versioning cannot be suspended on a bucket with Object Lock."""
    if status != "Enabled" and await ctx.store.get_bucket_config(ctx.bucket, OBJECT_LOCK) is not None:
        raise S3Error(
            "InvalidBucketState",
            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.",
            409,
        )


# -- a new version's lock -------------------------------------------------------------------------

REQUEST_HEADERS = (
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
)


async def write_extras(ctx: Context) -> dict[str, str]:
    """The lock of the version this request writes: its headers', else the bucket's default."""
    return await extras_from(ctx, ctx.request.headers)


async def extras_from(ctx: Context, headers: Mapping[str, str]) -> dict[str, str]:
    """write_extras from `headers` (or POST Object's form fields, which carry the same names)."""
    asked = any(name in headers for name in REQUEST_HEADERS)
    try:
        configuration = await ctx.store.get_bucket_config(ctx.bucket, OBJECT_LOCK)
    except StoreError:
        configuration = None  # the handler reports the missing bucket
    if configuration is None:
        if asked:
            raise missing_configuration()
        return {}
    extras: dict[str, str] = {}
    mode, until = headers.get("x-amz-object-lock-mode"), headers.get("x-amz-object-lock-retain-until-date")
    if (mode is None) != (until is None):
        raise S3Error(
            "InvalidArgument",
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied",
            400,
        )
    if mode is not None and until is not None:
        extras.update(_retention(ctx, mode, until))
    else:
        default = _default_retention(configuration)
        if default is not None:
            extras.update({LOCK_MODE: default[0], LOCK_UNTIL: iso_timestamp(ctx.now() + default[1])})
    hold = headers.get("x-amz-object-lock-legal-hold")
    if hold is not None:
        if hold not in HOLD_STATUSES:
            raise invalid_argument("Legal Hold must be either of 'ON' or 'OFF'", "x-amz-object-lock-legal-hold", hold)
        extras[LEGAL_HOLD] = hold
    return extras


def check_integrity_header(headers: Mapping[str, str]) -> None:
    """S3 takes a PutObject with Object Lock parameters only with a Content-MD5 or a checksum
    (a header, or a trailer announced by `x-amz-trailer`)."""
    if not any(name in headers for name in REQUEST_HEADERS):
        return
    if "content-md5" in headers or "x-amz-trailer" in headers:
        return
    if any(name.startswith("x-amz-checksum-") and name != "x-amz-checksum-type" for name in headers):
        return
    raise S3Error(
        "InvalidRequest",
        "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters",
        400,
    )


def _retention(ctx: Context, mode: str, until_text: str) -> dict[str, str]:
    if mode not in MODES:
        raise invalid_argument("Unknown wormMode directive.", "x-amz-object-lock-mode", mode)
    until = parse_date(until_text)
    if until is None:
        raise invalid_argument(
            "The retain until date must be provided in ISO 8601 format",
            "x-amz-object-lock-retain-until-date",
            until_text,
        )
    if until <= ctx.now():
        raise invalid_argument("The retain until date must be in the future!", "RetainUntilDate", until_text)
    return {LOCK_MODE: mode, LOCK_UNTIL: iso_timestamp(until)}


def read_headers(extras: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    headers: tuple[tuple[str, str], ...] = ()
    if LOCK_MODE in extras and LOCK_UNTIL in extras:
        headers += (
            ("x-amz-object-lock-mode", extras[LOCK_MODE]),
            ("x-amz-object-lock-retain-until-date", extras[LOCK_UNTIL]),
        )
    if LEGAL_HOLD in extras:
        headers += (("x-amz-object-lock-legal-hold", extras[LEGAL_HOLD]),)
    return headers


# -- deletion ------------------------------------------------------------------------------------


def _retained(extras: Mapping[str, str], now: dt.datetime) -> str | None:
    """The mode of a retention still running, else None."""
    until = parse_date(extras.get(LOCK_UNTIL, ""))
    if until is None or until <= now:
        return None
    return extras.get(LOCK_MODE)


def bypasses_governance(ctx: Context) -> bool:
    return (ctx.request.headers.get(BYPASS_HEADER) or "").strip().lower() == "true"


async def is_locked(ctx: Context) -> bool:
    """Whether the bucket has Object Lock (a delete asks once, not per version)."""
    return await ctx.store.get_bucket_config(ctx.bucket, OBJECT_LOCK) is not None


async def check_deletable(ctx: Context, key: str, version_id: str) -> None:
    """Raises 403 AccessDenied when the version is protected (a missing version is not). Only
    on a bucket with Object Lock (is_locked): it reads the version. Checked, then deleted, not in
    one store step: a lock placed on the version between the two does not stop that delete."""
    try:
        stored = await ctx.store.get_object_version(ctx.bucket, key, version_id)
    except StoreError:
        return
    extras = stored.info.extras
    if extras.get(LEGAL_HOLD) == "ON":
        raise protected_error()
    mode = _retained(extras, ctx.now())
    if mode == "COMPLIANCE" or (mode == "GOVERNANCE" and not bypasses_governance(ctx)):
        raise protected_error()


# -- retention and legal hold of one version -------------------------------------------------------


async def _version(ctx: Context) -> ObjectInfo:
    """The version the request names (`?versionId=`, else the current one), on a lock bucket."""
    if await ctx.store.get_bucket_config(ctx.bucket, OBJECT_LOCK) is None:
        raise missing_configuration()
    version_id = ctx.request.query.get("versionId")
    if version_id is None:
        return await ctx.store.head_object(ctx.bucket, ctx.key)
    info = (await ctx.store.get_object_version(ctx.bucket, ctx.key, version_id)).info
    if info.delete_marker:
        raise delete_marker_error(info.version_id, ctx.request.method)
    return info


def _no_lock() -> S3Error:
    return S3Error(
        "NoSuchObjectLockConfiguration", "The specified object does not have a ObjectLock configuration", 404
    )


async def get_object_retention(ctx: Context) -> S3Response:
    info = await _version(ctx)
    if LOCK_MODE not in info.extras:
        raise _no_lock()
    body = document("Retention", leaf("Mode", info.extras[LOCK_MODE]), leaf("RetainUntilDate", info.extras[LOCK_UNTIL]))
    return xml_response(body)


async def put_object_retention(ctx: Context) -> S3Response:
    info = await _version(ctx)
    received = await receive_body(ctx)
    root = parse_request_document(received.content.read(0, received.content.size), "Retention")
    mode, until_text = child_text(root, "Mode"), child_text(root, "RetainUntilDate")
    if (mode is None) != (until_text is None):
        raise malformed_xml()
    if mode is None or until_text is None:
        changes: dict[str, str | None] = {LOCK_MODE: None, LOCK_UNTIL: None}
        new_until: dt.datetime | None = None
    else:
        retention = _retention(ctx, mode, until_text)
        changes = dict(retention)
        new_until = parse_date(retention[LOCK_UNTIL])
    running = _retained(info.extras, ctx.now())
    if running is not None:
        old_until = parse_date(info.extras[LOCK_UNTIL])
        weakened = new_until is None or mode != running or (old_until is not None and new_until < old_until)
        if weakened and (running == "COMPLIANCE" or not bypasses_governance(ctx)):
            raise protected_error()
    await ctx.store.update_version_extras(ctx.bucket, ctx.key, info.version_id, changes)
    return empty_response()


async def get_object_legal_hold(ctx: Context) -> S3Response:
    info = await _version(ctx)
    if LEGAL_HOLD not in info.extras:
        raise _no_lock()
    return xml_response(document("LegalHold", leaf("Status", info.extras[LEGAL_HOLD])))


async def put_object_legal_hold(ctx: Context) -> S3Response:
    info = await _version(ctx)
    received = await receive_body(ctx)
    root = parse_request_document(received.content.read(0, received.content.size), "LegalHold")
    status = (child_text(root, "Status") or "").strip()
    if status not in HOLD_STATUSES:
        raise malformed_xml()
    await ctx.store.update_version_extras(ctx.bucket, ctx.key, info.version_id, {LEGAL_HOLD: status})
    return empty_response()


def deleted_error(key: str, version_id: str, error: S3Error) -> str:
    """DeleteObjects' per-key `<Error>` for a protected version."""
    return node(
        "Error",
        leaf("Key", key),
        leaf("VersionId", version_id),
        leaf("Code", error.code),
        leaf("Message", error.message),
    )
