"""The dispatch table: (method, level, marker) → operation.

Every operation of SPEC §6 has a row, so the table doubles as the roadmap: a row whose handler
is None is known by name (records and metrics say "UploadPart", not "unknown") and answers 501
NotImplemented until it is built.

Matching, for the request's method and level, in table order: a row with a marker matches when
the request carries it (a query parameter, with a value if one is given, or a header); a row
without a marker matches only a request carrying no S3 sub-resource parameter, so
`GET /bucket?acl` is NotImplemented rather than silently a listing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from mrapsim.s3 import bucket, copying, listing, multipart, service, versioning
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
    # object level
    Route("GET", OBJECT, "ListParts", multipart.list_parts, q("uploadId")),
    Route("GET", OBJECT, "GetObject", versioning.get_object_version, q("versionId")),
    Route("HEAD", OBJECT, "HeadObject", versioning.head_object_version, q("versionId")),
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
)

UNKNOWN_OPERATION = "Unknown"


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
