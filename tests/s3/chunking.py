"""Test helpers that build aws-chunked bodies the way SDKs do, signed or not, and send them."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from awscrt.auth import (
    AwsCredentialsProvider,
    AwsSignatureType,
    AwsSignedBodyHeaderType,
    AwsSigningAlgorithm,
    AwsSigningConfig,
    aws_sign_request,
)
from awscrt.http import HttpHeaders, HttpRequest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from mrapsim.s3.auth import EMPTY_SHA256, sigv4_signing_key, sigv4a_private_key
from mrapsim.s3.checksums import checksum

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def unsigned_trailer_body(data: bytes, chunk_size: int, trailer: Sequence[tuple[str, str]]) -> bytes:
    """STREAMING-UNSIGNED-PAYLOAD-TRAILER framing, as botocore's AwsChunkedWrapper writes it."""
    out = bytearray()
    for offset in range(0, len(data), chunk_size):
        piece = data[offset : offset + chunk_size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    out += b"0\r\n" + b"".join(f"{n}:{v}\r\n".encode() for n, v in trailer) + b"\r\n"
    return bytes(out)


@dataclass(frozen=True)
class ChunkSigner:
    """Signs chunks (and a trailer) after a seed signature, SigV4 or SigV4A."""

    algorithm: str  # "AWS4-HMAC-SHA256" or "AWS4-ECDSA-P256-SHA256"
    amz_date: str
    scope: str
    seed: str
    secret: str = SECRET_KEY

    def _sign(self, to_sign: str) -> str:
        if self.algorithm == "AWS4-HMAC-SHA256":
            date, region, service, _ = self.scope.split("/")
            key = sigv4_signing_key(self.secret, date, region, service)
            return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        private = sigv4a_private_key(ACCESS_KEY, self.secret)
        return private.sign(to_sign.encode(), ec.ECDSA(hashes.SHA256())).hex().ljust(144, "*")

    def body(self, data: bytes, chunk_size: int, trailer: Sequence[tuple[str, str]] | None = None) -> bytes:
        out = bytearray()
        previous = self.seed
        pieces = [data[o : o + chunk_size] for o in range(0, len(data), chunk_size)] + [b""]
        for piece in pieces:
            to_sign = "\n".join(
                (
                    f"{self.algorithm}-PAYLOAD",
                    self.amz_date,
                    self.scope,
                    previous.rstrip("*"),
                    EMPTY_SHA256,
                    hashlib.sha256(piece).hexdigest(),
                )
            )
            signature = self._sign(to_sign)
            out += f"{len(piece):x};chunk-signature={signature}\r\n".encode() + piece
            if piece:
                out += b"\r\n"
            previous = signature
        if trailer is None:
            return bytes(out + b"\r\n")
        canonical = "".join(f"{n}:{v}\n" for n, v in sorted(trailer))
        to_sign = "\n".join(
            (
                f"{self.algorithm}-TRAILER",
                self.amz_date,
                self.scope,
                previous.rstrip("*"),
                hashlib.sha256(canonical.encode()).hexdigest(),
            )
        )
        out += b"".join(f"{n}:{v}\r\n".encode() for n, v in trailer)
        out += f"x-amz-trailer-signature:{self._sign(to_sign)}\r\n\r\n".encode()
        return bytes(out)


def crt_signed_headers(
    method: str,
    host: str,
    path: str,
    headers: dict[str, str],
    body_value: str,
    *,
    asymmetric: bool = False,
    secret: str = SECRET_KEY,
    when: dt.datetime | None = None,
) -> tuple[dict[str, str], ChunkSigner]:
    """Headers signed by awscrt (the signer real SDKs use) with `body_value` as the payload line,
    and the ChunkSigner that continues from the seed signature."""
    when = when or dt.datetime.now(dt.UTC)
    request = HttpRequest(method, path, HttpHeaders([("host", host), *headers.items()]))
    config = AwsSigningConfig(
        algorithm=AwsSigningAlgorithm.V4_ASYMMETRIC if asymmetric else AwsSigningAlgorithm.V4,
        signature_type=AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=AwsCredentialsProvider.new_static(ACCESS_KEY, secret),
        region="*" if asymmetric else "us-east-1",
        service="s3",
        date=when,
        use_double_uri_encode=False,
        should_normalize_uri_path=False,
        signed_body_value=body_value,
        signed_body_header_type=AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
    )
    signed = aws_sign_request(request, config).result(10)
    out = {name: value for name, value in signed.headers}
    authorization = out["Authorization"]
    algorithm = authorization.split(" ", 1)[0]
    credential = authorization.split("Credential=", 1)[1].split(",", 1)[0]
    seed = authorization.rsplit("Signature=", 1)[1]
    signer = ChunkSigner(algorithm, out["X-Amz-Date"], credential.split("/", 1)[1], seed, secret)
    return out, signer


def send_raw(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    *,
    ca: str | None = None,
    server_name: str = "localhost",
    piece: int = 65536,
) -> tuple[int, dict[str, str], bytes]:
    """Send `body` to 127.0.0.1:`port` with HTTP/1.1 chunked framing (as botocore sends
    aws-chunked bodies), over TLS with SNI `server_name` when `ca` is given."""
    sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=30)
    if ca is not None:
        sock = ssl.create_default_context(cafile=ca).wrap_socket(sock, server_hostname=server_name)
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers.items())
    head += "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    out = bytearray(head.encode("utf-8"))
    for offset in range(0, len(body), piece):
        part = body[offset : offset + piece]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    out += b"0\r\n\r\n"
    sock.sendall(out)
    response = http.client.HTTPResponse(sock)
    response.begin()
    result = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    sock.close()
    return result


def trailer_crc32(data: bytes) -> tuple[str, str]:
    return ("x-amz-checksum-crc32", checksum("crc32", data))
