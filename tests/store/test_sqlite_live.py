"""The S3 app on a SqliteStore, driven by boto3: streamed (aws-chunked) uploads, multipart,
copies and listings go through the store's spool files and blobs, and leave no file behind."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from boto3.s3.transfer import TransferConfig

from mrapsim.config import load_config
from mrapsim.s3 import create_app
from mrapsim.store import seed_store
from mrapsim.store.sqlite import SqliteStore
from tests.s3.conftest import make_client, serving
from tests.store.test_sqlite import assert_no_leaks, blob_files

MIB = 1024 * 1024


@pytest.fixture
def sqlite_s3(tmp_path: Path) -> Iterator[tuple[Any, SqliteStore]]:
    config = load_config(overrides={"buckets": [{"name": "data", "objects": {"seeded.txt": "seed\n"}}]})
    store = SqliteStore.open(tmp_path / "store")
    trio.run(seed_store, store, config)
    with serving(create_app(config, store)) as url:
        yield make_client(url), store
    store.close()


def test_boto3_round_trips_through_the_sqlite_store(sqlite_s3: tuple[Any, SqliteStore]) -> None:
    s3, store = sqlite_s3
    assert s3.get_object(Bucket="data", Key="seeded.txt")["Body"].read() == b"seed\n"
    body = os.urandom(3 * MIB + 5)
    s3.put_object(Bucket="data", Key="dir/streamed.bin", Body=body, ChecksumAlgorithm="CRC32", Metadata={"a": "1"})
    got = s3.get_object(Bucket="data", Key="dir/streamed.bin", Range="bytes=100-199")
    assert got["Body"].read() == body[100:200] and got["Metadata"] == {"a": "1"}
    big = os.urandom(13 * MIB)
    transfer = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_fileobj(io.BytesIO(big), "data", "dir/multipart.bin", Config=transfer)
    assert s3.get_object(Bucket="data", Key="dir/multipart.bin")["Body"].read() == big
    assert s3.head_object(Bucket="data", Key="dir/multipart.bin")["ETag"].endswith('-3"')
    s3.copy_object(Bucket="data", Key="copy.bin", CopySource={"Bucket": "data", "Key": "dir/multipart.bin"})
    upload = s3.create_multipart_upload(Bucket="data", Key="pc.bin")["UploadId"]
    source = {"Bucket": "data", "Key": "dir/multipart.bin"}
    first = s3.upload_part_copy(
        Bucket="data", Key="pc.bin", UploadId=upload, PartNumber=1, CopySource=source, CopySourceRange="bytes=0-5242879"
    )
    second = s3.upload_part(Bucket="data", Key="pc.bin", UploadId=upload, PartNumber=2, Body=b"end")
    s3.complete_multipart_upload(
        Bucket="data",
        Key="pc.bin",
        UploadId=upload,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
                {"PartNumber": 2, "ETag": second["ETag"]},
            ]
        },
    )
    s3.delete_object(Bucket="data", Key="dir/multipart.bin")
    assert s3.get_object(Bucket="data", Key="copy.bin")["Body"].read() == big
    assert s3.get_object(Bucket="data", Key="pc.bin")["Body"].read() == big[: 5 * MIB] + b"end"
    listing = s3.list_objects_v2(Bucket="data", Delimiter="/")
    assert [c["Prefix"] for c in listing["CommonPrefixes"]] == ["dir/"]
    assert [o["Key"] for o in listing["Contents"]] == ["copy.bin", "pc.bin", "seeded.txt"]
    aborted = s3.create_multipart_upload(Bucket="data", Key="aborted.bin")["UploadId"]
    s3.upload_part(Bucket="data", Key="aborted.bin", UploadId=aborted, PartNumber=1, Body=os.urandom(MIB))
    s3.abort_multipart_upload(Bucket="data", Key="aborted.bin", UploadId=aborted)
    assert_no_leaks(store)
    for key in ("copy.bin", "pc.bin", "dir/streamed.bin"):
        s3.delete_object(Bucket="data", Key=key)
    assert blob_files(store.path) == set()
    assert_no_leaks(store)
