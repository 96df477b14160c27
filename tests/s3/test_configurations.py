"""Issue 12's configuration surface through boto3 and raw requests against the in-process app:
tagging, ACLs and anonymous access, bucket configurations, CORS, SSE, Object Lock headers."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.s3.conftest import ACCESS_KEY, SECRET_KEY, LiveServer, make_client, send, signed_request
from tests.s3.own_server import own_live_server

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    """This module's own server: the buckets its tests create stay out of other modules' listings."""
    with own_live_server() as server:
        yield server


@pytest.fixture(scope="module")
def s3(live: LiveServer) -> Any:
    return make_client(live.url)


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    name = f"conf-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=name)
    yield name


def error_of(call: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def anonymous(url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None) -> Any:
    return send(urllib.request.Request(url, data=body, method=method, headers=headers or {}))


# -- tagging ---------------------------------------------------------------------------------------


def test_object_tagging_round_trip_and_count(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="a=1&b=two%20words")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [
        {"Key": "a", "Value": "1"},
        {"Key": "b", "Value": "two words"},
    ]
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 2
    head = s3.head_object(Bucket=bucket, Key="k")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "2"
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "c", "Value": "3"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [{"Key": "c", "Value": "3"}]
    before = s3.head_object(Bucket=bucket, Key="k")
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")
    after = s3.head_object(Bucket=bucket, Key="k")
    assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"])


def test_tag_limits_are_s3s(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    too_many = [{"Key": f"k{i}", "Value": "v"} for i in range(11)]
    for tags in (too_many, [{"Key": "k" * 129, "Value": "v"}], [{"Key": "k", "Value": "v" * 257}]):
        status, code = error_of(
            lambda tags=tags: s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tags})
        )
        assert (status, code) == (400, "InvalidTag")
    status, code = error_of(
        lambda: s3.put_object(Bucket=bucket, Key="j", Body=b"", Tagging="&".join(f"k{i}=v" for i in range(11)))
    )
    assert (status, code) == (400, "InvalidTag")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "k" * 128, "Value": "v" * 256}]})


def test_copy_and_multipart_carry_tags(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", Tagging="a=1")
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.get_object_tagging(Bucket=bucket, Key="copied")["TagSet"] == [{"Key": "a", "Value": "1"}]
    s3.copy_object(
        Bucket=bucket,
        Key="replaced",
        CopySource={"Bucket": bucket, "Key": "src"},
        TaggingDirective="REPLACE",
        Tagging="z=9",
    )
    assert s3.get_object_tagging(Bucket=bucket, Key="replaced")["TagSet"] == [{"Key": "z", "Value": "9"}]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="m=p")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"data")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.get_object_tagging(Bucket=bucket, Key="mp")["TagSet"] == [{"Key": "m", "Value": "p"}]


def test_bucket_tagging(s3: Any, bucket: str) -> None:
    assert error_of(lambda: s3.get_bucket_tagging(Bucket=bucket)) == (404, "NoSuchTagSet")
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "edge"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "edge"}]
    s3.delete_bucket_tagging(Bucket=bucket)
    assert error_of(lambda: s3.get_bucket_tagging(Bucket=bucket)) == (404, "NoSuchTagSet")


# -- ACLs and anonymous access -----------------------------------------------------------------------


def test_canned_and_granted_acls_are_stored_and_returned(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="pub", Body=b"x", ACL="public-read")
    grants = s3.get_object_acl(Bucket=bucket, Key="pub")["Grants"]
    assert {
        "Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
        "Permission": "READ",
    } in grants
    assert [g["Permission"] for g in grants if g["Grantee"]["Type"] == "CanonicalUser"] == ["FULL_CONTROL"]
    s3.put_object_acl(Bucket=bucket, Key="pub", ACL="private")
    assert len(s3.get_object_acl(Bucket=bucket, Key="pub")["Grants"]) == 1
    s3.put_object(
        Bucket=bucket,
        Key="granted",
        Body=b"x",
        GrantRead=f'id="{"ab" * 32}", uri="http://acs.amazonaws.com/groups/global/AuthenticatedUsers"',
    )
    grants = s3.get_object_acl(Bucket=bucket, Key="granted")["Grants"]
    assert {(g["Grantee"].get("ID") or g["Grantee"].get("URI"), g["Permission"]) for g in grants} == {
        ("ab" * 32, "READ"),
        ("http://acs.amazonaws.com/groups/global/AuthenticatedUsers", "READ"),
    }
    owner = s3.get_bucket_acl(Bucket=bucket)["Owner"]
    policy = {
        "Owner": owner,
        "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]}, "Permission": "FULL_CONTROL"},
            {
                "Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
                "Permission": "READ",
            },
        ],
    }
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
    assert len(s3.get_bucket_acl(Bucket=bucket)["Grants"]) == 2
    assert (
        error_of(lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"", ACL="public-read", GrantRead='id="a"'))[0]
        == 400
    )
    status, code = error_of(lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"", ACL="no-such-acl"))
    assert (status, code) == (400, "InvalidArgument")


def test_anonymous_access_follows_acls(s3: Any, live: LiveServer, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="public", Body=b"for everyone", ACL="public-read")
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    public = anonymous(f"{live.url}/{bucket}/public")
    assert (public.status, public.body) == (200, b"for everyone")
    assert anonymous(f"{live.url}/{bucket}/public", "HEAD").status == 200
    private = anonymous(f"{live.url}/{bucket}/private")
    assert private.status == 403 and ET.fromstring(private.body).findtext("Code") == "AccessDenied"
    assert anonymous(f"{live.url}/{bucket}/missing").status == 403  # no list permission: no 404 either
    assert anonymous(f"{live.url}/{bucket}?list-type=2").status == 403
    assert anonymous(f"{live.url}/{bucket}/public", "DELETE").status == 403
    assert anonymous(f"{live.url}/{bucket}/new", "PUT", body=b"x").status == 403
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert anonymous(f"{live.url}/{bucket}?list-type=2").status == 200
    assert anonymous(f"{live.url}/{bucket}/missing").status == 404
    s3.put_public_access_block(
        Bucket=bucket, PublicAccessBlockConfiguration={"IgnorePublicAcls": True, "BlockPublicAcls": True}
    )
    assert anonymous(f"{live.url}/{bucket}/public").status == 403
    assert error_of(lambda: s3.put_object(Bucket=bucket, Key="p2", Body=b"", ACL="public-read")) == (
        403,
        "AccessDenied",
    )


def test_bucket_owner_enforced_disables_acls(s3: Any, bucket: str) -> None:
    s3.put_bucket_ownership_controls(
        Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    )
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}
    ]
    status, code = error_of(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"", ACL="public-read"))
    assert (status, code) == (400, "AccessControlListNotSupported")
    s3.put_object(Bucket=bucket, Key="k", Body=b"", ACL="bucket-owner-full-control")
    s3.delete_bucket_ownership_controls(Bucket=bucket)
    assert error_of(lambda: s3.get_bucket_ownership_controls(Bucket=bucket)) == (404, "OwnershipControlsNotFoundError")


# -- bucket configurations ---------------------------------------------------------------------------


def test_policy_is_validated_stored_and_returned(s3: Any, bucket: str) -> None:
    assert error_of(lambda: s3.get_bucket_policy(Bucket=bucket)) == (404, "NoSuchBucketPolicy")
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
            ],
        }
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(policy)
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    for bad in ("not json", json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})):
        assert error_of(lambda bad=bad: s3.put_bucket_policy(Bucket=bucket, Policy=bad)) == (400, "MalformedPolicy")
    s3.delete_bucket_policy(Bucket=bucket)
    assert error_of(lambda: s3.get_bucket_policy(Bucket=bucket)) == (404, "NoSuchBucketPolicy")


def test_public_access_block_round_trip(s3: Any, bucket: str) -> None:
    code = error_of(lambda: s3.get_public_access_block(Bucket=bucket))
    assert code == (404, "NoSuchPublicAccessBlockConfiguration")
    config = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": False,
    }
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=config)
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == config
    s3.delete_public_access_block(Bucket=bucket)


def test_lifecycle_round_trip(s3: Any, bucket: str) -> None:
    assert error_of(lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket)) == (
        404,
        "NoSuchLifecycleConfiguration",
    )
    rules = [{"ID": "expire-logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 30}}]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == rules
    bad = [{"ID": "x", "Filter": {"Prefix": ""}, "Status": "Enabled"}]
    assert (
        error_of(lambda: s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": bad}))[0]
        == 400
    )
    s3.delete_bucket_lifecycle(Bucket=bucket)
    assert error_of(lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket))[1] == "NoSuchLifecycleConfiguration"


def test_encryption_configuration_defaults_to_sse_s3(s3: Any, bucket: str) -> None:
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert s3.put_object(Bucket=bucket, Key="default", Body=b"x")["ServerSideEncryption"] == "AES256"
    kms = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "arn:aws:kms:us-east-1:123456789012:key/abc"}
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": kms, "BucketKeyEnabled": True}]
        },
    )
    put = s3.put_object(Bucket=bucket, Key="kms", Body=b"x")
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"], put["BucketKeyEnabled"]) == (
        "aws:kms",
        kms["KMSMasterKeyID"],
        True,
    )
    head = s3.head_object(Bucket=bucket, Key="kms")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", kms["KMSMasterKeyID"])
    s3.delete_bucket_encryption(Bucket=bucket)
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


# -- CORS ------------------------------------------------------------------------------------------


def test_cors_configuration_preflight_and_response_headers(s3: Any, live: LiveServer, bucket: str) -> None:
    assert error_of(lambda: s3.get_bucket_cors(Bucket=bucket)) == (404, "NoSuchCORSConfiguration")
    url = f"{live.url}/{bucket}/obj"
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"}
    assert anonymous(url, "OPTIONS", preflight).status == 403
    rules = [
        {
            "AllowedOrigins": ["https://*.example", "https://app.example"],
            "AllowedMethods": ["GET", "PUT"],
            "AllowedHeaders": ["x-amz-*", "content-type"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 600,
        }
    ]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == rules
    answer = anonymous(url, "OPTIONS", {**preflight, "Access-Control-Request-Headers": "Content-Type, X-Amz-Date"})
    assert answer.status == 200
    assert answer.headers["access-control-allow-origin"] == "https://app.example"
    assert answer.headers["access-control-allow-methods"] == "GET, PUT"
    assert answer.headers["access-control-allow-headers"] == "content-type, x-amz-date"
    assert answer.headers["access-control-max-age"] == "600"
    assert anonymous(url, "OPTIONS", {**preflight, "Origin": "https://evil.test"}).status == 403
    assert anonymous(url, "OPTIONS", {**preflight, "Access-Control-Request-Method": "DELETE"}).status == 403
    assert anonymous(url, "OPTIONS", {**preflight, "Access-Control-Request-Headers": "authorization"}).status == 403
    assert anonymous(url, "OPTIONS", {"Access-Control-Request-Method": "PUT"}).status == 400
    s3.put_object(Bucket=bucket, Key="obj", Body=b"x")
    actual = signed_request(url, headers={"Origin": "https://www.example"})
    assert actual.status == 200 and actual.headers["access-control-allow-origin"] == "https://www.example"
    assert actual.headers["access-control-expose-headers"] == "ETag"
    assert "access-control-allow-origin" not in signed_request(url, headers={"Origin": "https://evil.test"}).headers
    s3.delete_bucket_cors(Bucket=bucket)
    assert error_of(lambda: s3.get_bucket_cors(Bucket=bucket)) == (404, "NoSuchCORSConfiguration")


# -- SSE -------------------------------------------------------------------------------------------


def customer_key(key: bytes) -> dict[str, Any]:
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}  # botocore encodes it and adds the MD5


def test_sse_c_is_enforced(s3: Any, bucket: str) -> None:
    key, other = os.urandom(32), os.urandom(32)
    put = s3.put_object(Bucket=bucket, Key="c", Body=b"sealed", **customer_key(key))
    assert put["SSECustomerKeyMD5"] == base64.b64encode(hashlib.md5(key).digest()).decode()
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="c")) == (400, "InvalidRequest")
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="c", **customer_key(other))) == (403, "AccessDenied")
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="c"))[0] == 400
    got = s3.get_object(Bucket=bucket, Key="c", **customer_key(key))
    assert got["Body"].read() == b"sealed" and got["SSECustomerAlgorithm"] == "AES256"
    assert error_of(lambda: s3.copy_object(Bucket=bucket, Key="d", CopySource={"Bucket": bucket, "Key": "c"})) == (
        400,
        "InvalidRequest",
    )
    source = {f"CopySource{k}": v for k, v in customer_key(key).items()}
    s3.copy_object(Bucket=bucket, Key="d", CopySource={"Bucket": bucket, "Key": "c"}, **source)
    assert s3.get_object(Bucket=bucket, Key="d")["Body"].read() == b"sealed"  # the copy is not SSE-C
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="plain", **customer_key(key))) == (400, "InvalidRequest")
    bad_md5 = {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": base64.b64encode(key).decode(),
        "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(hashlib.md5(other).digest()).decode(),
    }
    assert signed_request(f"{s3.meta.endpoint_url}/{bucket}/e", "PUT", headers=bad_md5, body=b"x").status == 400


def test_sse_kms_is_echoed_and_bad_values_refused(s3: Any, bucket: str) -> None:
    put = s3.put_object(
        Bucket=bucket,
        Key="k",
        Body=b"x",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId="alias/mine",
        BucketKeyEnabled=True,
    )
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"], put["BucketKeyEnabled"]) == ("aws:kms", "alias/mine", True)
    got = s3.get_object(Bucket=bucket, Key="k")
    assert (got["ServerSideEncryption"], got["SSEKMSKeyId"], got["BucketKeyEnabled"]) == ("aws:kms", "alias/mine", True)
    copied = s3.copy_object(
        Bucket=bucket, Key="k2", CopySource={"Bucket": bucket, "Key": "k"}, ServerSideEncryption="AES256"
    )
    assert copied["ServerSideEncryption"] == "AES256"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ServerSideEncryption="aws:kms")
    assert upload["ServerSideEncryption"] == "aws:kms"
    url = f"{s3.meta.endpoint_url}/{bucket}/bad"
    assert signed_request(url, "PUT", headers={"x-amz-server-side-encryption": "rot13"}, body=b"x").status == 400
    assert (
        signed_request(url, "PUT", headers={"x-amz-server-side-encryption-aws-kms-key-id": "k"}, body=b"x").status
        == 400
    )


def test_object_lock_headers_are_refused_without_object_lock(s3: Any, bucket: str) -> None:
    assert error_of(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", ObjectLockLegalHoldStatus="ON")) == (
        400,
        "InvalidRequest",
    )
    status, code = error_of(
        lambda: s3.create_multipart_upload(
            Bucket=bucket, Key="k", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate="2030-01-01T00:00:00Z"
        )
    )
    assert (status, code) == (400, "InvalidRequest")
    # (a bucket created with Object Lock takes them: tests/s3/test_object_lock.py)


# -- POST Object -----------------------------------------------------------------------------------


def post_form(url: str, fields: dict[str, str], data: bytes, filename: str = "f.txt") -> Any:
    import requests

    return requests.post(url, data=fields, files={"file": (filename, data, "text/plain")}, timeout=10)


@pytest.fixture(scope="module")
def s3v4(live: LiveServer) -> Any:
    return make_client(live.url, signature_version="s3v4")  # presigned POSTs default to SigV2


def test_post_object_with_a_sigv4_policy(s3: Any, s3v4: Any, live: LiveServer, bucket: str) -> None:
    post = s3v4.generate_presigned_post(
        bucket,
        "uploads/${filename}",
        Fields={"success_action_status": "201", "Content-Type": "text/plain"},
        Conditions=[
            ["starts-with", "$key", "uploads/"],
            ["content-length-range", 1, 100],
            {"success_action_status": "201"},
            {"Content-Type": "text/plain"},
        ],
        ExpiresIn=300,
    )
    answer = post_form(post["url"], post["fields"], b"hello from a form", "hello.txt")
    assert answer.status_code == 201, answer.text
    assert ET.fromstring(answer.content).findtext("Key") == "uploads/hello.txt"  # unqualified, as S3's
    got = s3.get_object(Bucket=bucket, Key="uploads/hello.txt")
    assert got["Body"].read() == b"hello from a form" and got["ContentType"] == "text/plain"
    too_large = post_form(post["url"], post["fields"], b"x" * 101)
    assert too_large.status_code == 400 and ET.fromstring(too_large.content).findtext("Code") == "EntityTooLarge"
    empty = post_form(post["url"], post["fields"], b"")
    assert empty.status_code == 400 and ET.fromstring(empty.content).findtext("Code") == "EntityTooSmall"
    wrong_key = post_form(post["url"], {**post["fields"], "key": "elsewhere/x"}, b"x")
    assert wrong_key.status_code == 403
    assert ET.fromstring(wrong_key.content).findtext("Message", "").startswith("Invalid according to Policy")
    extra = post_form(post["url"], {**post["fields"], "x-amz-meta-sneaky": "1"}, b"x")
    assert extra.status_code == 403 and "Extra input fields" in ET.fromstring(extra.content).findtext("Message", "")
    forged = post_form(post["url"], {**post["fields"], "x-amz-signature": "0" * 64}, b"x")
    assert forged.status_code == 403 and ET.fromstring(forged.content).findtext("Code") == "SignatureDoesNotMatch"
    unsigned = post_form(post["url"], {"key": "anon.txt"}, b"x")
    assert unsigned.status_code == 403 and ET.fromstring(unsigned.content).findtext("Code") == "AccessDenied"


def test_post_object_redirect_and_default_status(s3: Any, s3v4: Any, live: LiveServer, bucket: str) -> None:
    redirect = s3v4.generate_presigned_post(
        bucket,
        "r.txt",
        Fields={"success_action_redirect": "https://app.example/done"},
        Conditions=[{"success_action_redirect": "https://app.example/done"}],
    )
    import requests

    answer = requests.post(
        redirect["url"], data=redirect["fields"], files={"file": ("r.txt", b"r")}, timeout=10, allow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("https://app.example/done?bucket=")
    plain = s3v4.generate_presigned_post(
        bucket, "p.txt", Fields={"acl": "public-read"}, Conditions=[{"acl": "public-read"}]
    )
    answer = post_form(plain["url"], plain["fields"], b"p")
    assert answer.status_code == 204 and answer.headers["etag"] == s3.head_object(Bucket=bucket, Key="p.txt")["ETag"]
    assert anonymous(f"{live.url}/{bucket}/p.txt").status == 200  # the form's acl field was honoured


def test_form_reader_byte_by_byte() -> None:
    from mrapsim.s3.formdata import Field, FileData, FileStart, FormEnd, FormReader

    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="key"\r\n\r\na/b.txt\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="b.txt"\r\nContent-Type: text/plain\r\n\r\n'
        b"line\r\n--XyX, almost a boundary\r\n\r\n--XyZ--\r\n"
    )
    reader = FormReader("XyZ", max_field=100)
    events = [event for i in range(len(body)) for event in reader.feed(body[i : i + 1])]
    reader.close()
    assert events[0] == Field("key", "a/b.txt") and events[1] == FileStart("file", "b.txt", "text/plain")
    assert b"".join(e.data for e in events if isinstance(e, FileData)) == b"line\r\n--XyX, almost a boundary\r\n"
    assert isinstance(events[-1], FormEnd)


def test_a_public_bucket_policy_admits_anonymous_reads(s3: Any, live: LiveServer, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="site/index.html", Body=b"<html>")
    s3.put_object(Bucket=bucket, Key="secret/key", Body=b"no")
    assert anonymous(f"{live.url}/{bucket}/site/index.html").status == 403
    statements = [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
        {
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "s3:Get*",
            "Resource": f"arn:aws:s3:::{bucket}/secret/*",
        },
    ]
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    assert anonymous(f"{live.url}/{bucket}/site/index.html").status == 200
    assert anonymous(f"{live.url}/{bucket}/secret/key").status == 403
    assert anonymous(f"{live.url}/{bucket}?list-type=2").status == 403  # s3:ListBucket was not granted
    s3.put_public_access_block(
        Bucket=bucket, PublicAccessBlockConfiguration={"RestrictPublicBuckets": True, "BlockPublicPolicy": True}
    )
    assert anonymous(f"{live.url}/{bucket}/site/index.html").status == 403
    policy = json.dumps({"Statement": statements[:1]})
    assert error_of(lambda: s3.put_bucket_policy(Bucket=bucket, Policy=policy)) == (403, "AccessDenied")


def test_sse_c_multipart_needs_the_key_on_every_part(s3: Any, bucket: str) -> None:
    key = os.urandom(32)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", **customer_key(key))
    assert upload["SSECustomerAlgorithm"] == "AES256"
    upload_id = upload["UploadId"]
    status, code = error_of(
        lambda: s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"x")
    )
    assert (status, code) == (400, "InvalidRequest")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"part", **customer_key(key))
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert done["ResponseMetadata"]["HTTPHeaders"]["x-amz-server-side-encryption-customer-algorithm"] == "AES256"
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="mp"))[0] == 400
    assert s3.get_object(Bucket=bucket, Key="mp", **customer_key(key))["Body"].read() == b"part"


# -- bad input is an S3 error, never a 500 ---------------------------------------------------------

SUBRESOURCES = ("tagging", "cors", "lifecycle", "policy", "acl", "encryption", "ownershipControls", "publicAccessBlock")
documents = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"<Tagging><TagSet><Tag><Key/></Tag></TagSet></Tagging>",
            b"<CORSConfiguration><CORSRule/></CORSConfiguration>",
            b'{"Statement": [{"Effect": "Allow"}]}',
            b'{"Statement": 1}',
            b"<AccessControlPolicy><AccessControlList><Grant><Grantee/><Permission>READ</Permission></Grant>"
            b"</AccessControlList></AccessControlPolicy>",
            b"<ServerSideEncryptionConfiguration><Rule/></ServerSideEncryptionConfiguration>",
            b"<LifecycleConfiguration><Rule><Status>On</Status></Rule></LifecycleConfiguration>",
        ]
    ),
)


@pytest.fixture(scope="module")
def fuzzed(s3: Any) -> str:
    """A bucket of its own: a document the fuzzer happens to make valid changes nobody else's."""
    s3.create_bucket(Bucket="fuzzed")
    s3.put_object(Bucket="fuzzed", Key="hello.txt", Body=b"x")
    return "fuzzed"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subresource=st.sampled_from(SUBRESOURCES), body=documents, on_object=st.booleans())
