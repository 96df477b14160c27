"""SigV2, header and query forms: botocore's own SigV2 signers (HmacV1Auth, HmacV1QueryAuth) on
the live app, and the verifier's refusals and config switch."""

from __future__ import annotations

import datetime as dt
import urllib.request
import xml.etree.ElementTree as ET
from email.utils import format_datetime
from typing import Any

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mrapsim.config import ConfigError, load_config
from mrapsim.s3 import sigv2
from mrapsim.s3.auth import UNSUPPORTED_MECHANISM, Authorized, Rejected, Verifier
from mrapsim.s3.headers import Headers
from mrapsim.s3.request import S3Request
from tests.s3.conftest import (
    ACCESS_KEY,
    NAMES_BUCKET,
    ODD_KEYS,
    SECRET_KEY,
    WRITE_BUCKET,
    LiveServer,
    make_client,
    send,
)

NOW = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def v2(live: LiveServer) -> Any:
    return make_client(live.url, signature_version="s3")  # botocore's HmacV1Auth: `Authorization: AWS ...`


def test_boto3_with_sigv2_headers_reads_writes_and_lists(v2: Any) -> None:
    for key in ("v2/plain.txt", "v2/a b+c ü.txt"):
        v2.put_object(Bucket=WRITE_BUCKET, Key=key, Body=b"signed with v2", ContentType="text/plain",
                      Metadata={"m": "1"})  # fmt: skip
        got = v2.get_object(Bucket=WRITE_BUCKET, Key=key, ResponseContentType="text/x-v2")
        assert got["Body"].read() == b"signed with v2" and got["ContentType"] == "text/x-v2"
    listed = v2.list_objects_v2(Bucket=NAMES_BUCKET, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == sorted(k for k in ODD_KEYS if k.startswith("dir/"))
    upload_id = v2.create_multipart_upload(Bucket=WRITE_BUCKET, Key="v2/mp")["UploadId"]
    etag = v2.upload_part(Bucket=WRITE_BUCKET, Key="v2/mp", UploadId=upload_id, PartNumber=1, Body=b"x")["ETag"]
    v2.complete_multipart_upload(Bucket=WRITE_BUCKET, Key="v2/mp", UploadId=upload_id,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})  # fmt: skip
    v2.delete_object(Bucket=WRITE_BUCKET, Key="v2/mp")


def test_default_presigned_url_is_sigv2_and_works(live: LiveServer, s3: Any) -> None:
    """What boto3's generate_presigned_url gives without a signature_version (as of botocore 1.43)."""
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "mraps3sample", "Key": "hello.txt", "ResponseContentType": "text/x-y"}
    )
    assert "AWSAccessKeyId=" in url and "Signature=" in url and "Expires=" in url
    response = send(urllib.request.Request(url))
    assert response.status == 200 and response.body == b"hello from mrapsim\n"
    assert response.headers["content-type"] == "text/x-y"
    tampered = send(urllib.request.Request(url.replace("text%2Fx-y", "text%2Fx-z")))
    assert tampered.status == 403 and ET.fromstring(tampered.body).findtext("Code") == "SignatureDoesNotMatch"


def test_a_wrong_secret_is_signature_does_not_match(live: LiveServer) -> None:
    client = make_client(live.url, signature_version="s3", secret_key="not-the-secret")
    with pytest.raises(Exception) as refused:
        client.head_object(Bucket="mraps3sample", Key="hello.txt")
    assert "403" in str(refused.value)


# -- the verifier ----------------------------------------------------------------------------------


def _signed(url: str, *, query: bool = False, expires: int = 3600, auth_path: str | None = None) -> S3Request:
    """A request signed by botocore's SigV2 signer at NOW, as the app receives it."""
    request = AWSRequest(method="GET", url=url, headers={})
    request.auth_path = auth_path
    credentials = Credentials(ACCESS_KEY, SECRET_KEY)
    signer = HmacV1QueryAuth(credentials, expires=expires) if query else HmacV1Auth(credentials)
    signer._get_date = (
        (lambda: str(int(NOW.timestamp()) + expires)) if query else (lambda: format_datetime(NOW, usegmt=True))
    )
    signer.add_auth(request)
    path, _, raw_query = request.url.split("/", 3)[3].partition("?")
    host = url.split("/")[2]
    headers = Headers((("host", host), *((k.lower(), v) for k, v in request.headers.items())))
    return S3Request("GET", "/" + path, raw_query, headers, "RID", "HID")


def test_virtual_hosted_requests_sign_the_path_style_resource() -> None:
    request = _signed("http://photos.localhost/a%20b.jpg?acl", auth_path="/photos/a%20b.jpg")
    verdict = Verifier(load_config().auth).verify(request, NOW, resource="/photos/a%20b.jpg")
    assert isinstance(verdict, Authorized) and verdict.algorithm == sigv2.ALGORITHM
    assert isinstance(Verifier(load_config().auth).verify(request, NOW), Rejected)  # the raw path is not it


def test_expiry_skew_and_the_switch() -> None:
    verifier = Verifier(load_config().auth)
    presigned = _signed("http://h/b/k", query=True, expires=60)
    assert isinstance(verifier.verify(presigned, NOW), Authorized)
    expired = verifier.verify(presigned, NOW + dt.timedelta(seconds=61))
    assert isinstance(expired, Rejected) and (expired.code, expired.message) == ("AccessDenied", "Request has expired")
    header = _signed("http://h/b/k")
    assert isinstance(verifier.verify(header, NOW + dt.timedelta(minutes=14)), Authorized)
    skewed = verifier.verify(header, NOW + dt.timedelta(minutes=16))
    assert isinstance(skewed, Rejected) and skewed.code == "RequestTimeTooSkewed"
    off = Verifier(load_config(overrides={"auth": {"sigv2": False}}).auth)
    assert off.verify(presigned, NOW) == UNSUPPORTED_MECHANISM == off.verify(header, NOW)
    malformed = S3Request("GET", "/b/k", "", Headers((("authorization", "AWS nocolon"), ("date", "x"))), "R", "H")
    refused = verifier.verify(malformed, NOW)
    assert isinstance(refused, Rejected) and refused.code == "InvalidArgument"


def test_the_canonical_resource_keeps_only_signed_subresources() -> None:
    resource = sigv2.canonical_resource("/b/k", "uploadId=x%2By&partNumber=2&prefix=p&response-content-type=a%2Fb&acl")
    assert resource == "/b/k?acl&partNumber=2&response-content-type=a/b&uploadId=x+y"


def test_the_switch_is_a_boolean() -> None:
    assert load_config().auth.sigv2 is True
    with pytest.raises(ConfigError) as refused:
        load_config(overrides={"auth": {"sigv2": "no"}})
    assert "auth.sigv2" in str(refused.value)
