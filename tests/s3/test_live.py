"""The S3 app on a real socket, driven by boto3, raw signed requests, urllib and the aws-cli."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.crt.auth import CrtS3SigV4AsymAuth
from botocore.exceptions import ClientError

from mrapsim.s3 import RequestRecord
from tests.s3.conftest import (
    BULK_BUCKET,
    BULK_KEYS,
    MRAP_HOST,
    NAMES_BUCKET,
    ODD_KEYS,
    SECRET_KEY,
    WRITE_BUCKET,
    LiveServer,
    aws_cli_env,
    make_client,
    send,
    signed_request,
)

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def record_of(live: LiveServer, request_id: str) -> RequestRecord:
    """The request's record; it is handed over just after the response's last byte, so wait."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for record in reversed(live.records):
            if record.request_id == request_id:
                return record
        time.sleep(0.005)
    raise AssertionError(f"no record for request {request_id}")


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


# -- service and bucket ------------------------------------------------------------------------


def test_list_buckets_xml(live: LiveServer) -> None:
    response = signed_request(f"{live.url}/")
    assert response.status == 200 and response.headers["content-type"] == "application/xml"
    assert len(response.headers["x-amz-request-id"]) == 16 and response.headers["x-amz-id-2"]
    assert response.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult xmlns=')
    root = ET.fromstring(response.body)
    names = [b.findtext(f"{NS}Name") or "" for b in root.iter(f"{NS}Bucket")]
    # Sorted by name; the server is shared by the modules of tests/s3, whose own buckets may show.
    assert names == sorted(names) and {BULK_BUCKET, NAMES_BUCKET, WRITE_BUCKET, "mraps3sample"} <= set(names)
    assert root.findtext(f"{NS}Owner/{NS}ID")
    created = root.findtext(f"{NS}Buckets/{NS}Bucket/{NS}CreationDate") or ""
    assert created.endswith(".000Z")


def test_head_bucket_and_location(s3: Any) -> None:
    head = s3.head_bucket(Bucket="mraps3sample")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"
    assert s3.get_bucket_location(Bucket="mraps3sample")["LocationConstraint"] is None
    with pytest.raises(ClientError) as missing:
        s3.head_bucket(Bucket="no-such-bucket")
    assert error_code(missing) == "404"
    with pytest.raises(ClientError) as listing_missing:
        s3.list_objects_v2(Bucket="no-such-bucket")
    assert error_code(listing_missing) == "NoSuchBucket"


# -- listing -----------------------------------------------------------------------------------


def test_list_objects_v2_paginates_2500_keys(s3: Any) -> None:
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=BULK_BUCKET, PaginationConfig={"PageSize": 1000}))
    assert [page["KeyCount"] for page in pages] == [1000, 1000, 500]
    assert [page["IsTruncated"] for page in pages] == [True, True, False]
    tokens = [page.get("NextContinuationToken") for page in pages]
    assert tokens[0] and tokens[1] and tokens[0] != tokens[1] and tokens[2] is None
    keys = [obj["Key"] for page in pages for obj in page["Contents"]]
    assert keys == [f"k/{i:05d}" for i in range(BULK_KEYS)]


