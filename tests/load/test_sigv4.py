"""The harness's SigV4 signer gives the same Authorization header as botocore's S3SigV4Auth."""

from __future__ import annotations

import datetime
import hashlib
from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from mrapsim.load.sigv4 import EMPTY_SHA256, Credentials, Signer, query_string

ACCESS, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
NOW = datetime.datetime(2026, 11, 26, 14, 30, 15, tzinfo=datetime.UTC)
HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"

CASES = [
    ("GET", "/", [("list-type", "2"), ("max-keys", "100"), ("prefix", "")], {}, EMPTY_SHA256),
    ("GET", "/", [("prefix", "a b/ü"), ("list-type", "2"), ("continuation-token", "x+y/z=")], {}, EMPTY_SHA256),
    ("GET", "/mraps3sample/hello.txt", [], {"range": "bytes=0-1023"}, EMPTY_SHA256),
    ("GET", "/photos/été/naïve café.jpg", [], {}, EMPTY_SHA256),
    ("HEAD", "/日本語/キー~tilde(1)!*'", [], {}, EMPTY_SHA256),
    ("PUT", "/mrapsim-load/put/1024-0-1", [], {}, b"hello world"),
    (
        "PUT",
        "/k/é",
        [("uploadId", "a/b"), ("partNumber", "3")],
        {"content-md5": "XUFAKrxLKna5cZ2REBfFkg=="},
        bytes(range(256)) * 64,
    ),
    ("GET", "/bucket/key", [("versionId", "3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"), ("acl", "")], {}, EMPTY_SHA256),
    ("GET", "/a%2Fb/percent%key", [], {"x-amz-meta-owner": "  two   spaces "}, EMPTY_SHA256),
]


def botocore_authorization(
    method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], body: bytes, region: str
) -> str:
    url = f"https://{HOST}{quote(path, safe='/~')}"
    if query:
        url += "?" + query_string(query)
    request = AWSRequest(method=method, url=url, data=body, headers={"Host": HOST, **headers})
    auth = S3SigV4Auth(BotoCredentials(ACCESS, SECRET), "s3", region)
    import botocore.auth

    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: NOW.replace(tzinfo=None)
    try:
        auth.add_auth(request)
    finally:
        botocore.auth.get_current_datetime = original
    return str(request.headers["Authorization"])


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-3"])
@pytest.mark.parametrize(("method", "path", "query", "headers", "payload"), CASES)
def test_signature_matches_botocore(
    method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], payload: str | bytes, region: str
) -> None:
    body = payload if isinstance(payload, bytes) else b""
    digest = hashlib.sha256(body).hexdigest()
    signer = Signer(Credentials(ACCESS, SECRET), region)
    ours = signer.sign(method, path, query, {"host": HOST, **headers}, digest, now=NOW.timestamp())
    assert ours["x-amz-date"] == "20261126T143015Z"
    assert ours["x-amz-content-sha256"] == digest
    assert ours["authorization"] == botocore_authorization(method, path, query, headers, body, region)


def test_signing_key_is_cached_per_day() -> None:
    signer = Signer(Credentials(ACCESS, SECRET))
    key = signer.signing_key("20261126")
    assert signer.signing_key("20261126") is key
    assert signer.signing_key("20261127") != key


def test_credentials_must_be_complete() -> None:
    with pytest.raises(ValueError):
        Credentials(ACCESS, "")
