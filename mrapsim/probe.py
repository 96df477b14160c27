"""`mrapsim probe`: connect like a client (or like a proxy that forgets SNI) and name the outcome.

It works against any TLS endpoint: run it from a pod to learn whether a hop in between strips
SNI. TLS runs over a memory BIO so that every byte from the server is seen: that is how a stall
(nothing at all came back) is told apart from a reset, a FIN, a fatal alert, or a handshake that
completed. The chain is verified afterwards with `cryptography`, so a completed handshake reports
its certificate even when it is not trusted.

Outcomes and exit codes come from `mrapsim.tls.client_outcomes`, which the load harness shares
(README has the table): 0 handshake completed (and verified unless --insecure), 2 usage,
3 stalled, 4 reset, 5 closed, 6 TLS alert, 7 connection refused or unreachable, 8 connect
timeout, 9 handshake completed but the certificate is not trusted for the name, 10 another
handshake failure.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import socket
import ssl
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from mrapsim.names import is_ip_literal, split_host_port
from mrapsim.tls.client_outcomes import EXIT_CODES, ClientOutcome, HandshakeOutcome, classify

UNSETTLED = HandshakeOutcome(ClientOutcome.HANDSHAKE_ERROR)  # until the probe knows better


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    connect_host: str
    connect_port: int
    sni: str | None


@dataclass
class ProbeResult:
    url: str
    connect: str
    sni: str | None
    outcome: ClientOutcome = UNSETTLED.kind
    failure_class: str = UNSETTLED.failure_class  # the same event's name in `mrapsim load`
    detail: str = ""
    elapsed_seconds: float = 0.0
    bytes_received: int = 0
    tls_version: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    alert: dict[str, Any] | None = None
    certificate: dict[str, Any] | None = None
    verified: bool | None = None
    verify_error: str | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def settle(self, outcome: HandshakeOutcome, detail: str) -> None:
        self.outcome, self.failure_class, self.detail = outcome.kind, outcome.failure_class, detail
        if outcome.alert is not None:
            level = "fatal" if outcome.alert.level == 2 else "warning"
            self.alert = {"name": outcome.alert.name, "code": outcome.alert.code, "level": level}


def add_probe_parser(commands: Any) -> None:
    probe = commands.add_parser("probe", help="connect like a client or a proxy and name the TLS outcome")
    probe.add_argument("url", help="https://HOST[:PORT] (port 443 if omitted)")
    sni = probe.add_mutually_exclusive_group()
    sni.add_argument("--sni", metavar="NAME", help="server_name to send (default: the URL's host)")
    sni.add_argument("--no-sni", action="store_true", help="send no server_name, like a proxy that forgets it")
    probe.add_argument(
        "--connect",
        metavar="HOST[:PORT]",
        help="connect here instead of resolving the URL's host (like curl --resolve)",
    )
    probe.add_argument("--ca-bundle", metavar="FILE", help="PEM file of trusted CAs (default: the system store)")
    probe.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    probe.add_argument(
        "--alpn", default="h2,http/1.1", help="ALPN protocols to offer, comma-separated (default h2,http/1.1)"
    )
    probe.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds to wait for the connection and for the handshake (default 5)",
    )
    probe.add_argument("--json", action="store_true", help="print one JSON object")


def parse_target(url: str, sni: str | None, no_sni: bool, connect: str | None) -> Target:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"{url!r} is not an https://HOST[:PORT] URL")
    port = parts.port or 443
    connect_host, connect_port = parts.hostname, port
    if connect:
        connect_host, connect_port = split_host_port(connect, port)
    server_name = None if no_sni else (sni or parts.hostname)
    if server_name is not None and is_ip_literal(server_name):
        server_name = None  # RFC 6066: no SNI for IP literals, as every client does
    return Target(parts.hostname, port, connect_host, connect_port, server_name)


def probe(target: Target, *, timeout: float, alpn: list[str], ca_bundle: Path | None, insecure: bool) -> ProbeResult:
    result = ProbeResult(
        url=f"https://{target.host}:{target.port}",
        connect=f"{target.connect_host}:{target.connect_port}",
        sni=target.sni,
    )
    started = time.monotonic()
    try:
        sock = socket.create_connection((target.connect_host, target.connect_port), timeout=timeout)
    except OSError as exc:
        outcome = classify(exc, connected=False)
        if outcome.kind is ClientOutcome.CONNECT_TIMEOUT:
            result.settle(outcome, f"no TCP connection within {timeout:g} s")
        else:
            result.settle(outcome, f"cannot connect: {exc.strerror or exc}")
    else:
        with sock:
            leaf = _handshake(sock, target, result, timeout, alpn)
        if leaf is not None:
            result.certificate = _describe_certificate(leaf)
            if not insecure:
                _verify(result, leaf, target, ca_bundle)
    result.elapsed_seconds = round(time.monotonic() - started, 3)
    return result


def _handshake(
    sock: socket.socket, target: Target, result: ProbeResult, timeout: float, alpn: list[str]
) -> x509.Certificate | None:
    """Run the handshake, filling in `result`; the server's certificate if it completed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # verified afterwards, so the certificate can be shown either way
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=False, server_hostname=target.sni)
    received = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        try:
            tls.do_handshake()
            sock.sendall(outgoing.read())
            break
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            _settle_failure(result, classify(exc, received), len(received), timeout)
            return None
        try:
            sock.sendall(outgoing.read())
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            data = sock.recv(65536)
        except OSError as exc:  # the deadline (TimeoutError), a reset, a broken pipe
            _settle_failure(result, classify(exc, received), len(received), timeout)
            return None
        if not data:
            _settle_failure(result, classify(EOFError(), received), len(received), timeout)
            return None
        received += data
        incoming.write(data)
    result.bytes_received = len(received)
    result.settle(HandshakeOutcome(ClientOutcome.OK), "")
    result.tls_version = tls.version()
    cipher = tls.cipher()
    result.cipher = cipher[0] if cipher else None
    result.alpn = tls.selected_alpn_protocol()
    der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


