"""Issue 12 through a real `mrapsim serve` (TLS edge, hypercorn, the S3 app): authentication
before `100 Continue`, and SigV2."""

from __future__ import annotations

import hashlib
import io
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.mrapsim_process import ACCESS_KEY, SECRET_KEY, MrapsimProcess, start_mrapsim

BUCKET = "mraps3sample"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MrapsimProcess]:
    started = start_mrapsim(tmp_path_factory.mktemp("edge-s3"))
    yield started
    started.stop()


def _connect(server: MrapsimProcess) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(server.ca))
    raw = socket.create_connection(("127.0.0.1", server.port("s3")), timeout=10)
    return context.wrap_socket(raw, server_hostname="localhost")


def _read_head(sock: ssl.SSLSocket) -> tuple[int, bytes]:
    """The status and raw bytes of one response head (up to the blank line)."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    return int(data.split(b" ", 2)[1]), data


def _signed_put_head(server: MrapsimProcess, key: str, body: bytes, secret: str) -> bytes:
    url = f"https://localhost:{server.port('s3')}/{BUCKET}/{key}"
    headers = {"Expect": "100-continue", "x-amz-content-sha256": hashlib.sha256(body).hexdigest()}
    request = AWSRequest(method="PUT", url=url, headers=headers, data=body)
    S3SigV4Auth(Credentials(ACCESS_KEY, secret), "s3", "us-east-1").add_auth(request)
    lines = [f"PUT /{BUCKET}/{key} HTTP/1.1", f"Host: localhost:{server.port('s3')}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items() if name.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_refused_signature_is_answered_instead_of_100_continue(server: MrapsimProcess) -> None:
    body = b"x" * 1000
    with _connect(server) as sock:
        sock.sendall(_signed_put_head(server, "expect/refused", body, "wrong-secret"))
        status, head = _read_head(sock)
        assert status == 403 and b"connection: close" in head.lower(), head
    with _connect(server) as sock:
        sock.sendall(_signed_put_head(server, "expect/accepted", body, SECRET_KEY))
        status, head = _read_head(sock)
        assert status == 100, head
        sock.sendall(body)
        status, head = _read_head(sock)
        assert status == 200, head
    client: Any = server.s3_client()
    assert client.get_object(Bucket=BUCKET, Key="expect/accepted")["Body"].read() == body


def test_botocore_refused_before_100_never_sends_its_body(server: MrapsimProcess) -> None:
    """botocore waits for the 100 (a file body); it gets `403 Forbidden` instead — a status
    line with its reason phrase, which botocore needs to take it as the final response — and
    reports SignatureDoesNotMatch without sending the 5 MiB."""
    refused: Any = server.s3_client(secret_key="not-the-secret")
    with pytest.raises(ClientError) as excinfo:
        refused.put_object(Bucket=BUCKET, Key="expect/never", Body=io.BytesIO(b"x" * 5 * 1024 * 1024))
    assert excinfo.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    deadline = time.monotonic() + 10
    while server.connections(state="open") and time.monotonic() < deadline:
        time.sleep(0.05)  # the refused connection lingers up to CONTINUE_LINGER, then closes
    latest = max(server.connections(state="closed"), key=lambda record: record["start"])
    assert latest["bytes_in"] < 1024 * 1024, latest


def test_must_show_conditional_writes_and_parts_through_the_edge(server: MrapsimProcess) -> None:
    """Issue 12's first must-show through `mrapsim serve` (TLS edge, hypercorn, the S3 app)."""
    s3: Any = server.s3_client()
    s3.put_object(Bucket=BUCKET, Key="edge/once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as second:
        s3.put_object(Bucket=BUCKET, Key="edge/once", Body=b"second", IfNoneMatch="*")
    assert second.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    part, tail = b"p" * 5 * 1024 * 1024, b"tail"
    uploads = []
    for _ in range(2):
        upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="edge/mp", ChecksumAlgorithm="CRC64NVME")["UploadId"]
        parts = [
            {"PartNumber": n, "ETag": s3.upload_part(Bucket=BUCKET, Key="edge/mp", UploadId=upload_id, PartNumber=n,
                                                     Body=body)["ETag"]}
            for n, body in ((1, part), (2, tail))
        ]  # fmt: skip
        uploads.append((upload_id, parts))
    statuses: list[int] = []

    def complete(upload_id: str, parts: list[dict[str, Any]]) -> None:
        try:
            s3.complete_multipart_upload(
                Bucket=BUCKET, Key="edge/mp", UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
            )
            statuses.append(200)
        except ClientError as error:
            statuses.append(error.response["ResponseMetadata"]["HTTPStatusCode"])

    threads = [threading.Thread(target=complete, args=upload) for upload in uploads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) in ([200, 409], [200, 412]), statuses
    second_part = s3.get_object(Bucket=BUCKET, Key="edge/mp", PartNumber=2)
    assert second_part["Body"].read() == tail and second_part["PartsCount"] == 2
