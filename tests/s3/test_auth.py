"""The sans-IO verifier against fixed vectors (AWS's published S3 SigV4 examples, aws-c-auth's
SigV4A key-derivation vector) and against its own refusals."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from mrapsim.config import AuthConfig, Credential, load_config
from mrapsim.s3.auth import (
    AMZ_DATE_FORMAT,
    EMPTY_SHA256,
    SIGV4A,
    Authorized,
    Rejected,
    SignedRequest,
    Verifier,
    canonical_query,
    parse_amz_date,
    sigv4a_private_key,
)
from mrapsim.s3.headers import Headers
from mrapsim.s3.request import S3Request

AK = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_EXAMPLE_TIME = dt.datetime(2013, 5, 24, 0, 0, 30, tzinfo=dt.UTC)
HOST = ("host", "examplebucket.s3.amazonaws.com")
SCOPE = f"{AK}/20130524/us-east-1/s3/aws4_request"


def verifier() -> Verifier:
    return Verifier(load_config().auth)


def received(method: str, path: str, query: str, headers: tuple[tuple[str, str], ...]) -> SignedRequest:
    """The app's one request value, which the verifier reads as its `SignedRequest` view."""
    return S3Request(method, path, query, Headers(headers), "TESTREQUESTID", "test-host-id")


def header_request(path: str, query: str, signed: str, signature: str, *extra: tuple[str, str]) -> SignedRequest:
    headers = (
        HOST,
        *extra,
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", "20130524T000000Z"),
        ("authorization", f"AWS4-HMAC-SHA256 Credential={SCOPE},SignedHeaders={signed},Signature={signature}"),
    )
    return received("GET", path, query, headers)


# -- AWS's published examples (S3 API reference, "Signature Calculations for the Authorization
#    Header" and "Authenticating Requests: Using Query Parameters") ------------------------------


def test_aws_example_get_object_with_range() -> None:
    request = header_request(
        "/test.txt",
        "",
        "host;range;x-amz-content-sha256;x-amz-date",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        ("range", "bytes=0-9"),
    )
    verdict = verifier().verify(request, AWS_EXAMPLE_TIME)
    assert verdict == Authorized(AK, "AWS4-HMAC-SHA256", False, EMPTY_SHA256, EMPTY_SHA256)


def test_aws_example_list_objects() -> None:
    request = header_request(
        "/",
        "max-keys=2&prefix=J",
        "host;x-amz-content-sha256;x-amz-date",
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    )
    assert isinstance(verifier().verify(request, AWS_EXAMPLE_TIME), Authorized)


PRESIGNED_QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3"
    "%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
)


def test_aws_example_presigned_url_and_its_expiry() -> None:
    request = received("GET", "/test.txt", PRESIGNED_QUERY, (HOST,))
    verdict = verifier().verify(request, AWS_EXAMPLE_TIME)
    assert isinstance(verdict, Authorized) and verdict.presigned and verdict.payload_sha256 is None
    expired = verifier().verify(request, AWS_EXAMPLE_TIME + dt.timedelta(seconds=86401))
    assert isinstance(expired, Rejected) and (expired.code, expired.message) == ("AccessDenied", "Request has expired")


def test_signature_mismatch_reports_canonical_request_and_string_to_sign() -> None:
    request = header_request("/test.txt", "", "host;x-amz-content-sha256;x-amz-date", "00" * 32)
    verdict = verifier().verify(request, AWS_EXAMPLE_TIME)
    assert isinstance(verdict, Rejected) and verdict.code == "SignatureDoesNotMatch" and verdict.status == 403
    extra = dict(verdict.extra)
    assert extra["CanonicalRequest"] == (
        f"GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:{EMPTY_SHA256}\n"
        f"x-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}"
    )
    assert extra["StringToSign"].startswith("AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n")
    assert extra["SignatureProvided"] == "00" * 32 and extra["AWSAccessKeyId"] == AK


