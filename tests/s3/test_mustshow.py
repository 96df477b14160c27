"""Issue 3's must-shows, end to end: `mrapsim serve` as a real process (TLS edge → hypercorn →
S3 app), driven by aws-cli v1 and by boto3 with awscrt, default key pair and auth on."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import socket
import ssl
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mrapsim.config import SyntheticSpec
from mrapsim.s3.checksums import checksum
from mrapsim.store.synthetic import synthetic_content
from tests.mrapsim_process import ACCESS_KEY, SECRET_KEY, MrapsimProcess, start_mrapsim
from tests.s3.chunking import crt_signed_headers, send_raw, trailer_crc32, unsigned_trailer_body

MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"
MRAP_ARN = "arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap"
BIG = SyntheticSpec(keys=1, key_format="big-{i:01d}.bin", size=2 * 1024**3, seed=2)
PAGED = SyntheticSpec(keys=2500, key_format="page/{i:05d}", size=16, seed=3)
ODD_NAMES = ("a b.txt", "plus+sign.txt", "date=2026-03-01.csv", "100%.txt", "ünïcødé 😀.txt")

CONFIG = f"""
[[buckets]]
name = "synthetic-big"
synthetic = {{ keys = {BIG.keys}, key_format = "{BIG.key_format}", size = {BIG.size}, seed = {BIG.seed} }}
[[buckets]]
name = "paged"
synthetic = {{ keys = {PAGED.keys}, key_format = "{PAGED.key_format}", size = {PAGED.size}, seed = {PAGED.seed} }}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MrapsimProcess]:
    started = start_mrapsim(tmp_path_factory.mktemp("mustshow"), CONFIG)
    yield started
    started.stop()


def cli_env(secret: str = SECRET_KEY, access_key: str = ACCESS_KEY) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_PAGER": "",
    }


