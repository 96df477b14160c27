"""SigV4, SigV4A and SigV2 (sigv2.py; `[auth] sigv2`) verification, sans-IO: the signed parts of
a request and the current time in, a verdict (`Authorized` or `Rejected`) out. No sockets, no
clock, no body.

What S3 signs (docs/wire.md §4):
- canonical request = method, the raw path exactly as received (S3 signers neither normalise nor
  double-encode), the canonical query (decode, re-encode RFC 3986, sort), the signed headers
  (lower-case, trimmed, whitespace runs collapsed, repeats joined by ","), the signed header
  list, and the payload line (`x-amz-content-sha256`, or UNSIGNED-PAYLOAD for presigned URLs);
- SigV4: HMAC-SHA256 with the key chain secret → date → region → service → aws4_request;
- SigV4A (`AWS4-ECDSA-P256-SHA256`, what MRAP clients use): the credential scope has no region,
  and the signature is a DER ECDSA P-256 signature over the string to sign, checked with a
  public key derived from the secret (NIST SP 800-108 counter KDF, as aws-c-auth does).

The body is not seen here: `Authorized.payload_sha256` tells the caller which digest the body
must have, and the caller checks it as the body streams in (XAmzContentSHA256Mismatch).

Costs: one pass over path, query and the signed headers; derived keys are cached per verifier
(SigV4A's derivation is an EC scalar multiplication, far dearer than the HMAC chain).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import quote, unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from mrapsim.config import AuthConfig
from mrapsim.s3 import sigv2
from mrapsim.s3.headers import Headers
from mrapsim.s3.request import bounded_int

SIGV4 = "AWS4-HMAC-SHA256"
SIGV4A = "AWS4-ECDSA-P256-SHA256"
ALGORITHMS = (SIGV4, SIGV4A)

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
# The signed streaming forms and the signature algorithm each one requires.
SIGNED_STREAMING = {
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD": "AWS4-HMAC-SHA256",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER": "AWS4-HMAC-SHA256",
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD": "AWS4-ECDSA-P256-SHA256",
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER": "AWS4-ECDSA-P256-SHA256",
}
STREAMING_PAYLOADS = (STREAMING_UNSIGNED_TRAILER, *SIGNED_STREAMING)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

MAX_SKEW = dt.timedelta(minutes=15)
MAX_PRESIGNED_EXPIRES = 7 * 24 * 3600
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

# P-256 group order; SigV4A's KDF accepts a candidate scalar only below n - 1.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

SIGNATURE_MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. Check your key and signing method."
)
HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
UNRESERVED = "-_.~"  # with ASCII letters and digits, which quote() never encodes

SIGNING_KEY_CACHE_LIMIT = 1024


# -- values ------------------------------------------------------------------------------------


class SignedRequest(Protocol):
    """The parts of an HTTP request that a signature covers, as received: a read-only view of
    the app's one request value (`S3Request` is one), so auth reads the same headers, with the
    same semantics (repeats joined by ","), as every handler after it."""

    @property
    def method(self) -> str: ...

    @property
    def raw_path(self) -> str: ...  # percent-encoded, exactly as on the request line

    @property
    def raw_query(self) -> str: ...  # without the "?"

    @property
    def query(self) -> Mapping[str, str]: ...  # decoded, first occurrence winning

    @property
    def headers(self) -> Headers: ...


@dataclass(frozen=True)
class StreamingKey:
    """What verifying a signed aws-chunked body needs: each chunk's signature chains from the
    previous one, starting at the request's own ("seed") signature.

    Chunk string to sign: `<ALG>-PAYLOAD\\n<date>\\n<scope>\\n<previous>\\n<sha256("")>\\n<sha256(data)>`;
    trailer: `<ALG>-TRAILER\\n<date>\\n<scope>\\n<previous>\\n<sha256(canonical trailer fields)>`
    (aws-c-auth `aws_signing.c`). SigV4A chunk signatures travel right-padded with "*" to 144
    characters; the padding is not part of the chain.
    """

    algorithm: str  # SIGV4 or SIGV4A
    amz_date: str
    scope: str
    seed_signature: str
    hmac_key: bytes | None  # SigV4
    public_key: ec.EllipticCurvePublicKey | None  # SigV4A

    def chunk_string_to_sign(self, previous: str, data_sha256: str) -> str:
        return "\n".join((f"{self.algorithm}-PAYLOAD", self.amz_date, self.scope, previous, EMPTY_SHA256, data_sha256))

    def trailer_string_to_sign(self, previous: str, canonical_trailer: str) -> str:
        digest = hashlib.sha256(canonical_trailer.encode("utf-8")).hexdigest()
        return "\n".join((f"{self.algorithm}-TRAILER", self.amz_date, self.scope, previous, digest))

    def verify(self, to_sign: str, signature: str) -> bool:
        signature = signature.rstrip("*")
        if self.hmac_key is not None:
            expected = hmac.new(self.hmac_key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
            return _same_hex(expected, signature)
        if self.public_key is None:
            return False
        try:
            self.public_key.verify(bytes.fromhex(signature), to_sign.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Authorized:
    access_key: str | None  # None: anonymous request admitted by auth mode "none"
    algorithm: str | None  # SIGV4, SIGV4A, or None when nothing was verified
    presigned: bool
    # The hex SHA-256 the body must have, when the signature covers it; None otherwise
    # (UNSIGNED-PAYLOAD, streaming forms, auth mode "none").
    payload_sha256: str | None
    content_sha256: str | None  # the x-amz-content-sha256 header as sent
    # For the signed streaming forms (STREAMING-AWS4-*): how to check the chunk signatures.
    streaming_key: StreamingKey | None = None


@dataclass(frozen=True)
class Rejected:
    code: str
    message: str
    status: int
    extra: tuple[tuple[str, str], ...] = ()


Verdict = Authorized | Rejected


@dataclass(frozen=True)
class Credential:
    """A parsed `Credential=` value: access key and scope."""

    access_key: str
    date: str  # yyyymmdd
    region: str | None  # None for SigV4A, whose scope has no region
    service: str

    @property
    def scope(self) -> str:
        parts = [self.date, self.region, self.service] if self.region is not None else [self.date, self.service]
        return "/".join([*parts, "aws4_request"])


@dataclass(frozen=True)
class Signature:
    """A signature with everything needed to recompute it, from the header or the query."""

    algorithm: str
    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str  # the timestamp as signed, basic ISO 8601
    presigned: bool
    expires: int | None  # presigned only: X-Amz-Expires seconds


# -- canonicalisation --------------------------------------------------------------------------


def canonical_query(raw_query: str, *, drop_signature: bool) -> str:
    pairs: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name, value = unquote(name), unquote(value)
        if drop_signature and name == "X-Amz-Signature":
            continue
        pairs.append((quote(name, safe=UNRESERVED), quote(value, safe=UNRESERVED)))
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs)


def canonical_headers(request: SignedRequest, signed_headers: tuple[str, ...]) -> str:
    """One line per signed header: each value trimmed with its whitespace runs collapsed, the
    repeats joined by "," (as botocore and aws-c-auth build it)."""
    lines = []
    for name in signed_headers:
        value = ",".join(" ".join(each.split()) for each in request.headers.get_all(name))
        lines.append(f"{name}:{value}\n")
    return "".join(lines)


def canonical_request(request: SignedRequest, signature: Signature, payload: str) -> str:
    return "\n".join(
        (
            request.method,
            request.raw_path or "/",
            canonical_query(request.raw_query, drop_signature=signature.presigned),
            canonical_headers(request, signature.signed_headers),
            ";".join(signature.signed_headers),
            payload,
        )
    )


def string_to_sign(signature: Signature, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return "\n".join((signature.algorithm, signature.amz_date, signature.credential.scope, digest))


def sigv4_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def sigv4a_private_key(access_key: str, secret: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 key SigV4A derives from a key pair (aws-c-auth `key_derivation.c`)."""
    kdf_key = ("AWS4A" + secret).encode("utf-8")
    for counter in range(1, 255):
        context = (
            b"\x00\x00\x00\x01"
            + SIGV4A.encode("ascii")
            + b"\x00"
            + access_key.encode("utf-8")
            + bytes([counter])
            + b"\x00\x00\x01\x00"
        )
        candidate = int.from_bytes(hmac.new(kdf_key, context, hashlib.sha256).digest(), "big")
        if candidate <= P256_ORDER - 2:
            return ec.derive_private_key(candidate + 1, ec.SECP256R1())
    raise ValueError("no SigV4A key within 254 counter values")  # probability ~2^-8000


