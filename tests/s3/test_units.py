"""Addressing, continuation tokens, routing and XML rendering, without a server."""

from __future__ import annotations

import base64

import pytest

from mrapsim.config import load_config
from mrapsim.s3.addressing import resolve_target
from mrapsim.s3.errors import S3Error, render_error
from mrapsim.s3.request import Addressing, Level, Target
from mrapsim.s3.routing import ROUTES, resolve_route
from mrapsim.s3.tokens import ContinuationTokens

MRAPS = load_config().mraps


@pytest.mark.parametrize(
    "host, path, expected",
    [
        ("127.0.0.1:8444", b"/", Target(Addressing.PATH, None, None)),
        ("localhost", b"/b", Target(Addressing.PATH, "b", None)),
        ("s3.amazonaws.com", b"/b/", Target(Addressing.PATH, "b", None)),
        ("s3.us-west-2.amazonaws.com", b"/b/k%2Fx/y%20z", Target(Addressing.PATH, "b", "k/x/y z")),
        ("b.s3.amazonaws.com", b"/k", Target(Addressing.VIRTUAL, "b", "k")),
        ("my.bucket.s3.eu-west-1.amazonaws.com:443", b"/", Target(Addressing.VIRTUAL, "my.bucket", None)),
        ("b.s3-us-west-2.amazonaws.com", b"/a/b", Target(Addressing.VIRTUAL, "b", "a/b")),
        ("b.localhost:8444", b"/%C3%BC", Target(Addressing.VIRTUAL, "b", "ü")),
        (
            "MFZWI23GNJVGW.mrap.accesspoint.s3-global.amazonaws.com.",
            b"/d/k",
            Target(Addressing.MRAP, "mraps3sample", "d/k", "mfzwi23gnjvgw.mrap"),
        ),
        ("127.0.0.1", b"/mfzwi23gnjvgw.mrap/k", Target(Addressing.MRAP, "mraps3sample", "k", "mfzwi23gnjvgw.mrap")),
    ],
)
def test_addressing(host: str, path: bytes, expected: Target) -> None:
    assert resolve_target(host, path, MRAPS) == expected


def test_addressing_refusals() -> None:
    # An alias not configured may have been created at run time: the app looks it up.
    unknown = resolve_target("nope.mrap.accesspoint.s3-global.amazonaws.com", b"/", MRAPS)
    assert unknown.mrap == "nope.mrap"
    with pytest.raises(S3Error) as bad_utf8:
        resolve_target("localhost", b"/b/%FF", MRAPS)
    assert bad_utf8.value.code == "InvalidURI"


def test_tokens_round_trip_are_opaque_and_scoped() -> None:
    tokens = ContinuationTokens.from_secrets(["s3cret"])
    token = tokens.encode("bucket", "dir/secret-name.txt")
    assert "secret-name" not in base64.urlsafe_b64decode(token + "==").decode("latin-1")
    assert tokens.decode("bucket", token) == "dir/secret-name.txt"
    assert ContinuationTokens.from_secrets(["s3cret"]).decode("bucket", token) == "dir/secret-name.txt"
    assert tokens.decode("other-bucket", token) is None
    assert ContinuationTokens.from_secrets(["other"]).decode("bucket", token) is None
    assert tokens.encode("bucket", "a") != tokens.encode("bucket", "b")
    for i in range(len(token)):
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        assert tokens.decode("bucket", flipped) in (None, "dir/secret-name.txt")  # padding bits
        assert tokens.decode("bucket", token[:i]) is None
    assert tokens.decode("bucket", "") is None and tokens.decode("bucket", "!!!") is None


def test_routing_table() -> None:
    assert resolve_route("GET", Level.BUCKET, {"list-type": "2"}, {}) is ROUTES[1]
    route = resolve_route("GET", Level.BUCKET, {"prefix": "a"}, {})
    assert route is not None and route.operation == "ListObjects"
    assert resolve_route("GET", Level.BUCKET, {"website": ""}, {}) is None
    route = resolve_route("PUT", Level.OBJECT, {}, {"x-amz-copy-source": "/b/k"})
    assert route is not None and route.operation == "CopyObject"
    route = resolve_route("PUT", Level.OBJECT, {"partNumber": "1", "uploadId": "u"}, {})
    assert route is not None and route.operation == "UploadPart"
    route = resolve_route("PUT", Level.OBJECT, {"partNumber": "1", "uploadId": "u"}, {"x-amz-copy-source": "b/k"})
    assert route is not None and route.operation == "UploadPartCopy"
    assert all(r.handler is not None for r in ROUTES)
    versioning = {"GetBucketVersioning", "PutBucketVersioning", "ListObjectVersions"}
    operations = {r.operation for r in ROUTES} - {"UploadPartCopy"} - versioning
    spec = """
        ListBuckets CreateBucket DeleteBucket HeadBucket GetBucketLocation ListObjectsV2 ListObjects
        PutObject GetObject HeadObject DeleteObject DeleteObjects CopyObject CreateMultipartUpload
        UploadPart CompleteMultipartUpload AbortMultipartUpload ListParts ListMultipartUploads
    """
    assert set(spec.split()) <= operations  # the core, and the operations added since


def test_error_xml() -> None:
    error = S3Error("NoSuchKey", "The specified key does not exist.", 404, Key="a&b")
    body = render_error(error, resource="/b/a&b", request_id="RID", host_id="HID").decode()
    assert body == (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
        "<Message>The specified key does not exist.</Message><Key>a&amp;b</Key>"
        "<Resource>/b/a&amp;b</Resource><RequestId>RID</RequestId><HostId>HID</HostId></Error>"
    )
