"""One request value, one header semantics: a repeated field reads as its values joined by ","
(RFC 9110 §5.3, and how SigV4 canonicalises it), names are case-insensitive, and a repeated
header has the same value in auth as in the handler — checked against botocore's SigV4 signer,
sans-IO and over a real socket to the live app."""

from __future__ import annotations

import datetime as dt
import http.client
from typing import Any

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mrapsim.config import load_config
from mrapsim.s3.auth import AMZ_DATE_FORMAT, Authorized, Verifier
from mrapsim.s3.headers import Headers
from mrapsim.s3.request import S3Request
from tests.s3.conftest import ACCESS_KEY, REGION, SECRET_KEY, WRITE_BUCKET, LiveServer

Fields = list[tuple[str, str]]


def test_headers_join_repeats_and_ignore_case() -> None:
    headers = Headers((("Host", "h"), ("X-Amz-Meta-Colour", "red"), ("x-amz-meta-colour", "blue")))
    assert headers.get("x-amz-meta-colour") == headers["X-AMZ-META-COLOUR"] == "red,blue"
    assert headers.get_all("X-Amz-Meta-Colour") == ("red", "blue")
    assert headers.get("missing") is None and headers.get_all("missing") == ()
    assert "HOST" in headers and "hostname" not in headers and len(headers) == 2
    assert dict(headers) == {"host": "h", "x-amz-meta-colour": "red,blue"}
    assert headers.fields == (("host", "h"), ("x-amz-meta-colour", "red"), ("x-amz-meta-colour", "blue"))
    raw = Headers.from_raw([(b"X-Amz-Meta-Name", "Zoë".encode()), (b"x-amz-meta-byte", b"\xff")])
    assert raw == Headers((("x-amz-meta-name", "Zoë"), ("x-amz-meta-byte", "\xff")))


def botocore_signed(method: str, url: str, fields: Fields, body: bytes = b"") -> AWSRequest:
    """A request signed by botocore's S3 SigV4 signer, repeated fields included: botocore's
    headers are an `email.message.Message`, where each assignment adds a field."""
    request = AWSRequest(method=method, url=url, data=body)
    for name, value in fields:
        request.headers[name] = value
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    return request


def test_verifier_reads_a_repeated_header_as_botocore_signs_it() -> None:
    colours = [("x-amz-meta-colour", "red"), ("x-amz-meta-colour", "light   blue")]
    signed = botocore_signed("PUT", "http://127.0.0.1:9000/b/k", colours)
    fields: Fields = [("host", "127.0.0.1:9000"), *signed.headers.items()]
    request = S3Request("PUT", "/b/k", "", Headers(tuple(fields)), "REQUESTID", "host-id")
    signed_at = dt.datetime.strptime(signed.headers["X-Amz-Date"], AMZ_DATE_FORMAT).replace(tzinfo=dt.UTC)
    verdict = Verifier(load_config().auth).verify(request, signed_at)
    assert isinstance(verdict, Authorized) and verdict.access_key == ACCESS_KEY
    first_only = Headers(tuple(field for field in fields if field[1] != "light   blue"))
    refused = Verifier(load_config().auth).verify(S3Request("PUT", "/b/k", "", first_only, "ID", "id"), signed_at)
    assert not isinstance(refused, Authorized)


def send_fields(port: int, method: str, path: str, fields: Fields, body: bytes) -> tuple[int, bytes]:
    """Send exactly `fields` (repeats kept, in order) with http.client; Host is added by it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in fields:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_repeated_header_reads_the_same_in_auth_and_in_the_handler(live: LiveServer, s3: Any) -> None:
    """Auth admits the signature only if it read "red,blue" (botocore signed the joined value);
    PutObject stores that same value as the metadata, as S3 does, and HeadObject returns it."""
    key = "request/repeated-metadata"
    body = b"two colours"
    fields = [("x-amz-meta-colour", "red"), ("content-length", str(len(body))), ("X-Amz-Meta-Colour", "blue")]
    signed = botocore_signed("PUT", f"{live.url}/{WRITE_BUCKET}/{key}", fields, body)
    status, answer = send_fields(live.port, "PUT", f"/{WRITE_BUCKET}/{key}", list(signed.headers.items()), body)
    assert status == 200, answer
    assert s3.head_object(Bucket=WRITE_BUCKET, Key=key)["Metadata"] == {"colour": "red,blue"}
    record = [r for r in live.records if r.key == key and r.operation == "PutObject"][-1]
    assert (record.status, record.access_key) == (200, ACCESS_KEY)