# -- parsing -----------------------------------------------------------------------------------


def parse_credential(value: str, algorithm: str) -> Credential | Rejected:
    parts = value.split("/")
    if algorithm == SIGV4 and len(parts) == 5:
        access_key, date, region, service, terminal = parts
    elif algorithm == SIGV4A and len(parts) == 4:
        access_key, date, service, terminal = parts
        region = None
    else:
        region_part = "REGION/" if algorithm == SIGV4 else ""
        return _malformed(
            f'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/{region_part}SERVICE/aws4_request".'
        )
    if terminal != "aws4_request":
        return _malformed('the Credential has an incorrect terminal; expecting "aws4_request".')
    if not re.fullmatch(r"\d{8}", date) or not access_key:
        return _malformed("the Credential is mal-formed; the date must be YYYYMMDD.")
    return Credential(access_key, date, region, service)


UNSUPPORTED_MECHANISM = Rejected(
    "InvalidRequest",
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
    400,
)


ONE_MECHANISM_ONLY = Rejected(
    "InvalidArgument",
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
    "Signature query string parameter or the Authorization header should be specified",
    400,
    (("ArgumentName", "Authorization"),),
)


def parse_authorization_header(value: str, amz_date: str) -> Signature | Rejected:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm not in ALGORITHMS:
        return UNSUPPORTED_MECHANISM
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, field_value = item.strip().partition("=")
        if sep:
            fields[name] = field_value
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if name not in fields]
    if missing:
        return _malformed(f"missing {', '.join(missing)}.")
    credential = parse_credential(fields["Credential"], algorithm)
    if isinstance(credential, Rejected):
        return credential
    return Signature(
        algorithm=algorithm,
        credential=credential,
        signed_headers=tuple(fields["SignedHeaders"].split(";")),
        signature=fields["Signature"],
        amz_date=amz_date,
        presigned=False,
        expires=None,
    )


