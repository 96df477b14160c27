"""A real TLS client (stdlib ssl over a memory BIO) whose ClientHello the test can reshape.

The handshake is OpenSSL's own; only how the first flight reaches the socket changes (one byte
per write, re-fragmented into several TLS records, ...), which is exactly what proxies and
post-quantum clients do to an SNI peeker.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Sender = Callable[[socket.socket, bytes], None]


def send_plain(sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)


def send_one_byte_at_a_time(sock: socket.socket, data: bytes) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(data)):
        sock.sendall(data[i : i + 1])
        time.sleep(0.0005)


def send_as_records(count: int) -> Sender:
    """Split the first record's handshake payload into `count` TLS records."""

    def send(sock: socket.socket, data: bytes) -> None:
        assert data[0] == 0x16
        length = int.from_bytes(data[3:5], "big")
        payload, rest = data[5 : 5 + length], data[5 + length :]
        size = -(-len(payload) // count)
        pieces = [payload[i : i + size] for i in range(0, len(payload), size)]
        records = b"".join(data[:3] + len(p).to_bytes(2, "big") + p for p in pieces)
        sock.sendall(records + rest)

    return send


class TlsOverBio:
    """A finished client handshake over a socket, able to exchange application data."""

    def __init__(
        self, sock: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO
    ) -> None:
        self.sock, self.tls, self.incoming, self.outgoing = sock, tls, incoming, outgoing

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tls, name)

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self.sock.sendall(self.outgoing.read())

    def receive(self, at_least: int = 1) -> bytes:
        got = bytearray()
        while len(got) < at_least:
            try:
                got += self.tls.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            data = self.sock.recv(65536)
            if not data:
                break
            self.incoming.write(data)
        return bytes(got)


def tls_handshake(
    sock: socket.socket,
    server_hostname: str | None,
    cafile: Path,
    alpn: list[str] | None = None,
    first_flight: Sender = send_plain,
    timeout: float = 10.0,
) -> TlsOverBio:
    """Complete a handshake on `sock`; the first flight goes out through `first_flight`."""
    context = ssl.create_default_context(cafile=str(cafile))
    if server_hostname is None:
        context.check_hostname = False
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    sock.settimeout(timeout)
    first = True
    while True:
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pending = outgoing.read()
            if pending:
                (first_flight if first else send_plain)(sock, pending)
                first = False
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection during the handshake") from None
            incoming.write(data)
            continue
        sock.sendall(outgoing.read())
        return TlsOverBio(sock, tls, incoming, outgoing)


def client_hello_bytes(server_hostname: str | None, alpn: list[str] | None = None) -> bytes:
    """The first flight (ClientHello records) a default Python client would send."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()
