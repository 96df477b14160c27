"""Multipart uploads, CopyObject, DeleteObjects and bucket lifecycle through boto3 on the live app."""

from __future__ import annotations

import base64
import hashlib
import os
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mrapsim.s3.checksums import checksum
from tests.s3.conftest import WRITE_BUCKET, LiveServer, RawResponse, signed_request
from tests.s3.test_live import error_code

MIB = 1024 * 1024
PART = os.urandom(5 * MIB)
TAIL = os.urandom(1000)


def start(s3: Any, key: str, **extra: Any) -> str:
    return str(s3.create_multipart_upload(Bucket=WRITE_BUCKET, Key=key, **extra)["UploadId"])


def test_multipart_etag_checksums_and_listing(s3: Any) -> None:
    key = "mp/object.bin"
    upload_id = start(s3, key, ChecksumAlgorithm="CRC32", ContentType="text/x-test", Metadata={"a": "1"})
    first = s3.upload_part(Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=PART)
    second = s3.upload_part(Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id, PartNumber=2, Body=TAIL)
    assert first["ETag"] == f'"{hashlib.md5(PART).hexdigest()}"'
    assert first["ChecksumCRC32"] == checksum("crc32", PART)
    uploads = s3.list_multipart_uploads(Bucket=WRITE_BUCKET, Prefix="mp/")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, upload_id)]
    parts = s3.list_parts(Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"]) for p in parts["Parts"]] == [(1, len(PART)), (2, len(TAIL))]
    done = s3.complete_multipart_upload(
        Bucket=WRITE_BUCKET,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": first["ETag"], "ChecksumCRC32": first["ChecksumCRC32"]},
                {"PartNumber": 2, "ETag": second["ETag"], "ChecksumCRC32": second["ChecksumCRC32"]},
            ]
        },
    )
    digests = hashlib.md5(PART).digest() + hashlib.md5(TAIL).digest()
    assert done["ETag"] == f'"{hashlib.md5(digests).hexdigest()}-2"'
    raw = base64.b64decode(first["ChecksumCRC32"]) + base64.b64decode(second["ChecksumCRC32"])
    assert done["ChecksumCRC32"] == checksum("crc32", raw) + "-2" and done["ChecksumType"] == "COMPOSITE"
    got = s3.get_object(Bucket=WRITE_BUCKET, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == PART + TAIL and got["ContentType"] == "text/x-test" and got["Metadata"] == {"a": "1"}
    assert got["ChecksumCRC32"] == done["ChecksumCRC32"]
    with pytest.raises(ClientError) as gone:
        s3.list_parts(Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id)
    assert error_code(gone) == "NoSuchUpload"


def test_full_object_crc64nvme(s3: Any) -> None:
    key = "mp/full.bin"
    upload_id = start(s3, key, ChecksumAlgorithm="CRC64NVME")
    etags = [
        s3.upload_part(Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id, PartNumber=n, Body=body)["ETag"]
        for n, body in ((1, PART), (2, TAIL))
    ]
    done = s3.complete_multipart_upload(
        Bucket=WRITE_BUCKET,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), etags, strict=True)]},
    )
    assert done["ChecksumCRC64NVME"] == checksum("crc64nvme", PART + TAIL) and done["ChecksumType"] == "FULL_OBJECT"


