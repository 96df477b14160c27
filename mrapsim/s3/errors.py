"""One exception type for every S3 error response, and the constructors that name S3's codes.

`S3Error(code, message, status, **extra)`: `extra` keywords become elements of the `<Error>`
document in the order given (`BucketName`, `Key`, `ArgumentName`, `CanonicalRequest`, ...), as
S3 adds them. Rendering lives in `render_error`, so handlers only raise.
"""

from __future__ import annotations

from mrapsim.s3.xml import document, leaf
from mrapsim.store import (
    BucketAlreadyExistsError,
    BucketNotEmptyError,
    NoSuchBucketError,
    NoSuchKeyError,
    NoSuchUploadError,
    NoSuchVersionError,
    PreconditionFailedError,
    StoreError,
)


class S3Error(Exception):
    def __init__(self, code: str, message: str, status: int, **extra: str | int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.extra: tuple[tuple[str, str], ...] = tuple((k, str(v)) for k, v in extra.items())
        self.headers: tuple[tuple[str, str], ...] = ()

    def with_headers(self, *headers: tuple[str, str]) -> S3Error:
        """Response headers that go with this error (e.g. `x-amz-bucket-region`)."""
        self.headers = self.headers + headers
        return self


def render_error(error: S3Error, *, resource: str, request_id: str, host_id: str) -> bytes:
    return document(
        "Error",
        leaf("Code", error.code),
        leaf("Message", error.message),
        *(leaf(name, value) for name, value in error.extra),
        leaf("Resource", resource),
        leaf("RequestId", request_id),
        leaf("HostId", host_id),
        namespaced=False,
    )


# -- constructors for the codes used in more than one place -------------------------------------


def no_such_bucket(bucket: str) -> S3Error:
    return S3Error("NoSuchBucket", "The specified bucket does not exist", 404, BucketName=bucket)


def no_such_key(key: str) -> S3Error:
    return S3Error("NoSuchKey", "The specified key does not exist.", 404, Key=key)


def invalid_argument(message: str, name: str, value: str) -> S3Error:
    return S3Error("InvalidArgument", message, 400, ArgumentName=name, ArgumentValue=value)


def not_implemented(what: str) -> S3Error:
    return S3Error(
        "NotImplemented",
        f"A header or query you provided implies functionality that is not implemented: {what}",
        501,
    )


def internal_error() -> S3Error:
    return S3Error("InternalError", "We encountered an internal error. Please try again.", 500)


def precondition_failed(condition: str) -> S3Error:
    return S3Error(
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        412,
        Condition=condition,
    )


def conditional_request_conflict() -> S3Error:
    """409: a conditional write raced with another operation on the same key or upload."""
    return S3Error(
        "ConditionalRequestConflict",
        "A conflicting conditional operation is currently in progress against this resource. Please try again.",
        409,
    )


def delete_marker_error(version_id: str, method: str) -> S3Error:
    """405: a request for a version that is a delete marker (GET, HEAD, retention, legal hold)."""
    return S3Error(
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
        405,
        Method=method,
        ResourceType="DeleteMarker",
    ).with_headers(("x-amz-delete-marker", "true"), ("x-amz-version-id", version_id), ("allow", "DELETE"))


def from_store_error(error: StoreError) -> S3Error:
    """The S3 error for a store refusal: the single mapping between the two vocabularies."""
    if isinstance(error, PreconditionFailedError):
        return precondition_failed(error.condition)
    if isinstance(error, NoSuchUploadError):
        return S3Error(
            "NoSuchUpload",
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been "
            "aborted or completed.",
            404,
            UploadId=error.upload_id,
        )
    if isinstance(error, NoSuchVersionError):
        return S3Error(
            "NoSuchVersion",
            "The specified version does not exist.",
            404,
            Key=error.key or "",
            VersionId=error.version_id,
        )
    if isinstance(error, NoSuchKeyError):
        return no_such_key(error.key or "")
    if isinstance(error, NoSuchBucketError):
        return no_such_bucket(error.bucket)
    if isinstance(error, BucketAlreadyExistsError):
        return S3Error(
            "BucketAlreadyOwnedByYou",
            "Your previous request to create the named bucket succeeded and you already own it.",
            409,
            BucketName=error.bucket,
        )
    if isinstance(error, BucketNotEmptyError):
        return S3Error(
            "BucketNotEmpty",
            "The bucket you tried to delete is not empty",
            409,
            BucketName=error.bucket,
        )
    return internal_error()
