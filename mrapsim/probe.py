"""`mrapsim probe`: connect like a client (or like a proxy that forgets SNI) and name the outcome.

It works against any TLS endpoint. TLS runs over a memory BIO so that every byte from the server
is seen: that is how a stall (nothing at all came back) is told apart from a reset, a FIN, a fatal
alert, or a handshake that completed. The chain is verified afterwards with `cryptography`, so a
completed handshake reports its certificate even when it is not trusted.

A TLS-intercepting hop between the probe and the edge completes the handshake itself and never
shows the probe what the edge does (tls/trust.py): when the chain leads to none of the CAs the
probe expects — `--ca-bundle`, or for the AWS names mrapsim serves, mrapsim's CA and the system
store — the probe says so instead of reporting a handshake, and says where to run it instead.

Outcomes and exit codes come from `mrapsim.tls.client_outcomes`, which the load harness shares
(README has the table): 0 handshake completed (and verified unless --insecure), 2 usage,
3 stalled, 4 reset, 5 closed, 6 TLS alert, 7 connection refused or unreachable, 8 connect
timeout, 9 handshake completed but the certificate is not trusted for the name, 10 another
handshake failure, 11 an intercepting hop answered.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
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

from mrapsim.config import default_document, parse_config
from mrapsim.names import is_ip_literal, name_matches, split_host_port
from mrapsim.tls.client_outcomes import EXIT_CODES, ClientOutcome, HandshakeOutcome, classify
from mrapsim.tls.trust import ExpectedCA, judge_chain

UNSETTLED = HandshakeOutcome(ClientOutcome.HANDSHAKE_ERROR)  # until the probe knows better
DER = 2  # ssl's ENCODING_DER, for the certificates of the unverified chain

SEE_PAST_IT = (
    "the probe cannot see past it: the hop finished the handshake itself and opens its own TLS"
    " connection upstream, so what the edge does with that connection's ClientHello (with or"
    " without SNI) never reaches the probe"
)
RUN_INSTEAD = (
    "run the probe from a place with no intercepting hop: the proxy's own network namespace or"
    " node, or with --connect straight at the edge; for Envoy, check that the upstream cluster"
    " sets auto_sni (or sni), and mrapsim's /connections for the record of the hop's own connection"
)


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
    interception: dict[str, str] | None = None  # issuer, expected, cannot_see_past, run_instead

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
    probe.add_argument(
        "--ca-bundle",
        metavar="FILE",
        help="PEM file of the CAs to expect; a chain leading to none of them is named as an intercepting hop"
        " (default: for the AWS names mrapsim serves, mrapsim's CA or the system store; for other names the"
        " system store, and a chain to another CA is only untrusted)",
    )
    probe.add_argument(
        "--certs-dir",
        metavar="DIR",
        help="where mrapsim's ca.pem is, as for serve (default ./certs) [MRAPSIM_CERTS_DIR]",
    )
    probe.add_argument(
        "--insecure", action="store_true", help="do not verify the certificate (nor look for an intercepting hop)"
    )
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


def probe(
    target: Target,
    *,
    timeout: float,
    alpn: list[str],
    ca_bundle: Path | None,
    insecure: bool,
    certs_dir: Path | None = None,
) -> ProbeResult:
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
            chain = _handshake(sock, target, result, timeout, alpn)
        if chain:
            result.certificate = _describe_certificate(chain[0])
            if not insecure:
                _verify(result, chain, target, ca_bundle, certs_dir)
    result.elapsed_seconds = round(time.monotonic() - started, 3)
    return result


def _handshake(
    sock: socket.socket, target: Target, result: ProbeResult, timeout: float, alpn: list[str]
) -> list[x509.Certificate]:
    """Run the handshake, filling in `result`; the server's chain, leaf first, if it completed."""
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
            return []
        try:
            sock.sendall(outgoing.read())
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            data = sock.recv(65536)
        except OSError as exc:  # the deadline (TimeoutError), a reset, a broken pipe
            _settle_failure(result, classify(exc, received), len(received), timeout)
            return []
        if not data:
            _settle_failure(result, classify(EOFError(), received), len(received), timeout)
            return []
        received += data
        incoming.write(data)
    result.bytes_received = len(received)
    result.settle(HandshakeOutcome(ClientOutcome.OK), "")
    result.tls_version = tls.version()
    cipher = tls.cipher()
    result.cipher = cipher[0] if cipher else None
    result.alpn = tls.selected_alpn_protocol()
    return _presented_chain(tls)