PRESIGNED_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)


def parse_presigned_query(request: SignedRequest) -> Signature | Rejected:
    values = {name: request.query.get(name) for name in PRESIGNED_PARAMS}
    if any(value is None for value in values.values()):
        return Rejected(
            "AuthorizationQueryParametersError",
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
            400,
        )
    algorithm = values["X-Amz-Algorithm"] or ""
    if algorithm not in ALGORITHMS:
        return Rejected(
            "AuthorizationQueryParametersError",
            'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256" and "AWS4-ECDSA-P256-SHA256"',
            400,
        )
    expires = bounded_int(values["X-Amz-Expires"])  # ASCII digits only: "³600" is not a number
    if expires is None or expires > MAX_PRESIGNED_EXPIRES:
        return Rejected(
            "AuthorizationQueryParametersError",
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
            400,
        )
    credential = parse_credential(values["X-Amz-Credential"] or "", algorithm)
    if isinstance(credential, Rejected):
        return Rejected("AuthorizationQueryParametersError", credential.message, 400)
    return Signature(
        algorithm=algorithm,
        credential=credential,
        signed_headers=tuple((values["X-Amz-SignedHeaders"] or "").split(";")),
        signature=values["X-Amz-Signature"] or "",
        amz_date=values["X-Amz-Date"] or "",
        presigned=True,
        expires=expires,
    )


