"""Judging the chain a server presented against the CA a client expects, without I/O.

A handshake that completes does not prove the client reached the server it meant: a proxy doing
TLS interception (Cilium's and Istio's Envoy, nginx, HAProxy, squid's ssl-bump) completes it
itself, with a certificate from its own CA, and opens its own connection upstream — with or
without SNI. So besides "trusted for the name", a chain that leads to none of the expected CAs
says that a hop in between answered. That is only a finding when the client knows which CA to
expect (`ExpectedCA.names_interception`): a private CA and an interceptor look alike otherwise.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from mrapsim.names import is_ip_literal
from mrapsim.tls.client_outcomes import ClientOutcome


@dataclass(frozen=True)
class ExpectedCA:
    anchors: tuple[x509.Certificate, ...]
    source: str  # where the anchors came from, for people: "--ca-bundle certs/ca.pem"
    names_interception: bool  # a chain leading to none of the anchors means an intercepting hop


@dataclass(frozen=True)
class ChainVerdict:
    outcome: ClientOutcome  # OK, UNTRUSTED or INTERCEPTED
    error: str | None = None  # why the chain is not trusted for the name


def judge_chain(
    chain: Sequence[x509.Certificate], name: str, expected: ExpectedCA, now: datetime.datetime
) -> ChainVerdict:
    """Whether `chain` (leaf first, as the server sent it) is trusted for `name` at `now`; if not,
    whether it at least leads to an expected CA (a name or date problem) or not (interception)."""
    try:
        subject: DNSName | IPAddress
        if is_ip_literal(name):
            subject = IPAddress(ipaddress.ip_address(name.strip("[]")))
        else:
            subject = DNSName(name)
        verifier = PolicyBuilder().store(Store(list(expected.anchors))).time(now).build_server_verifier(subject)
        verifier.verify(chain[0], list(chain[1:]))
    except (VerificationError, ValueError) as exc:
        if expected.names_interception and not leads_to(chain, expected.anchors):
            return ChainVerdict(ClientOutcome.INTERCEPTED, str(exc))
        return ChainVerdict(ClientOutcome.UNTRUSTED, str(exc))
    return ChainVerdict(ClientOutcome.OK)


def leads_to(chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate]) -> bool:
    """Whether a certificate of `chain` is one of `anchors` or carries an anchor's signature,
    whatever else is wrong with the chain (names, dates, order)."""
    for certificate in chain:
        for anchor in anchors:
            if certificate == anchor:
                return True
            if certificate.issuer != anchor.subject:
                continue
            try:
                certificate.verify_directly_issued_by(anchor)
            except (ValueError, TypeError, InvalidSignature):
                continue  # the same name on another key: what an impostor CA would do
            return True
    return False