def test_refusals() -> None:
    v = verifier()
    anonymous = v.verify(received("GET", "/", "", (HOST,)), AWS_EXAMPLE_TIME)
    assert isinstance(anonymous, Rejected) and (anonymous.code, anonymous.status) == ("AccessDenied", 403)
    request = header_request("/", "", "host", "00")
    skewed = v.verify(request, AWS_EXAMPLE_TIME + dt.timedelta(minutes=16))
    assert isinstance(skewed, Rejected) and skewed.code == "RequestTimeTooSkewed"
    unknown = received("GET", "/", "", tuple((k, v.replace(AK, "AKIDUNKNOWN")) for k, v in request.headers.fields))
    verdict = v.verify(unknown, AWS_EXAMPLE_TIME)
    assert isinstance(verdict, Rejected) and verdict.code == "InvalidAccessKeyId"
    v2 = received("GET", "/", "", (HOST, ("authorization", "AWS AKIAIOSFODNN7EXAMPLE:abc=")))
    verdict = v.verify(v2, AWS_EXAMPLE_TIME)  # SigV2 is accepted (test_sigv2.py), but needs a date
    assert isinstance(verdict, Rejected) and verdict.code == "AccessDenied"
    bad_payload = received(
        "GET", "/", "", tuple((k, "nope" if k == "x-amz-content-sha256" else v) for k, v in request.headers.fields)
    )
    verdict = v.verify(bad_payload, AWS_EXAMPLE_TIME)
    assert isinstance(verdict, Rejected) and verdict.code == "InvalidArgument"


def test_auth_mode_none_admits_anything() -> None:
    v = Verifier(AuthConfig("none", ()))
    verdict = v.verify(received("GET", "/", "", ()), AWS_EXAMPLE_TIME)
    assert verdict == Authorized(None, None, False, None, None)


def test_canonical_query_reencodes_and_sorts() -> None:
    raw = "prefix=a%20b%2F%C3%BC%2B%3D%26&list-type=2&start-after=x~y%2Az&delimiter=%2F&encoding-type=url"
    assert canonical_query(raw, drop_signature=False) == (
        "delimiter=%2F&encoding-type=url&list-type=2&prefix=a%20b%2F%C3%BC%2B%3D%26&start-after=x~y%2Az"
    )
    assert canonical_query("uploads&X-Amz-Signature=ab", drop_signature=True) == "uploads="


# -- SigV4A ------------------------------------------------------------------------------------


def test_sigv4a_key_derivation_matches_aws_c_auth_vector() -> None:
    key = sigv4a_private_key("AKISORANDOMAASORANDOM", "q+jcrXGc+0zWN6uzclKVhvMmUsIfRPa4rlRandom")
    numbers = key.private_numbers()
    assert f"{numbers.private_value:064x}" == "7fd3bd010c0d9c292141c2b77bfbde1042c92e6836fff749d1269ec890fca1bd"
    public = numbers.public_numbers
    assert f"{public.x:064x}" == "15d242ceebf8d8169fd6a8b5a746c41140414c3b07579038da06af89190fffcb"
    assert f"{public.y:064x}" == "0515242cedd82e94799482e4c0514b505afccf2c0c98d6a553bf539f424c5ec0"


def sigv4a_request(signature: str) -> SignedRequest:
    return received(
        "GET",
        "/",
        "list-type=2",
        (
            ("host", "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-region-set", "*"),
            (
                "authorization",
                f"{SIGV4A} Credential={AK}/20130524/s3/aws4_request, "
                f"SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-region-set, Signature={signature}",
            ),
        ),
    )


@pytest.mark.parametrize("secret, accepted", [(SECRET, True), ("another secret", False)])
def test_sigv4a_signature_by_the_derived_key(secret: str, accepted: bool) -> None:
    canonical = (
        "GET\n/\nlist-type=2\nhost:mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com\n"
        f"x-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:20130524T000000Z\nx-amz-region-set:*\n\n"
        f"host;x-amz-content-sha256;x-amz-date;x-amz-region-set\n{EMPTY_SHA256}"
    )
    to_sign = "\n".join(
        (SIGV4A, "20130524T000000Z", "20130524/s3/aws4_request", hashlib.sha256(canonical.encode()).hexdigest())
    )
    der = sigv4a_private_key(AK, secret).sign(to_sign.encode(), ec.ECDSA(hashes.SHA256()))
    verdict = Verifier(AuthConfig("sigv4", (Credential(AK, SECRET),))).verify(
        sigv4a_request(der.hex()), AWS_EXAMPLE_TIME
    )
    assert isinstance(verdict, Authorized) is accepted
    if not accepted:
        assert isinstance(verdict, Rejected) and verdict.code == "SignatureDoesNotMatch"


@given(st.text(alphabet="0123456789TZt-: ", min_size=14, max_size=18))
def test_amz_dates_are_read_as_strptime_reads_them(text: str) -> None:
    try:
        expected: dt.datetime | None = dt.datetime.strptime(text, AMZ_DATE_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        expected = None
    assert parse_amz_date(text) == expected


def test_the_amz_date_every_sdk_sends_is_read() -> None:
    assert parse_amz_date("20261202T014834Z") == dt.datetime(2026, 12, 2, 1, 48, 34, tzinfo=dt.UTC)
    assert parse_amz_date("20260230T000000Z") is None  # no 30 February