def test_bad_configuration_documents_are_s3_errors(
    live: LiveServer, fuzzed: str, subresource: str, body: bytes, on_object: bool
) -> None:
    path = f"/{fuzzed}/hello.txt" if on_object and subresource in ("tagging", "acl") else f"/{fuzzed}"
    answer = signed_request(f"{live.url}{path}?{subresource}", "PUT", body=body)
    assert answer.status < 500 or answer.status == 501, answer.body


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.dictionaries(
        st.sampled_from(["key", "policy", "x-amz-signature", "x-amz-algorithm", "x-amz-credential", "acl", "tagging",
                         "success_action_status", "x-amz-server-side-encryption", "Content-Type"]),
        st.text(max_size=60),
        max_size=6,
    ),
    data=st.binary(max_size=200),
)  # fmt: skip
def test_bad_post_forms_are_s3_errors(live: LiveServer, fuzzed: str, fields: dict[str, str], data: bytes) -> None:
    answer = post_form(f"{live.url}/{fuzzed}", fields, data)
    assert answer.status_code < 500, answer.text


def sigv2_form(bucket: str, key: str, conditions: list[Any], **fields: str) -> dict[str, str]:
    """A form signed the older way (base64 HMAC-SHA1 of the policy), as public suites still send."""
    import datetime as dt
    import hmac

    expiration = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    policy = base64.b64encode(json.dumps({"expiration": expiration, "conditions": conditions}).encode()).decode()
    signature = base64.b64encode(hmac.new(SECRET_KEY.encode(), policy.encode(), hashlib.sha1).digest()).decode()
    return {"key": key, "AWSAccessKeyId": ACCESS_KEY, "policy": policy, "signature": signature, **fields}


