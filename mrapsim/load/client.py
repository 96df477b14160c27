"""A small HTTP/1.1 client on trio streams: TLS (SNI under control) or plain TCP, directly or
through an HTTP CONNECT proxy, with every failure named (failures.py, and tls/client_outcomes.py
up to the handshake); http1.py reads responses.

Each connection runs over a `MeteredStream` that counts the bytes each way and keeps the first
bytes the server sent: that is what tells a stall (nothing came back before the handshake
deadline) from a slow handshake, and a fatal alert from any other TLS error. Every wait is under
a deadline from the options; the caller owns the connection and closes it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import trio

from mrapsim.load import failures
from mrapsim.load.http1 import IncompleteError, ProtocolError, ResponseReader
from mrapsim.load.tls import ClientTlsStream
from mrapsim.names import is_ip_literal, split_host_port
from mrapsim.tls.client_outcomes import classify

RECEIVE_SIZE = 65536
ERROR_BODY_LIMIT = 4096
PROXY_REPLY_LIMIT = 16384


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: the URL's host (Host header and default SNI), and where to connect."""

    scheme: str
    host: str
    port: int
    connect_host: str
    connect_port: int
    base_path: str = ""
    proxy: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        if self.scheme not in ("https", "http"):
            raise ValueError(f"scheme {self.scheme!r}: https or http")

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def server_name(self, sni: bool | str) -> str | None:
        """The SNI to send for a task's `sni` option; never an IP literal (RFC 6066)."""
        if sni is False:
            return None
        name = self.host if sni is True else sni
        return None if is_ip_literal(name) else name


def parse_endpoint(url: str, connect: str | None = None, proxy: str | None = None) -> Endpoint:
    """`https://HOST[:PORT][/bucket]`, optionally `--connect HOST:PORT`, `--proxy http://H:P`."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{url!r} is not an https:// or http:// URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    connect_host, connect_port = parts.hostname, port
    if connect:
        connect_host, connect_port = split_host_port(connect, port)
    proxy_address = None
    if proxy:
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if proxy_parts.scheme != "http" or not proxy_parts.hostname:
            raise ValueError(f"proxy {proxy!r} is not an http://HOST:PORT URL")
        proxy_address = (proxy_parts.hostname, proxy_parts.port or 3128)
    return Endpoint(
        parts.scheme, parts.hostname, port, connect_host, connect_port, parts.path.rstrip("/"), proxy_address
    )


def _context(ca_bundle: str | None, insecure: bool, check_hostname: bool, alpn: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_bundle)
    context.set_alpn_protocols([alpn])
    context.check_hostname = check_hostname and not insecure
    if insecure:
        context.verify_mode = ssl.CERT_NONE
    return context


class MeteredStream(trio.abc.Stream):
    """Delegates to a stream; counts bytes each way and keeps the first bytes received since
    the last `mark` (the start of the TLS handshake, after any CONNECT exchange)."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.sent = 0
        self.received = 0
        self.head = b""

    def mark(self) -> None:
        self.head = b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)
        self.sent += len(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        if len(self.head) < 16:
            self.head += bytes(data[: 16 - len(self.head)])
        self.received += len(data)
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True)
class ConnectOptions:
    """TLS contexts by (SNI sent, HTTP/2 offered) and the deadlines. Without SNI there is no
    name to check, but the chain is still verified unless `insecure`. TLS ≥ 1.2."""

    contexts: dict[tuple[bool, bool], ssl.SSLContext]
    handshake_timeout: float
    timeout: float

    @classmethod
    def create(cls, ca_bundle: str | None, insecure: bool, handshake_timeout: float, timeout: float) -> ConnectOptions:
        contexts = {
            (named, h2): _context(ca_bundle, insecure, named, "h2" if h2 else "http/1.1")
            for named in (True, False)
            for h2 in (True, False)
        }
        return cls(contexts, handshake_timeout, timeout)


class HttpConnection(Protocol):
    """What the runner needs of a connection, HTTP/1.1 or HTTP/2."""

    meter: MeteredStream
    requests: int
    reusable: bool

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, timeout: float
    ) -> Response: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Response:
    status: int
    content_length: int
    failure: str | None  # None for 2xx/3xx, else http:<status> or s3:<Code>


