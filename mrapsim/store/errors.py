"""What a store refuses to do. The S3 layer maps each to its S3 error code in one place
(`mrapsim.s3.errors.from_store_error`), so stores stay free of HTTP and XML."""

from __future__ import annotations


class StoreError(Exception):
    """Base class; `bucket` and `key` name what the error is about."""

    def __init__(self, bucket: str, key: str | None = None) -> None:
        super().__init__(bucket if key is None else f"{bucket}/{key}")
        self.bucket = bucket
        self.key = key


class NoSuchBucketError(StoreError):
    pass


class NoSuchKeyError(StoreError):
    pass


class BucketAlreadyExistsError(StoreError):
    pass


class BucketNotEmptyError(StoreError):
    pass


class PreconditionFailedError(StoreError):
    """A conditional write's condition did not hold when the store came to write."""

    def __init__(self, bucket: str, key: str, condition: str) -> None:
        super().__init__(bucket, key)
        self.condition = condition  # "If-None-Match" or "If-Match"


class NoSuchUploadError(StoreError):
    def __init__(self, bucket: str, key: str, upload_id: str) -> None:
        super().__init__(bucket, key)
        self.upload_id = upload_id


class StoreOpenError(Exception):
    """The store cannot be opened (its directory unwritable, a newer schema, no WAL); the command
    line reports it as a start-up error about `store.path`."""


class NoSuchVersionError(StoreError):
    def __init__(self, bucket: str, key: str, version_id: str) -> None:
        super().__init__(bucket, key)
        self.version_id = version_id