def test_post_object_with_a_sigv2_policy_and_anonymously(s3: Any, live: LiveServer, bucket: str) -> None:
    conditions = [
        {"bucket": bucket},
        ["starts-with", "$key", "foo"],
        {"acl": "private"},
        ["content-length-range", 0, 1024],
    ]
    form = sigv2_form(bucket, "foo.txt", conditions, acl="private")
    assert post_form(f"{live.url}/{bucket}", form, b"bar").status_code == 204
    assert s3.get_object(Bucket=bucket, Key="foo.txt")["Body"].read() == b"bar"
    assert post_form(f"{live.url}/{bucket}", {**form, "signature": "AAAA"}, b"bar").status_code == 403
    assert (
        post_form(f"{live.url}/{bucket}", {k: v for k, v in form.items() if k != "signature"}, b"x").status_code == 400
    )
    missing_bucket = sigv2_form(bucket, "foo.txt", conditions[1:], acl="private")
    assert post_form(f"{live.url}/{bucket}", missing_bucket, b"bar").status_code == 403
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    anonymous_form = {"key": "anon.txt", "acl": "public-read", "Content-Type": "text/plain"}
    assert post_form(f"{live.url}/{bucket}", anonymous_form, b"open").status_code == 204
    assert anonymous(f"{live.url}/{bucket}/anon.txt").body == b"open"