def test_list_objects_v2_delimiter_roll_up(s3: Any) -> None:
    top = s3.list_objects_v2(Bucket="mraps3sample", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["data/"]
    assert [o["Key"] for o in top["Contents"]] == ["README.md", "hello.txt"]
    assert top["KeyCount"] == 3
    inner = s3.list_objects_v2(Bucket="mraps3sample", Prefix="data/", Delimiter="/")
    assert [o["Key"] for o in inner["Contents"]] == ["data/one.csv", "data/two.csv"]
    one = s3.list_objects_v2(Bucket="mraps3sample", Delimiter="/", MaxKeys=1, StartAfter="a")
    assert one["IsTruncated"] and one["CommonPrefixes"] == [{"Prefix": "data/"}] and one["StartAfter"] == "a"
    rest = s3.list_objects_v2(Bucket="mraps3sample", Delimiter="/", ContinuationToken=one["NextContinuationToken"])
    assert [o["Key"] for o in rest["Contents"]] == ["hello.txt"] and "CommonPrefixes" not in rest
    assert rest["ContinuationToken"] == one["NextContinuationToken"] and "StartAfter" not in rest


def test_encoding_type_url_round_trips_awkward_keys(live: LiveServer, s3: Any) -> None:
    listed = s3.list_objects_v2(Bucket=NAMES_BUCKET)  # boto3 adds encoding-type=url and decodes
    assert [o["Key"] for o in listed["Contents"]] == sorted(ODD_KEYS)
    rolled = s3.list_objects_v2(Bucket=NAMES_BUCKET, Prefix="dir/", Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["dir/date=2026-03-01/", "dir/sub+x/", "dir/ünïcødé/"]
    raw = signed_request(f"{live.url}/{NAMES_BUCKET}?list-type=2&encoding-type=url&prefix=dir%2F&delimiter=%2F")
    root = ET.fromstring(raw.body)
    assert root.findtext(f"{NS}EncodingType") == "url"
    assert [k.text for k in root.iter(f"{NS}Key")] == ["dir/100%25.txt", "dir/a%20b.txt", "dir/plus%2Bsign.txt"]
    prefixes = [p.findtext(f"{NS}Prefix") for p in root.iter(f"{NS}CommonPrefixes")]
    assert prefixes == ["dir/date%3D2026-03-01/", "dir/sub%2Bx/", "dir/%C3%BCn%C3%AFc%C3%B8d%C3%A9/"]
    v1 = s3.list_objects(Bucket=NAMES_BUCKET, Prefix="dir/", Delimiter="/", MaxKeys=2)
    assert v1["IsTruncated"] and v1["NextMarker"] == "dir/a b.txt" and v1["Marker"] == ""
    v1_next = s3.list_objects(Bucket=NAMES_BUCKET, Prefix="dir/", Delimiter="/", Marker=v1["NextMarker"])
    assert [o["Key"] for o in v1_next["Contents"]] == ["dir/plus+sign.txt"]
    assert v1_next["Contents"][0]["Owner"]["ID"]


def test_list_objects_v1_paginator_without_delimiter(s3: Any) -> None:
    pages = list(s3.get_paginator("list_objects").paginate(Bucket=BULK_BUCKET, PaginationConfig={"PageSize": 1000}))
    assert [len(p["Contents"]) for p in pages] == [1000, 1000, 500]
    assert "NextMarker" not in pages[0]


@pytest.mark.parametrize("value", ["blah", "-1", "2147483648", ""])
def test_bad_max_keys_is_invalid_argument(live: LiveServer, value: str) -> None:
    response = signed_request(f"{live.url}/mraps3sample?list-type=2&max-keys={value}")
    root = ET.fromstring(response.body)
    assert response.status == 400 and root.findtext("Code") == "InvalidArgument"
    assert root.findtext("ArgumentName") == "max-keys" and root.findtext("ArgumentValue") == value


def test_max_keys_zero_and_fetch_owner(s3: Any) -> None:
    zero = s3.list_objects_v2(Bucket="mraps3sample", MaxKeys=0)
    assert zero["KeyCount"] == 0 and not zero["IsTruncated"] and zero["MaxKeys"] == 0
    owned = s3.list_objects_v2(Bucket="mraps3sample", FetchOwner=True)
    assert all("Owner" in o for o in owned["Contents"])
    assert all("Owner" not in o for o in s3.list_objects_v2(Bucket="mraps3sample")["Contents"])


@pytest.mark.parametrize("token", ["garbage", "AQ"])  # an empty token is no token (test_conditional.py)
def test_tampered_token_is_invalid_argument(live: LiveServer, s3: Any, token: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.list_objects_v2(Bucket=BULK_BUCKET, ContinuationToken=token)
    assert error_code(excinfo) == "InvalidArgument"
    assert excinfo.value.response["Error"]["ArgumentName"] == "continuation-token"
    good = s3.list_objects_v2(Bucket=BULK_BUCKET, MaxKeys=1)["NextContinuationToken"]
    flipped = good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:]
    with pytest.raises(ClientError) as tampered:
        s3.list_objects_v2(Bucket=BULK_BUCKET, ContinuationToken=flipped)
    assert error_code(tampered) == "InvalidArgument"
    with pytest.raises(ClientError) as other_bucket:
        s3.list_objects_v2(Bucket=NAMES_BUCKET, ContinuationToken=good)
    assert error_code(other_bucket) == "InvalidArgument"


def test_bad_encoding_type(live: LiveServer) -> None:
    response = signed_request(f"{live.url}/mraps3sample?list-type=2&encoding-type=base64")
    assert response.status == 400 and ET.fromstring(response.body).findtext("ArgumentName") == "encoding-type"


# -- auth --------------------------------------------------------------------------------------


def test_wrong_secret_is_signature_does_not_match(live: LiveServer) -> None:
    client = make_client(live.url, secret_key="not-the-secret")
    with pytest.raises(ClientError) as excinfo:
        client.list_objects_v2(Bucket="mraps3sample")
    assert error_code(excinfo) == "SignatureDoesNotMatch"
    raw = signed_request(f"{live.url}/mraps3sample?list-type=2", secret_key="not-the-secret")
    root = ET.fromstring(raw.body)
    assert raw.status == 403 and (root.findtext("CanonicalRequest") or "").startswith(
        "GET\n/mraps3sample\nlist-type=2\n"
    )
    assert (root.findtext("StringToSign") or "").startswith("AWS4-HMAC-SHA256\n")


def test_unknown_access_key(live: LiveServer) -> None:
    client = make_client(live.url, access_key="AKIDUNKNOWNUNKNOWN00")
    with pytest.raises(ClientError) as excinfo:
        client.list_buckets()
    assert error_code(excinfo) == "InvalidAccessKeyId"


def test_anonymous_request_is_access_denied(live: LiveServer) -> None:
    response = send(urllib.request.Request(f"{live.url}/mraps3sample/hello.txt"))
    assert response.status == 403 and ET.fromstring(response.body).findtext("Code") == "AccessDenied"
    assert response.headers["x-amz-request-id"]


def test_presigned_get_with_urllib(live: LiveServer, s3: Any) -> None:
    v2_url = s3.generate_presigned_url("get_object", Params={"Bucket": "mraps3sample", "Key": "hello.txt"})
    assert "AWSAccessKeyId=" in v2_url  # botocore presigns S3 with SigV2 unless told otherwise
    v2 = send(urllib.request.Request(v2_url))  # accepted: `[auth] sigv2` (test_sigv2.py)
    assert v2.status == 200 and v2.body == b"hello from mrapsim\n"
    url = make_client(live.url, signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": "mraps3sample", "Key": "hello.txt"}, ExpiresIn=60
    )
    response = send(urllib.request.Request(url))
    assert response.status == 200 and response.body == b"hello from mrapsim\n"
    tampered = send(urllib.request.Request(url.replace("hello.txt", "README.md")))
    assert tampered.status == 403 and ET.fromstring(tampered.body).findtext("Code") == "SignatureDoesNotMatch"


def test_sigv4a_request_to_the_mrap_host(live: LiveServer) -> None:
    """What an MRAP client sends: SigV4A by awscrt, Host = the MRAP name, virtual-host style."""
    request = AWSRequest(method="GET", url=f"https://{MRAP_HOST}/?list-type=2&prefix=data%2F&encoding-type=url")
    CrtS3SigV4AsymAuth(Credentials("AKIAIOSFODNN7EXAMPLE", SECRET_KEY), "s3", "*").add_auth(request)
    headers = dict(request.headers)
    assert headers["Authorization"].startswith("AWS4-ECDSA-P256-SHA256 ")
    local = urllib.request.Request(f"{live.url}/?list-type=2&prefix=data%2F&encoding-type=url", headers=headers)
    response = send(local)
    assert response.status == 200, response.body
    root = ET.fromstring(response.body)
    assert root.findtext(f"{NS}Name") == "mraps3sample"
    assert [k.text for k in root.iter(f"{NS}Key")] == ["data/one.csv", "data/two.csv"]
    record = record_of(live, response.headers["x-amz-request-id"])
    assert (record.operation, record.addressing, record.bucket) == ("ListObjectsV2", "mrap", "mraps3sample")
    wrong = dict(headers)
    wrong["Authorization"] = wrong["Authorization"].replace("Signature=30", "Signature=31")
    denied = send(urllib.request.Request(local.full_url, headers=wrong))
    assert denied.status == 403


# -- objects -----------------------------------------------------------------------------------


def test_get_and_head_object(s3: Any) -> None:
    got = s3.get_object(Bucket="mraps3sample", Key="hello.txt")
    assert got["Body"].read() == b"hello from mrapsim\n"
    assert got["ContentLength"] == 19 and got["ContentType"] == "text/plain"
    assert got["ETag"] == '"b1d28a55ed16adaa75d0ebe9064d0511"' and got["AcceptRanges"] == "bytes"
    assert isinstance(got["LastModified"], dt.datetime)
    head = s3.head_object(Bucket="mraps3sample", Key="hello.txt")
    assert head["ContentLength"] == 19 and head["ETag"] == got["ETag"]
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket="mraps3sample", Key="nope")
    assert error_code(missing) == "NoSuchKey"
    with pytest.raises(ClientError) as missing_head:
        s3.head_object(Bucket="mraps3sample", Key="nope")
    assert error_code(missing_head) == "404"


def test_ranges_and_conditions(s3: Any) -> None:
    part = s3.get_object(Bucket="mraps3sample", Key="hello.txt", Range="bytes=6-9")
    assert part["Body"].read() == b"from" and part["ContentRange"] == "bytes 6-9/19"
    assert s3.get_object(Bucket="mraps3sample", Key="hello.txt", Range="bytes=-8")["Body"].read() == b"mrapsim\n"
    with pytest.raises(ClientError) as unsatisfiable:
        s3.get_object(Bucket="mraps3sample", Key="hello.txt", Range="bytes=100-")
    assert error_code(unsatisfiable) == "InvalidRange"
    etag = s3.head_object(Bucket="mraps3sample", Key="hello.txt")["ETag"]
    assert s3.get_object(Bucket="mraps3sample", Key="hello.txt", IfMatch=etag)["Body"].read()
    with pytest.raises(ClientError) as failed:
        s3.get_object(Bucket="mraps3sample", Key="hello.txt", IfMatch='"0000"')
    assert error_code(failed) == "PreconditionFailed"
    with pytest.raises(ClientError) as not_modified:
        s3.get_object(Bucket="mraps3sample", Key="hello.txt", IfNoneMatch=etag)
    assert error_code(not_modified) == "304"


def test_put_object_round_trip(s3: Any) -> None:
    body = b"written by boto3 \x00\xff" * 100
    put = s3.put_object(
        Bucket=NAMES_BUCKET, Key="put/one.bin", Body=body, Metadata={"color": "blue"}, ContentType="application/x-test"
    )
    got = s3.get_object(Bucket=NAMES_BUCKET, Key="put/one.bin", ChecksumMode="ENABLED")
    assert got["Body"].read() == body and got["ETag"] == put["ETag"]
    assert got["Metadata"] == {"color": "blue"} and got["ContentType"] == "application/x-test"
    assert got.get("ChecksumCRC32") == put.get("ChecksumCRC32")  # boto3 sends CRC32 by default
    s3.delete_object(Bucket=NAMES_BUCKET, Key="put/one.bin")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=NAMES_BUCKET, Key="put/one.bin")


