"""One record per request, handed to the edge's `on_request` hook for logs and metrics."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RequestRecord:
    connection_id: str | None  # from scope["extensions"]["mrapsim"], None when not behind the edge
    listener: str | None
    request_id: str  # the x-amz-request-id sent to the client
    method: str
    operation: str  # "ListObjectsV2", ...; "Unknown" when no route matched
    addressing: str | None  # "path", "virtual", "mrap"; None when the host/path did not resolve
    bucket: str | None
    key: str | None
    access_key: str | None
    status: int
    error_code: str | None  # S3 error code of an error response, else None
    duration: float  # seconds, from the request's arrival to the last byte handed to the server
    bytes_in: int  # request body bytes read
    bytes_out: int  # response body bytes sent
    faults: tuple[str, ...] = ()  # names of the S3 faults the request got (docs/faults.md)
    mrap: str | None = None  # the MRAP alias addressed; `bucket` is then the bucket it routed to
    region: str | None = None  # that bucket's Region (MRAP requests)