def test_sse_headers_on_a_read_are_refused(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = f"{s3.meta.endpoint_url}/{bucket}/k"
    assert signed_request(url, "HEAD", headers={"x-amz-server-side-encryption": "aws:kms"}).status == 400
    assert signed_request(url, headers={"x-amz-server-side-encryption": "AES256"}).status == 400


def test_lifecycle_rules_are_checked_as_s3_checks_them(s3: Any, bucket: str) -> None:
    def put(*rules: dict[str, Any]) -> tuple[int, str]:
        return error_of(
            lambda: s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": list(rules)})
        )

    rule = {"ID": "r", "Filter": {"Prefix": ""}, "Status": "Enabled", "Expiration": {"Days": 1}}
    assert put(rule, rule) == (400, "InvalidArgument")
    assert put({**rule, "Expiration": {"Days": 0}}) == (400, "InvalidArgument")
    assert put({**rule, "ID": "x" * 256}) == (400, "InvalidArgument")
    assert put({**rule, "Expiration": {"Date": "2030-01-01T12:00:00Z"}}) == (400, "InvalidArgument")
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [{**rule, "Expiration": {"Date": "2030-01-01T00:00:00Z"}}]}
    )


def test_sse_c_parts_with_another_key_are_refused(s3: Any, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", **customer_key(os.urandom(32)))
    other = customer_key(os.urandom(32))
    status, code = error_of(
        lambda: s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"x", **other)
    )
    assert (status, code) == (400, "InvalidRequest")