def aws(server: MrapsimProcess, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["aws", "--endpoint-url", f"https://localhost:{server.port('s3')}", "--ca-bundle", str(server.ca), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(**env),
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def client(server: MrapsimProcess, secret_key: str = SECRET_KEY) -> Any:
    return server.s3_client(secret_key=secret_key)


# -- 1. aws-cli v1 ---------------------------------------------------------------------------------


def test_cli_mb_cp_multipart_and_back(server: MrapsimProcess, tmp_path: Path) -> None:
    aws(server, "s3", "mb", "s3://cli-bucket")
    source = tmp_path / "twenty.bin"
    source.write_bytes(os.urandom(20 * 1024 * 1024))
    aws(server, "s3", "cp", str(source), "s3://cli-bucket/big/twenty.bin", "--no-progress")
    head = json.loads(aws(server, "s3api", "head-object", "--bucket", "cli-bucket", "--key", "big/twenty.bin").stdout)
    assert head["ContentLength"] == 20 * 1024 * 1024 and head["ETag"].endswith('-3"')  # 8 + 8 + 4 MiB parts
    back = tmp_path / "back.bin"
    aws(server, "s3", "cp", "s3://cli-bucket/big/twenty.bin", str(back), "--no-progress")
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()


def test_cli_sync_ls_rm_with_awkward_names(server: MrapsimProcess, tmp_path: Path) -> None:
    aws(server, "s3", "mb", "s3://sync-bucket")
    tree = tmp_path / "tree"
    files: dict[str, bytes] = {}
    for i in range(200):
        name = f"dir{i % 7}/sub{i % 3}/file{i:03d}.txt" if i >= len(ODD_NAMES) else f"odd/{ODD_NAMES[i]}"
        files[name] = f"content of {name} {i}\n".encode() * (i % 5 + 1)
    for name, data in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    aws(server, "s3", "sync", str(tree), "s3://sync-bucket/tree", "--no-progress")
    listed = aws(server, "s3", "ls", "--recursive", "s3://sync-bucket/tree/").stdout.splitlines()
    assert len(listed) == 200
    assert sorted(line.split(None, 3)[3] for line in listed) == sorted(f"tree/{n}" for n in files)
    back = tmp_path / "back"
    aws(server, "s3", "sync", "s3://sync-bucket/tree", str(back), "--no-progress")
    assert {str(p.relative_to(back)): p.read_bytes() for p in back.rglob("*") if p.is_file()} == files
    for name in ODD_NAMES:
        got = aws(server, "s3", "cp", f"s3://sync-bucket/tree/odd/{name}", "-").stdout.encode()
        assert got == files[f"odd/{name}"]
    aws(server, "s3", "rm", "--recursive", "s3://sync-bucket/tree")
    assert aws(server, "s3", "ls", "--recursive", "s3://sync-bucket/").stdout == ""
    aws(server, "s3", "rb", "s3://sync-bucket")


def test_cli_list_objects_v2_pages_2500_keys(server: MrapsimProcess) -> None:
    result = aws(server, "s3api", "list-objects-v2", "--bucket", "paged", "--page-size", "1000", "--debug")
    keys = [o["Key"] for o in json.loads(result.stdout)["Contents"]]
    assert keys == [f"page/{i:05d}" for i in range(2500)]
    requests = [line for line in result.stderr.splitlines() if "Sending http request" in line]
    assert len(requests) == 3 and sum("continuation-token=" in line for line in requests) == 2


# -- 2. boto3 + awscrt by MRAP ARN (SigV4A) --------------------------------------------------------


@pytest.fixture
def mrap_resolves_here(server: MrapsimProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the MRAP's global name at the local mrap listener (the ARN endpoint is port 443)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == MRAP_HOST:
            return real("127.0.0.1", server.port("mrap"), *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_boto3_awscrt_by_mrap_arn(server: MrapsimProcess, mrap_resolves_here: None) -> None:
    s3 = server.s3_client(endpoint=False)
    sent: list[tuple[str, str]] = []
    s3.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append((request.url, request.headers["Authorization"].decode()))
    )
    listed = s3.list_objects_v2(Bucket=MRAP_ARN, Prefix="data/")
    assert [o["Key"] for o in listed["Contents"]] == ["data/one.csv", "data/two.csv"]
    body = os.urandom(300_000)
    put = s3.put_object(Bucket=MRAP_ARN, Key="from-arn/blob.bin", Body=body)
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=MRAP_ARN, Key="from-arn/blob.bin", ChecksumMode="ENABLED")
    assert got["Body"].read() == body
    assert all(url.startswith(f"https://{MRAP_HOST}/") for url, _ in sent)
    assert all(auth.startswith("AWS4-ECDSA-P256-SHA256 ") for _, auth in sent) and len(sent) == 3
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        requests = [e for e in server.logs() if e.get("event") == "request" and e.get("key") == "from-arn/blob.bin"]
        if len(requests) == 2:
            break
        time.sleep(0.05)
    assert {(r["listener"], r["addressing"], r["bucket"], r["operation"]) for r in requests} == {
        ("mrap", "mrap", "mraps3sample", "PutObject"),
        ("mrap", "mrap", "mraps3sample", "GetObject"),
    }


# -- 3. refusals -----------------------------------------------------------------------------------


def test_wrong_secret_unknown_key_tampered_token(server: MrapsimProcess) -> None:
    wrong = aws(server, "s3", "ls", "s3://mraps3sample", check=False, secret="not-the-secret")
    assert wrong.returncode != 0 and "SignatureDoesNotMatch" in wrong.stderr
    unknown = aws(server, "s3", "ls", "s3://mraps3sample", check=False, access_key="AKIDUNKNOWN000000000")
    assert unknown.returncode != 0 and "InvalidAccessKeyId" in unknown.stderr
    s3 = client(server)
    token = s3.list_objects_v2(Bucket="paged", MaxKeys=10)["NextContinuationToken"]
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(ClientError) as excinfo:
        s3.list_objects_v2(Bucket="paged", ContinuationToken=tampered)
    assert excinfo.value.response["Error"]["Code"] == "InvalidArgument"
    with pytest.raises(ClientError) as put_refused:
        client(server, secret_key="not-the-secret").put_object(Bucket="mraps3sample", Key="x", Body=b"x" * 100_000)
    assert put_refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_trailer_checksum_mismatch_is_bad_digest_and_stores_nothing(server: MrapsimProcess) -> None:
    data = os.urandom(70_000)
    port = server.port("s3")
    body_value = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-sdk-checksum-algorithm": "CRC32",
    }

    def put(key: str, trailer_value: str) -> tuple[int, bytes]:
        signed, _ = crt_signed_headers("PUT", f"localhost:{port}", f"/mraps3sample/{key}", headers, body_value)
        body = unsigned_trailer_body(data, 65536, [("x-amz-checksum-crc32", trailer_value)])
        status, _, payload = send_raw(port, "PUT", f"/mraps3sample/{key}", signed, body, ca=str(server.ca))
        return status, payload

    status, payload = put("trailer/bad.bin", checksum("crc32", data + b"!"))
    assert status == 400 and ET.fromstring(payload).findtext("Code") == "BadDigest"
    s3 = client(server)
    assert s3.list_objects_v2(Bucket="mraps3sample", Prefix="trailer/")["KeyCount"] == 0
    status, payload = put("trailer/good.bin", trailer_crc32(data)[1])
    assert status == 200, payload
    assert s3.get_object(Bucket="mraps3sample", Key="trailer/good.bin")["Body"].read() == data


# -- 5. a 2 GiB synthetic object, streamed, RSS flat -----------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_two_gib_synthetic_download_spot_checked_with_flat_rss(server: MrapsimProcess) -> None:
    pid = server.process.pid
    before = rss_kib(pid)
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            samples.append(rss_kib(pid))

    threading.Thread(target=sample, daemon=True).start()
    expected = synthetic_content(BIG, "big-0.bin")
    rng = random.Random(5)
    checks = sorted({rng.randrange(0, BIG.size - 64) for _ in range(64)} | {0, BIG.size - 64})
    process = subprocess.Popen(
        [
            "aws", "--endpoint-url", f"https://localhost:{server.port('s3')}", "--ca-bundle", str(server.ca),
            "s3", "cp", "s3://synthetic-big/big-0.bin", "-",
        ],
        stdout=subprocess.PIPE,
        env=cli_env(),
    )  # fmt: skip
    assert process.stdout is not None
    offset, checked = 0, 0
    started = time.monotonic()
    while chunk := process.stdout.read(4 * 1024 * 1024):
        while checked < len(checks) and checks[checked] + 64 <= offset + len(chunk):
            at = checks[checked] - offset
            assert chunk[at : at + 64] == expected.read(checks[checked], checks[checked] + 64), checks[checked]
            checked += 1
        offset += len(chunk)
    assert process.wait(timeout=60) == 0
    done.set()
    elapsed = time.monotonic() - started
    assert offset == BIG.size and checked == len(checks)
    growth_mib = (max(samples, default=before) - before) / 1024
    rate = BIG.size / elapsed / 1e6
    print(f"2 GiB in {elapsed:.1f} s ({rate:.0f} MB/s); RSS {before / 1024:.0f} MiB, grew {growth_mib:.1f} MiB")
    assert growth_mib < 64


# -- Expect: 100-continue ----------------------------------------------------------------------------


def test_expect_100_continue_is_answered(server: MrapsimProcess) -> None:
    """hypercorn answers `Expect: 100-continue` with `HTTP/1.1 100 ` (empty reason phrase);
    botocore accepts that (it needs only "HTTP/x" and "100"). Were it not answered, botocore
    would wait 1 s before sending each body: five PUTs stay well under that."""
    s3 = client(server)
    sent: list[bytes] = []
    s3.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.headers.get("Expect", b"")))
    s3.list_buckets()
    started = time.monotonic()
    for i in range(5):
        s3.put_object(Bucket="mraps3sample", Key=f"expect/{i}", Body=io.BytesIO(b"x" * 1000))
    assert time.monotonic() - started < 4.5  # a 1 s wait per PUT would take at least 5 s
    assert sent[1:] == [b"100-continue"] * 5
    with socket.create_connection(("127.0.0.1", server.port("s3"))) as raw:
        tls = ssl.create_default_context(cafile=str(server.ca)).wrap_socket(raw, server_hostname="localhost")
        head = b"PUT /mraps3sample/expect/raw HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n"
        tls.sendall(head + b"Expect: 100-continue\r\n\r\n")
        assert tls.recv(64).startswith(b"HTTP/1.1 100")


def test_synthetic_ranges_and_listing_through_boto3(server: MrapsimProcess) -> None:
    s3 = client(server)
    expected = synthetic_content(BIG, "big-0.bin")
    head = s3.head_object(Bucket="synthetic-big", Key="big-0.bin")
    assert head["ContentLength"] == BIG.size and "ChecksumCRC32" not in head
    for start in (0, 65_530, BIG.size - 1000):
        got = s3.get_object(Bucket="synthetic-big", Key="big-0.bin", Range=f"bytes={start}-{start + 999}")
        assert got["ContentRange"] == f"bytes {start}-{start + 999}/{BIG.size}"
        assert got["Body"].read() == expected.read(start, start + 1000)
    s3.put_object(Bucket="paged", Key="page/00007", Body=b"real now")
    s3.delete_object(Bucket="paged", Key="page/00008")
    listed = s3.list_objects_v2(Bucket="paged", Prefix="page/0000", MaxKeys=9)
    assert [(o["Key"], o["Size"]) for o in listed["Contents"]][6:] == [
        ("page/00006", 16),
        ("page/00007", 8),
        ("page/00009", 16),
    ]
