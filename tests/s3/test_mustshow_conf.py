"""Issue 12, must-shows 3 and 4 (the configuration part), end to end: `mrapsim serve` as a real
process with the sqlite store, behind its TLS edge, driven by boto3 and by aws-cli's s3api."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.mrapsim_process import ACCESS_KEY, SECRET_KEY, MrapsimProcess, start_mrapsim


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MrapsimProcess]:
    root = tmp_path_factory.mktemp("mustshow-conf")
    started = start_mrapsim(root, f'[store]\nkind = "sqlite"\npath = "{root / "store"}"\n')
    yield started
    started.stop()


def aws(server: MrapsimProcess, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_PAGER="",
    )
    command = ["aws", "--endpoint-url", f"https://localhost:{server.port('s3')}", "--ca-bundle", str(server.ca)]
    result = subprocess.run([*command, "s3api", *args], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout) if result.stdout.strip() else None


def anonymous_get(server: MrapsimProcess, path: str) -> int:
    context = ssl.create_default_context(cafile=str(server.ca))
    try:
        with urllib.request.urlopen(f"https://localhost:{server.port('s3')}{path}", context=context, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_sse_c_and_public_read_through_boto3(server: MrapsimProcess) -> None:
    s3 = server.s3_client()
    s3.create_bucket(Bucket="sealed")
    key, wrong = os.urandom(32), os.urandom(32)
    s3.put_object(
        Bucket="sealed", Key="c", Body=b"only with the key", SSECustomerAlgorithm="AES256", SSECustomerKey=key
    )
    with pytest.raises(ClientError) as without:
        s3.get_object(Bucket="sealed", Key="c")
    assert without.value.response["Error"]["Code"] == "InvalidRequest"
    assert without.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as wrong_key:
        s3.get_object(Bucket="sealed", Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey=wrong)
    assert wrong_key.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert wrong_key.value.response["Error"]["Code"] == "AccessDenied"
    got = s3.get_object(Bucket="sealed", Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    assert got["Body"].read() == b"only with the key"
    s3.put_object(Bucket="sealed", Key="public.txt", Body=b"hello", ACL="public-read")
    s3.put_object(Bucket="sealed", Key="private.txt", Body=b"hello")
    assert anonymous_get(server, "/sealed/public.txt") == 200
    assert anonymous_get(server, "/sealed/private.txt") == 403


def test_s3api_tagging_acl_cors_and_lifecycle_round_trips(server: MrapsimProcess, tmp_path: Path) -> None:
    aws(server, "create-bucket", "--bucket", "cli-conf")
    aws(server, "put-object", "--bucket", "cli-conf", "--key", "k", "--tagging", "a=1")
    tags = {"TagSet": [{"Key": "env", "Value": "test"}, {"Key": "team", "Value": "edge"}]}
    aws(server, "put-object-tagging", "--bucket", "cli-conf", "--key", "k", "--tagging", json.dumps(tags))
    assert aws(server, "get-object-tagging", "--bucket", "cli-conf", "--key", "k")["TagSet"] == tags["TagSet"]
    aws(server, "put-bucket-tagging", "--bucket", "cli-conf", "--tagging", json.dumps(tags))
    assert aws(server, "get-bucket-tagging", "--bucket", "cli-conf")["TagSet"] == tags["TagSet"]

    aws(server, "put-object-acl", "--bucket", "cli-conf", "--key", "k", "--acl", "public-read")
    grants = aws(server, "get-object-acl", "--bucket", "cli-conf", "--key", "k")["Grants"]
    assert {
        "Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
        "Permission": "READ",
    } in grants
    aws(server, "put-bucket-acl", "--bucket", "cli-conf", "--acl", "public-read")
    assert len(aws(server, "get-bucket-acl", "--bucket", "cli-conf")["Grants"]) == 2

    cors = {
        "CORSRules": [
            {"AllowedOrigins": ["https://app.example"], "AllowedMethods": ["GET", "POST"], "MaxAgeSeconds": 60}
        ]
    }
    aws(server, "put-bucket-cors", "--bucket", "cli-conf", "--cors-configuration", json.dumps(cors))
    assert aws(server, "get-bucket-cors", "--bucket", "cli-conf") == cors

    lifecycle = {
        "Rules": [
            {"ID": "tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 1}},
            {
                "ID": "mpu",
                "Filter": {},
                "Status": "Enabled",
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
            },
        ]
    }
    aws(
        server,
        "put-bucket-lifecycle-configuration",
        "--bucket",
        "cli-conf",
        "--lifecycle-configuration",
        json.dumps(lifecycle),
    )
    assert aws(server, "get-bucket-lifecycle-configuration", "--bucket", "cli-conf")["Rules"] == lifecycle["Rules"]
    aws(server, "delete-bucket-lifecycle", "--bucket", "cli-conf")
    aws(server, "delete-bucket-cors", "--bucket", "cli-conf")
    aws(server, "delete-object-tagging", "--bucket", "cli-conf", "--key", "k")
    assert aws(server, "get-object-tagging", "--bucket", "cli-conf", "--key", "k")["TagSet"] == []


def test_cli_multipart_copy_with_sse_c_and_back(server: MrapsimProcess, tmp_path: Path) -> None:
    """aws s3 cp with a customer key: a multipart upload whose every part carries the key, a
    download that must send it, and a download without it that S3 (and mrapsim) refuses."""
    aws(server, "create-bucket", "--bucket", "cli-sse-c")
    key = os.urandom(32).hex()[:32]  # aws-cli takes the key as a 32-character string
    source = tmp_path / "sealed.bin"
    source.write_bytes(os.urandom(12 * 1024 * 1024))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION="us-east-1")
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_PAGER="")
    base = ["aws", "--endpoint-url", f"https://localhost:{server.port('s3')}", "--ca-bundle", str(server.ca), "s3"]
    sse = ["--sse-c", "AES256", "--sse-c-key", key]

    def cp(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, "cp", *args, "--no-progress"], capture_output=True, text=True, timeout=120, env=env
        )

    assert cp(str(source), "s3://cli-sse-c/sealed.bin", *sse).returncode == 0
    back = tmp_path / "back.bin"
    done = cp("s3://cli-sse-c/sealed.bin", str(back), *sse)
    assert done.returncode == 0, done.stderr
    assert back.read_bytes() == source.read_bytes()
    refused = cp("s3://cli-sse-c/sealed.bin", str(tmp_path / "nope.bin"))
    assert refused.returncode != 0 and "400" in refused.stderr
