"""Versioning end to end: aws-cli's s3api calls and boto3 against the live app (memory store);
the store rules themselves are in tests/store/contract.py, over both stores."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from mrapsim.store.versions import ENABLED, new_version_id
from tests.s3.conftest import LiveServer, aws_cli_env, make_client


def aws(live: LiveServer, *args: str, ok: bool = True) -> Any:
    result = subprocess.run(
        ["aws", "--endpoint-url", live.url, *args],
        env=aws_cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if not ok:
        return result
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


@pytest.fixture(scope="module")
def bucket(live: LiveServer) -> str:
    aws(live, "s3api", "create-bucket", "--bucket", "versioned")
    return "versioned"


def test_aws_cli_versioning_end_to_end(live: LiveServer, bucket: str, tmp_path: Any) -> None:
    assert aws(live, "s3api", "get-bucket-versioning", "--bucket", bucket) is None  # never set: empty
    aws(live, "s3api", "put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled")
    assert aws(live, "s3api", "get-bucket-versioning", "--bucket", bucket) == {"Status": "Enabled"}
    for body in ("one", "two"):
        (tmp_path / "body").write_text(body)
        put = aws(live, "s3api", "put-object", "--bucket", bucket, "--key", "doc.txt", "--body", str(tmp_path / "body"))
        assert put["ETag"]
    listed = aws(live, "s3api", "list-object-versions", "--bucket", bucket)
    versions = listed["Versions"]
    assert [v["IsLatest"] for v in versions] == [True, False] and "DeleteMarkers" not in listed
    newest, oldest = versions[0]["VersionId"], versions[1]["VersionId"]
    deleted = aws(live, "s3api", "delete-object", "--bucket", bucket, "--key", "doc.txt")
    assert deleted["DeleteMarker"] is True and deleted["VersionId"]
    after = aws(live, "s3api", "list-object-versions", "--bucket", bucket)
    assert [m["VersionId"] for m in after["DeleteMarkers"]] == [deleted["VersionId"]]
    assert after["DeleteMarkers"][0]["IsLatest"] is True and not any(v["IsLatest"] for v in after["Versions"])
    missing = aws(live, "s3api", "get-object", "--bucket", bucket, "--key", "doc.txt", str(tmp_path / "x"), ok=False)
    assert missing.returncode != 0 and "NoSuchKey" in missing.stderr
    s3 = make_client(live.url)
    with pytest.raises(s3.exceptions.ClientError) as on_head:
        s3.head_object(Bucket=bucket, Key="doc.txt")
    marker_headers = on_head.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert marker_headers["x-amz-delete-marker"] == "true"
    assert marker_headers["x-amz-version-id"] == deleted["VersionId"]
    out = tmp_path / "old.txt"
    got = aws(live, "s3api", "get-object", "--bucket", bucket, "--key", "doc.txt", "--version-id", oldest, str(out))
    assert out.read_text() == "one" and got["VersionId"] == oldest
    head = aws(live, "s3api", "head-object", "--bucket", bucket, "--key", "doc.txt", "--version-id", newest)
    assert head["ContentLength"] == 3 and head["VersionId"] == newest
    on_marker = aws(
        live, "s3api", "get-object", "--bucket", bucket, "--key", "doc.txt", "--version-id", deleted["VersionId"],
        str(tmp_path / "y"), ok=False,
    )  # fmt: skip
    assert "MethodNotAllowed" in on_marker.stderr
    # Removing the marker for good undeletes the object.
    aws(live, "s3api", "delete-object", "--bucket", bucket, "--key", "doc.txt", "--version-id", deleted["VersionId"])
    aws(live, "s3api", "get-object", "--bucket", bucket, "--key", "doc.txt", str(out))
    assert out.read_text() == "two"


def test_copy_object_from_a_version_and_paged_listing(live: LiveServer, bucket: str) -> None:
    s3 = make_client(live.url)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="src", Body=b"first")
    s3.put_object(Bucket=bucket, Key="src", Body=b"second")
    assert first["VersionId"] != "null"
    s3.copy_object(
        Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "src", "VersionId": first["VersionId"]}
    )
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == b"first"
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"many/{i}", Body=b"x")
        s3.put_object(Bucket=bucket, Key=f"many/{i}", Body=b"y")
    paginator = s3.get_paginator("list_object_versions")
    pages = list(paginator.paginate(Bucket=bucket, Prefix="many/", PaginationConfig={"PageSize": 3}))
    assert len(pages) == 4
    keys = [(v["Key"], v["IsLatest"]) for page in pages for v in page.get("Versions", [])]
    assert keys == [(f"many/{i}", latest) for i in range(5) for latest in (True, False)]
    rolled = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["many/"]


def test_an_unversioned_bucket_lists_null_versions(live: LiveServer) -> None:
    s3 = make_client(live.url)
    listed = s3.list_object_versions(Bucket="mraps3sample", Prefix="data/")
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [
        ("data/one.csv", "null", True),
        ("data/two.csv", "null", True),
    ]
    assert "Status" not in s3.get_bucket_versioning(Bucket="mraps3sample")


def test_emptying_a_versioned_bucket_through_its_versions(live: LiveServer) -> None:
    """What emptying tools do: list every version and marker, DeleteObjects them by version."""
    s3 = make_client(live.url)
    s3.create_bucket(Bucket="to-empty")
    s3.put_bucket_versioning(Bucket="to-empty", VersioningConfiguration={"Status": "Enabled"})
    for key in ("a", "a", "b/c"):
        s3.put_object(Bucket="to-empty", Key=key, Body=b"x")
    s3.delete_object(Bucket="to-empty", Key="b/c")
    listed = s3.list_object_versions(Bucket="to-empty")
    targets = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in listed["Versions"] + listed["DeleteMarkers"]]
    assert len(targets) == 4
    result = s3.delete_objects(Bucket="to-empty", Delete={"Objects": targets})
    assert len(result["Deleted"]) == 4 and sum(bool(d.get("DeleteMarker")) for d in result["Deleted"]) == 1
    assert "Versions" not in s3.list_object_versions(Bucket="to-empty")
    s3.delete_bucket(Bucket="to-empty")


def test_version_ids_never_start_with_a_dash() -> None:
    # aws-cli reads `--version-id -abc` as a missing value: a test failed on such an id.
    ids = {new_version_id(ENABLED) for _ in range(2000)}
    assert len(ids) == 2000 and not any(version_id.startswith("-") for version_id in ids)
    assert new_version_id("Suspended") == "null"