def test_grants_s3_cannot_resolve_are_refused(s3: Any, bucket: str) -> None:
    assert error_of(lambda: s3.put_bucket_acl(Bucket=bucket, GrantRead='id="_foo"')) == (400, "InvalidArgument")
    status, code = error_of(lambda: s3.put_bucket_acl(Bucket=bucket, GrantRead='emailAddress="a@example.com"'))
    assert (status, code) == (400, "UnresolvableGrantByEmailAddress")


def test_post_object_as_python_requests_sends_fields(s3: Any, live: LiveServer, bucket: str) -> None:
    """requests' `files=` gives every part a filename: only the part named "file" is the file."""
    import requests

    form = sigv2_form(
        bucket, "foo.txt", [{"bucket": bucket}, ["starts-with", "$key", "foo"], {"acl": "private"}], acl="private"
    )
    answer = requests.post(f"{live.url}/{bucket}", files={**form, "file": "bar"}, timeout=10)
    assert answer.status_code == 204, answer.text
    assert s3.get_object(Bucket=bucket, Key="foo.txt")["Body"].read() == b"bar"


def test_a_bare_tag_key_in_the_header_has_an_empty_value(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"", Tagging="foo=bar&bar")
    tags = s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"]
    assert tags == [{"Key": "foo", "Value": "bar"}, {"Key": "bar", "Value": ""}]
