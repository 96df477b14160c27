"""The `mrapsim load` task mix for real Locust, for distributed runs (master/workers, Kubernetes).

Self-contained on purpose (stdlib + locust): it goes into a ConfigMap of the community Locust
chart, where mrapsim itself is not installed. Gevent-friendly: HTTP through FastHttpUser
(geventhttpclient), TLS handshakes through stdlib `socket` + `ssl` over a memory BIO (both are
monkey-patched by gevent), so a stalled handshake parks one greenlet, not the worker.

Users (Locust picks classes by `weight`; name one on the command line to run it alone):
- `MixedUser`: `mrapsim load`'s built-in `mixed` scenario in one class (list 10, get 10, put 5,
  handshake 9, handshake without SNI 1) — the class for distributed runs of that mix.
- `S3User` (FastHttpUser): ListObjectsV2, GetObject, PutObject with SigV4 (same rules as
  mrapsim/load/sigv4.py; both are checked against botocore in tests/load/test_sigv4.py).
  Objects to read are written in `on_start`.
- `HandshakeUser`: a new TLS connection per task and no request; a fraction without SNI
  (`MRAPSIM_NOSNI_FRACTION`, default 0.1). Failures are named like `mrapsim load`'s:
  `stalled`, `reset`, `closed`, `timeout`, `alert:<name>`, `tls:<reason>`, `refused`.

Settings (environment): `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` (default
us-east-1); `MRAPSIM_CONNECT=HOST:PORT` (handshake users connect there instead of resolving the
host, like `mrapsim load --connect`); `MRAPSIM_CA_BUNDLE` (verify handshakes; unverified
without); `MRAPSIM_HANDSHAKE_TIMEOUT` seconds (default 5); `MRAPSIM_KEY_PREFIX`
(default `mrapsim-load/`). The target is Locust's `--host`, e.g.
`https://mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com` or
`https://localhost:8444/mraps3sample` (path style: the bucket is the URL's path).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import random
import socket
import ssl
import time
from urllib.parse import quote, urlsplit

from locust import FastHttpUser, User, task

ACCESS_KEY = os.environ.get("AWS_ACCESS_KEY_ID", "")
SECRET_KEY = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
REGION = os.environ.get("AWS_REGION", "us-east-1")
KEY_PREFIX = os.environ.get("MRAPSIM_KEY_PREFIX", "mrapsim-load/")
NOSNI_FRACTION = float(os.environ.get("MRAPSIM_NOSNI_FRACTION", "0.1"))
HANDSHAKE_TIMEOUT = float(os.environ.get("MRAPSIM_HANDSHAKE_TIMEOUT", "5"))
CA_BUNDLE = os.environ.get("MRAPSIM_CA_BUNDLE")
CONNECT = os.environ.get("MRAPSIM_CONNECT")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
GET_SIZES = (1024, 16384)
ALERTS = {
    10: "unexpected_message",
    40: "handshake_failure",
    42: "bad_certificate",
    48: "unknown_ca",
    50: "decode_error",
    70: "protocol_version",
    80: "internal_error",
    109: "missing_extension",
    112: "unrecognized_name",
    120: "no_application_protocol",
}


# -- SigV4 (header form), the same rules as mrapsim/load/sigv4.py -----------------------------


def _encode(text: str, safe: str) -> str:
    return quote(text, safe=safe)


def sigv4_headers(
    method: str,
    host: str,
    path: str,
    query: list[tuple[str, str]],
    payload: bytes,
    access_key: str,
    secret_key: str,
    region: str,
    now: float | None = None,
) -> dict[str, str]:
    """`x-amz-date`, `x-amz-content-sha256`, `authorization` for an S3 request (raw `path`)."""
    moment = datetime.datetime.fromtimestamp(time.time() if now is None else now, datetime.UTC)
    amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    digest = hashlib.sha256(payload).hexdigest() if payload else EMPTY_SHA256
    headers = {"host": host, "x-amz-content-sha256": digest, "x-amz-date": amz_date}
    names = sorted(headers)
    canonical_query = "&".join(sorted(f"{_encode(k, '~')}={_encode(v, '~')}" for k, v in query))
    canonical = "\n".join(
        [
            method,
            _encode(path, "/~"),
            canonical_query,
            "".join(f"{n}:{headers[n]}\n" for n in names),
            ";".join(names),
            digest,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-date": amz_date,
        "x-amz-content-sha256": digest,
        "authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}",
    }


def body_of(size: int) -> bytes:
    pattern = bytes(range(32, 127))
    return (pattern * (size // len(pattern) + 1))[:size]


class S3Client(FastHttpUser):
    """Signed S3 requests on keep-alive connections; the objects to read written in on_start."""

    abstract = True

    def on_start(self) -> None:
        parts = urlsplit(self.host or "")
        self.authority = parts.netloc
        self.origin = f"{parts.scheme}://{parts.netloc}"  # absolute URLs: Locust would prepend the path
        self.base = parts.path.rstrip("/")
        self.sequence = 0
        self.put_body = body_of(1024)
        for size in GET_SIZES:
            self.s3("PUT", f"{KEY_PREFIX}obj-{size}", name="setup", body=body_of(size))

    def s3(
        self, method: str, key: str, name: str, query: list[tuple[str, str]] | None = None, body: bytes = b""
    ) -> None:
        path = f"{self.base}/{key}"
        query = query or []
        headers = {}
        if ACCESS_KEY and SECRET_KEY:
            headers = sigv4_headers(method, self.authority, path, query, body, ACCESS_KEY, SECRET_KEY, REGION)
        url = self.origin + _encode(path, "/~")
        if query:
            url += "?" + "&".join(f"{_encode(k, '~')}={_encode(v, '~')}" for k, v in query)
        with self.client.request(
            method,
            url,
            name=name,
            headers=headers,
            data=body or None,  # type: ignore[arg-type]
            catch_response=True,
        ) as response:
            if response.status_code >= 400:
                text = response.text or ""
                start, end = text.find("<Code>"), text.find("</Code>")
                failure = f"s3:{text[start + 6 : end]}" if 0 <= start < end else f"http:{response.status_code}"
                response.failure(failure)

    def list_objects(self) -> None:
        self.s3("GET", "", "list", [("list-type", "2"), ("max-keys", "100"), ("prefix", "")])

    def get_object(self) -> None:
        self.s3("GET", f"{KEY_PREFIX}obj-{random.choice(GET_SIZES)}", "get")

    def put_object(self) -> None:
        self.sequence += 1
        self.s3("PUT", f"{KEY_PREFIX}put/1024-{id(self) % 100000}-{self.sequence % 100}", "put", body=self.put_body)


class S3User(S3Client):
    """ListObjectsV2 / GetObject / PutObject, signed, on keep-alive connections."""

    weight = 3

    @task(10)
    def list(self) -> None:
        self.list_objects()

    @task(10)
    def get(self) -> None:
        self.get_object()

    @task(5)
    def put(self) -> None:
        self.put_object()


# -- TLS handshakes -------------------------------------------------------------------------


def handshake(host: str, port: int, server_name: str | None, timeout: float) -> str | None:
    """One TLS handshake; None if it completed, else the failure class."""
    context = ssl.create_default_context(cafile=CA_BUNDLE) if CA_BUNDLE else ssl.create_default_context()
    context.check_hostname = bool(CA_BUNDLE and server_name)
    if not CA_BUNDLE:
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        return "connect_timeout"
    except OSError:
        return "refused"
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    received = b""
    with sock:
        while True:
            try:
                tls.do_handshake()
                sock.sendall(outgoing.read())
                return None
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLCertVerificationError:
                return "tls:certificate_verify_failed"
            except ssl.SSLError as exc:
                return _alert(received) or f"tls:{str(exc.reason or 'error').lower()}"
            try:
                sock.sendall(outgoing.read())
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                data = sock.recv(65536)
            except TimeoutError:
                return "timeout" if received else "stalled"
            except ConnectionResetError:
                return "reset"
            if not data:
                return _alert(received) or "closed"
            received += data
            incoming.write(data)


def _alert(received: bytes) -> str | None:
    if len(received) >= 7 and received[0] == 21 and received[1] == 3:
        return f"alert:{ALERTS.get(received[6], f'alert_{received[6]}')}"
    return None


class HandshakeUser(User):
    """A new TLS connection per task, no request; a fraction of them without SNI."""

    weight = 1

    def on_start(self) -> None:
        self.server_name = urlsplit(self.host or "").hostname or ""
        self.address = handshake_address(self.host)

    def _measure(self, name: str, server_name: str | None) -> None:
        fire_handshake(self, name, self.address, server_name)

    @task
    def handshake(self) -> None:
        if random.random() < NOSNI_FRACTION:
            self._measure("handshake_nosni", None)
        else:
            self._measure("handshake", self.server_name)


def handshake_address(host: str | None) -> tuple[str, int]:
    """Where handshake tasks connect: MRAPSIM_CONNECT, else the host's own address."""
    parts = urlsplit(host or "")
    port = parts.port or 443
    if CONNECT:
        connect_host, _, connect_port = CONNECT.rpartition(":")
        return connect_host.strip("[]"), int(connect_port or port)
    return parts.hostname or "", port