def encode_request(method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The request head and body; names and values are ours or validated, never CR/LF."""
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    lines.append("\r\n")
    return "".join(lines).encode("latin-1") + body


class Connection:
    """One client connection: TCP (+ CONNECT) (+ TLS), then HTTP/1.1 requests in sequence."""

    def __init__(self, stream: trio.abc.Stream, meter: MeteredStream) -> None:
        self.stream = stream
        self.meter = meter
        self.reader = ResponseReader(ERROR_BODY_LIMIT)
        self.requests = 0
        self.reusable = True

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, timeout: float
    ) -> Response:
        """Send one request, read the whole response; TaskFailure on a transport failure."""
        self.requests += 1
        self.reusable = False
        try:
            with trio.move_on_after(timeout):
                return await self._exchange(method, target, headers, body)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise failures.TaskFailure(classify(exc).failure_class) from None
        except IncompleteError as exc:
            raise failures.TaskFailure(failures.CLOSED, str(exc)) from None
        except ProtocolError as exc:
            raise failures.TaskFailure(failures.PROTOCOL, str(exc)) from None
        raise failures.TaskFailure(failures.TIMEOUT)

    async def _exchange(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Response:
        reader = self.reader
        reader.start(method)
        await self.stream.send_all(encode_request(method, target, headers, body))
        parsed = reader.extract()
        while parsed is None:
            reader.feed(bytes(await self.stream.receive_some(RECEIVE_SIZE)))
            parsed = reader.extract()
        self.reusable = parsed.keep_alive
        status = parsed.status
        failure = failures.classify_response(status, parsed.body_head) if status >= 400 else None
        return Response(status, parsed.body_length, failure)


async def open_connection(endpoint: Endpoint, server_name: str | None, options: ConnectOptions) -> Connection:
    """An HTTP/1.1 connection (see `open_transport`)."""
    stream, meter = await open_transport(endpoint, server_name, options)
    return Connection(stream, meter)


async def open_transport(
    endpoint: Endpoint, server_name: str | None, options: ConnectOptions, http2: bool = False
) -> tuple[trio.abc.Stream, MeteredStream]:
    """TCP (through the proxy if any), then TLS with `server_name` as SNI (None: no SNI),
    offering `h2` or `http/1.1` by ALPN.

    Raises TaskFailure with the class of whatever went wrong; the handshake deadline covers
    the TCP connect, the CONNECT exchange and the TLS handshake together.
    """
    with trio.move_on_after(options.handshake_timeout) as scope:
        tcp = await _open_tcp(endpoint)
    if scope.cancelled_caught:
        raise failures.TaskFailure(classify(TimeoutError(), connected=False).failure_class)
    meter = MeteredStream(tcp)
    try:
        with trio.fail_after(max(0.001, scope.deadline - trio.current_time())):
            if endpoint.proxy is not None:
                await _proxy_connect(meter, endpoint)
                meter.mark()
            if not endpoint.tls:
                return meter, meter
            tls = await _handshake(meter, server_name, options, http2)
    except trio.TooSlowError:
        await trio.aclose_forcefully(meter)
        raise failures.TaskFailure(classify(TimeoutError(), meter.head).failure_class) from None
    except failures.TaskFailure:
        await trio.aclose_forcefully(meter)
        raise
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        await trio.aclose_forcefully(meter)
        raise failures.TaskFailure(classify(exc, meter.head).failure_class) from None
    return tls, meter


async def _open_tcp(endpoint: Endpoint) -> trio.SocketStream:
    host, port = endpoint.proxy or (endpoint.connect_host, endpoint.connect_port)
    try:
        return await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise failures.TaskFailure(classify(exc, connected=False).failure_class, str(exc)) from None


async def _handshake(
    transport: MeteredStream, server_name: str | None, options: ConnectOptions, http2: bool
) -> ClientTlsStream:
    context = options.contexts[(server_name is not None, http2)]
    tls = ClientTlsStream(transport, context, server_hostname=server_name)
    await tls.do_handshake()
    return tls


async def _proxy_connect(stream: MeteredStream, endpoint: Endpoint) -> None:
    """HTTP CONNECT to the endpoint's connect address; TaskFailure proxy:<status> if refused."""
    authority = f"{endpoint.connect_host}:{endpoint.connect_port}"
    if ":" in endpoint.connect_host:
        authority = f"[{endpoint.connect_host}]:{endpoint.connect_port}"
    await stream.send_all(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode("ascii"))
    reply = b""
    while b"\r\n\r\n" not in reply:
        try:
            chunk = await stream.receive_some(PROXY_REPLY_LIMIT)
        except trio.BrokenResourceError as exc:
            raise failures.TaskFailure(classify(exc).failure_class) from None
        if not chunk:
            raise failures.TaskFailure(failures.proxy("closed"))
        reply += chunk
        if len(reply) > PROXY_REPLY_LIMIT:
            raise failures.TaskFailure(failures.proxy("malformed"))
    status_line = reply.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise failures.TaskFailure(failures.proxy("malformed"))
    if not 200 <= int(status_line[1]) < 300:
        raise failures.TaskFailure(failures.proxy(int(status_line[1])))
    # Bytes after the header block would be the tunnel's; the server speaks only after our hello.
