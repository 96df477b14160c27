"""Object Lock through boto3 against the live app (memory store): issue 12's must-show 6 — a locked
version cannot be deleted before its retain-until date (COMPLIANCE), can be with the bypass header
(GOVERNANCE) — and the configuration, retention, legal hold and header round trips."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from tests.s3.conftest import make_client, signed_request

_names = itertools.count()


def error_of(call: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


def locked_bucket(s3: Any) -> str:
    name = f"locked-{next(_names)}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def soon(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


PROTECTED = (403, "AccessDenied", "Access Denied because object protected by object lock.")


def test_compliance_refuses_deletion_until_the_date_and_governance_yields_to_the_bypass(s3: Any) -> None:
    bucket = locked_bucket(s3)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    until = soon(3)
    kept = s3.put_object(
        Bucket=bucket, Key="c", Body=b"kept", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until
    )
    version = kept["VersionId"]
    head = s3.head_object(Bucket=bucket, Key="c", VersionId=version)
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"] > dt.datetime.now(dt.UTC)
    assert error_of(lambda: s3.delete_object(Bucket=bucket, Key="c", VersionId=version)) == PROTECTED
    assert (
        error_of(lambda: s3.delete_object(Bucket=bucket, Key="c", VersionId=version, BypassGovernanceRetention=True))
        == PROTECTED
    )
    # COMPLIANCE can be extended, never shortened, even with the bypass.
    shorter = {"Mode": "COMPLIANCE", "RetainUntilDate": until - dt.timedelta(seconds=1)}
    assert error_of(
        lambda: s3.put_object_retention(
            Bucket=bucket, Key="c", VersionId=version, Retention=shorter, BypassGovernanceRetention=True
        )
    )[:2] == (403, "AccessDenied")
    # A plain DELETE adds a delete marker, as S3 does: the locked version stays.
    marker = s3.delete_object(Bucket=bucket, Key="c")
    assert marker["DeleteMarker"] is True
    assert s3.get_object(Bucket=bucket, Key="c", VersionId=version)["Body"].read() == b"kept"
    while dt.datetime.now(dt.UTC) <= until + dt.timedelta(milliseconds=200):  # past the date
        time.sleep(0.2)
    s3.delete_object(Bucket=bucket, Key="c", VersionId=version)
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="c", VersionId=version))[0] == 404

    governed = s3.put_object(
        Bucket=bucket, Key="g", Body=b"g", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=soon(3600)
    )["VersionId"]
    assert error_of(lambda: s3.delete_object(Bucket=bucket, Key="g", VersionId=governed)) == PROTECTED
    s3.delete_object(Bucket=bucket, Key="g", VersionId=governed, BypassGovernanceRetention=True)
    assert "Versions" not in s3.list_object_versions(Bucket=bucket, Prefix="g")


def test_legal_hold_blocks_deletion_whatever_the_bypass(s3: Any) -> None:
    bucket = locked_bucket(s3)
    version = s3.put_object(Bucket=bucket, Key="h", Body=b"h", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="h")["ObjectLockLegalHoldStatus"] == "ON"
    assert s3.get_object_legal_hold(Bucket=bucket, Key="h", VersionId=version)["LegalHold"] == {"Status": "ON"}
    assert (
        error_of(lambda: s3.delete_object(Bucket=bucket, Key="h", VersionId=version, BypassGovernanceRetention=True))
        == PROTECTED
    )
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "h", "VersionId": version}], "Quiet": True})
    assert [(e["Key"], e["VersionId"], e["Code"]) for e in result["Errors"]] == [("h", version, "AccessDenied")]
    s3.put_object_legal_hold(Bucket=bucket, Key="h", VersionId=version, LegalHold={"Status": "OFF"})
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "h", "VersionId": version}]})
    assert [d["VersionId"] for d in result["Deleted"]] == [version] and "Errors" not in result


def test_default_retention_and_retention_per_version(s3: Any) -> None:
    bucket = locked_bucket(s3)
    assert s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled"
    }
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    rule = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["Rule"]
    assert rule == {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}
    first = s3.put_object(Bucket=bucket, Key="d", Body=b"1")["VersionId"]
    retention = s3.get_object_retention(Bucket=bucket, Key="d", VersionId=first)["Retention"]
    assert retention["Mode"] == "GOVERNANCE"
    assert dt.timedelta(hours=23) < retention["RetainUntilDate"] - dt.datetime.now(dt.UTC) <= dt.timedelta(days=1)
    # Retention is per version: the second version's change leaves the first's alone.
    second = s3.put_object(Bucket=bucket, Key="d", Body=b"2")["VersionId"]
    later = soon(7 * 86400).replace(microsecond=0)
    s3.put_object_retention(  # a GOVERNANCE version's mode changes only with the bypass
        Bucket=bucket,
        Key="d",
        VersionId=second,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later},
        BypassGovernanceRetention=True,
    )
    assert s3.get_object_retention(Bucket=bucket, Key="d")["Retention"] == {
        "Mode": "COMPLIANCE",
        "RetainUntilDate": later,
    }
    assert s3.get_object_retention(Bucket=bucket, Key="d", VersionId=first)["Retention"]["Mode"] == "GOVERNANCE"
    # GOVERNANCE is lifted only with the bypass.
    assert error_of(lambda: s3.put_object_retention(Bucket=bucket, Key="d", VersionId=first, Retention={}))[:2] == (
        403,
        "AccessDenied",
    )
    s3.put_object_retention(Bucket=bucket, Key="d", VersionId=first, Retention={}, BypassGovernanceRetention=True)
    assert error_of(lambda: s3.get_object_retention(Bucket=bucket, Key="d", VersionId=first))[:2] == (
        404,
        "NoSuchObjectLockConfiguration",
    )
    s3.delete_object(Bucket=bucket, Key="d", VersionId=first)
    # Versioning cannot be suspended under Object Lock.
    assert error_of(lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}))[
        :2
    ] == (409, "InvalidBucketState")


def test_errors_of_lock_requests(s3: Any) -> None:
    plain = f"plain-{next(_names)}"
    s3.create_bucket(Bucket=plain)
    assert error_of(lambda: s3.get_object_lock_configuration(Bucket=plain))[:2] == (
        404,
        "ObjectLockConfigurationNotFoundError",
    )
    s3.put_object(Bucket=plain, Key="k", Body=b"x")
    assert error_of(lambda: s3.get_object_retention(Bucket=plain, Key="k"))[:2] == (400, "InvalidRequest")
    enable = {"ObjectLockEnabled": "Enabled"}
    assert error_of(lambda: s3.put_object_lock_configuration(Bucket=plain, ObjectLockConfiguration=enable))[:2] == (
        409,
        "InvalidBucketState",
    )
    s3.put_bucket_versioning(Bucket=plain, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=plain, ObjectLockConfiguration=enable)  # allowed once versioned
    bucket = locked_bucket(s3)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    assert error_of(
        lambda: s3.put_object(
            Bucket=bucket, Key="k", Body=b"x", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=past
        )
    )[:2] == (400, "InvalidArgument")
    assert error_of(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE"))[:2] == (
        400,
        "InvalidArgument",
    )
    url = f"{s3.meta.endpoint_url}/{bucket}/unsummed"
    answer = signed_request(url, "PUT", headers={"x-amz-object-lock-legal-hold": "ON"}, body=b"x")
    assert answer.status == 400 and b"Content-MD5 OR x-amz-checksum-" in answer.body
    assert error_of(lambda: s3.get_object_legal_hold(Bucket=bucket, Key="missing"))[:2] == (404, "NoSuchKey")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert error_of(lambda: s3.get_object_legal_hold(Bucket=bucket, Key="k"))[:2] == (
        404,
        "NoSuchObjectLockConfiguration",
    )
    bad_rule = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE"}}}
    assert error_of(lambda: s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=bad_rule))[:2] == (
        400,
        "MalformedXML",
    )
    # Locked copies and multipart uploads: the headers go to the new version.
    until = soon(3600)
    copied = s3.copy_object(
        Bucket=bucket,
        Key="copy",
        CopySource={"Bucket": bucket, "Key": "k"},
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=until,
    )
    assert s3.head_object(Bucket=bucket, Key="copy")["ObjectLockMode"] == "GOVERNANCE"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ObjectLockLegalHoldStatus="ON")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"p")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.head_object(Bucket=bucket, Key="mp")["ObjectLockLegalHoldStatus"] == "ON"
    assert copied["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    assert error_of(lambda: s3.get_object_retention(Bucket=bucket, Key="k", VersionId=marker))[:2] == (
        405,
        "MethodNotAllowed",
    )


def test_a_browser_form_upload_takes_a_legal_hold(s3: Any) -> None:
    bucket = locked_bucket(s3)
    signer = make_client(s3.meta.endpoint_url, signature_version="s3v4")
    post = signer.generate_presigned_post(
        bucket,
        "form.txt",
        Fields={"x-amz-object-lock-legal-hold": "ON"},
        Conditions=[{"x-amz-object-lock-legal-hold": "ON"}],
    )
    answer = requests.post(post["url"], data=post["fields"], files={"file": ("form.txt", b"f")}, timeout=10)
    assert answer.status_code == 204
    version = s3.head_object(Bucket=bucket, Key="form.txt")
    assert version["ObjectLockLegalHoldStatus"] == "ON"
    assert (
        error_of(lambda: s3.delete_object(Bucket=bucket, Key="form.txt", VersionId=version["VersionId"])) == PROTECTED
    )