def fire_handshake(user: User, name: str, address: tuple[str, int], server_name: str | None) -> None:
    """One handshake, reported to Locust like a request (type TLS, the failure class as error)."""
    started = time.perf_counter()
    start_time = time.time()
    failure = handshake(*address, server_name, HANDSHAKE_TIMEOUT)
    user.environment.events.request.fire(
        request_type="TLS",
        name=name,
        response_time=(time.perf_counter() - started) * 1000,
        response_length=0,
        response=None,
        context={},
        start_time=start_time,
        exception=None if failure is None else HandshakeFailure(failure),
    )


class MixedUser(S3User):
    """`mrapsim load`'s built-in `mixed` scenario (mrapsim/load/scenarios/mixed.py) as one Locust
    user class, task for task and weight for weight: list 10, get 10, put 5 (S3User's tasks, which
    Locust inherits), handshake 9, handshake without SNI 1. Run it alone by naming it:
    `locust -f locustfile.py MixedUser`."""

    weight = 1

    def on_start(self) -> None:
        super().on_start()
        self.address = handshake_address(self.host)
        self.server_name = urlsplit(self.host or "").hostname or ""

    @task(9)
    def handshake(self) -> None:
        fire_handshake(self, "handshake", self.address, self.server_name)

    @task(1)
    def handshake_nosni(self) -> None:
        fire_handshake(self, "handshake_nosni", self.address, None)


class HandshakeFailure(Exception):
    """Its text is the failure class, which is what Locust's failures table shows."""