def test_payload_hash_mismatch(live: LiveServer) -> None:
    request = AWSRequest(method="PUT", url=f"{live.url}/{NAMES_BUCKET}/put/mismatch", data=b"signed body")
    from botocore.auth import S3SigV4Auth

    S3SigV4Auth(Credentials("AKIAIOSFODNN7EXAMPLE", SECRET_KEY), "s3", "us-east-1").add_auth(request)
    headers = dict(request.headers)
    sent = urllib.request.Request(request.url, data=b"other body!", headers=headers, method="PUT")
    response = send(sent)
    assert response.status == 400 and ET.fromstring(response.body).findtext("Code") == "XAmzContentSHA256Mismatch"


def test_unknown_operation_is_not_implemented(live: LiveServer) -> None:
    response = signed_request(f"{live.url}/mraps3sample?website")
    assert response.status == 501 and ET.fromstring(response.body).findtext("Code") == "NotImplemented"
    tagging = signed_request(f"{live.url}/mraps3sample/hello.txt?torrent")
    assert tagging.status == 501
    record = record_of(live, tagging.headers["x-amz-request-id"])
    assert (record.operation, record.status, record.error_code) == ("Unknown", 501, "NotImplemented")


def test_request_records(live: LiveServer, s3: Any) -> None:
    got = s3.get_object(Bucket="mraps3sample", Key="README.md")
    request_id = got["ResponseMetadata"]["RequestId"]
    record = record_of(live, request_id)
    assert (record.method, record.operation, record.bucket, record.key) == (
        "GET",
        "GetObject",
        "mraps3sample",
        "README.md",
    )
    assert (record.status, record.error_code, record.connection_id) == (200, None, None)
    assert record.bytes_out == 53 and record.access_key == "AKIAIOSFODNN7EXAMPLE" and record.duration > 0


# -- aws-cli -----------------------------------------------------------------------------------


def aws(live: LiveServer, *args: str) -> str:
    result = subprocess.run(
        ["aws", "--endpoint-url", live.url, *args],
        env=aws_cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_aws_cli_s3_ls(live: LiveServer) -> None:
    out = aws(live, "s3", "ls", "s3://mraps3sample")
    assert "PRE data/" in out and "hello.txt" in out and "README.md" in out
    assert "mraps3sample" in aws(live, "s3", "ls")


def test_aws_cli_list_objects_v2_max_items(live: LiveServer) -> None:
    out = json.loads(aws(live, "s3api", "list-objects-v2", "--bucket", "mraps3sample", "--max-items", "2"))
    assert [o["Key"] for o in out["Contents"]] == ["README.md", "data/one.csv"]
    assert out["NextToken"]