def _settle_failure(result: ProbeResult, outcome: HandshakeOutcome, received: int, timeout: float) -> None:
    result.bytes_received = received
    result.settle(outcome, _explain(outcome, received, timeout))


def _explain(outcome: HandshakeOutcome, received: int, timeout: float) -> str:
    """One sentence on a handshake that did not complete."""
    match outcome.kind:
        case ClientOutcome.STALLED:
            return f"no ServerHello within {timeout:g} s: the connection stayed open and nothing came back"
        case ClientOutcome.TIMEOUT:
            return f"the handshake stopped after {received} bytes from the server"
        case ClientOutcome.RESET:
            return f"the server reset the connection (RST) after {received} bytes"
        case ClientOutcome.ALERT if outcome.alert is not None:
            return f"the server answered with the TLS alert {outcome.alert.name} ({outcome.alert.code})"
        case ClientOutcome.CLOSED if received:
            return f"the server closed the connection during the handshake after {received} bytes"
        case ClientOutcome.CLOSED:
            return "the server closed the connection (FIN) after 0 bytes, without a ServerHello"
    return f"TLS error: {outcome.reason}"


def _describe_certificate(cert: x509.Certificate) -> dict[str, Any]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in sans.get_values_for_type(DNSName)] + [
            str(a) for a in sans.get_values_for_type(IPAddress)
        ]
    except x509.ExtensionNotFound:
        names = []
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "sans": names,
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def _trust_store(ca_bundle: Path | None) -> Store:
    path = ca_bundle or Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    return Store(x509.load_pem_x509_certificates(path.read_bytes()))


def _verify(result: ProbeResult, leaf: x509.Certificate, target: Target, ca_bundle: Path | None) -> None:
    name = target.sni or target.host
    try:
        store = _trust_store(ca_bundle)
        subject: DNSName | IPAddress
        if is_ip_literal(name):
            subject = IPAddress(ipaddress.ip_address(name.strip("[]")))
        else:
            subject = DNSName(name)
        PolicyBuilder().store(store).time(datetime.datetime.now(datetime.UTC)).build_server_verifier(subject).verify(
            leaf, []
        )
    except (VerificationError, ValueError, OSError) as exc:
        result.verified = False
        result.verify_error = str(exc)
        result.settle(
            HandshakeOutcome(ClientOutcome.UNTRUSTED),
            f"handshake completed, but the certificate is not trusted for {name!r}: {exc}",
        )
        return
    result.verified = True
    result.detail = "handshake completed and the certificate chain verified"


def render_text(result: ProbeResult) -> str:
    lines = [f"{result.outcome}: {result.detail}"]
    lines.append(
        f"  url {result.url} via {result.connect}, sni {result.sni or '(none)'}, {result.elapsed_seconds:.3f} s"
    )
    if result.tls_version:
        lines.append(f"  {result.tls_version} {result.cipher} alpn={result.alpn or '-'}")
    if result.certificate:
        c = result.certificate
        lines.append(f"  certificate {c['subject']} issued by {c['issuer']}, valid until {c['not_after']}")
        lines.append(f"  names {', '.join(c['sans']) or '(none)'}")
    if result.outcome is ClientOutcome.STALLED:
        lines.append(
            "  this is what the MRAP edge does to a ClientHello without SNI;"
            " a proxy in front of it reports a connect timeout"
        )
    return "\n".join(lines) + "\n"


def run_probe(args: argparse.Namespace) -> int:
    try:
        target = parse_target(args.url, args.sni, args.no_sni, args.connect)
    except ValueError as exc:
        print(f"mrapsim: error: url: {exc}", file=sys.stderr)
        return 2
    if args.timeout <= 0:
        print("mrapsim: error: --timeout: must be more than 0", file=sys.stderr)
        return 2
    alpn = [p for p in args.alpn.split(",") if p]
    result = probe(
        target,
        timeout=args.timeout,
        alpn=alpn,
        ca_bundle=Path(args.ca_bundle) if args.ca_bundle else None,
        insecure=args.insecure,
    )
    if args.json:
        document = asdict(result)
        document["exit_code"] = result.exit_code
        print(json.dumps(document))
    else:
        sys.stdout.write(render_text(result))
    return result.exit_code