def test_complete_refusals(s3: Any, live: LiveServer) -> None:
    key = "mp/refused.bin"
    upload_id = start(s3, key)
    small = s3.upload_part(Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=b"tiny")["ETag"]
    big = s3.upload_part(Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id, PartNumber=2, Body=PART)["ETag"]

    def complete(parts: list[dict[str, Any]]) -> str:
        with pytest.raises(ClientError) as excinfo:
            s3.complete_multipart_upload(
                Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        return error_code(excinfo)

    assert complete([{"PartNumber": 1, "ETag": small}, {"PartNumber": 2, "ETag": big}]) == "EntityTooSmall"
    assert complete([{"PartNumber": 2, "ETag": big}, {"PartNumber": 1, "ETag": small}]) == "InvalidPartOrder"
    assert complete([{"PartNumber": 1, "ETag": big}]) == "InvalidPart"
    assert complete([{"PartNumber": 3, "ETag": big}]) == "InvalidPart"
    response = signed_request(
        f"{live.url}/{WRITE_BUCKET}/{key}?uploadId={upload_id}", "POST", body=b"<CompleteMultipartUpload/>"
    )
    assert response.status == 400 and ET.fromstring(response.body).findtext("Code") == "MalformedXML"
    with pytest.raises(ClientError) as bad_number:
        s3.upload_part(Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id, PartNumber=10001, Body=b"x")
    assert error_code(bad_number) == "InvalidArgument"
    s3.abort_multipart_upload(Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id)
    with pytest.raises(ClientError) as aborted:
        s3.upload_part(Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x")
    assert error_code(aborted) == "NoSuchUpload"


def test_copy_object_directives(s3: Any) -> None:
    s3.put_object(Bucket=WRITE_BUCKET, Key="cp/src", Body=b"source", ContentType="text/a", Metadata={"m": "1"})
    copied = s3.copy_object(Bucket=WRITE_BUCKET, Key="cp/dst", CopySource={"Bucket": WRITE_BUCKET, "Key": "cp/src"})
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"source").hexdigest()}"'
    head = s3.head_object(Bucket=WRITE_BUCKET, Key="cp/dst")
    assert head["ContentType"] == "text/a" and head["Metadata"] == {"m": "1"}
    s3.copy_object(
        Bucket=WRITE_BUCKET,
        Key="cp/dst",
        CopySource=f"{WRITE_BUCKET}/cp/src",
        MetadataDirective="REPLACE",
        ContentType="text/b",
        Metadata={"n": "2"},
    )
    head = s3.head_object(Bucket=WRITE_BUCKET, Key="cp/dst")
    assert head["ContentType"] == "text/b" and head["Metadata"] == {"n": "2"}
    with pytest.raises(ClientError) as itself:
        s3.copy_object(Bucket=WRITE_BUCKET, Key="cp/src", CopySource=f"{WRITE_BUCKET}/cp/src")
    assert error_code(itself) == "InvalidRequest"
    with pytest.raises(ClientError) as missing:
        s3.copy_object(Bucket=WRITE_BUCKET, Key="cp/x", CopySource=f"{WRITE_BUCKET}/cp/none")
    assert error_code(missing) == "NoSuchKey"
    with pytest.raises(ClientError) as condition:
        s3.copy_object(Bucket=WRITE_BUCKET, Key="cp/x", CopySource=f"{WRITE_BUCKET}/cp/src", CopySourceIfMatch='"0"')
    assert error_code(condition) == "PreconditionFailed"


def test_delete_objects_without_content_md5(s3: Any, live: LiveServer) -> None:
    for i in range(5):
        s3.put_object(Bucket=WRITE_BUCKET, Key=f"del/{i}", Body=b"x")
    deleted = s3.delete_objects(
        Bucket=WRITE_BUCKET, Delete={"Objects": [{"Key": f"del/{i}"} for i in range(4)] + [{"Key": "del/none"}]}
    )
    assert sorted(d["Key"] for d in deleted["Deleted"]) == [*(f"del/{i}" for i in range(4)), "del/none"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=WRITE_BUCKET, Prefix="del/")["Contents"]] == ["del/4"]
    body = b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>del/4</Key></Object></Delete>'
    url = f"{live.url}/{WRITE_BUCKET}?delete"
    bad = signed_request(url, "POST", body=body, headers={"x-amz-checksum-crc32": checksum("crc32", b"")})
    assert bad.status == 400 and ET.fromstring(bad.body).findtext("Code") == "BadDigest"
    good = signed_request(
        f"{live.url}/{WRITE_BUCKET}?delete",
        "POST",
        body=body,
        headers={"x-amz-checksum-crc32": checksum("crc32", body)},
    )
    assert good.status == 200 and b"<Deleted><Key>del/4</Key></Deleted>" in good.body


def test_bucket_lifecycle(s3: Any) -> None:
    s3.create_bucket(Bucket="lifecycle")
    with pytest.raises(ClientError) as again:
        s3.create_bucket(Bucket="lifecycle")
    assert error_code(again) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket="lifecycle", Key="k", Body=b"x")
    with pytest.raises(ClientError) as not_empty:
        s3.delete_bucket(Bucket="lifecycle")
    assert error_code(not_empty) == "BucketNotEmpty"
    s3.delete_object(Bucket="lifecycle", Key="k")
    s3.delete_bucket(Bucket="lifecycle")
    with pytest.raises(ClientError) as invalid:
        s3.create_bucket(Bucket="Bad_Name")
    assert error_code(invalid) == "InvalidBucketName"