def _presented_chain(tls: ssl.SSLObject) -> list[x509.Certificate]:
    """The certificates the server sent, leaf first, unverified: the intermediates are needed to
    tell a chain that leads to the expected CA from one that does not."""
    # Public from Python 3.13; 3.11 and 3.12 have it on the underlying _ssl object.
    handle: Any = getattr(tls, "_sslobj", tls)
    try:
        sent = handle.get_unverified_chain() or []
    except AttributeError:
        der = tls.getpeercert(binary_form=True)
        sent = [der] if der else []
    return [x509.load_der_x509_certificate(c if isinstance(c, bytes) else c.public_bytes(DER)) for c in sent]


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


def _default_certs_dir() -> Path:
    return parse_config(default_document()).certs_dir


def _system_anchors() -> tuple[x509.Certificate, ...]:
    path = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    return tuple(x509.load_pem_x509_certificates(path.read_bytes()))


def _serves_aws_name(name: str) -> bool:
    """Whether mrapsim's own routes answer for `name` as the AWS edge would. Such a name is served
    by AWS's public CA or by mrapsim's, never by a third CA; `localhost` is left out, since many
    other servers answer for it too."""
    patterns = [route.match for listener in parse_config(default_document()).listeners for route in listener.routes]
    return any(name_matches(p, name) for p in patterns if p.endswith(".amazonaws.com"))


def expected_ca(ca_bundle: Path | None, certs_dir: Path | None, name: str) -> ExpectedCA:
    """The CAs the probe expects for `name`; OSError or ValueError if a file cannot be read."""
    if ca_bundle is not None:
        bundle = tuple(x509.load_pem_x509_certificates(ca_bundle.read_bytes()))
        return ExpectedCA(bundle, f"--ca-bundle {ca_bundle}", names_interception=True)
    system = _system_anchors()
    if not _serves_aws_name(name):
        return ExpectedCA(system, "the system store", names_interception=False)
    mrapsim_ca = certs_dir / "ca.pem" if certs_dir is not None else None
    if mrapsim_ca is None or not mrapsim_ca.is_file():
        source = "the system store, where AWS's CA is; if mrapsim serves this name, pass --ca-bundle with its ca.pem"
        return ExpectedCA(system, source, names_interception=True)
    mine = tuple(x509.load_pem_x509_certificates(mrapsim_ca.read_bytes()))
    source = f"mrapsim's CA ({mrapsim_ca}) or the system store, where AWS's CA is"
    return ExpectedCA(mine + system, source, names_interception=True)


def _verify(
    result: ProbeResult, chain: list[x509.Certificate], target: Target, ca_bundle: Path | None, certs_dir: Path | None
) -> None:
    name = target.sni or target.host
    try:
        expected = expected_ca(ca_bundle, certs_dir, name)
    except (OSError, ValueError) as exc:
        result.verified, result.verify_error = False, str(exc)
        detail = f"handshake completed, but there is no CA to check it against: {exc}"
        result.settle(HandshakeOutcome(ClientOutcome.UNTRUSTED), detail)
        return
    verdict = judge_chain(chain, name, expected, datetime.datetime.now(datetime.UTC))
    result.verified = verdict.outcome is ClientOutcome.OK
    result.verify_error = verdict.error
    if verdict.outcome is ClientOutcome.OK:
        result.detail = "handshake completed and the certificate chain verified"
    elif verdict.outcome is ClientOutcome.INTERCEPTED:
        issuer = chain[0].issuer.rfc4514_string()
        result.interception = {
            "issuer": issuer,
            "expected": expected.source,
            "cannot_see_past": SEE_PAST_IT,
            "run_instead": RUN_INSTEAD,
        }
        result.settle(
            HandshakeOutcome(ClientOutcome.INTERCEPTED),
            f"a TLS-intercepting hop answered: the certificate for {name!r} was issued by {issuer},"
            f" which leads to none of the expected CAs ({expected.source})",
        )
    else:
        result.settle(
            HandshakeOutcome(ClientOutcome.UNTRUSTED),
            f"handshake completed, but the certificate is not trusted for {name!r}: {verdict.error}",
        )


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
    if result.interception:
        lines.append(f"  {result.interception['cannot_see_past']}")
        lines.append(f"  {result.interception['run_instead']}")
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
        certs_dir=Path(args.certs_dir or os.environ.get("MRAPSIM_CERTS_DIR") or _default_certs_dir()),
    )
    if args.json:
        document = asdict(result)
        document["exit_code"] = result.exit_code
        print(json.dumps(document))
    else:
        sys.stdout.write(render_text(result))
    return result.exit_code
