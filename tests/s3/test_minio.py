"""The MinIO Python SDK (`minio` from PyPI) against the S3 listener, over TLS with the server's CA:
buckets, small and multipart puts, file transfers, stat, listings, copy, removals, a presigned GET
fetched by urllib, object tags and bucket versioning. Skipped where the SDK is not installed."""

from __future__ import annotations

import io
import logging
import os
import ssl
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.mrapsim_process import ACCESS_KEY, SECRET_KEY, MrapsimProcess

minio = pytest.importorskip("minio")
urllib3 = pytest.importorskip("urllib3")

MIB = 1024 * 1024


def client(mrapsim: MrapsimProcess) -> Any:
    http = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(mrapsim.ca), retries=False, maxsize=4)
    return minio.Minio(
        f"localhost:{mrapsim.port('s3')}",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        secure=True,
        region="us-east-1",
        http_client=http,
    )


def test_minio_sdk_common_workflow(mrapsim: MrapsimProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from minio.commonconfig import ENABLED, CopySource, Tags
    from minio.deleteobjects import DeleteObject
    from minio.versioningconfig import VersioningConfig

    caplog.set_level(logging.DEBUG)
    s3 = client(mrapsim)
    bucket = "minio-workflow"
    assert not s3.bucket_exists(bucket)
    s3.make_bucket(bucket)
    assert s3.bucket_exists(bucket)

    s3.put_object(bucket, "small.txt", io.BytesIO(b"small object\n"), length=13, content_type="text/plain")
    # Above part_size the SDK uploads with CreateMultipartUpload and parts.
    large = os.urandom(11 * MIB + 7)
    written = s3.put_object(bucket, "large.bin", io.BytesIO(large), length=-1, part_size=5 * MIB)
    assert written.etag.endswith("-3"), written.etag

    source = tmp_path / "up.txt"
    source.write_text("uploaded from a file\n")
    s3.fput_object(bucket, "dir/up.txt", str(source))
    fetched = tmp_path / "fetched.bin"
    s3.fget_object(bucket, "large.bin", str(fetched))
    assert fetched.read_bytes() == large

    stat = s3.stat_object(bucket, "small.txt")
    assert (stat.size, stat.content_type) == (13, "text/plain")

    assert sorted(o.object_name for o in s3.list_objects(bucket)) == ["dir/", "large.bin", "small.txt"]
    assert sorted(o.object_name for o in s3.list_objects(bucket, recursive=True)) == [
        "dir/up.txt",
        "large.bin",
        "small.txt",
    ]
    assert [o.object_name for o in s3.list_objects(bucket, prefix="dir/")] == ["dir/up.txt"]

    s3.copy_object(bucket, "copy.txt", CopySource(bucket, "small.txt"))
    response = s3.get_object(bucket, "copy.txt")
    try:
        assert response.read() == b"small object\n"
    finally:
        response.close()
        response.release_conn()

    url = s3.presigned_get_object(bucket, "dir/up.txt", expires=timedelta(minutes=5))
    context = ssl.create_default_context(cafile=str(mrapsim.ca))
    with urllib.request.urlopen(url, context=context, timeout=10) as presigned:
        assert presigned.read() == b"uploaded from a file\n"

    tags = Tags.new_object_tags()
    tags["project"] = "mrapsim"
    tags["stage"] = "test"
    s3.set_object_tags(bucket, "small.txt", tags)
    assert dict(s3.get_object_tags(bucket, "small.txt")) == {"project": "mrapsim", "stage": "test"}

    # A bucket never versioned answers an empty VersioningConfiguration (no Status), as S3 does.
    assert s3.get_bucket_versioning(bucket).status is None
    s3.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
    assert s3.get_bucket_versioning(bucket).status == ENABLED

    s3.remove_object(bucket, "copy.txt")
    errors = list(s3.remove_objects(bucket, [DeleteObject(name) for name in ("small.txt", "large.bin", "dir/up.txt")]))
    assert errors == []
    assert list(s3.list_objects(bucket, recursive=True)) == []

    # The SDK logs nothing at error level on this workflow.
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []
