"""Conditional writes, multipart checksums, parts, GetObjectAttributes, response overrides and
ListObjectsV2's token rules (issue 12), through boto3 and the aws-cli on the live app."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import threading
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import trio
from awscrt.auth import (
    AwsCredentialsProvider,
    AwsSignatureType,
    AwsSignedBodyValue,
    AwsSigningAlgorithm,
    AwsSigningConfig,
)
from awscrt.http import HttpHeaders, HttpRequest
from awscrt.io import ClientBootstrap, DefaultHostResolver, EventLoopGroup
from awscrt.s3 import (
    S3ChecksumAlgorithm,
    S3ChecksumConfig,
    S3ChecksumLocation,
    S3Client,
    S3RequestTlsMode,
    S3RequestType,
)
from botocore.exceptions import ClientError

from mrapsim.config import load_config
from mrapsim.s3 import create_app
from mrapsim.s3.checksums import checksum
from mrapsim.store import MemoryStore, seed_store
from tests.s3.conftest import (
    ACCESS_KEY,
    SECRET_KEY,
    WRITE_BUCKET,
    LiveServer,
    aws_cli_env,
    make_client,
    send,
    serving,
    signed_request,
)
from tests.s3.test_live import error_code

MIB = 1024 * 1024
PART = os.urandom(5 * MIB)
TAIL = os.urandom(1000)
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def upload_two_parts(s3: Any, key: str, **create: Any) -> tuple[str, list[dict[str, Any]]]:
    upload_id = s3.create_multipart_upload(Bucket=WRITE_BUCKET, Key=key, **create)["UploadId"]
    parts = []
    for number, body in ((1, PART), (2, TAIL)):
        sent = s3.upload_part(Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        parts.append({"PartNumber": number, "ETag": sent["ETag"]})
    return upload_id, parts


def test_put_object_if_none_match_twice_gets_412(s3: Any) -> None:
    key = "cond/put"
    first = s3.put_object(Bucket=WRITE_BUCKET, Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as second:
        s3.put_object(Bucket=WRITE_BUCKET, Key=key, Body=b"second", IfNoneMatch="*")
    assert error_code(second) == "PreconditionFailed"
    assert second.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(ClientError) as stale:
        s3.put_object(Bucket=WRITE_BUCKET, Key=key, Body=b"second", IfMatch='"0123"')
    assert error_code(stale) == "PreconditionFailed"
    s3.put_object(Bucket=WRITE_BUCKET, Key=key, Body=b"third", IfMatch=first["ETag"])
    assert s3.get_object(Bucket=WRITE_BUCKET, Key=key)["Body"].read() == b"third"
    with pytest.raises(ClientError) as missing:
        s3.put_object(Bucket=WRITE_BUCKET, Key="cond/none", Body=b"x", IfMatch=first["ETag"])
    assert error_code(missing) == "NoSuchKey"
    with pytest.raises(ClientError) as copied:
        s3.copy_object(Bucket=WRITE_BUCKET, Key=key, CopySource=f"{WRITE_BUCKET}/{key}", IfNoneMatch="*",
                       MetadataDirective="REPLACE")  # fmt: skip
    assert error_code(copied) == "PreconditionFailed"


def test_concurrent_conditional_completes_one_wins(s3: Any) -> None:
    key = "cond/complete"
    uploads = [upload_two_parts(s3, key) for _ in range(2)]
    outcomes: list[tuple[int, str]] = []
    barrier = threading.Barrier(2)

    def complete(upload_id: str, parts: list[dict[str, Any]]) -> None:
        barrier.wait()
        try:
            done = s3.complete_multipart_upload(
                Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
            )
            outcomes.append((200, done["ETag"]))
        except ClientError as error:
            outcomes.append((error.response["ResponseMetadata"]["HTTPStatusCode"], error.response["Error"]["Code"]))

    threads = [threading.Thread(target=complete, args=upload) for upload in uploads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(status for status, _ in outcomes)
    assert statuses in ([200, 409], [200, 412]), outcomes
    winner = next(upload_id for upload_id, _ in uploads if _completed(s3, key, upload_id))
    retried = s3.complete_multipart_upload(
        Bucket=WRITE_BUCKET, Key=key, UploadId=winner, MultipartUpload={"Parts": uploads[0][1]}
    )
    assert (200, retried["ETag"]) in outcomes  # a retried Complete answers 200 with the same ETag


def _completed(s3: Any, key: str, upload_id: str) -> bool:
    try:
        s3.list_parts(Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id)
    except ClientError:
        return True
    return False


def test_full_object_checksum_header_on_complete_is_the_object_s(s3: Any) -> None:
    key = "cond/crc32-full"
    upload_id, parts = upload_two_parts(s3, key, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    with pytest.raises(ClientError) as wrong:
        s3.complete_multipart_upload(
            Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts},
            ChecksumCRC32=checksum("crc32", TAIL), ChecksumType="FULL_OBJECT",
        )  # fmt: skip
    assert error_code(wrong) == "BadDigest"
    with pytest.raises(ClientError) as wrong_size:
        s3.complete_multipart_upload(
            Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, MpuObjectSize=5,
        )  # fmt: skip
    assert error_code(wrong_size) == "InvalidRequest"
    done = s3.complete_multipart_upload(
        Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts},
        ChecksumCRC32=checksum("crc32", PART + TAIL), ChecksumType="FULL_OBJECT", MpuObjectSize=len(PART + TAIL),
    )  # fmt: skip
    assert done["ChecksumCRC32"] == checksum("crc32", PART + TAIL) and done["ChecksumType"] == "FULL_OBJECT"


def test_get_and_head_by_part_number(s3: Any) -> None:
    key = "cond/parts"
    upload_id, parts = upload_two_parts(s3, key, ChecksumAlgorithm="SHA256")
    done = s3.complete_multipart_upload(
        Bucket=WRITE_BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    second = s3.get_object(Bucket=WRITE_BUCKET, Key=key, PartNumber=2)
    assert second["Body"].read() == TAIL and second["PartsCount"] == 2 and second["ETag"] == done["ETag"]
    assert second["ContentRange"] == f"bytes {len(PART)}-{len(PART) + len(TAIL) - 1}/{len(PART) + len(TAIL)}"
    first = s3.head_object(Bucket=WRITE_BUCKET, Key=key, PartNumber=1)
    assert first["ContentLength"] == len(PART) and first["PartsCount"] == 2
    with pytest.raises(ClientError) as beyond:
        s3.get_object(Bucket=WRITE_BUCKET, Key=key, PartNumber=3)
    assert error_code(beyond) == "InvalidPartNumber"
    s3.put_object(Bucket=WRITE_BUCKET, Key="cond/single", Body=b"single")
    whole = s3.get_object(Bucket=WRITE_BUCKET, Key="cond/single", PartNumber=1)
    assert whole["Body"].read() == b"single" and "PartsCount" not in whole

    attributes = s3.get_object_attributes(
        Bucket=WRITE_BUCKET, Key=key, MaxParts=1,
        ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"],
    )  # fmt: skip
    assert attributes["ETag"] == done["ETag"].strip('"') and attributes["ObjectSize"] == len(PART) + len(TAIL)
    assert attributes["StorageClass"] == "STANDARD"
    assert attributes["Checksum"] == {"ChecksumSHA256": done["ChecksumSHA256"], "ChecksumType": "COMPOSITE"}
    object_parts = attributes["ObjectParts"]
    assert (object_parts["TotalPartsCount"], object_parts["IsTruncated"], object_parts["NextPartNumberMarker"]) == (
        2, True, 1,
    )  # fmt: skip
    assert object_parts["Parts"] == [{"PartNumber": 1, "Size": len(PART), "ChecksumSHA256": checksum("sha256", PART)}]
    rest = s3.get_object_attributes(Bucket=WRITE_BUCKET, Key=key, PartNumberMarker=1, ObjectAttributes=["ObjectParts"])[
        "ObjectParts"
    ]
    assert [p["PartNumber"] for p in rest["Parts"]] == [2] and not rest["IsTruncated"]


def test_response_overrides_on_signed_gets(s3: Any, live: LiveServer) -> None:
    s3.put_object(Bucket=WRITE_BUCKET, Key="cond/override", Body=b"x", ContentType="text/plain")
    got = s3.get_object(
        Bucket=WRITE_BUCKET, Key="cond/override", ResponseContentType="application/x-test",
        ResponseContentDisposition='attachment; filename="y.bin"', ResponseCacheControl="no-store",
        ResponseContentLanguage="fr", ResponseContentEncoding="identity",
        ResponseExpires="Thu, 01 Dec 2044 16:00:00 GMT",
    )  # fmt: skip
    headers = got["ResponseMetadata"]["HTTPHeaders"]
    assert headers["content-type"] == "application/x-test" and headers["cache-control"] == "no-store"
    assert headers["content-disposition"] == 'attachment; filename="y.bin"' and headers["content-language"] == "fr"
    assert headers["content-encoding"] == "identity" and headers["expires"] == "Thu, 01 Dec 2044 16:00:00 GMT"
    url = make_client(live.url, signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": WRITE_BUCKET, "Key": "cond/override", "ResponseContentType": "image/png"}
    )
    assert send(urllib.request.Request(url)).headers["content-type"] == "image/png"


def test_list_objects_v2_empty_token_and_start_after(live: LiveServer) -> None:
    response = signed_request(f"{live.url}/mraps3sample?list-type=2&continuation-token=&start-after=a&max-keys=1")
    assert response.status == 200, response.body
    root = ET.fromstring(response.body)
    assert root.findtext(f"{NS}ContinuationToken") == "" and root.findtext(f"{NS}StartAfter") == "a"
    token = root.findtext(f"{NS}NextContinuationToken")
    assert token
    following = signed_request(
        f"{live.url}/mraps3sample?list-type=2&start-after=a&continuation-token={urllib.parse.quote(token, safe='')}"
    )
    assert ET.fromstring(following.body).findtext(f"{NS}StartAfter") == "a"


def _attributes(live: LiveServer, key: str) -> dict[str, Any]:
    shown = subprocess.run(
        ["aws", "--endpoint-url", live.url, "s3api", "get-object-attributes", "--bucket", WRITE_BUCKET, "--key", key,
         "--object-attributes", "ETag", "Checksum", "ObjectParts", "ObjectSize"],
        capture_output=True, text=True, timeout=60, env=aws_cli_env(), check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    attributes: dict[str, Any] = json.loads(shown.stdout)
    return attributes


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ((), ("ChecksumCRC32", "COMPOSITE")),  # aws-cli v1's default
        (("--checksum-algorithm", "CRC64NVME"), ("ChecksumCRC64NVME", "FULL_OBJECT")),  # aws-cli v2's default
    ],
)
def test_aws_cli_multipart_checksums_and_get_object_attributes(
    live: LiveServer, tmp_path: Path, options: tuple[str, ...], expected: tuple[str, str]
) -> None:
    """aws-cli's `s3 cp` of a multipart-sized file (8 MiB parts) with its integrity protection,
    then `s3api get-object-attributes` reporting the object's checksum and parts."""
    source = tmp_path / "big.bin"
    data = os.urandom(17 * MIB)
    source.write_bytes(data)
    key = f"cond/cli-{expected[0]}.bin"
    copied = subprocess.run(
        ["aws", "--endpoint-url", live.url, "s3", "cp", *options, str(source), f"s3://{WRITE_BUCKET}/{key}"],
        capture_output=True, text=True, timeout=120, env=aws_cli_env(), check=False,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    attributes = _attributes(live, key)
    assert attributes["ObjectSize"] == len(data) and attributes["ObjectParts"]["TotalPartsCount"] == 3
    name, checksum_type = expected
    assert attributes["Checksum"]["ChecksumType"] == checksum_type
    parts = attributes["ObjectParts"]["Parts"]
    algorithm = name.removeprefix("Checksum").lower()
    pieces = [data[at : at + 8 * MIB] for at in range(0, len(data), 8 * MIB)]
    assert [p[name] for p in parts] == [checksum(algorithm, piece) for piece in pieces]
    if checksum_type == "FULL_OBJECT":
        assert attributes["Checksum"][name] == checksum(algorithm, data)
    else:
        raw = b"".join(base64.b64decode(p[name]) for p in parts)
        assert attributes["Checksum"][name] == checksum(algorithm, raw) + "-3"
    head = make_client(live.url).head_object(Bucket=WRITE_BUCKET, Key=key)
    assert head["ETag"].endswith('-3"') and hashlib.md5(data).hexdigest() not in head["ETag"]


def test_the_crt_transfer_client_s_full_object_crc64nvme_upload(live: LiveServer, tmp_path: Path) -> None:
    """awscrt's S3Client (the transfer client of aws-cli v2 and boto3's CRT mode) uploading in
    parts with CRC64NVME trailers: the full-object checksum it declares is the object's."""
    source = tmp_path / "crt.bin"
    data = os.urandom(12 * MIB)
    source.write_bytes(data)
    loop = EventLoopGroup()
    signing = AwsSigningConfig(
        algorithm=AwsSigningAlgorithm.V4, signature_type=AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=AwsCredentialsProvider.new_static(ACCESS_KEY, SECRET_KEY), region="us-east-1",
        service="s3", signed_body_value=AwsSignedBodyValue.UNSIGNED_PAYLOAD,
    )  # fmt: skip
    client = S3Client(
        bootstrap=ClientBootstrap(loop, DefaultHostResolver(loop)), region="us-east-1", signing_config=signing,
        part_size=5 * MIB, tls_mode=S3RequestTlsMode.DISABLED,
    )  # fmt: skip
    host = live.url.split("//", 1)[1]
    headers = HttpHeaders([("Host", host), ("Content-Length", str(len(data)))])
    finished = threading.Event()
    result: dict[str, Any] = {}

    def on_done(**outcome: Any) -> None:
        result.update(outcome)
        finished.set()

    client.make_request(
        type=S3RequestType.PUT_OBJECT, request=HttpRequest("PUT", f"/{WRITE_BUCKET}/cond/crt.bin", headers),
        send_filepath=str(source), on_done=on_done,
        checksum_config=S3ChecksumConfig(algorithm=S3ChecksumAlgorithm.CRC64NVME, location=S3ChecksumLocation.TRAILER),
    )  # fmt: skip
    assert finished.wait(60) and result.get("error") is None and result.get("status_code") == 200, result
    attributes = _attributes(live, "cond/crt.bin")
    assert attributes["Checksum"] == {"ChecksumCRC64NVME": checksum("crc64nvme", data), "ChecksumType": "FULL_OBJECT"}
    assert attributes["ObjectParts"]["TotalPartsCount"] == 3
    # And back, with the CRT's parallel ranged download and its checksum validation.
    target = tmp_path / "back.bin"
    finished.clear()
    result.clear()
    client.make_request(
        type=S3RequestType.GET_OBJECT,
        request=HttpRequest("GET", f"/{WRITE_BUCKET}/cond/crt.bin", HttpHeaders([("Host", host)])),
        recv_filepath=str(target), on_done=on_done, checksum_config=S3ChecksumConfig(validate_response=True),
    )  # fmt: skip
    assert finished.wait(60) and result.get("error") is None and result.get("status_code") in (200, 206), result
    assert target.read_bytes() == data
    assert any(r.operation == "GetObject" and r.status == 206 for r in live.records)


def test_response_overrides_are_refused_on_anonymous_gets() -> None:
    """S3 honours `response-*` on signed requests only; an anonymous one (auth mode "none") is 400."""
    config = load_config(overrides={"auth": {"mode": "none"}})
    store = MemoryStore()
    trio.run(seed_store, store, config)
    with serving(create_app(config, store)) as url:
        anonymous = send(urllib.request.Request(f"{url}/mraps3sample/hello.txt?response-content-type=text/html"))
        assert anonymous.status == 400 and ET.fromstring(anonymous.body).findtext("Code") == "InvalidRequest"
        assert send(urllib.request.Request(f"{url}/mraps3sample/hello.txt")).status == 200