def test_upload_part_copy_with_ranges(s3: Any) -> None:
    source = PART + TAIL
    s3.put_object(Bucket=WRITE_BUCKET, Key="mpc/source", Body=source)
    key = "mpc/assembled"
    upload_id = start(s3, key, ChecksumAlgorithm="SHA256")
    copied = [
        s3.upload_part_copy(
            Bucket=WRITE_BUCKET,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource=f"{WRITE_BUCKET}/mpc/source",
            CopySourceRange=byte_range,
        )["CopyPartResult"]
        for number, byte_range in ((1, f"bytes=0-{len(PART) - 1}"), (2, f"bytes={len(PART)}-{len(source) - 1}"))
    ]
    assert copied[0]["ETag"] == f'"{hashlib.md5(PART).hexdigest()}"'
    assert copied[1]["ChecksumSHA256"] == checksum("sha256", TAIL)
    s3.complete_multipart_upload(
        Bucket=WRITE_BUCKET,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": c["ETag"]} for n, c in enumerate(copied, 1)]},
    )
    assert s3.get_object(Bucket=WRITE_BUCKET, Key=key)["Body"].read() == source
    with pytest.raises(ClientError) as bad_range:
        s3.upload_part_copy(
            Bucket=WRITE_BUCKET,
            Key="mpc/other",
            UploadId=start(s3, "mpc/other"),
            PartNumber=1,
            CopySource=f"{WRITE_BUCKET}/mpc/source",
            CopySourceRange=f"bytes=0-{len(source)}",
        )
    assert error_code(bad_range) == "InvalidArgument"


# -- XML request bodies with a DTD, in encodings where "<!DOCTYPE" is not those bytes -----------

# The "billion laughs": nine levels of ten references each, so &lol9; is 10^9 "lol"s.
BILLION_LAUGHS = '<!ENTITY lol0 "lol">' + "".join(
    f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">' for level in range(1, 10)
)


def dtd_document(codec: str, root: str, body: str, *, value: str, laughs: bool) -> bytes:
    """`<root>body</root>` after a DOCTYPE declaring the entity `&v;` as `value` (and with
    `laughs`, the billion laughs, referenced from a `<laughs>` element), encoded in
    `codec` with its byte-order mark. Parsed as written, the document acts on `value`."""
    declarations = f"<!ENTITY v '{value}'>" + (BILLION_LAUGHS if laughs else "")
    text = (
        f'<?xml version="1.0" encoding="{codec.upper()}"?>\n'
        f"<!DOCTYPE {root} [{declarations}]>\n"
        f'<{root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{body}'
        + ("<laughs>&lol9;</laughs>" if laughs else "")
        + f"</{root}>"
    )
    return text.encode(codec)


def malformed(response: RawResponse) -> bool:
    return response.status == 400 and ET.fromstring(response.body).findtext("Code") == "MalformedXML"


@pytest.mark.parametrize("laughs", [False, True], ids=["internal-entity", "billion-laughs"])
@pytest.mark.parametrize("codec", ["utf-8", "utf-16", "utf-32"])
def test_xml_with_a_dtd_is_malformed_in_any_encoding(s3: Any, live: LiveServer, codec: str, laughs: bool) -> None:
    kept = f"dtd/{codec}/{laughs}/kept"
    s3.put_object(Bucket=WRITE_BUCKET, Key=kept, Body=b"x")
    delete = dtd_document(codec, "Delete", "<Object><Key>&v;</Key></Object>", value=kept, laughs=laughs)
    assert malformed(signed_request(f"{live.url}/{WRITE_BUCKET}?delete", "POST", body=delete))
    assert s3.head_object(Bucket=WRITE_BUCKET, Key=kept)["ContentLength"] == 1

    assembled = f"dtd/{codec}/{laughs}/assembled"
    upload_id = start(s3, assembled)
    etag = s3.upload_part(Bucket=WRITE_BUCKET, Key=assembled, UploadId=upload_id, PartNumber=1, Body=b"y")["ETag"]
    part = "<Part><PartNumber>1</PartNumber><ETag>&v;</ETag></Part>"
    complete = dtd_document(codec, "CompleteMultipartUpload", part, value=etag.strip('"'), laughs=laughs)
    url = f"{live.url}/{WRITE_BUCKET}/{assembled}?uploadId={upload_id}"
    assert malformed(signed_request(url, "POST", body=complete))
    parts = s3.list_parts(Bucket=WRITE_BUCKET, Key=assembled, UploadId=upload_id)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1]
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=WRITE_BUCKET, Key=assembled)
    assert error_code(missing) == "404"
