"""The dispatch table: (method, level, marker) → operation.

Every operation mrapsim knows by name has a row, so the table doubles as the roadmap: a row whose handler
is None is known by name (records and metrics say "UploadPart", not "unknown") and answers 501
NotImplemented until it is built. docs/s3-operations.md is generated from this table
(`python -m mrapsim.s3.catalogue`; a test keeps it equal), so a new row shows there.

Matching, for the request's method and level, in table order: a row with a marker matches when
the request carries it (a query parameter, with a value if one is given, or a header); a row
without a marker matches only a request carrying no S3 sub-resource parameter, so
`GET /bucket?acl` is NotImplemented rather than silently a listing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from mrapsim.s3 import (
    acl,
    attributes,
    bucket,
    copying,
    cors,
    listing,
    multipart,
    object_lock,
    post_object,
    service,
    tagging,
    versioning,
)
from mrapsim.s3 import bucket_config as config
from mrapsim.s3 import object as object_ops
from mrapsim.s3.context import Context
from mrapsim.s3.request import Level
from mrapsim.s3.responses import S3Response

Handler = Callable[[Context], Awaitable[S3Response]]

# Query parameters that select an S3 operation (a "sub-resource") rather than parameterise one.
SUBRESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "attributes", "cors", "delete", "encryption",
        "intelligent-tiering", "inventory", "legal-hold", "lifecycle", "list-type", "location",
        "logging", "metadataTable", "metrics", "notification", "object-lock", "ownershipControls",
        "partNumber", "policy", "policyStatus", "publicAccessBlock", "rename", "replication",
        "requestPayment", "restore", "retention", "select", "session", "tagging", "torrent",
        "uploadId", "uploads", "versionId", "versioning", "versions", "website",
        # newer operations (botocore 1.43's model); tests/s3/test_catalogue.py checks every one is here
        "abac", "metadataConfiguration", "metadataInventoryTable", "metadataJournalTable", "renameObject",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Marker:
    query: str | None = None
    value: str | None = None  # with `query`: the parameter must have this value
    header: str | None = None

    def matches(self, query: Mapping[str, str], headers: Mapping[str, str]) -> bool:
        if self.header is not None and self.header not in headers:
            return False
        if self.query is not None:
            if self.query not in query:
                return False
            if self.value is not None and query[self.query] != self.value:
                return False
        return True


@dataclass(frozen=True)
class Route:
    method: str
    level: Level
    operation: str
    handler: Handler | None  # None: known, not built yet (501)
    marker: Marker | None = None


def q(name: str, value: str | None = None) -> Marker:
    return Marker(query=name, value=value)


SERVICE, BUCKET, OBJECT = Level.SERVICE, Level.BUCKET, Level.OBJECT

ROUTES: tuple[Route, ...] = (
    Route("GET", SERVICE, "ListBuckets", service.list_buckets),
    # bucket level
    Route("GET", BUCKET, "ListObjectsV2", listing.list_objects_v2, q("list-type", "2")),
    Route("GET", BUCKET, "GetBucketLocation", bucket.get_bucket_location, q("location")),
    Route("GET", BUCKET, "ListMultipartUploads", multipart.list_multipart_uploads, q("uploads")),
    Route("GET", BUCKET, "GetBucketVersioning", versioning.get_bucket_versioning, q("versioning")),
    Route("GET", BUCKET, "ListObjectVersions", versioning.list_object_versions, q("versions")),
    Route("PUT", BUCKET, "PutBucketVersioning", versioning.put_bucket_versioning, q("versioning")),
    Route("GET", BUCKET, "ListObjects", listing.list_objects_v1),
    Route("HEAD", BUCKET, "HeadBucket", bucket.head_bucket),
    Route("PUT", BUCKET, "CreateBucket", bucket.create_bucket),
    Route("DELETE", BUCKET, "DeleteBucket", bucket.delete_bucket),
    Route("POST", BUCKET, "DeleteObjects", object_ops.delete_objects, q("delete")),
    # bucket configurations (bucket_config.py, acl.py, tagging.py, cors.py)
    Route("GET", BUCKET, "GetBucketAcl", acl.get_bucket_acl, q("acl")),
    Route("PUT", BUCKET, "PutBucketAcl", acl.put_bucket_acl, q("acl")),
    Route("GET", BUCKET, "GetBucketTagging", tagging.get_bucket_tagging, q("tagging")),
    Route("PUT", BUCKET, "PutBucketTagging", tagging.put_bucket_tagging, q("tagging")),
    Route("DELETE", BUCKET, "DeleteBucketTagging", tagging.delete_bucket_tagging, q("tagging")),
    Route("GET", BUCKET, "GetBucketPolicy", config.get_bucket_policy, q("policy")),
    Route("PUT", BUCKET, "PutBucketPolicy", config.put_bucket_policy, q("policy")),
    Route("DELETE", BUCKET, "DeleteBucketPolicy", config.delete_bucket_policy, q("policy")),
    Route("GET", BUCKET, "GetBucketPolicyStatus", config.get_bucket_policy_status, q("policyStatus")),
    Route("GET", BUCKET, "GetPublicAccessBlock", config.get_public_access_block, q("publicAccessBlock")),
    Route("PUT", BUCKET, "PutPublicAccessBlock", config.put_public_access_block, q("publicAccessBlock")),
    Route("DELETE", BUCKET, "DeletePublicAccessBlock", config.delete_public_access_block, q("publicAccessBlock")),
    Route("GET", BUCKET, "GetBucketOwnershipControls", config.get_bucket_ownership_controls, q("ownershipControls")),
    Route("PUT", BUCKET, "PutBucketOwnershipControls", config.put_bucket_ownership_controls, q("ownershipControls")),
    Route(
        "DELETE",
        BUCKET,
        "DeleteBucketOwnershipControls",
        config.delete_bucket_ownership_controls,
        q("ownershipControls"),
    ),
    Route("GET", BUCKET, "GetBucketCors", config.get_bucket_cors, q("cors")),
    Route("PUT", BUCKET, "PutBucketCors", config.put_bucket_cors, q("cors")),
    Route("DELETE", BUCKET, "DeleteBucketCors", config.delete_bucket_cors, q("cors")),
    Route("GET", BUCKET, "GetBucketLifecycleConfiguration", config.get_bucket_lifecycle, q("lifecycle")),
    Route("PUT", BUCKET, "PutBucketLifecycleConfiguration", config.put_bucket_lifecycle, q("lifecycle")),
    Route("DELETE", BUCKET, "DeleteBucketLifecycle", config.delete_bucket_lifecycle, q("lifecycle")),
    Route("GET", BUCKET, "GetBucketEncryption", config.get_bucket_encryption, q("encryption")),
    Route("PUT", BUCKET, "PutBucketEncryption", config.put_bucket_encryption, q("encryption")),
    Route("DELETE", BUCKET, "DeleteBucketEncryption", config.delete_bucket_encryption, q("encryption")),
    Route("GET", BUCKET, "GetObjectLockConfiguration", object_lock.get_object_lock_configuration, q("object-lock")),
    Route("PUT", BUCKET, "PutObjectLockConfiguration", object_lock.put_object_lock_configuration, q("object-lock")),
    Route("OPTIONS", BUCKET, "OptionsObject", cors.preflight),
    Route("POST", BUCKET, "PostObject", post_object.post_object),
    # object level
    Route("GET", OBJECT, "ListParts", multipart.list_parts, q("uploadId")),
    # before the ?versionId= rows: these take a versionId too (object_lock.py)
    Route("GET", OBJECT, "GetObjectRetention", object_lock.get_object_retention, q("retention")),
    Route("PUT", OBJECT, "PutObjectRetention", object_lock.put_object_retention, q("retention")),
    Route("GET", OBJECT, "GetObjectLegalHold", object_lock.get_object_legal_hold, q("legal-hold")),
    Route("PUT", OBJECT, "PutObjectLegalHold", object_lock.put_object_legal_hold, q("legal-hold")),
    Route("GET", OBJECT, "GetObject", versioning.get_object_version, q("versionId")),
    Route("HEAD", OBJECT, "HeadObject", versioning.head_object_version, q("versionId")),
    Route("GET", OBJECT, "GetObjectAttributes", attributes.get_object_attributes, q("attributes")),
    Route("GET", OBJECT, "GetObject", object_ops.get_object, q("partNumber")),
    Route("HEAD", OBJECT, "HeadObject", object_ops.head_object, q("partNumber")),
    Route("GET", OBJECT, "GetObject", object_ops.get_object),
    Route("HEAD", OBJECT, "HeadObject", object_ops.head_object),
    Route("PUT", OBJECT, "UploadPartCopy", multipart.upload_part_copy, Marker("partNumber", None, "x-amz-copy-source")),
    Route("PUT", OBJECT, "UploadPart", multipart.upload_part, q("partNumber")),
    Route("PUT", OBJECT, "CopyObject", copying.copy_object, Marker(header="x-amz-copy-source")),
    Route("PUT", OBJECT, "PutObject", object_ops.put_object),
    Route("DELETE", OBJECT, "AbortMultipartUpload", multipart.abort_multipart_upload, q("uploadId")),
    Route("DELETE", OBJECT, "DeleteObject", versioning.delete_object_version, q("versionId")),
    Route("DELETE", OBJECT, "DeleteObject", object_ops.delete_object),
    Route("POST", OBJECT, "CreateMultipartUpload", multipart.create_multipart_upload, q("uploads")),
    Route("POST", OBJECT, "CompleteMultipartUpload", multipart.complete_multipart_upload, q("uploadId")),
    Route("GET", OBJECT, "GetObjectAcl", acl.get_object_acl, q("acl")),
    Route("PUT", OBJECT, "PutObjectAcl", acl.put_object_acl, q("acl")),
    Route("GET", OBJECT, "GetObjectTagging", tagging.get_object_tagging, q("tagging")),
    Route("PUT", OBJECT, "PutObjectTagging", tagging.put_object_tagging, q("tagging")),
    Route("DELETE", OBJECT, "DeleteObjectTagging", tagging.delete_object_tagging, q("tagging")),
    Route("OPTIONS", OBJECT, "OptionsObject", cors.preflight),
)

UNKNOWN_OPERATION = "Unknown"

# Operations whose configuration mrapsim stores and returns without acting on it (e.g. a bucket
# policy, which no request is evaluated against). docs/s3-operations.md says so for each; add a
# name here when its handler only stores.
STORED_NOT_ENFORCED: frozenset[str] = frozenset()


def resolve_route(method: str, level: Level, query: Mapping[str, str], headers: Mapping[str, str]) -> Route | None:
    has_subresource = any(name in SUBRESOURCES for name in query)
    for route in ROUTES:
        if route.method != method or route.level != level:
            continue
        if route.marker is None:
            if not has_subresource:
                return route
        elif route.marker.matches(query, headers):
            return route
    return None