def parse_amz_date(text: str) -> dt.datetime | None:
    try:
        if len(text) == 16 and text[8] == "T" and text[15] == "Z" and (text[:8] + text[9:15]).isdigit():
            # The form every SDK sends, read directly: strptime cost ~20 µs of every request.
            return dt.datetime(
                int(text[:4]),
                int(text[4:6]),
                int(text[6:8]),
                int(text[9:11]),
                int(text[11:13]),
                int(text[13:15]),
                tzinfo=dt.UTC,
            )
        return dt.datetime.strptime(text, AMZ_DATE_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def _malformed(detail: str) -> Rejected:
    return Rejected("AuthorizationHeaderMalformed", f"The authorization header is malformed; {detail}", 400)


def _amz(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime(AMZ_DATE_FORMAT)


def _same_hex(expected: str, sent: str) -> bool:
    """Constant-time comparison of a hex signature with what the client sent, which may hold
    any characters (compare_digest refuses non-ASCII str: bytes, then)."""
    return hmac.compare_digest(expected.encode("ascii"), sent.lower().encode("utf-8", "surrogateescape"))


def _spaced_hex(text: str) -> str:
    return " ".join(f"{byte:02x}" for byte in text.encode("utf-8"))


# -- verification ------------------------------------------------------------------------------


class Verifier:
    """Verifies requests against the configured key pairs; holds the derived-key caches."""

    def __init__(self, auth: AuthConfig) -> None:
        self._auth = auth
        self._sigv4a_keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._signing_keys: dict[tuple[str, str, str, str], bytes] = {}

    def verify(
        self,
        request: SignedRequest,
        now: dt.datetime,
        expected_region: str | None = None,
        *,
        resource: str | None = None,
    ) -> Verdict:
        """`expected_region`: the Region a SigV4 signature must be scoped to (the addressed
        bucket's); None accepts any. SigV4A scopes name no Region and are never bound.
        `resource`: the request's path-style path (`/bucket/key`, as sent) for SigV2, which
        signs it also for virtual-hosted requests; the raw path when not given."""
        header = request.headers.get("authorization")
        presigned = request.query.get("X-Amz-Signature") is not None or request.query.get("X-Amz-Algorithm") is not None
        if self._auth.mode == "none":
            return Authorized(
                _access_key_of(request, header),
                None,
                False,
                None,
                request.headers.get("x-amz-content-sha256"),
            )
        if _is_sigv2(request, header, presigned):
            return self._verify_sigv2(request, header, now, resource or request.raw_path or "/")
        if header is not None and presigned:
            return ONE_MECHANISM_ONLY
        if header is None and not presigned:
            return Rejected("AccessDenied", "Access Denied", 403)
        signature = self._parse(request, header)
        if isinstance(signature, Rejected):
            return signature
        wrong_region = _wrong_region(signature, expected_region)
        if wrong_region is not None:
            return wrong_region
        payload = self._payload_line(request, signature)
        if isinstance(payload, Rejected):
            return payload
        time_check = self._check_time(signature, now)
        if time_check is not None:
            return time_check
        secret = self._auth.secret_for(signature.credential.access_key)
        if secret is None:
            return Rejected(
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
                403,
                (("AWSAccessKeyId", signature.credential.access_key),),
            )
        canonical = canonical_request(request, signature, payload)
        to_sign = string_to_sign(signature, canonical)
        if not self._signature_matches(signature, secret, to_sign):
            return Rejected(
                "SignatureDoesNotMatch",
                SIGNATURE_MISMATCH_MESSAGE,
                403,
                (
                    ("AWSAccessKeyId", signature.credential.access_key),
                    ("StringToSign", to_sign),
                    ("SignatureProvided", signature.signature),
                    ("StringToSignBytes", _spaced_hex(to_sign)),
                    ("CanonicalRequest", canonical),
                    ("CanonicalRequestBytes", _spaced_hex(canonical)),
                ),
            )
        return Authorized(
            access_key=signature.credential.access_key,
            algorithm=signature.algorithm,
            presigned=signature.presigned,
            payload_sha256=payload if HEX_SHA256.fullmatch(payload) else None,
            content_sha256=request.headers.get("x-amz-content-sha256"),
            streaming_key=self._streaming_key(signature, secret, payload),
        )

    def _verify_sigv2(self, request: SignedRequest, header: str | None, now: dt.datetime, path: str) -> Verdict:
        """A SigV2 request (sigv2.py), header or query form, when `[auth] sigv2` allows it."""
        if header is not None and request.query.get("Signature") is not None:
            return ONE_MECHANISM_ONLY
        if not self._auth.sigv2:
            return UNSUPPORTED_MECHANISM
        parsed = sigv2.parse_header(header) if header is not None else sigv2.parse_query(request.query)
        if parsed is None and header is not None:
            return Rejected(
                "InvalidArgument",
                "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
                400,
                (("ArgumentName", "Authorization"), ("ArgumentValue", header)),
            )
        if parsed is None:
            return Rejected(
                "AccessDenied",
                "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters",
                403,
            )
        date_line = _sigv2_date_line(request, parsed, now)
        if isinstance(date_line, Rejected):
            return date_line
        secret = self._auth.secret_for(parsed.access_key)
        if secret is None:
            return Rejected(
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
                403,
                (("AWSAccessKeyId", parsed.access_key),),
            )
        resource = sigv2.canonical_resource(path, request.raw_query)
        to_sign = sigv2.string_to_sign(request.method, request.headers, date_line=date_line, resource=resource)
        if not sigv2.matches(secret, to_sign, parsed.signature):
            return Rejected(
                "SignatureDoesNotMatch",
                SIGNATURE_MISMATCH_MESSAGE,
                403,
                (
                    ("AWSAccessKeyId", parsed.access_key),
                    ("StringToSign", to_sign),
                    ("SignatureProvided", parsed.signature),
                    ("StringToSignBytes", _spaced_hex(to_sign)),
                ),
            )
        return Authorized(
            access_key=parsed.access_key,
            algorithm=sigv2.ALGORITHM,
            presigned=parsed.presigned,
            payload_sha256=None,  # SigV2 does not sign the body
            content_sha256=request.headers.get("x-amz-content-sha256"),
        )

    def _streaming_key(self, signature: Signature, secret: str, payload: str) -> StreamingKey | None:
        if payload not in SIGNED_STREAMING:
            return None
        credential = signature.credential
        if signature.algorithm == SIGV4:
            hmac_key: bytes | None = self._sigv4_key(credential, secret)
            public_key = None
        else:
            hmac_key, public_key = None, self._sigv4a_public_key(credential.access_key, secret)
        return StreamingKey(
            signature.algorithm,
            signature.amz_date,
            credential.scope,
            signature.signature.rstrip("*"),
            hmac_key,
            public_key,
        )

    def _parse(self, request: SignedRequest, header: str | None) -> Signature | Rejected:
        if header is None:
            return parse_presigned_query(request)
        if header.strip().partition(" ")[0] not in ALGORITHMS:
            return UNSUPPORTED_MECHANISM  # before asking for a date the mechanism does not use
        amz_date = request.headers.get("x-amz-date")
        if amz_date is None:
            date_header = request.headers.get("date")
            try:
                amz_date = _amz(parsedate_to_datetime(date_header)) if date_header else None
            except (TypeError, ValueError):
                amz_date = None
        if amz_date is None:
            return Rejected("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header", 403)
        return parse_authorization_header(header, amz_date)

    @staticmethod
    def _payload_line(request: SignedRequest, signature: Signature) -> str | Rejected:
        content_sha256 = request.headers.get("x-amz-content-sha256")
        if content_sha256 is None:
            if signature.presigned:
                return UNSIGNED_PAYLOAD
            return Rejected(
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
                400,
            )
        required = SIGNED_STREAMING.get(content_sha256)
        if required is not None and required != signature.algorithm:
            return Rejected(
                "InvalidArgument",
                f"x-amz-content-sha256 {content_sha256} needs an {required} signature",
                400,
                (("ArgumentName", "x-amz-content-sha256"), ("ArgumentValue", content_sha256)),
            )
        if content_sha256 in (UNSIGNED_PAYLOAD, *STREAMING_PAYLOADS) or HEX_SHA256.fullmatch(content_sha256):
            return content_sha256
        return Rejected(
            "InvalidArgument",
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
            + ", ".join(STREAMING_PAYLOADS)
            + " or a valid sha256 value.",
            400,
            (("ArgumentName", "x-amz-content-sha256"), ("ArgumentValue", content_sha256)),
        )

    @staticmethod
    def _check_time(signature: Signature, now: dt.datetime) -> Rejected | None:
        signed_at = parse_amz_date(signature.amz_date)
        if signed_at is None:
            if signature.presigned:
                return Rejected(
                    "AuthorizationQueryParametersError",
                    "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
                    400,
                )
            return Rejected("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header", 403)
        if signature.presigned and signature.expires is not None:
            expires_at = signed_at + dt.timedelta(seconds=signature.expires)
            if now > expires_at:
                return Rejected(
                    "AccessDenied",
                    "Request has expired",
                    403,
                    (
                        ("X-Amz-Expires", str(signature.expires)),
                        ("Expires", expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")),
                        ("ServerTime", now.strftime("%Y-%m-%dT%H:%M:%SZ")),
                    ),
                )
            if signed_at - now > MAX_SKEW:
                return Rejected("AccessDenied", "Request is not valid yet", 403)
            return None
        if abs(now - signed_at) > MAX_SKEW:
            return Rejected(
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                403,
                (
                    ("RequestTime", signature.amz_date),
                    ("ServerTime", now.strftime("%Y-%m-%dT%H:%M:%SZ")),
                    ("MaxAllowedSkewMilliseconds", str(int(MAX_SKEW.total_seconds() * 1000))),
                ),
            )
        return None

    def _signature_matches(self, signature: Signature, secret: str, to_sign: str) -> bool:
        credential = signature.credential
        if signature.algorithm == SIGV4:
            key = self._sigv4_key(credential, secret)
            expected = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
            return _same_hex(expected, signature.signature)
        try:
            der = bytes.fromhex(signature.signature)
        except ValueError:
            return False
        public_key = self._sigv4a_public_key(credential.access_key, secret)
        try:
            public_key.verify(der, to_sign.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True

    def _sigv4a_public_key(self, access_key: str, secret: str) -> ec.EllipticCurvePublicKey:
        public_key = self._sigv4a_keys.get(access_key)
        if public_key is None:
            public_key = sigv4a_private_key(access_key, secret).public_key()
            self._sigv4a_keys[access_key] = public_key
        return public_key

    def _sigv4_key(self, credential: Credential, secret: str) -> bytes:
        cache_key = (
            credential.access_key,
            credential.date,
            credential.region or "",
            credential.service,
        )
        key = self._signing_keys.get(cache_key)
        if key is None:
            if len(self._signing_keys) >= SIGNING_KEY_CACHE_LIMIT:
                self._signing_keys.clear()
            key = sigv4_signing_key(secret, credential.date, credential.region or "", credential.service)
            self._signing_keys[cache_key] = key
        return key


def _is_sigv2(request: SignedRequest, header: str | None, presigned_v4: bool) -> bool:
    if header is not None:
        return header.strip().partition(" ")[0] == sigv2.ALGORITHM
    return not presigned_v4 and request.query.get("AWSAccessKeyId") is not None


def _sigv2_date_line(request: SignedRequest, parsed: sigv2.SigV2, now: dt.datetime) -> str | Rejected:
    """The string to sign's date line — Expires (query), Date, or empty with x-amz-date — once
    the request's time is checked: not expired (query), within MAX_SKEW (header)."""
    if parsed.expires is not None:
        if now.timestamp() > parsed.expires:
            expired_at = dt.datetime.fromtimestamp(parsed.expires, dt.UTC)
            return Rejected(
                "AccessDenied",
                "Request has expired",
                403,
                (
                    ("Expires", expired_at.strftime("%Y-%m-%dT%H:%M:%SZ")),
                    ("ServerTime", now.strftime("%Y-%m-%dT%H:%M:%SZ")),
                ),
            )
        return str(parsed.expires)
    amz_date = request.headers.get("x-amz-date")
    text = amz_date if amz_date is not None else request.headers.get("date")
    signed_at = _http_or_amz_date(text)
    if signed_at is None:
        return Rejected("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header", 403)
    if abs(now - signed_at) > MAX_SKEW:
        return Rejected(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
            403,
            (
                ("RequestTime", text or ""),
                ("ServerTime", now.strftime("%Y-%m-%dT%H:%M:%SZ")),
                ("MaxAllowedSkewMilliseconds", str(int(MAX_SKEW.total_seconds() * 1000))),
            ),
        )
    return "" if amz_date is not None else (text or "").strip()


def _http_or_amz_date(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    parsed = parse_amz_date(text.strip())
    if parsed is not None:
        return parsed
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _wrong_region(signature: Signature, expected: str | None) -> Rejected | None:
    """S3's answer to a SigV4 scope naming another Region than the bucket's, checked before the
    signature itself (the wording is S3's, boto3 issue 4627)."""
    region = signature.credential.region
    if expected is None or region is None or region == expected:
        return None
    detail = f"the region '{region}' is wrong; expecting '{expected}'"
    if signature.presigned:
        return Rejected(
            "AuthorizationQueryParametersError",
            f"Error parsing the X-Amz-Credential parameter; {detail}",
            400,
            (("Region", expected),),
        )
    return Rejected(
        "AuthorizationHeaderMalformed", f"The authorization header is malformed; {detail}", 400, (("Region", expected),)
    )


def _access_key_of(request: SignedRequest, header: str | None) -> str | None:
    """Best-effort access key for records when nothing is verified (auth mode "none")."""
    credential = request.query.get("X-Amz-Credential")
    if credential is None and header is not None:
        match = re.search(r"Credential=([^/,\s]+)/", header)
        return match.group(1) if match else None
    return credential.split("/", 1)[0] if credential else None
